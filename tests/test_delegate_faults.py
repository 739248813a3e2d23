"""Delegates that crash, hang or fail at inference: C libraries that really do it, built by the tests.

The reference for every answer is the bare CPU interpreter (backend "cpu"), and the process under
test must survive: a crash is only allowed in the probe's child process.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import time

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES

import bredos_npu
from bredos_npu.doctor import diagnose
from bredos_npu.errors import EXIT_BACKEND, EXIT_NPU_NOT_READY, BackendError, Reason, UsageError
from bredos_npu.runtime import probe


def teflon_check(report):
    return next(c for c in report.checks if c.name == "Teflon")


def reset_invocations(library) -> None:
    """The fault counts invocations in a static: one dlopen per process, so start it again."""
    ctypes.CDLL(str(library)).test_delegate_reset_invoke_count()


@pytest.fixture(scope="module")
def cpu_answers():
    """The CPU's top classes for the images the batch tests use (the reference)."""
    model = bredos_npu.load(DEFAULT_MODEL, backend="cpu")
    return model


@pytest.fixture
def six_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    sources = [CAT, IMAGES / "grace_hopper.bmp", IMAGES / "sunflower.bmp"] * 2
    for number, source in enumerate(sources):
        shutil.copy(source, folder / f"{number}{source.suffix}")
    return folder


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the doctor --------------------------------------------------------------------------------

def test_doctor_survives_a_delegate_that_segfaults_on_create(ready_board, delegates, capfd):
    library = ready_board.library(delegates["segv_create"])
    outcome = run_cli(capfd, "doctor", "--root", ready_board.base)
    assert outcome.code == EXIT_NPU_NOT_READY
    lines = outcome.out.strip().splitlines()
    assert lines[0].startswith("[  ok] SoC") and lines[-1].startswith("CPU only: ")
    assert f"[FAIL] Teflon          the delegate {library} crashed with SIGSEGV while creating the " \
           "delegate" in outcome.out
    assert lines[-1] == f"CPU only: the delegate {library} crashed with SIGSEGV while creating the delegate"
    assert outcome.err == ""


def test_doctor_reports_an_assert_on_the_test_model(ready_board, delegates):
    library = ready_board.library(delegates["abort_invoke"])
    teflon = teflon_check(diagnose(str(ready_board.base)))
    assert teflon.status == "fail"
    assert teflon.found.startswith(f"the delegate {library} crashed with SIGABRT while running the "
                                   "first invoke on a zero input (it said: ")
    assert "Assertion" in teflon.found and "the test delegate cannot run this graph" in teflon.found
    assert "TEFLON_DEBUG=verbose" in teflon.fix


# --- auto and npu at load time --------------------------------------------------------------------

def test_auto_falls_back_when_the_delegate_segfaults(delegates, capfd, cpu_answers):
    library = delegates["segv_create"]
    outcome = run_cli(capfd, "classify", "-k", "1", "--delegate", library, CAT, "--json")
    assert outcome.code == 0, outcome.err
    assert outcome.err.strip() == (f"bredos-npu: NPU not used: the delegate {library} crashed with "
                                   "SIGSEGV while creating the delegate; running on the CPU.")
    document = json.loads(outcome.out)
    assert document["backend"]["name"] == "cpu"
    assert document["results"][0]["classes"][0]["index"] == cpu_answers.classify(CAT, 1)[0].index


@pytest.mark.parametrize(("fault", "stage"), [
    ("abort_prepare", probe.BUILD),
    ("abort_invoke", probe.INVOKE),
])
def test_npu_refuses_a_delegate_that_asserts(delegates, capfd, fault, stage):
    library = delegates[fault]
    outcome = run_cli(capfd, "classify", "-b", "npu", "--delegate", library, CAT)
    assert outcome.code == EXIT_BACKEND
    assert outcome.out == ""
    [line] = outcome.err.strip().splitlines()
    assert line.startswith(f"bredos-npu: error: NPU not used: the delegate {library} crashed with "
                           f"SIGABRT while {stage} (it said: ")
    assert line.endswith("failed.): run it on the CPU.")


