"""Library warnings as one terminal line (terminal-safe text itself: :mod:`bredos_npu.text`)."""

from __future__ import annotations

import warnings
from typing import Any

import click

from bredos_npu.text import for_terminal

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
