"""`bredos-npu report` on fake boards whose "NPU" is a test delegate, and on this machine."""

from __future__ import annotations

import json
import shutil
import socket

import jsonschema
import numpy as np
import pytest
from cli_runner import run_cli
from conftest import DEFAULT_MODEL, MODELS

from bredos_npu.errors import EXIT_OUTPUT
from bredos_npu.report import make_report, schema
from bredos_npu.report.markdown import to_markdown
from bredos_npu.runtime.litert import find_runtime

SMALL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
FLOAT = MODELS / "mobilenet_v1_0.25_224_float.tflite"


def op_indices(model, name):
    """Indices of the ops called ``name``, read from a bare interpreter (not from our code)."""
    interpreter = find_runtime().interpreter_class(model_path=str(model))
    return sorted(op["index"] for op in interpreter._get_ops_details() if op["op_name"] == name)


@pytest.fixture
def board_with(ready_board, delegates):
    """A ready fake RK3588 whose libteflon.so is the named test delegate."""
    def make(delegate):
        ready_board.library(delegates[delegate])
        ready_board.shared_device()  # measurements run in a child process, which reads the node
        return ready_board
    return make


def checked(report):
    jsonschema.validate(report, schema())
    return report


def test_npu_fields_are_measured_through_the_delegate_and_agree(board_with):
    board = board_with("claiming")
    report = checked(make_report([DEFAULT_MODEL], quick=True, root=board.base))
    entry = report["models"][0]
    reshapes = op_indices(DEFAULT_MODEL, "RESHAPE")
    assert entry["npu"]["status"] == "measured"
    assert entry["npu"]["taken_ops"] == reshapes
    assert entry["npu"]["first_ms"] > 0 and entry["npu"]["latency_ms"]["count"] == report["plan"]["runs"]
    assert [row["interpreters"] for row in entry["npu"]["parallel"]] == [1, 3]
    # The delegate runs TFLite's own kernels: the NPU side must match the CPU bit for bit.
    assert entry["agreement"]["top1_agreement"] == 1.0
    assert entry["agreement"]["max_abs_diff"] == 0.0
    assert entry["verdict"] == "agrees"
    # Prediction vs reality, per op: inspect predicts the convolutions, the delegate took RESHAPE.
    predicted = entry["prediction"]["npu_ops"]
    assert entry["comparison"]["taken_only"] == sorted(set(reshapes) - set(predicted))
    assert entry["comparison"]["predicted_only"] == sorted(set(predicted) - set(reshapes))
    # Teflon's own account, parsed from the delegate's TEFLON_DEBUG=verbose lines.
    assert entry["teflon_log"]["supported_ops"] == reshapes
    assert len(entry["teflon_log"]["supported_ops"]) + len(entry["teflon_log"]["unsupported_ops"]) == \
        entry["prediction"]["ops"]
    assert "agrees" in to_markdown(report)


def test_a_delegate_computing_wrong_results_is_reported_as_differs(board_with):
    report = checked(make_report([DEFAULT_MODEL], quick=True, root=board_with("wrong_results").base))
    entry = report["models"][0]
    assert entry["npu"]["status"] == "measured"
    assert entry["verdict"] == "differs"
    assert entry["agreement"]["max_abs_diff"] > 0.01
    assert "quantization steps" in entry["reason"] or "top-1" in entry["reason"]


def test_a_crashing_delegate_is_that_models_result_and_the_report_goes_on(board_with):
    board = board_with("abort_on_invoke")
    report = checked(make_report([DEFAULT_MODEL, FLOAT], quick=True, root=board.base))
    crashed, other = report["models"]
    assert crashed["verdict"] == "crashed"
    assert "SIGABRT" in crashed["reason"] and "first invoke" in crashed["reason"]
    assert crashed["cpu"]["status"] == "measured"  # the CPU side still measured
    # load()'s probe caught the crash; what the delegate said before it is the model's Teflon log
    assert crashed["teflon_log"]["supported_ops"] == op_indices(DEFAULT_MODEL, "RESHAPE")
    # The second model is float: it never reaches the delegate, and is still measured on the CPU.
    assert other["npu"]["status"] == "not measured" and "float" in other["npu"]["reason"]
    assert other["cpu"]["status"] == "measured"


def test_without_an_npu_every_npu_field_says_not_measured_and_why(tmp_path, capfd):
    out = tmp_path / "report.json"
    done = run_cli(capfd, "report", "-m", str(SMALL), "--quick", "-o", out,
                   "--markdown", tmp_path / "report.md")
    assert done.code == 0, done.err
    report = checked(json.loads(out.read_text()))
    entry = report["models"][0]
    assert entry["npu"] == {"status": "not measured", "reason": entry["npu"]["reason"],
                            "seconds": entry["npu"]["seconds"]}
    assert entry["npu"]["reason"] and entry["verdict"] == "not measured"
    assert entry["agreement"] == {"status": "not measured"}
    assert entry["cpu"]["latency_ms"]["mean"] > 0
    assert "not measured" in (tmp_path / "report.md").read_text()
    assert "1/1" in done.err and "written to" in done.err


