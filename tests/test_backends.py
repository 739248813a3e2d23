"""The npu / cpu / auto backends, with real external delegates compiled from C by the tests."""

from __future__ import annotations

import ctypes

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, MODELS

import bredos_npu
from bredos_npu.errors import EXIT_BACKEND, BackendError, Reason

FLOAT_MODEL = MODELS / "mobilenet_v1_0.25_224_float.tflite"


def prepare_count(library) -> int:
    return ctypes.CDLL(str(library)).test_delegate_prepare_count()


def test_delegate_that_claims_nothing_is_applied_and_gives_the_cpu_answer(delegates):
    before = prepare_count(delegates["passthrough"])
    npu = bredos_npu.load(DEFAULT_MODEL, backend="npu", delegate=str(delegates["passthrough"]))
    cpu = bredos_npu.load(DEFAULT_MODEL, backend="cpu")
    assert prepare_count(delegates["passthrough"]) == before + 1  # TFLite really applied it
    assert npu.backend.name == "npu" and npu.backend.delegate == str(delegates["passthrough"])
    assert npu.backend.nodes.npu_nodes == 0 and npu.backend.nodes.npu_partitions == 0
    assert npu.classify(CAT) == cpu.classify(CAT)
    assert npu.classify(CAT)[0].index == 286


def test_delegate_from_environment(delegates, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_DELEGATE", str(delegates["passthrough"]))
    assert bredos_npu.load(DEFAULT_MODEL, backend="npu").backend.delegate == str(delegates["passthrough"])


def test_ready_board_loads_libteflon_and_auto_says_when_it_took_nothing(ready_board, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(ready_board.base))
    teflon = str(ready_board.base / "usr/lib/libteflon.so")
    explicit = bredos_npu.load(DEFAULT_MODEL, backend="npu")
    assert explicit.backend.name == "npu" and explicit.backend.delegate == teflon
    # the stand-in libteflon claims no nodes: nothing would run on the NPU, so auto says CPU
    auto = bredos_npu.load(DEFAULT_MODEL)
    assert auto.backend.name == "cpu"
    assert auto.backend.fallback_reason == (f"NPU not used: the delegate {teflon} took none of this "
                                            "model's operators")
    assert auto.backend.fallback.reason is Reason.DELEGATE_TOOK_NOTHING
    assert auto.backend.fallback.data["library"] == teflon
    assert auto.classify(CAT, top_k=1)[0].index == 286


def test_null_delegate_is_a_clear_error(delegates, capfd):
    library = delegates["null"]
    outcome = run_cli(capfd, "classify", "-b", "npu", "--delegate", library, CAT)
    assert outcome.code == EXIT_BACKEND
    assert outcome.err.strip() == (
        f"bredos-npu: error: NPU not available: the delegate {library} returned no delegate (it "
        "said: Couldn't open kernel device): run `bredos-npu doctor` for details."
    )


def test_auto_falls_back_when_the_delegate_returns_null(delegates, capfd):
    outcome = run_cli(capfd, "classify", "--delegate", delegates["null"], CAT)
    assert outcome.code == 0
    assert "1. Egyptian cat" in outcome.out
    assert outcome.err.strip().endswith("(it said: Couldn't open kernel device): run `bredos-npu "
                                        "doctor` for details; running on the CPU.")


def test_library_without_entry_points(delegates):
    expected = r"not a TFLite external delegate \(missing symbol tflite_plugin_create_delegate"
    with pytest.raises(BackendError, match=expected):
        bredos_npu.load(DEFAULT_MODEL, backend="npu", delegate=str(delegates["not_a_delegate"]))


def test_library_that_is_not_a_shared_object(tmp_path):
    fake = tmp_path / "libteflon.so"
    fake.write_text("not ELF")
    with pytest.raises(BackendError, match=f"Cannot load the delegate library {fake}"):
        bredos_npu.load(DEFAULT_MODEL, backend="npu", delegate=str(fake))


def test_missing_delegate_path(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        bredos_npu.load(DEFAULT_MODEL, backend="npu", delegate=str(tmp_path / "none.so"))


def test_npu_without_device(fake_system):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.18.1")
    fake_system.module(loaded=True)  # rocket loaded, yet no node (else the doctor's Driver check fails first)
    with pytest.raises(BackendError) as error:
        bredos_npu.load(DEFAULT_MODEL, backend="npu", root=str(fake_system.base))
    # the API speaks in its own terms; the CLI adds where to look next
    assert str(error.value) == (
        "NPU not available: no NPU device node /dev/accel/accel0: load the driver with `sudo "
        "modprobe rocket`."
    )
    assert error.value.reason is Reason.NO_DEVICE_NODE
    assert error.value.data == {"device": "/dev/accel/accel0", "check": "Device"}


def test_npu_without_device_on_cli_points_at_the_doctor(capfd, fake_system, monkeypatch):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.18.1")
    fake_system.module(loaded=True)
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))
    outcome = run_cli(capfd, "classify", "-b", "npu", CAT)
    assert outcome.code == EXIT_BACKEND
    assert outcome.err.strip() == (
        "bredos-npu: error: NPU not available: no NPU device node /dev/accel/accel0: load the driver "
        "with `sudo modprobe rocket`; run `bredos-npu doctor` for details.")