def test_api_auto_model_runs_on_the_cpu_after_a_crash(delegates, cpu_answers):
    model = bredos_npu.load(DEFAULT_MODEL, delegate=str(delegates["abort_invoke"]))
    assert model.backend.name == "cpu"
    assert "crashed with SIGABRT" in model.backend.fallback_reason
    assert model.backend.fallback.reason is Reason.DELEGATE_CRASHED
    assert model.classify(CAT) == cpu_answers.classify(CAT)


def test_a_hung_delegate_meets_the_deadline(delegates, monkeypatch, tmp_path):
    monkeypatch.setenv("BREDOS_NPU_PROBE_CACHE", str(tmp_path / "verdicts"))
    monkeypatch.setenv("BREDOS_NPU_PROBE_TIMEOUT", "1.5")
    library = delegates["hang_invoke"]
    with pytest.raises(BackendError) as refused:
        bredos_npu.load(DEFAULT_MODEL, backend="npu", delegate=str(library))
    assert str(refused.value) == (f"NPU not used: the delegate {library} did not finish running the "
                                  "first invoke on a zero input within 1.5 s: run it on the CPU.")
    assert refused.value.reason is Reason.DELEGATE_HUNG


# --- the verdict cache ------------------------------------------------------------------------

def test_verdicts_are_cached_per_library_and_model(delegates, monkeypatch, tmp_path):
    monkeypatch.delenv("BREDOS_NPU_PROBE_CACHE")
    monkeypatch.setenv("BREDOS_NPU_CACHE", str(tmp_path / "cache"))
    library = tmp_path / "libsegv.so"
    shutil.copy(delegates["segv_create"], library)
    first = probe.probe_delegate(library, DEFAULT_MODEL)
    assert (first.outcome, first.stage, first.detail, first.cached) == (
        probe.CRASHED, probe.CREATE, "SIGSEGV", False)
    again = probe.probe_delegate(library, DEFAULT_MODEL)
    assert again.cached and again.log == "" and again._replace(cached=False, log=first.log) == first
    assert len(list((tmp_path / "cache" / "delegate-probes").glob("*.json"))) == 1
    other_model = probe.probe_delegate(library, IMAGES.parent / "models" /
                                       "mobilenet_v1_0.25_128_quant.tflite")
    assert not other_model.cached
    # A new build of the library (another size or time) is probed again.
    shutil.copy(delegates["passthrough"], library)
    os.utime(library, ns=(1, 1))
    replaced = probe.probe_delegate(library, DEFAULT_MODEL)
    assert (replaced.outcome, replaced.cached) == (probe.OK, False)


def test_crash_and_hang_verdicts_are_tried_again_after_a_day(delegates, monkeypatch, tmp_path):
    """A crash may come from the board's state, not the library: after a day (or
    $BREDOS_NPU_PROBE_RETRY_AFTER seconds) the probe runs again. "ok" verdicts stay."""
    folder = tmp_path / "verdicts"
    monkeypatch.setenv("BREDOS_NPU_PROBE_CACHE", str(folder))
    crash, fine = delegates["segv_create"], delegates["passthrough"]
    assert probe.probe_delegate(crash, DEFAULT_MODEL).outcome == probe.CRASHED
    assert probe.probe_delegate(fine, DEFAULT_MODEL).ok
    files = {json.loads(f.read_text())["outcome"]: f for f in folder.glob("*.json")}

    def written_ago(seconds):
        for path in files.values():
            os.utime(path, (time.time() - seconds,) * 2)

    written_ago(probe.DEFAULT_RETRY_AFTER - 60)
    assert probe.probe_delegate(crash, DEFAULT_MODEL).cached
    written_ago(probe.DEFAULT_RETRY_AFTER + 60)
    again = probe.probe_delegate(crash, DEFAULT_MODEL)
    assert (again.outcome, again.cached) == (probe.CRASHED, False)
    assert time.time() - files[probe.CRASHED].stat().st_mtime < 60  # the new verdict, for a day
    assert probe.probe_delegate(fine, DEFAULT_MODEL).cached
    monkeypatch.setenv("BREDOS_NPU_PROBE_RETRY_AFTER", "30")
    written_ago(40)
    assert not probe.probe_delegate(crash, DEFAULT_MODEL).cached
    monkeypatch.setenv("BREDOS_NPU_PROBE_RETRY_AFTER", "a day")
    with pytest.raises(UsageError, match="BREDOS_NPU_PROBE_RETRY_AFTER='a day' is not a number above 0"):
        probe.probe_delegate(crash, DEFAULT_MODEL)


