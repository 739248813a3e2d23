"""A progress bar on stderr for long runs (hidden when stderr is not a terminal)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(total: int | None, unit: str, enabled: bool = True) -> Any:
    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None if enabled else True)
