"""Shared fixtures: test data paths, C test delegates built with `cc`, fake system trees."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_server import ModelServer
from skip_policy import pytest_runtest_makereport  # noqa: F401  (a hook: skips fail the suite)

from bredos_npu.models import bundled
from bredos_npu.system.root import SystemRoot

HERE = Path(__file__).parent
DATA = HERE / "data"
MODELS = DATA / "models"
IMAGES = DATA / "images"
LABELS = DATA / "labels"
DEFAULT_MODEL = bundled.default_model()
CAT = bundled.sample_image()


ENV_PREFIX = "BREDOS_NPU_"
# Where platformdirs and friends look for the user's own folders (the model cache among them).
USER_FOLDERS = {"HOME": "", "XDG_CACHE_HOME": ".cache", "XDG_CONFIG_HOME": ".config",
                "XDG_DATA_HOME": ".local/share", "XDG_STATE_HOME": ".local/state"}


@pytest.fixture(scope="session")
def probe_verdicts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One delegate-probe verdict folder for the session: each test library is probed once per
    model (a child process, ~0.5 s), not once per test."""
    return tmp_path_factory.mktemp("delegate-probes")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                      probe_verdicts: Path) -> Iterator[Path]:
    """Tests never see the developer's settings, cache or home: no ``BREDOS_NPU_*`` variable is
    set (but the session's probe verdict folder) and HOME/XDG point into an empty folder of the
    test's own. Yields that home."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    for name, below in USER_FOLDERS.items():
        monkeypatch.setenv(name, str(home / below))
    monkeypatch.setenv("BREDOS_NPU_PROBE_CACHE", str(probe_verdicts))
    yield home
    # Code under test may set variables of its own (the CLI's --offline does): drop them too
    # (monkeypatch would restore a value it never saw being set).
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        del os.environ[name]


@pytest.fixture
def server() -> Iterator[ModelServer]:
    """A local stand-in for the model hosts, serving tests/data's models and labels (see
    tests/model_server.py); point the zoo at it with :func:`mirror`."""
    with ModelServer([MODELS, LABELS]) as running:
        yield running


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache of the test's own, online (BREDOS_NPU_OFFLINE is restored after the
    test, even if the CLI's --offline set it)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("BREDOS_NPU_CACHE", str(folder))
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "")
    return folder


def mirror(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Download the zoo's files from ``url`` for the rest of the test."""
    monkeypatch.setenv("BREDOS_NPU_MODEL_BASE_URL", url)


def bare_interpreter(model: Path, delegate: Path | None = None) -> Any:
    """ai_edge_litert's own Interpreter (the tests' reference), without XNNPACK, with ``delegate``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType, load_delegate

    return Interpreter(model_path=str(model),
                       experimental_delegates=[load_delegate(str(delegate))] if delegate else None,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _compile(source: Path, target: Path, *flags: str) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler (cc) on PATH: the delegate tests need one")
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", *flags, "-o", str(target), str(source)],
                   check=True, capture_output=True)
    return target


# name -> (source in tests/delegates, compiler flags)
DELEGATES = {
    "passthrough": ("test_delegate.c", ()),  # claims no nodes
    "claiming": ("test_delegate.c", ("-DCLAIM_BUILTIN=22",)),  # takes every RESHAPE (builtin 22)
    "wrong_results": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DSKIP_CLAIMED")),
    "abort_on_invoke": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DABORT_ON_INVOKE")),
    "failing": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DFAIL_WHEN_ENV_FILE")),  # fails on demand
    "listed": ("test_delegate.c", ("-DCLAIM_FROM_ENV",)),  # takes the nodes in $TEST_DELEGATE_NODES
    "null": ("null.c", ()),  # returns NULL like Teflon without its device
    "not_a_delegate": ("not_a_delegate.c", ()),  # no entry points
    # Faults: a crash on create, Mesa-like asserts (SIGABRT) on compile or run, a kernel that
    # fails after 3 invocations, one that never returns.
    "segv_create": ("test_delegate.c", ("-DFAULT_SEGV_ON_CREATE",)),
    "abort_prepare": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DFAULT_ABORT_ON_PREPARE")),
    "abort_invoke": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DFAULT_ABORT_ON_INVOKE")),
    "fail_invoke_after_3": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DFAULT_FAIL_INVOKE_AFTER=3")),
    "hang_invoke": ("test_delegate.c", ("-DCLAIM_BUILTIN=22", "-DFAULT_HANG_ON_INVOKE")),
}


@pytest.fixture(scope="session")
def delegates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test delegates as shared libraries, built with the system `cc`."""
    out = tmp_path_factory.mktemp("delegates")
    return {name: _compile(HERE / "delegates" / source, out / f"lib{name}.so", *flags)
            for name, (source, flags) in DELEGATES.items()}


