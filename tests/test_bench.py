"""`bredos-npu bench`: figures only where measured, JSON/CSV schema, plot, parallel runs."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
from cli_runner import run_cli
from conftest import CAT
from PIL import Image

CSV_COLUMNS = [
    "model", "backend", "available", "reason", "init_ms", "first_ms", "warmup_mean_ms", "mean_ms", "std_ms",
    "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "inferences_per_s", "runs", "speedup_vs_cpu",
    "npu_nodes", "xnnpack_nodes", "model_nodes", "threads", "cpus", "parallel_interpreters",
    "parallel_threads_each", "parallel_per_s", "parallel_efficiency",
]


@pytest.fixture
def no_npu(fake_system, monkeypatch):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.18.0")
    fake_system.module(loaded=True)  # the driver is there, its device node is not
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))


def bench_json(capfd, *args):
    outcome = run_cli(capfd, "bench", "--runs", "5", "--warmup", "1", "--json", *args)
    assert outcome.code == 0, outcome.err
    return json.loads(outcome.out)


def test_cpu_figures_and_unavailable_npu_reported_not_raised(capfd, no_npu):
    data = bench_json(capfd)
    cpu, npu = data["backends"]
    assert cpu["backend"] == "cpu" and cpu["available"] and cpu["runs"] == 5
    assert len(cpu["latencies_ms"]) == 5 and cpu["model_nodes"] == 66
    # the reported figures against Python's own statistics of the raw latencies
    raw = cpu["latencies_ms"]
    assert cpu["mean_ms"] == pytest.approx(statistics.fmean(raw), abs=1e-3)
    assert cpu["std_ms"] == pytest.approx(statistics.pstdev(raw), abs=1e-3)
    assert cpu["p50_ms"] == pytest.approx(statistics.median(raw), abs=1e-3)
    assert (cpu["min_ms"], cpu["max_ms"]) == pytest.approx((min(raw), max(raw)), abs=1e-3)
    assert cpu["inferences_per_s"] == pytest.approx(1000 / statistics.fmean(raw), rel=1e-3)
    assert npu["available"] is False and npu["mean_ms"] is None and npu["latencies_ms"] == []
    assert npu["reason"].startswith("NPU not available: no NPU device node /dev/accel/accel0")
    assert data["teflon_prediction"].startswith("NPU: 63/66 ops")


def test_text_table_says_not_available(capfd, no_npu):
    outcome = run_cli(capfd, "bench", "--runs", "3", "--warmup", "0")
    assert outcome.code == 0
    assert "npu: not available: no NPU device node /dev/accel/accel0" in outcome.out
    lines = outcome.out.splitlines()
    assert lines[1].split()[:4] == ["backend", "init", "first", "warm-up"]
    assert lines[2].startswith("cpu ") and lines[3].split()[1:3] == ["-", "-"]


def test_npu_figures_need_nodes_on_the_npu(capfd, delegates):
    # The passthrough delegate loads but claims nothing: its timings would be CPU timings.
    library = delegates["passthrough"]
    data = bench_json(capfd, "-b", "npu", "-b", "cpu", "--delegate", str(library))
    npu, cpu = data["backends"]
    assert npu["available"] is False and npu["latencies_ms"] == [] and npu["mean_ms"] is None
    assert npu["reason"] == (f"the delegate {library} took none of this model's operators, so "
                             "nothing would run on the NPU: see `bredos-npu inspect`.")
    assert cpu["available"]


def test_image_input(capfd):
    data = bench_json(capfd, "-b", "cpu", "--image", str(CAT))
    assert data["input"] == str(CAT) and data["backends"][0]["available"]


def test_parallel_interpreters(capfd):
    data = bench_json(capfd, "-b", "cpu", "--parallel", "2")
    cpu = data["backends"][0]
    assert cpu["parallel_interpreters"] == 2 and cpu["parallel_threads_each"] >= 1
    assert 0 < cpu["parallel_efficiency"] < 1.5 and cpu["parallel_per_s"] > 0


def test_csv_and_plot(capfd, tmp_path, no_npu):
    table, picture = tmp_path / "bench.csv", tmp_path / "bench.png"
    outcome = run_cli(capfd, "bench", "--runs", "4", "--csv", table, "--plot", picture)
    assert outcome.code == 0, outcome.err
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == CSV_COLUMNS
    assert [r["backend"] for r in rows] == ["cpu", "npu"] and rows[1]["available"] == "False"
    with Image.open(picture) as image:
        assert image.format == "PNG"


def test_existing_output_is_not_overwritten(capfd, tmp_path):
    table = tmp_path / "bench.csv"
    table.write_text("precious\n")
    outcome = run_cli(capfd, "bench", "--runs", "2", "-b", "cpu", "--csv", table)
    assert outcome.code == 9
    assert outcome.err.strip() == (f"bredos-npu: error: {table} already exists: pass --force to "
                                   "overwrite it, or choose another name.")
    assert table.read_text() == "precious\n"
    forced = run_cli(capfd, "bench", "--runs", "2", "-b", "cpu", "--csv", table, "--force")
    assert forced.code == 0 and table.read_text().startswith("model,backend,")


def test_bad_backend_list(capfd):
    outcome = run_cli(capfd, "bench", "-b", "gpu")
    assert outcome.code == 2
    assert outcome.err == ("bredos-npu bench: invalid value for '-b' / '--backend': 'gpu' is not one of "
                           "'cpu', 'npu' (see bredos-npu bench --help)\n")


def test_exit_status_when_nothing_could_be_measured(capfd, no_npu):
    outcome = run_cli(capfd, "bench", "-b", "npu", "--runs", "2")
    assert outcome.code == 7
    assert "npu: not available: no NPU device node" in outcome.out


def test_plot_format_follows_the_extension(capfd, tmp_path, no_npu):
    svg = tmp_path / "latency.svg"
    assert run_cli(capfd, "bench", "-b", "cpu", "--runs", "3", "--plot", svg).code == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    outcome = run_cli(capfd, "bench", "-b", "cpu", "--runs", "3", "--plot", tmp_path / "p.txt")
    assert outcome.code == 9 and "use a .png, .svg, .pdf or .jpg name" in outcome.err


def test_image_needs_a_single_input_model(capfd):
    from conftest import MODELS

    outcome = run_cli(capfd, "bench", "-m", MODELS / "split_concat.tflite", "-b", "cpu",
                      "--image", CAT, "--runs", "1")
    assert outcome.code == 2
    assert "--image needs a model with one image input; split_concat.tflite has 3 inputs" in outcome.err


def test_json_and_csv_on_stdout_conflict(capfd):
    outcome = run_cli(capfd, "bench", "--json", "--csv", "-", "--runs", "1")
    assert outcome.code == 2 and "both write to standard output" in outcome.err


def test_npu_figures_when_the_delegate_takes_nodes(capfd, delegates):
    data = bench_json(capfd, "-b", "cpu", "-b", "npu", "--delegate", str(delegates["claiming"]))
    cpu, npu = data["backends"]
    assert npu["available"] and npu["npu_nodes"] == 1 and len(npu["latencies_ms"]) == 5
    assert cpu["available"] and cpu["npu_nodes"] == 0


def test_csv_on_standard_output_is_only_csv(capfd, no_npu):
    outcome = run_cli(capfd, "bench", "--runs", "2", "--csv", "-")
    assert outcome.code == 0
    rows = list(csv.reader(outcome.out.splitlines()))
    assert rows[0] == CSV_COLUMNS and len(rows) == 3 and all(len(r) == len(CSV_COLUMNS) for r in rows)
