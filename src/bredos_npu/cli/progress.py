"""A progress bar on stderr for long runs (hidden when stderr is not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class HiddenBar:
    """What a progress bar does where none is shown: count, without importing tqdm.

    tqdm (and the multiprocessing lock it creates) costs tens of milliseconds at start-up, which
    ``classify IMAGE`` in a script or a pipe should not pay. Any other tqdm method is a no-op.
    """

    def __init__(self, total: int | None) -> None:
        self.total, self.n = total, 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@contextmanager
def progress_bar(total: int | None, unit: str, enabled: bool = True) -> Iterator[Any]:
    """A tqdm bar: with a ``total``, it shows N/total, the percentage and the time left, and
    its last frame (100% when every step was counted) is drawn before it is cleared.

    A :class:`HiddenBar` when disabled or when stderr is not a terminal (tqdm hides itself there).
    """
    if not enabled or not sys.stderr.isatty():
        yield HiddenBar(total)
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
               disable=None if enabled else True)
    try:
        yield bar
    finally:
        bar.refresh()  # tqdm draws at most every 0.1 s: the final count may not be on screen yet
        bar.close()


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


def model_file(spec: str | None) -> Path:
    """The file of MODEL as the commands take it: a path, or a zoo name fetched into the cache with
    a visible download (the bundled MobileNet V2 when None). The one place a command resolves it."""
    from bredos_npu.models.bundled import default_model
    from bredos_npu.models.zoo import resolve

    if spec is None:
        return default_model()
    bar = DownloadBar(spec)
    try:
        return resolve(spec, bar, with_labels=False).path
    finally:
        bar.close()
