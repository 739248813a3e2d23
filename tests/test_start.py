"""A fast start: the classify path imports what classify needs and nothing else.

No timings here (they would be flaky on a busy machine): the modules a fresh process has
imported are compared with lists of heavy ones. benchmarks/bench_start.py measures the time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from bredos_npu.cli import COMMANDS, cli
from bredos_npu.models import bundled
from bredos_npu.tasks import registry

# Extras, other commands' machinery and libraries that cost start-up time without serving
# `classify IMAGE` (the bare reference imports none of them either).
HEAVY = ("tqdm", "jsonschema", "starlette", "fastapi", "uvicorn", "av", "ray", "ai_edge_quantizer",
         "requests", "httpx", "urllib3", "supervision", "matplotlib", "paho", "playwright",
         "importlib.metadata", "email", "multiprocessing", "ai_edge_litert.schema_py_generated",
         "PIL.ImageDraw", "PIL.ImageFont", "bredos_npu.doctor", "bredos_npu.serve",
         "bredos_npu.cluster", "bredos_npu.report", "bredos_npu.models.quantize",
         "bredos_npu.models.inspection.graph", "bredos_npu.runtime.probe",
         "bredos_npu.runtime.stream", "bredos_npu.tasks.detect", "bredos_npu.tasks.pose",
         "bredos_npu.tasks.segment",
         *(module for module in COMMANDS.values()))

# What one image on the terminal does without, though other runs of the same command need them:
# results files (json, csv, tempfile), the thread pool of many inputs, video sources, a float
# model's metadata, Pillow's other format plugins (a path is opened by its suffix's plugin), and
# the dataclass machinery (named tuples cost a fraction of it to define). Milliseconds each.
ONE_IMAGE_WITHOUT = ("json", "csv", "tempfile", "concurrent.futures", "queue", "pkgutil", "dataclasses",
                     "fractions", "PIL.GifImagePlugin", "PIL.PngImagePlugin", "bredos_npu.cli.records",
                     "bredos_npu.runtime.video", "bredos_npu.models.metadata")

# A bare interpreter that imports only ai_edge_litert + PIL + numpy: the independent reference
# of what a classification has to import.
BARE = """
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
"""


def modules_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    listing = tmp_path / "modules.txt"
    script = (f"{code}\nimport sys\n"
              f"open({str(listing)!r}, 'w').write('\\n'.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(listing.read_text().split())


def run_cli(*args: str) -> str:
    return (f"from bredos_npu.cli import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit as exit:\n"
            f"    assert exit.code in (0, None), exit.code\n")


def test_the_reference_imports_none_of_the_heavy_modules(tmp_path):
    assert not modules_after(BARE, tmp_path) & set(HEAVY)


def test_classify_imports_only_what_classify_needs(tmp_path):
    imported = modules_after(run_cli("classify", "-b", "cpu", "-k", "2"), tmp_path)
    assert "bredos_npu.tasks.classify" in imported  # it did classify
    assert sorted(imported & set(HEAVY)) == []
    assert sorted(imported & set(ONE_IMAGE_WITHOUT)) == []


def test_the_reference_does_without_them_too(tmp_path):
    """What the one-image path leaves out, the bare reference does not import either (else
    leaving it out would gain nothing)."""
    image = str(bundled.sample_image())
    opened = BARE + f"Image.open({image!r}).convert('RGB')\n"
    assert sorted(modules_after(opened, tmp_path) & set(ONE_IMAGE_WITHOUT)) == []


def test_help_and_import_stay_light(tmp_path):
    for code in ("import bredos_npu", "import bredos_npu.cli", run_cli("--help"),
                 run_cli("classify", "--help")):
        imported = modules_after(code, tmp_path)
        assert sorted(imported & set(HEAVY)) == [], code


def test_help_lists_every_command_with_its_summary():
    """Whatever makes --help light, it shows each command's own summary (as click shortens it)."""
    listing = subprocess.run([sys.executable, "-m", "bredos_npu", "--help"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    names = sorted([*registry.names(), *COMMANDS])
    lines = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in
             listing.stdout.split("Commands:\n", 1)[1].splitlines() if line.strip()}
    assert sorted(lines) == names
    limit = 78 - 6 - max(map(len, names))  # click writes COLUMNS - 2 wide, as click.Group does
    with click.Context(cli) as ctx:
        for name in names:
            own = cli.get_command(ctx, name).get_short_help_str(limit=limit)
            assert lines[name] == own, f"{name}: update SUMMARIES in bredos_npu/cli/__init__.py"
