"""CPU thread and core choice for big.LITTLE SoCs, on fake sysfs trees."""

from __future__ import annotations

import os

from bredos_npu.system.cpu import CpuPlan, fastest_cluster, plan_threads
from bredos_npu.system.root import SystemRoot

RK3588_CAPACITY = [414, 414, 414, 414, 1024, 1024, 1024, 1024]
RK3588_MAX_FREQ = [1800000] * 4 + [2352000, 2352000, 2256000, 2256000]


def plan(fake_system, threads=None) -> CpuPlan:
    return plan_threads(SystemRoot(fake_system.base), threads)


def test_rk3588_uses_the_four_a76_cores(fake_system):
    fake_system.cpus(capacities=RK3588_CAPACITY)
    assert plan(fake_system)[:2] == (4, (4, 5, 6, 7))
    assert plan(fake_system).reason == "fastest cluster by cpu_capacity: cpus 4-7"


def test_max_freq_is_used_without_capacity(fake_system):
    # Some RK3588 boards bin the A76 pairs differently: 4-5 faster than 6-7.
    fake_system.cpus(max_freqs=RK3588_MAX_FREQ)
    result = plan(fake_system)
    assert (result.threads, result.cpus) == (2, (4, 5))
    assert "cpuinfo_max_freq" in result.reason


def test_threads_override_keeps_pinning_when_it_fits(fake_system):
    fake_system.cpus(capacities=RK3588_CAPACITY)
    assert plan(fake_system, threads=2)[:2] == (2, (4, 5, 6, 7))


def test_more_threads_than_big_cores_are_not_pinned(fake_system):
    fake_system.cpus(capacities=RK3588_CAPACITY)
    assert plan(fake_system, threads=8)[:2] == (8, ())


def test_symmetric_cpus_use_all_cores_unpinned(fake_system):
    fake_system.cpus(capacities=[1024] * 6)
    assert plan(fake_system)[:2] == (6, ())


def test_no_topology_falls_back_to_cpu_count(fake_system):
    fake_system.write("/sys/devices/system/cpu/online", "0-3\n")
    result = plan(fake_system)
    assert result.cpus == () and result.threads == (os.cpu_count() or 1)


def test_fastest_cluster():
    assert fastest_cluster({0: 1, 1: 3, 2: 3}) == (1, 2)
    assert fastest_cluster({}) == ()


def test_pinning_leaves_out_cpus_this_process_may_not_use(tmp_path, monkeypatch):
    # A real root (the machine's own) is checked against the affinity mask; emulate one where the
    # process may only run on cpus 5 and 6 of an RK3588.
    from bredos_npu.system import cpu

    root = tmp_path / "root"
    for number, capacity in enumerate(RK3588_CAPACITY):
        folder = root / "sys/devices/system/cpu" / f"cpu{number}"
        folder.mkdir(parents=True)
        (folder / "cpu_capacity").write_text(f"{capacity}\n")
    monkeypatch.setattr(cpu, "_allowed_cpus", lambda: {0, 5, 6})
    monkeypatch.setattr(SystemRoot, "is_real", property(lambda self: True))
    assert plan_threads(SystemRoot(root))[:2] == (2, (5, 6))
