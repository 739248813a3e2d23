#!/usr/bin/env python3
"""Start-up cost of ``bredos-npu classify IMAGE`` against a bare script doing the same work.

The bare script (written to a temporary file) uses only ai_edge_litert + PIL + numpy (+ zipfile
for the labels the model embeds): load the bundled model, open the image as RGB, resize it
(bilinear), invoke with as many XNNPACK threads as the CLI chooses (``--threads`` sets both),
print the top 5. Both run as fresh processes, alternating, and the wall time
from process start to exit is compared as medians measured in one run, so the ratio holds even
where absolute times are noisy. Both must name the same top-1 class: the bare script is the
independent reference. Target: CLI <= 1.20x bare.

Then ``python -X importtime`` shows the 15 costliest imports of the CLI (cumulative), so whoever
works on the start-up sees where the time goes.

Usage: python benchmarks/bench_start.py [--rounds 15] [--image PATH] [-- extra CLI options]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

TARGET = 1.20
TIMEOUT_S = 120

BARE = '''\
import sys
import zipfile

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

model, image_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
interpreter = Interpreter(model_path=model, num_threads=threads)
interpreter.allocate_tensors()
detail = interpreter.get_input_details()[0]
height, width = detail["shape"][1:3]
image = Image.open(image_path).convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
interpreter.set_tensor(detail["index"], np.expand_dims(np.asarray(image), 0))
interpreter.invoke()
output = interpreter.get_output_details()[0]
scores = interpreter.get_tensor(output["index"])[0].astype(np.float32)
scale, zero = output["quantization"]
if scale:
    scores = (scores - zero) * scale
with zipfile.ZipFile(model) as files:
    labels = files.read(files.namelist()[0]).decode().splitlines()
for rank, index in enumerate(np.argsort(-scores, kind="stable")[:5], 1):
    print(f"  {rank}. {labels[index]}  {scores[index] * 100:5.1f}%  ({index})")
'''


def cli_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m bredos_npu``."""
    script = Path(sys.executable).with_name("bredos-npu")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bredos_npu"]


# Users' installs have .pyc files (pip compiles them); without them every start recompiles the
# package's sources, which is not what is measured here.
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


class Run(NamedTuple):
    wall_ms: float  # from process start to exit
    cpu_ms: float  # user + system time of the process (less sensitive to a busy machine)
    stdout: str


def timed_run(command: list[str]) -> Run:
    """Run ``command`` once as a fresh process and time it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                          env=CHILD_ENV)
    elapsed = (time.perf_counter() - started) * 1e3
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3
    return Run(elapsed, cpu, done.stdout)


def top1(stdout: str) -> int:
    """The class index of rank 1 in classify's text output (``  1. label  78.9%  (286)``)."""
    match = re.search(r"^\s*1\. .*\((\d+)\)\s*$", stdout, re.MULTILINE)
    if match is None:
        sys.exit(f"no rank-1 line in:\n{stdout}")
    return int(match.group(1))


def import_times(command: list[str]) -> list[tuple[int, str]]:
    """(cumulative microseconds, module indented as in the tree) of ``python -X importtime``."""
    done = subprocess.run([sys.executable, "-X", "importtime", *command], capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=True, env=CHILD_ENV)
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(1)), f"{match.group(2)[1:]}{match.group(3)}"))
    return rows


def costliest_imports(command: list[str], reference: list[str], count: int) -> list[tuple[int, str]]:
    """The ``count`` largest cumulative import times of ``command`` among the modules that
    ``reference`` does not import (numpy, PIL and the runtime cost both the same)."""
    shared = {name.strip() for _, name in import_times(reference)}
    return sorted((row for row in import_times(command) if row[1].strip() not in shared),
                  reverse=True)[:count]


def main() -> int:
    from bredos_npu.models import bundled
    from bredos_npu.system.cpu import plan_threads
    from bredos_npu.system.root import SystemRoot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--image", default=str(bundled.sample_image()))
    parser.add_argument("--threads", type=int, help="XNNPACK threads of both (default: the CLI's "
                        "choice, one per core of the fastest cluster)")
    parser.add_argument("cli_options", nargs="*", help="extra options for the CLI (after --)")
    args = parser.parse_args()
    model = str(bundled.default_model())

    with tempfile.TemporaryDirectory() as folder:
        bare_script = Path(folder, "bare_classify.py")
        bare_script.write_text(BARE)
        threads = args.threads or plan_threads(SystemRoot.from_env(None)).threads
        bare = [sys.executable, str(bare_script), model, args.image, str(threads)]
        classify = ["classify", "--threads", str(threads), args.image, *args.cli_options]
        cli = [*cli_command(), *classify]
        # One untimed run each: the page cache and .pyc files are then warm for both.
        expected, got = top1(timed_run(bare).stdout), top1(timed_run(cli).stdout)
        if expected != got:
            sys.exit(f"top-1 differs: bare script {expected}, CLI {got}")
        runs: dict[str, list[Run]] = {"bare": [], "cli": []}
        for _ in range(args.rounds):
            runs["bare"].append(timed_run(bare))
            runs["cli"].append(timed_run(cli))

        wall = {name: statistics.median(r.wall_ms for r in done) for name, done in runs.items()}
        cpu = {name: statistics.median(r.cpu_ms for r in done) for name, done in runs.items()}
        print(f"rounds: {args.rounds}, image: {args.image}, {threads} XNNPACK thread(s), "
              f"top-1 class {got} in both")
        for name, title in (("bare", "bare script (ai_edge_litert + PIL + numpy)"),
                            ("cli", "bredos-npu classify IMAGE")):
            print(f"{title:<42} median wall {wall[name]:7.1f} ms, cpu {cpu[name]:7.1f} ms")
        ratio = wall["cli"] / wall["bare"]
        verdict = "met" if ratio <= TARGET else "NOT met"
        print(f"ratio (wall): {ratio:.2f}x (target <= {TARGET:.2f}x: {verdict}); "
              f"cpu time: {cpu['cli'] / cpu['bare']:.2f}x")

        module_cli = ["-m", "bredos_npu", *classify]
        print("\nthe CLI's costliest imports that the bare script does without "
              "(cumulative ms, python -X importtime):")
        for microseconds, name in costliest_imports(module_cli, bare[1:], 15):
            print(f"  {microseconds / 1e3:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
