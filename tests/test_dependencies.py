"""What the package imports is what pyproject.toml declares, and the core runs without any extra."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from conftest import CAT, DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "bredos_npu"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
USER_EXTRAS = tuple(sorted(set(PROJECT["optional-dependencies"]) - {"test"}))  # test: development only
DEADLINE_S = 90


def distribution(requirement: str) -> str:
    """The normalised distribution name of a requirement such as ``"av>=14.2"``."""
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> dict[str, set[str]]:
    """Distribution → where it is declared ("core" or the extras' names)."""
    where: dict[str, set[str]] = {}
    for requirement in PROJECT["dependencies"]:
        where.setdefault(distribution(requirement), set()).add("core")
    for extra in USER_EXTRAS:
        for requirement in PROJECT["optional-dependencies"][extra]:
            where.setdefault(distribution(requirement), set()).add(extra)
    return where


def imported_modules() -> dict[str, set[Path]]:
    """Top-level module name → the source files that import it (absolute imports only)."""
    found: dict[str, set[Path]] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.relative_to(SOURCE))
    return found


def third_party() -> dict[str, set[Path]]:
    return {name: files for name, files in imported_modules().items()
            if name not in sys.stdlib_module_names and name != "bredos_npu"}


def test_every_third_party_import_is_declared():
    owners = importlib.metadata.packages_distributions()
    where = declared()
    imports = third_party()
    assert {"numpy", "flatbuffers", "starlette", "ray"} <= set(imports)  # the walk finds imports
    undeclared = {}
    for module, files in imports.items():
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        if not dists & set(where):
            undeclared[module] = sorted(map(str, files))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_tflite_schema_package_is_a_core_dependency():
    """graph.SCHEMA_MODULES imports it by name (no import statement for the walk to find)."""
    from bredos_npu.models.inspection.graph import SCHEMA_MODULES

    assert SCHEMA_MODULES[-1] == "tflite" and "core" in declared()["tflite"]


def core_closure() -> set[str]:
    """The core dependencies and everything they require, as installed here."""
    found: set[str] = set()
    todo = [distribution(r) for r in PROJECT["dependencies"]]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [distribution(r) for r in requires if "extra ==" not in r]
    return found


def extras_modules() -> set[str]:
    """The top-level modules that only the user extras install (not what the core pulls in)."""
    owners = importlib.metadata.packages_distributions()
    only_extras = {dist for dist, where in declared().items() if "core" not in where} - core_closure()
    return {module for module, dists in owners.items()
            if {d.lower().replace("_", "-") for d in dists} & only_extras}


def test_core_commands_need_no_extra():
    """With every package of the extras unimportable, classify, inspect and doctor still work:
    each extra's packages are imported only by the features that declare them."""
    blocked = tuple(sorted(extras_modules()))
    assert {"starlette", "ray", "matplotlib", "av", "ai_edge_quantizer"} <= set(blocked)
    script = textwrap.dedent(f"""
        import importlib.abc, runpy, sys
        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        sys.meta_path.insert(0, Blocked())
        for arguments in (["classify", {str(CAT)!r}, "-b", "cpu", "--json"],
                          ["inspect", {str(DEFAULT_MODEL)!r}, "--json"], ["doctor", "--json"]):
            sys.argv = ["bredos-npu", *arguments]
            try:
                runpy.run_module("bredos_npu", run_name="__main__")
            except SystemExit as end:
                print("exit", end.code, file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=DEADLINE_S)
    assert "blocked by the test" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    exits = re.findall(r"^exit (\S+)$", done.stderr, re.MULTILINE)
    # classify and inspect succeed; the doctor reports "CPU only" here (no NPU): its own exit code
    assert exits[:2] in (["0", "0"], ["None", "None"]), done.stderr
    assert '"label": "Egyptian cat"' in done.stdout or '"label": "tabby' in done.stdout, done.stdout