def test_api_messages_never_name_cli_flags_or_commands(tmp_path, delegates):
    """Every API error a Python caller meets here is in API terms; the CLI adds its own words."""
    from bredos_npu.outputs import check_output

    existing = tmp_path / "taken.csv"
    existing.write_text("mine")
    failures = []
    for attempt in (
        lambda: bredos_npu.load(DEFAULT_MODEL, "npu", delegate=str(tmp_path / "none.so")),
        lambda: bredos_npu.load(DEFAULT_MODEL, "npu", delegate=str(delegates["null"])),
        lambda: bredos_npu.load(FLOAT_MODEL, "npu", delegate=str(delegates["passthrough"])),
        lambda: bredos_npu.load(tmp_path / "missing.tflite"),
        lambda: bredos_npu.load(DEFAULT_MODEL).detect(CAT),
        lambda: check_output(existing),
    ):
        with pytest.raises(bredos_npu.BredosNpuError) as error:
            attempt()
        failures.append(error.value)
    for failure in failures:
        assert "--" not in str(failure) and "bredos-npu " not in str(failure), str(failure)
        assert failure.reason is not Reason.UNSPECIFIED
    assert [f.reason for f in failures] == [
        Reason.DELEGATE_MISSING, Reason.NO_DELEGATE, Reason.FLOAT_MODEL, Reason.MODEL_NOT_FOUND,
        Reason.WRONG_TASK, Reason.OUTPUT_EXISTS]
    assert failures[4].data["fits"] == "classify" and failures[4].data["task"] == "detect"
    assert failures[5].data["path"] == existing


def test_npu_without_library_on_cli(capfd, ready_board, monkeypatch):
    ready_board.remove("/usr/lib/libteflon.so")
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(ready_board.base))
    outcome = run_cli(capfd, "classify", "-b", "npu", CAT)
    assert outcome.code == EXIT_BACKEND
    assert "Mesa's Teflon delegate was not found" in outcome.err
    assert "sudo pacman -Syu mesa" in outcome.err and "Traceback" not in outcome.err


def test_float_model_is_refused_on_npu(capfd, delegates):
    outcome = run_cli(capfd, "classify", "-b", "npu", "-m", FLOAT_MODEL,
                      "--delegate", delegates["passthrough"], CAT)
    assert outcome.code == EXIT_BACKEND
    assert "the model is float (not quantized)" in outcome.err
    assert "run it on the CPU" in outcome.err


def test_float_model_under_auto_runs_on_cpu_and_says_so(capfd, ready_board, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(ready_board.base))
    outcome = run_cli(capfd, "classify", "-m", FLOAT_MODEL, CAT)
    assert outcome.code == 0
    assert "the model is float (not quantized)" in outcome.err
    assert "running on the CPU" in outcome.err
    assert "backend: cpu" in outcome.out