class FakeSystem:
    """A fake system tree to point BREDOS_NPU_ROOT (or --root) at.

    Device nodes are described, not created: ``mknod`` needs root, so ``device()`` leaves a
    placeholder file and answers for it through ``SystemRoot.stat``, the seam through which the
    package reads file types and owners. The suite thus runs the same as root and as a user.
    """

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = base
        self.nodes: dict[Path, os.stat_result] = {}
        real_stat = SystemRoot.stat

        def stat(root: SystemRoot, system_path: str) -> os.stat_result | None:
            path = root.path(system_path)
            if path in self.nodes and path.exists():
                return self.nodes[path]
            return real_stat(root, system_path)

        monkeypatch.setattr(SystemRoot, "stat", stat)

    def write(self, system_path: str, content: str | bytes) -> Path:
        path = self.base / system_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.nodes.pop(path, None)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def remove(self, system_path: str) -> None:
        path = self.base / system_path.lstrip("/")
        self.nodes.pop(path, None)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def soc(self, *compatible: str, model: str = "Radxa ROCK 5B") -> None:
        self.write("/proc/device-tree/compatible", b"\0".join(c.encode() for c in compatible) + b"\0")
        self.write("/proc/device-tree/model", model.encode() + b"\0")

    def kernel(self, release: str, rocket: str | None = "m") -> None:
        self.write("/proc/sys/kernel/osrelease", release + "\n")
        line = f"CONFIG_DRM_ACCEL_ROCKET={rocket}" if rocket else "# CONFIG_DRM_ACCEL_ROCKET is not set"
        self.write("/proc/config.gz", gzip.compress(f"CONFIG_DRM_ACCEL=y\n{line}\n".encode()))

    def module(self, loaded: bool = True) -> None:
        lines = "drm 700416 5 rocket, Live 0x0\n"
        if loaded:
            lines = "rocket 45056 0 - Live 0x0000000000000000\n" + lines
        self.write("/proc/modules", lines)

    def identity(self, uid: int, gid: int, groups: tuple[int, ...] = ()) -> None:
        self.write("/proc/self/status",
                   f"Name:\tpython3\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
                   f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\nGroups:\t{' '.join(map(str, groups))}\n")
        self.write("/etc/passwd", f"root:x:0:0::/root:/bin/sh\nalarm:x:{uid}:{gid}::/home/alarm:/bin/sh\n")
        self.write("/etc/group", "root:x:0:\nvideo:x:44:\nrender:x:989:\n")

    def device(self, mode: int = 0o660, gid: int = 989, uid: int = 0,
               system_path: str = "/dev/accel/accel0") -> Path:
        """A character device owned by ``uid:gid`` with permission bits ``mode``."""
        path = self.write(system_path, "")
        self.nodes[path] = os.stat_result(
            (stat.S_IFCHR | mode, 1, 5, 1, uid, gid, 0, 0, 0, 0))
        return path

    def shared_device(self, system_path: str = "/dev/accel/accel0") -> Path:
        """A node that child processes see as a character device too (a described one exists in
        this process only): a link to /dev/null, which everyone may read and write."""
        self.remove(system_path)
        path = self.base / system_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to("/dev/null")
        return path

    def library(self, source: Path, system_path: str = "/usr/lib/libteflon.so") -> Path:
        target = self.base / system_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        return target

    def cpus(self, capacities: list[int] | None = None, max_freqs: list[int] | None = None) -> None:
        values = capacities or max_freqs or []
        for cpu, value in enumerate(values):
            name = "cpu_capacity" if capacities else "cpufreq/cpuinfo_max_freq"
            self.write(f"/sys/devices/system/cpu/cpu{cpu}/{name}", f"{value}\n")


@pytest.fixture
def fake_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystem:
    return FakeSystem(tmp_path / "root", monkeypatch)


@pytest.fixture
def ready_board(fake_system: FakeSystem, delegates: dict[str, Path]) -> FakeSystem:
    """An RK3588 with Linux 6.18, rocket loaded, an accessible node and a loadable libteflon."""
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.18.2-1-ARCH")
    fake_system.module(loaded=True)
    fake_system.identity(uid=1000, gid=1000, groups=(989,))
    fake_system.device(mode=0o660, gid=989)
    fake_system.library(delegates["passthrough"])
    fake_system.cpus(capacities=[414, 414, 414, 414, 1024, 1024, 1024, 1024])
    return fake_system
