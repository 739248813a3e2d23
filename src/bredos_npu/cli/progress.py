"""A progress bar on stderr for long runs (hidden when stderr is not a terminal)."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int | None, unit: str, enabled: bool = True) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None if enabled else True)


class DownloadBar:
    """A byte progress bar (size and speed) fed by the zoo's (bytes, total) callback."""

    def __init__(self, label: str = "download") -> None:
        self.label = label
        self.bar: Any = None

    def __call__(self, received: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.label, file=sys.stderr, leave=False, disable=None)
        elif total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(received)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
