"""Run bredos-npu on byte-mutated copies of a real model, in this one process, one JSON line each.

Started by tests/test_damaged_models.py as a child process, so that a native crash on a damaged
model fails that test (with the case that crashed) instead of taking the test run down.
Usage: python fuzz_models.py MODEL IMAGE SEED CASES FOLDER
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
from pathlib import Path

from bredos_npu.cli import main


def mutate(content: bytes, rng: random.Random) -> bytes:
    """1-8 random bytes changed, mostly where the flatbuffer's tables are (the file's first 4 KB
    and last 8 KB: vtables, tensors, op codes, names), sometimes anywhere (weights)."""
    data = bytearray(content)
    for _ in range(rng.randint(1, 8)):
        where = rng.random()
        if where < 0.3:
            position = rng.randrange(len(data))
        elif where < 0.65:
            position = rng.randrange(4096)
        else:
            position = len(data) - 1 - rng.randrange(8192)
        data[position] = rng.randrange(256)
    return bytes(data)


def run(args: list[str]) -> tuple[int, str]:
    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 0
    return code, said.getvalue()


def fuzz(model: Path, image: str, seed: int, cases: int, folder: Path) -> None:
    rng = random.Random(seed)
    original = model.read_bytes()
    for case in range(cases):
        path = folder / f"fuzz-{case}.tflite"
        path.write_bytes(mutate(original, rng))
        commands = [["classify", "-b", "cpu", "-t", "1", "-k", "1", "-m", str(path), image]]
        if case % 2 == 0:  # inspect is the slower of the two: every other case
            commands.append(["inspect", str(path)])
        for args in commands:
            print(json.dumps({"case": case, "command": args[0], "started": True}), flush=True)
            code, said = run(args)
            print(json.dumps({"case": case, "command": args[0], "code": code, "stderr": said}),
                  flush=True)
        path.unlink()


if __name__ == "__main__":
    fuzz(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