def test_unknown_backend_in_api():
    with pytest.raises(BackendError, match="Unknown backend 'gpu'"):
        bredos_npu.load(DEFAULT_MODEL, backend="gpu")


def test_cpu_backend_reports_xnnpack_nodes():
    model = bredos_npu.load(DEFAULT_MODEL, backend="cpu")
    nodes = model.backend.nodes
    assert nodes.model_nodes == 66 and nodes.npu_nodes == 0
    assert 0 < nodes.xnnpack_nodes <= 66 and nodes.xnnpack_partitions >= 1


def test_model_that_would_crash_mesa_is_kept_off_the_npu(capfd, delegates):
    model = MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    library = delegates["passthrough"]
    refused = run_cli(capfd, "classify", "-b", "npu", "-m", model, "--delegate", library, CAT)
    assert refused.code == EXIT_BACKEND
    assert "NPU not used: Mesa's rocket driver would crash on this model (op " in refused.err
    assert "ADD that Teflon claims but rocket cannot fuse" in refused.err
    auto = run_cli(capfd, "classify", "-m", model, "--delegate", library, "-k", "1", CAT)
    assert auto.code == 0 and "Egyptian cat" in auto.out
    assert "would crash" in auto.err and "running on the CPU" in auto.err


def test_relative_delegate_path(delegates, monkeypatch):
    monkeypatch.chdir(delegates["passthrough"].parent)
    model = bredos_npu.load(DEFAULT_MODEL, backend="npu", delegate="./libpassthrough.so")
    assert model.backend.delegate == str(delegates["passthrough"])


def synthetic(tmp_path, **conv):
    from tflite_builder import ModelBuilder

    m = ModelBuilder()
    x = m.tensor((1, 8, 8, 3), conv.pop("dtype_in", "uint8"), (1 / 128,), (128,))
    path = tmp_path / "m.tflite"
    path.write_bytes(m.build([x], [m.conv(x, 4, **conv)]))
    return path


def test_predicted_wrong_results_keep_auto_off_the_npu(delegates, tmp_path):
    path = synthetic(tmp_path, stride=(2, 1))
    library = str(delegates["passthrough"])
    auto = bredos_npu.load(path, delegate=library)
    assert auto.backend.name == "cpu"
    assert "would compute wrong results on this model (op 0: stride 2x1" in auto.backend.fallback_reason
    forced = bredos_npu.load(path, "npu", delegate=library)
    assert forced.backend.name == "npu" and forced.backend.hazards[0].startswith("op 0: stride 2x1")


def test_npu_warns_once_about_unverified_int8(capfd, delegates, tmp_path):
    from tflite_builder import ModelBuilder

    m = ModelBuilder()
    x = m.tensor((1, 8, 8, 3), "int8", (1 / 128,), (0,))
    path = tmp_path / "int8.tflite"
    path.write_bytes(m.build([x], [m.conv(x, 4, dtype="int8")]))
    outcome = run_cli(capfd, "segment", "-b", "npu", "-m", path, "--delegate", delegates["passthrough"], CAT)
    assert outcome.code == 0, outcome.err
    assert outcome.err.strip().splitlines() == [
        f"bredos-npu: warning: the delegate {delegates['passthrough']} took none of this model's "
        "operators: nothing runs on the NPU (see `bredos-npu inspect`).",
        "bredos-npu: warning: op 0: int8 data: rocket treats all data as uint8; only uint8 is "
        "validated (results unverified); see `bredos-npu inspect`.",
    ]


def test_auto_on_a_machine_that_is_not_an_rk3588(capfd, fake_system, monkeypatch):
    fake_system.soc("raspberrypi,5-model-b", "brcm,bcm2712", model="Raspberry Pi 5")
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))
    model = bredos_npu.load(DEFAULT_MODEL)
    assert model.backend.fallback_reason.startswith("NPU not available: this is not an RK3588 board")


