"""Resource limits and API traps: bounded options, lazy interpreters, one path, per-image errors."""

from __future__ import annotations

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES, MODELS

import bredos_npu
from bredos_npu.errors import EXIT_IMAGE, EXIT_USAGE, UsageError
from bredos_npu.system.cpu import parallel_limit, usable_cpus

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"


@pytest.fixture(scope="module")
def model():
    return bredos_npu.load(DEFAULT_MODEL, backend="cpu", threads=1)


def test_threads_beyond_the_machine_are_refused(capfd):
    outcome = run_cli(capfd, "classify", "-b", "cpu", "--threads", "100000", CAT)
    assert outcome.code == EXIT_USAGE
    assert outcome.err == (f"bredos-npu: error: --threads must be at most {usable_cpus()} here (one "
                           "per CPU core), not 100000.\n")
    with pytest.raises(UsageError, match="threads must be at most"):
        bredos_npu.load(DEFAULT_MODEL, backend="cpu", threads=10_000)


def test_parallel_beyond_the_machine_is_refused(capfd, model):
    limit = parallel_limit()
    outcome = run_cli(capfd, "classify", "-b", "cpu", "--parallel", "500", CAT)
    assert outcome.code == EXIT_USAGE and outcome.out == ""
    assert outcome.err == (f"bredos-npu: error: --parallel must be at most {limit} here (one "
                           "interpreter per CPU core, or per NPU core), not 500.\n")
    outcome = run_cli(capfd, "bench", "--runs", "1", "--warmup", "0", "--parallel", "500")
    assert outcome.code == EXIT_USAGE and "--parallel must be at most" in outcome.err
    with pytest.raises(UsageError):  # at the call, before any image is read
        model.classify_many([CAT], parallel=500)
    with pytest.raises(UsageError, match="decoders must be at most"):
        model.classify_many([CAT], decoders=10_000)


def test_no_more_interpreters_than_inputs(model):
    parallel = parallel_limit()
    assert [r.ok for r in model.classify_many([CAT], parallel=parallel)] == [True]
    assert model.workers(1) == [model] and len(model._workers) == 0  # one input: no clone
    list(model.classify_many([CAT, CAT], parallel=parallel))
    assert len(model._workers) <= 1


def test_a_single_path_is_one_input(model):
    for single in (CAT, str(CAT)):
        results = list(model.classify_many(single, top_k=1))
        assert len(results) == 1 and results[0].source == str(CAT)
        assert results[0].value[0].label == "Egyptian cat"


def test_any_failure_of_one_input_is_reported_and_the_batch_goes_on(model):
    too_long = IMAGES / ("x" * 300 + ".jpg")
    results = list(model.classify_many([CAT, too_long, 42, IMAGES / "sunflower.bmp"], top_k=1))
    assert [r.ok for r in results] == [True, False, False, True]
    assert "the path is too long" in results[1].error
    assert "must be a path, a PIL image, a uint8 array or a binary file" in results[2].error

    def fragile(worker, prepared):  # post-processing that fails on one input only
        if prepared.size == (512, 600):  # grace_hopper.bmp
            raise ZeroDivisionError("division by zero")
        return worker.classify_tensor(prepared.tensor, 1)

    sizes = list(model.run_many([IMAGES / "sunflower.bmp", IMAGES / "grace_hopper.bmp"], fragile))
    assert [r.error for r in sizes] == [None, "ZeroDivisionError: division by zero"]


def test_cli_reports_a_too_long_path_among_images(capfd):
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", CAT, "y" * 300 + ".jpg")
    assert outcome.code == EXIT_IMAGE and "Egyptian cat" in outcome.out
    assert "the path is too long" in outcome.err


def test_max_results_below_one_is_an_error():
    detector = bredos_npu.load(SSD, backend="cpu")
    for bad in (-1, 0):
        with pytest.raises(UsageError, match="max_results must be 1 or more"):
            detector.detect(IMAGES / "cats_and_dogs.jpg", max_results=bad)
        with pytest.raises(UsageError, match="max_results must be 1 or more"):
            detector.detect_many([IMAGES / "cats_and_dogs.jpg"], max_results=bad)
