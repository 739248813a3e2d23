"""Text for a terminal: what a file, a label or a model carries must not drive the terminal.

Labels, operator and tensor names and file names come from files anyone can write. Raw ESC
sequences in them can recolour, retitle or clear a terminal, a NUL or a newline can forge lines,
and right-to-left overrides can disguise text. They are shown as escapes (``\\x1b``, ``\\n``,
``\\u202e``) instead; JSON output escapes them by itself.
"""

from __future__ import annotations

import unicodedata
import warnings
from typing import Any

import click

# Format characters that reorder or hide text (bidi embeddings, overrides and isolates).
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ESCAPED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def for_terminal(text: str) -> str:
    """``text`` with control characters (and undecodable file-name bytes) escaped: one line."""
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in str(text))


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ESCAPED_CATEGORIES or ch in BIDI_CONTROLS


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return ch.encode("unicode_escape").decode("ascii")


# Pillow warns about large images in case a server decodes untrusted uploads: large photos are
# this tool's normal input, and the decode limit itself still holds (an error, not a warning).
BOMB_WARNING = r"Image size \(\d+ pixels\) exceeds limit"


def one_line_warnings() -> None:
    """Show library warnings (corrupt EXIF, numpy overflow...) as one escaped stderr line each,
    instead of Python's file:line plus source line."""
    warnings.filterwarnings("ignore", message=BOMB_WARNING)

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        click.echo(f"bredos-npu: warning: {for_terminal(text)}", err=True)

    warnings.showwarning = show