def test_a_delegate_that_takes_nodes_is_counted_and_gives_the_cpu_answer(delegates):
    npu = bredos_npu.load(DEFAULT_MODEL, "npu", delegate=str(delegates["claiming"]))
    cpu = bredos_npu.load(DEFAULT_MODEL, "cpu")
    nodes = npu.backend.nodes
    assert npu.backend.npu_node_indices == (64,)  # the model's only RESHAPE
    assert (nodes.npu_nodes, nodes.npu_partitions) == (1, 1)
    assert nodes.xnnpack_nodes == 63 and nodes.xnnpack_partitions == 2  # split by the kernel
    assert (npu.scores(CAT) == cpu.scores(CAT)).all()


def test_auto_uses_a_libteflon_that_takes_nodes(ready_board, delegates, monkeypatch):
    ready_board.library(delegates["claiming"])
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(ready_board.base))
    model = bredos_npu.load(DEFAULT_MODEL)
    assert model.backend.name == "npu" and model.backend.fallback_reason is None
    assert model.classify(CAT, top_k=1)[0].index == 286


def test_every_claimed_node_is_found_across_partitions(delegates):
    ssd = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
    reshapes = [op.index for op in bredos_npu.inspect(ssd).ops if op.name == "RESHAPE"]
    model = bredos_npu.load(ssd, "npu", delegate=str(delegates["claiming"]))
    assert model.backend.npu_node_indices == tuple(reshapes) and len(reshapes) == 13
    assert model.backend.nodes.npu_partitions >= 2


def test_the_backend_plan_is_one_decision_that_load_carries_out(ready_board, delegates):
    """plan_backend decides without loading the delegate here; load() builds what it says."""

    from bredos_npu.runtime.backends import plan_backend
    from bredos_npu.system.cpu import plan_threads
    from bredos_npu.system.root import SystemRoot

    ready_board.library(delegates["claiming"])
    system = SystemRoot.from_env(str(ready_board.base))
    plan = bredos_npu.BackendPlan
    chosen = plan_backend("auto", plan_threads(system), system, model_path=DEFAULT_MODEL,
                          float_model=False, model_content=DEFAULT_MODEL.read_bytes())
    assert isinstance(chosen, plan) and chosen.backend == "npu" and chosen.reason is None
    assert chosen.delegate_library == str(ready_board.base / "usr/lib/libteflon.so")
    assert chosen.cpu.cpus == (4, 5, 6, 7)  # the fake board's big cores
    model = bredos_npu.load(DEFAULT_MODEL, root=str(ready_board.base))
    assert (model.backend.name, model.backend.delegate) == ("npu", chosen.delegate_library)
    floating = plan_backend("auto", chosen.cpu, system, model_path=FLOAT_MODEL,
                            float_model=True)
    assert floating.backend == "cpu" and floating.reason.reason is Reason.FLOAT_MODEL
    with pytest.raises(BackendError) as refused:
        plan_backend("npu", chosen.cpu, system, model_path=FLOAT_MODEL,
                     float_model=True)
    assert refused.value.reason is Reason.FLOAT_MODEL


def test_a_model_given_as_bytes_runs_like_its_file_and_leaves_nothing_behind(delegates):
    import gc

    content = DEFAULT_MODEL.read_bytes()
    model = bredos_npu.load(content, "npu", delegate=str(delegates["claiming"]))
    from_file = bredos_npu.load(DEFAULT_MODEL, "cpu")
    assert model.backend.npu_node_indices == (64,)  # the probe's child process read it too
    twin = model.clone()
    assert model.scores(CAT).tolist() == from_file.scores(CAT).tolist() == twin.scores(CAT).tolist()
    kept = model.path
    del model
    gc.collect()
    assert kept.is_file()  # the clone still uses it
    del twin
    gc.collect()
    assert not kept.exists()
    with pytest.raises(bredos_npu.ModelError, match="the model bytes is not a TensorFlow Lite model"):
        bredos_npu.load(b"not a model at all")