def test_existing_report_files_are_kept(tmp_path, capfd):
    out = tmp_path / "report.json"
    out.write_text("mine")
    done = run_cli(capfd, "report", "-m", str(SMALL), "--quick", "-o", out)
    assert done.code == EXIT_OUTPUT and out.read_text() == "mine"
    assert len(done.err.strip().splitlines()) == 1


def test_vendor_kernel_is_recognised(fake_system):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.1.75-rkr3", rocket=None)
    (fake_system.base / "sys/kernel/debug/rknpu").mkdir(parents=True)
    report = checked(make_report([SMALL], quick=True, root=fake_system.base))
    kernel = report["system"]["kernel"]
    assert kernel["vendor"] is True and "rknpu" in kernel["vendor_evidence"]
    assert "RKNN" in kernel["vendor_note"] and "mainline" in kernel["vendor_note"]
    assert any("RKNN" in line for line in report["skipped"])
    mainline = FakeBoardRelease(fake_system, "6.18.2-1-ARCH")
    assert make_report([SMALL], quick=True, root=mainline.base)["system"]["kernel"]["vendor"] is False


class FakeBoardRelease:
    """The same fake board booted on a mainline kernel."""

    def __init__(self, fake_system, release):
        shutil.rmtree(fake_system.base / "sys/kernel/debug/rknpu")
        fake_system.kernel(release)
        self.base = fake_system.base


def test_the_report_holds_no_private_data(tmp_path, monkeypatch, fake_system, capfd):
    home = tmp_path / "home" / "zebrauser"
    models = home / "models"
    models.mkdir(parents=True)
    model = models / "cam-192.168.7.42-quokka-host-4711.tflite"
    shutil.copy(SMALL, model)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USER", "zebrauser")
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.18.2-1-ARCH")
    fake_system.write("/proc/sys/kernel/hostname", "quokka-host-4711\n")
    fake_system.write("/proc/device-tree/serial-number", "9f3c2a7e51d0b844\0")
    fake_system.write("/proc/cpuinfo", "processor\t: 0\nSerial\t\t: 9f3c2a7e51d0b844\n")
    out, markdown = tmp_path / "r.json", tmp_path / "r.md"
    done = run_cli(capfd, "report", "-m", str(model), "--quick", "--root", fake_system.base,
                   "-o", out, "--markdown", markdown)
    assert done.code == 0, done.err
    checked(json.loads(out.read_text()))
    secrets = ["zebrauser", "quokka-host-4711", "192.168.7.42", "9f3c2a7e51d0b844", str(home)]
    if len(socket.gethostname()) >= 3:
        secrets.append(socket.gethostname())
    for text in (out.read_text(), markdown.read_text()):
        for secret in secrets:
            assert secret.lower() not in text.lower(), secret
    assert "<hidden>" in out.read_text()  # the model name was there, scrubbed


def test_inspect_compare_lists_the_ops_where_prediction_and_board_differ(board_with, tmp_path, capfd):
    report = make_report([DEFAULT_MODEL], quick=True, root=board_with("claiming").base)
    path = tmp_path / "board.json"
    path.write_text(json.dumps(report))
    done = run_cli(capfd, "inspect", DEFAULT_MODEL, "--compare", path, "--json")
    assert done.code == 0, done.err
    found = {row["index"]: row for row in json.loads(done.out)}
    reshapes = op_indices(DEFAULT_MODEL, "RESHAPE")
    convolutions = op_indices(DEFAULT_MODEL, "CONV_2D")
    assert all(found[i]["predicted"] == "cpu" and found[i]["actual"] == "npu" for i in reshapes)
    assert all(found[i]["predicted"] == "npu" and found[i]["actual"] == "cpu" for i in convolutions)
    assert found[reshapes[0]]["teflon"] == "supported"
    other = run_cli(capfd, "inspect", SMALL, "--compare", path)
    assert other.code == 4 and "no measurement of this model" in other.err


def test_agreement_iou_matches_an_independent_computation():
    from bredos_npu.report.measure import _best_iou

    box = [1, 0.9, 0.0, 0.0, 10.0, 10.0]
    shifted = [1, 0.8, 5.0, 0.0, 15.0, 10.0]  # half overlap: 50 / 150
    assert _best_iou(box, [shifted]) == pytest.approx(1 / 3)
    assert _best_iou(box, [[2, *shifted[1:]]]) == 0.0  # another class never matches
    assert np.isclose(_best_iou(box, [box]), 1.0)