def test_clean_failures_are_not_cached(delegates, monkeypatch, tmp_path):
    """"No delegate" depends on the device (driver not loaded yet): try again next time."""
    monkeypatch.setenv("BREDOS_NPU_PROBE_CACHE", str(tmp_path / "verdicts"))
    verdict = probe.probe_delegate(delegates["null"], DEFAULT_MODEL)
    assert (verdict.outcome, verdict.stage, verdict.said) == (
        probe.FAILED, probe.CREATE, ("Couldn't open kernel device",))
    assert not probe.probe_delegate(delegates["null"], DEFAULT_MODEL).cached


# --- failures at inference ----------------------------------------------------------------------

def test_auto_moves_to_the_cpu_when_the_delegate_fails_mid_run(delegates, capfd, six_images,
                                                               tmp_path, cpu_answers):
    library = delegates["fail_invoke_after_3"]
    reset_invocations(library)
    target = tmp_path / "out.jsonl"
    outcome = run_cli(capfd, "classify", "-k", "1", "--delegate", library, six_images,
                      "--jsonl", target)
    assert outcome.code == 0, outcome.err
    warnings = [line for line in outcome.err.splitlines() if "warning" in line]
    assert warnings == [f"bredos-npu: warning: NPU failed: the delegate {library} failed during "
                        "inference (Node number 66 (BredosTestClaimingDelegate) failed to "
                        "invoke); the rest runs on the CPU."]
    records = read_jsonl(target)
    assert [r["image"] for r in records] == [str(p) for p in sorted(six_images.iterdir())]
    expected = [cpu_answers.classify(r["image"], 1)[0].index for r in records]
    assert [r["classes"][0]["index"] for r in records] == expected


def test_api_records_the_mid_run_fallback(delegates, cpu_answers):
    library = str(delegates["fail_invoke_after_3"])
    reset_invocations(library)
    model = bredos_npu.load(DEFAULT_MODEL, delegate=library)
    told = []
    model.on_fallback = told.append
    assert model.backend.name == "npu" and model.backend.nodes.npu_nodes == 1
    answers = [model.classify(CAT, 3) for _ in range(5)]
    assert answers == [cpu_answers.classify(CAT, 3)] * 5
    assert model.backend.name == "cpu" and model.backend.delegate is None
    assert model.backend.nodes.npu_nodes == 0 and model.backend.requested == "auto"
    assert model.backend.fallback_reason.startswith(f"NPU failed: the delegate {library} failed")
    assert model.backend.fallback.reason is Reason.DELEGATE_FAILED
    assert told == [model.backend.fallback]


def test_npu_stops_with_exit_7_and_keeps_the_results_so_far(delegates, capfd, six_images, tmp_path,
                                                            cpu_answers):
    library = delegates["fail_invoke_after_3"]
    reset_invocations(library)
    target = tmp_path / "out.jsonl"
    outcome = run_cli(capfd, "classify", "-b", "npu", "-k", "1", "--delegate", library, six_images,
                      "--jsonl", target)
    assert outcome.code == EXIT_BACKEND
    err = outcome.err.strip().splitlines()
    assert err[-2].startswith("bredos-npu: 3 of 3 images classified in ")
    assert err[-2].endswith(f" before the backend failed; results in {target}.")
    assert err[-1] == (f"bredos-npu: error: NPU failed: the delegate {library} failed during "
                       "inference (Node number 66 (BredosTestClaimingDelegate) failed to "
                       "invoke): pass --backend auto to go on on the CPU.")
    records = read_jsonl(target)
    assert [r["image"] for r in records] == [str(p) for p in sorted(six_images.iterdir())[:3]]
    assert [r["classes"][0]["index"] for r in records] == [
        cpu_answers.classify(r["image"], 1)[0].index for r in records]


def test_npu_failure_keeps_the_json_results_too(delegates, capfd, six_images):
    library = delegates["fail_invoke_after_3"]
    reset_invocations(library)
    outcome = run_cli(capfd, "classify", "-b", "npu", "--delegate", library, six_images, "--json")
    assert outcome.code == EXIT_BACKEND
    assert len(json.loads(outcome.out)["results"]) == 3
