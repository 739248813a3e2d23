"""Text for a terminal (the tasks' text rendering and every skin that prints use it): what a
file, a label or a model carries must not drive the terminal.

Labels, operator and tensor names and file names come from files anyone can write. Raw ESC
sequences in them can recolour, retitle or clear a terminal, a NUL or a newline can forge lines,
and right-to-left overrides can disguise text. They are shown as escapes (``\\x1b``, ``\\n``,
``\\u202e``) instead; JSON output escapes them by itself.
"""

from __future__ import annotations

import unicodedata

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


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"
