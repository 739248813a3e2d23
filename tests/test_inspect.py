"""`bredos-npu inspect` on real models and on small synthetic ones written by the tests."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from cli_runner import run_cli
from conftest import DEFAULT_MODEL, MODELS, bare_interpreter
from PIL import Image
from tflite_builder import ModelBuilder

import bredos_npu
from bredos_npu.errors import EXIT_MODEL
from bredos_npu.models.inspection.analysis import ADD_CRASH

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"


def by_name(inspection, target):
    return Counter(op.name for op in inspection.ops if op.target == target)


# --- real models ------------------------------------------------------------------------------

def test_mobilenet_v2_convolutions_and_adds_on_the_npu():
    result = bredos_npu.inspect(DEFAULT_MODEL)
    assert by_name(result, "npu") == {"CONV_2D": 36, "DEPTHWISE_CONV_2D": 17, "ADD": 10}
    assert by_name(result, "cpu") == {"AVERAGE_POOL_2D": 1, "RESHAPE": 1, "SOFTMAX": 1}
    assert result.npu_mac_share >= 0.99
    assert result.total_macs == pytest.approx(300e6, rel=0.05)
    # partition counts are checked against TFLite's partitioner below
    assert result.summary == "NPU: 63/66 ops, 100.0% of MACs, 2 partitions, 4 hand-overs"
    assert not result.hazards and not result.advice


def test_mobilenet_v1_macs_match_published_figures():
    # MobileNet V1 0.5 160: 77 M MACs published (Howard et al. 2017, table 7)
    result = bredos_npu.inspect(MODELS / "mobilenet_v1_0.5_160_quant.tflite")
    assert result.total_macs == pytest.approx(77e6, rel=0.05)


def test_per_axis_weights_keep_tf2_convolutions_on_the_cpu():
    result = bredos_npu.inspect(MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    convs = [op for op in result.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert convs and all(op.target == "cpu" for op in convs)
    assert all("per-axis quantized weights" in op.reason for op in convs)
    assert result.npu_mac_share == 0
    assert any("re-quantize per-tensor uint8" in a for a in result.advice)


def test_tf2_adds_would_crash_mesa():
    result = bredos_npu.inspect(MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    adds = [op for op in result.ops if op.name == "ADD"]
    assert adds and all(op.target == "npu" and ADD_CRASH in op.hazards for op in adds)


def test_ssd_convolutions_on_npu_the_rest_on_cpu():
    result = bredos_npu.inspect(SSD)
    cpu = by_name(result, "cpu")
    assert set(by_name(result, "npu")) == {"CONV_2D", "DEPTHWISE_CONV_2D"}
    assert {"RESHAPE", "CONCATENATION", "LOGISTIC", "TFLite_Detection_PostProcess"} <= set(cpu)
    post = next(op for op in result.ops if op.name == "TFLite_Detection_PostProcess")
    assert post.reason == "custom operator TFLite_Detection_PostProcess is not supported by Teflon"
    relu6_rejected = [op for op in result.ops if op.reason.startswith("fused RELU6 but the output")]
    assert relu6_rejected and all(op.target == "cpu" for op in relu6_rejected)


def test_float_model_is_flagged_with_advice_to_quantize():
    result = bredos_npu.inspect(MODELS / "mobilenet_v1_0.25_224_float.tflite")
    assert result.advice[0].startswith("This is a float model: quantize it")
    claimed = result.npu_ops
    assert claimed and all(any("float32 data" in h for h in op.hazards) for op in claimed)
    assert all("RELU6 on a float32 output" in op.reason for op in result.ops
               if op.target == "cpu" and op.name == "CONV_2D")


def test_lstm_is_not_a_cnn():
    result = bredos_npu.inspect(MODELS / "keras_lstm_mnist_ptq.tflite")
    assert result.npu_ops == [] and result.npu_mac_share == 0
    assert any("no convolutions" in a for a in result.advice)


def test_movenet_is_mixed_with_reasons():
    result = bredos_npu.inspect(MODELS / "movenet_single_pose_lightning_ptq.tflite")
    reasons = {op.reason for op in result.ops if op.target == "cpu"}
    assert "GATHER_ND is not supported by Teflon" in reasons
    assert any(r.startswith("per-axis quantized") for r in reasons)
    assert 0 < len(result.npu_ops) < len(result.ops)


# --- synthetic models -------------------------------------------------------------------------

def write(tmp_path, builder: ModelBuilder, inputs, outputs, name="m.tflite"):
    path = tmp_path / name
    path.write_bytes(builder.build(inputs, outputs))
    return path


def image_input(m: ModelBuilder, batch: int = 1, dtype: str = "uint8") -> int:
    return m.tensor((batch, 8, 8, 3), dtype, (1 / 128,), (128 if dtype == "uint8" else 0,))


def only_op(tmp_path, m, x, y):
    return bredos_npu.inspect(write(tmp_path, m, [x], [y])).ops


def one_conv(tmp_path, channels=4, batch=1, dtype="uint8", **conv):
    """inspect's verdict on a model of one CONV_2D (``conv``: ModelBuilder.conv's options) on an
    8x8x3 image input."""
    m = ModelBuilder()
    x = image_input(m, batch=batch, dtype=dtype)
    return only_op(tmp_path, m, x, m.conv(x, channels, dtype=dtype, **conv))[0]


def test_synthetic_model_runs_in_the_interpreter(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    m = ModelBuilder()
    x = image_input(m)
    y = m.add(m.conv(x, 4, activation="RELU6", out_scale=6 / 255), m.conv(x, 4))
    interpreter = Interpreter(model_content=m.build([x], [y]))
    interpreter.allocate_tensors()
    interpreter.invoke()
    assert interpreter.get_output_details()[0]["shape"].tolist() == [1, 8, 8, 4]


def test_dilated_convolution(tmp_path):
    op = one_conv(tmp_path, 4, dilation=(2, 2), version=2)
    assert (op.target, op.reason) == ("cpu", "dilation 2x2: rocket supports dilation 1 only")


def test_dilation_in_a_version_1_operator_is_ignored_by_teflon(tmp_path):
    op = one_conv(tmp_path, 4, dilation=(2, 2), version=1)
    assert op.target == "npu"
    assert any("Teflon ignores it" in h for h in op.hazards)


def test_add_with_a_constant_input(tmp_path):
    m = ModelBuilder()
    x = image_input(m)
    y = m.conv(x, 4)
    constant = m.tensor((1, 8, 8, 4), "uint8", (0.02,), (0,), data=np.ones((1, 8, 8, 4)))
    add = only_op(tmp_path, m, x, m.add(y, constant))[1]
    assert (add.target, add.reason) == ("cpu", "ADD with a constant input is not supported by rocket")


def test_add_whose_producer_is_not_a_convolution_would_crash(tmp_path):
    m = ModelBuilder()
    x = image_input(m)
    pooled = m.unary("RELU", x)  # Teflon translates RELU but rocket leaves it on the CPU
    y = m.conv(x, 3)
    ops = only_op(tmp_path, m, x, m.add(pooled, y))
    add = ops[2]
    assert add.target == "npu" and ADD_CRASH in add.hazards
    assert ops[0].target == "cpu" and ops[1].target == "npu"


def test_add_fused_into_its_convolution_is_fine(tmp_path):
    m = ModelBuilder()
    x = image_input(m)
    ops = only_op(tmp_path, m, x, m.add(m.conv(x, 3), x))
    assert ops[1].target == "npu" and not ops[1].hazards


def test_relu6_beyond_six_stays_on_cpu(tmp_path):
    op = one_conv(tmp_path, 4, activation="RELU6", out_scale=0.03)
    assert op.target == "cpu"
    assert op.reason == "fused RELU6 but the output range reaches 7.65 > 6 (Teflon rejects it)"


def test_relu6_exactly_six_in_float32_is_accepted(tmp_path):
    op = one_conv(tmp_path, 4, activation="RELU6", out_scale=6 / 255)
    assert op.target == "npu" and not op.hazards


def test_relu_with_negative_range_is_a_hazard(tmp_path):
    op = one_conv(tmp_path, 4, activation="RELU", out_zero_point=100)
    assert op.target == "npu"
    assert any("not applied by rocket" in h for h in op.hazards)


def test_non_square_stride(tmp_path):
    op = one_conv(tmp_path, 4, stride=(2, 1))
    assert op.target == "npu"
    assert op.hazards == ("stride 2x1: rocket uses the horizontal stride for both directions "
                          "(wrong results)",)


def test_batch_above_one(tmp_path):
    op = one_conv(tmp_path, 4, batch=2)
    assert "batch 2: rocket assumes batch 1" in op.hazards


def test_int8_convolution_is_claimed_but_unverified(tmp_path):
    op = one_conv(tmp_path, 4, dtype="int8")
    assert op.target == "npu"
    assert any(h.startswith("int8 data: rocket treats all data as uint8") for h in op.hazards)


def test_per_axis_with_equal_scales_counts_as_per_tensor(tmp_path):
    # Teflon sets per-axis arrays only when the channel scales differ (fill_tensor)
    assert one_conv(tmp_path, 4, weight_scales=(0.01,) * 4).target == "npu"
    differ = one_conv(tmp_path, 4, weight_scales=(0.01, 0.02, 0.03, 0.04))
    assert differ.target == "cpu" and "per-axis quantized weights" in differ.reason


def test_macs_of_a_known_convolution(tmp_path):
    op = one_conv(tmp_path, 16, kernel=3, stride=(2, 2))
    assert op.macs == 4 * 4 * 16 * 3 * 3 * 3


# --- command line -----------------------------------------------------------------------------

def test_cli_table_and_summary(capfd):
    outcome = run_cli(capfd, "inspect", DEFAULT_MODEL)
    assert outcome.code == 0
    assert "SOFTMAX is not supported by Teflon" in outcome.out
    assert outcome.out.rstrip().endswith("NPU: 63/66 ops, 100.0% of MACs, 2 partitions, 4 hand-overs")


def test_cli_json(capfd):
    outcome = run_cli(capfd, "inspect", SSD, "--json")
    data = json.loads(outcome.out)
    assert data["ops_total"] == len(bare_interpreter(SSD)._get_ops_details())
    assert data["partitions"] == bredos_npu.inspect(SSD).partitions
    assert {op["target"] for op in data["ops"]} == {"npu", "cpu"}
    assert data["ops"][0]["inputs"][0]["shape"] == [1, 300, 300, 3]


def test_runtime_without_npu_says_so(capfd, fake_system, monkeypatch):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.18.0")
    fake_system.module(loaded=True)  # the driver is there, its device node is not
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))
    outcome = run_cli(capfd, "inspect", DEFAULT_MODEL, "--runtime")
    assert outcome.code == 0
    assert "runtime: not checked (NPU not available: no NPU device node" in outcome.out


def test_runtime_compares_with_the_delegate(capfd, delegates):
    outcome = run_cli(capfd, "inspect", MODELS / "mobilenet_v1_0.5_160_quant.tflite", "--runtime",
                      "--delegate", delegates["passthrough"], "--json")
    runtime = json.loads(outcome.out)["runtime"]
    assert runtime["ran"] and not runtime["agrees"]
    assert len(runtime["predicted_only"]) == 28 and runtime["runtime_only"] == []


def test_plot_writes_a_png(capfd, tmp_path):
    target = tmp_path / "ops.png"
    outcome = run_cli(capfd, "inspect", DEFAULT_MODEL, "--plot", target)
    assert outcome.code == 0
    with Image.open(target) as picture:
        assert picture.format == "PNG" and picture.width > 400


def test_plot_without_matplotlib(capfd, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    outcome = run_cli(capfd, "inspect", DEFAULT_MODEL, "--plot", tmp_path / "x.png")
    assert outcome.code == 8
    assert outcome.err.strip() == ("bredos-npu: error: Plots need matplotlib, which is not "
                                   "installed: run `pip install 'bredos-npu[plot]'`.")


@pytest.mark.parametrize("cut", [100, 20_000, 2_000_000, 3_500_000])
def test_truncated_model(capfd, tmp_path, cut):
    path = tmp_path / "cut.tflite"
    path.write_bytes(DEFAULT_MODEL.read_bytes()[:cut])
    outcome = run_cli(capfd, "inspect", path)
    assert outcome.code == EXIT_MODEL
    assert outcome.err.strip().startswith(f"bredos-npu: error: {path} is truncated or corrupt")


def test_not_a_tflite_file(capfd, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    outcome = run_cli(capfd, "inspect", path)
    assert outcome.code == EXIT_MODEL and "is not a TensorFlow Lite model" in outcome.err


def test_unknown_custom_operator_is_explained():
    result = bredos_npu.inspect(MODELS / "model_invoking_error.tflite")
    assert any(a.startswith("Custom operator fake-op-double is not part of TFLite") for a in result.advice)


def test_add_with_fused_relu_that_rocket_ignores(tmp_path):
    m = ModelBuilder()
    x = image_input(m)
    y = m.conv(x, 3)
    out = m.tensor((1, 8, 8, 3), "uint8", (0.04,), (100,))
    options = m.fb.AddOptionsT()
    options.fusedActivationFunction = 1  # RELU
    m.op("ADD", [y, x], [out], options, "AddOptions")
    add = only_op(tmp_path, m, x, out)[1]
    assert add.target == "npu"
    assert any(h.level == "wrong" and "not applied by rocket" in h for h in add.hazards)


def test_chained_adds_fuse_into_the_same_convolution(tmp_path):
    # Mesa rewrites the convolution's output to the first ADD's, so the second ADD finds it too.
    m = ModelBuilder()
    x = image_input(m)
    ops = only_op(tmp_path, m, x, m.add(m.add(m.conv(x, 3), x), x))
    assert [op.target for op in ops] == ["npu", "npu", "npu"]
    assert not any(op.hazards for op in ops)


def test_int8_advice_only_when_int8_convolutions_are_claimed():
    # tf2 ptq: the convolutions stay on the CPU (per-axis), only ADDs are claimed
    result = bredos_npu.inspect(MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert not any(a.startswith("int8 convolutions") for a in result.advice)


def test_runtime_json_agrees_is_null_when_nothing_ran(capfd, fake_system, monkeypatch):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))
    runtime = json.loads(run_cli(capfd, "inspect", DEFAULT_MODEL, "--runtime", "--json").out)["runtime"]
    assert runtime["ran"] is False and runtime["agrees"] is None


def test_runtime_reports_what_the_delegate_took_beyond_the_prediction(capfd, delegates):
    outcome = run_cli(capfd, "inspect", DEFAULT_MODEL, "--runtime", "--delegate", delegates["claiming"],
                      "--json")
    runtime = json.loads(outcome.out)["runtime"]
    assert runtime["ran"] and runtime["agrees"] is False
    assert runtime["runtime_only"] == [64] and len(runtime["predicted_only"]) == 63


# --- partitions against TFLite's own partitioner ----------------------------------------------

def tflite_partitions(model, nodes, delegate, monkeypatch) -> int:
    """How many delegate kernels a bare interpreter forms when a delegate claims ``nodes``."""
    monkeypatch.setenv("TEST_DELEGATE_NODES", ",".join(map(str, sorted(nodes))))
    ops = bare_interpreter(model, delegate)._get_ops_details()
    return sum(op["op_name"] == "DELEGATE" for op in ops)


@pytest.mark.parametrize("model", [
    DEFAULT_MODEL, SSD, MODELS / "movenet_single_pose_lightning_ptq.tflite",
    MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite", MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite",
], ids=lambda path: path.stem)
def test_partitions_match_tflites_partitioner(model, delegates, monkeypatch):
    """A test delegate claims exactly the predicted ops; TFLite groups them into its partitions."""
    result = bredos_npu.inspect(model)
    claimed = {op.index for op in result.npu_ops}
    assert result.partitions == tflite_partitions(model, claimed, delegates["listed"], monkeypatch)


def test_runtime_agrees_when_the_delegate_takes_the_predicted_ops(capfd, delegates, monkeypatch):
    predicted = [op.index for op in bredos_npu.inspect(SSD).npu_ops]
    monkeypatch.setenv("TEST_DELEGATE_NODES", ",".join(map(str, predicted)))
    outcome = run_cli(capfd, "inspect", SSD, "--runtime", "--delegate", delegates["listed"])
    assert outcome.code == 0, outcome.err
    assert f"runtime: the delegate ({delegates['listed']}) took exactly the predicted ops" in outcome.out
