"""Running the real entry point in-process, as a user's shell would see it."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from bredos_npu.cli import main


class Outcome(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> Outcome:
    capfd.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    out, err = capfd.readouterr()
    code = stopped.value.code
    return Outcome(code if isinstance(code, int) else 0, out, err)
