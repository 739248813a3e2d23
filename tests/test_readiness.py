"""One NPU-readiness judgement: ``doctor`` and ``auto``'s backend plan read the same checks.

Each board below is one the old planner (SoC and device node only) would have put on the NPU
while the doctor said "CPU only": now both name the same failed check.
"""

from __future__ import annotations

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL

import bredos_npu
from bredos_npu.doctor import diagnose
from bredos_npu.errors import EXIT_BACKEND, BackendError, Reason


def rocket_unloaded(board) -> None:
    board.module(loaded=False)


def not_in_render_group(board) -> None:
    board.identity(uid=1000, gid=1000, groups=(44,))


def kernel_without_rocket(board) -> None:
    board.kernel("6.18.2-1-ARCH", rocket=None)


def old_kernel(board) -> None:
    board.kernel("6.6.89-rockchip", rocket=None)


@pytest.mark.parametrize(("break_board", "check"), [
    (rocket_unloaded, "Driver"),
    (not_in_render_group, "Device"),
    (kernel_without_rocket, "Kernel config"),
    (old_kernel, "Kernel"),
])
def test_doctor_and_auto_name_the_same_failed_check(ready_board, delegates, break_board, check):
    ready_board.library(delegates["claiming"])  # a libteflon that takes nodes: the NPU would run
    root = str(ready_board.base)
    assert bredos_npu.load(DEFAULT_MODEL, root=root).backend.name == "npu"  # the board as it was
    break_board(ready_board)
    report = diagnose(root)
    auto = bredos_npu.load(DEFAULT_MODEL, root=root)
    assert not report.npu_ready and report.first_failure.name == check
    assert auto.backend.name == "cpu" and auto.backend.npu_node_indices == ()
    assert auto.backend.fallback.reason is Reason.NPU_NOT_READY
    assert auto.backend.fallback.data["check"] == check
    assert auto.backend.fallback_reason == f"NPU not available: {report.first_failure.found}"
    assert report.verdict == f"CPU only: {report.first_failure.found}"
    with pytest.raises(BackendError) as refused:
        bredos_npu.load(DEFAULT_MODEL, "npu", root=root)
    assert refused.value.data["check"] == check
    assert auto.classify(CAT, top_k=1)[0].index == 286


def test_the_cli_falls_back_with_the_doctors_finding_and_refuses_npu(ready_board, delegates, capfd,
                                                                   monkeypatch):
    ready_board.library(delegates["claiming"])
    ready_board.module(loaded=False)
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(ready_board.base))
    doctor = run_cli(capfd, "doctor")
    assert doctor.out.strip().splitlines()[-1] == "CPU only: rocket module not loaded"
    auto = run_cli(capfd, "classify", "-k", "1", CAT)
    assert auto.code == 0 and "Egyptian cat" in auto.out and "backend: cpu" in auto.out
    assert auto.err.strip() == ("bredos-npu: NPU not available: rocket module not loaded: load the "
                                "driver with `sudo modprobe rocket`; run `bredos-npu doctor` for "
                                "details; running on the CPU.")
    forced = run_cli(capfd, "classify", "-b", "npu", CAT)
    assert forced.code == EXIT_BACKEND
    assert forced.err.strip() == ("bredos-npu: error: NPU not available: rocket module not loaded: "
                                  "load the driver with `sudo modprobe rocket`; run `bredos-npu "
                                  "doctor` for details.")


def test_a_named_delegate_judges_the_board_for_doctor_and_auto_alike(fake_system, delegates):
    """A library passed by path is trusted to find its device, by ``load`` as by the doctor."""
    fake_system.soc("raspberrypi,5-model-b", "brcm,bcm2712", model="Raspberry Pi 5")
    root, library = str(fake_system.base), str(delegates["claiming"])
    report = diagnose(root, library)
    soc = next(c for c in report.checks if c.name == "SoC")
    assert soc.status == "fail" and not soc.npu  # shown, but not deciding
    assert report.npu_ready and report.verdict == "NPU ready"
    assert bredos_npu.load(DEFAULT_MODEL, root=root, delegate=library).backend.name == "npu"
    null = str(delegates["null"])
    refused = diagnose(root, null)
    assert refused.first_failure.reason is Reason.NO_DELEGATE
    assert bredos_npu.load(DEFAULT_MODEL, root=root, delegate=null).backend.fallback.reason is \
        Reason.NO_DELEGATE


@pytest.mark.parametrize("board_state", ["ready", "not_rk3588", "old_kernel"])
def test_skipped_checks_keep_the_names_of_the_checks_they_stand_for(ready_board, board_state):
    # Skipped board checks are not run, only named: the names must be those the checks give.
    from bredos_npu.system.readiness import board_checks
    from bredos_npu.system.root import SystemRoot

    ran = [check.name for check in board_checks(SystemRoot.from_env(str(ready_board.base)))]
    if board_state == "not_rk3588":
        ready_board.soc("pine64,rockpro64", "rockchip,rk3399")
    elif board_state == "old_kernel":
        old_kernel(ready_board)
    checks = board_checks(SystemRoot.from_env(str(ready_board.base)))
    assert [check.name for check in checks] == ran
    assert [check.status for check in checks].count("skip") == {"ready": 0, "not_rk3588": 3,
                                                                 "old_kernel": 2}[board_state]
