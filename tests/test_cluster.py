"""Cluster runs on a real multi-node Ray cluster started on 127.0.0.1 by these tests.

Three Ray nodes on this machine, two of them with fake ``rk3588_npu`` resources (the NPU actors
then run on the CPU here, as ``auto`` falls back without an NPU). The reference for every result
is a local run of the same command.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from cli_runner import run_cli
from conftest import IMAGES, MODELS

# Ray nodes bind the loopback address only, and never report usage: set before Ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import ray
from ray.cluster_utils import Cluster

from bredos_npu.cluster import NPU_RESOURCE
from bredos_npu.cluster.connect import connect, wait_until_reachable
from bredos_npu.cluster.runner import run_on_cluster
from bredos_npu.errors import EXIT_BACKEND, EXIT_IMAGE, EXIT_RUNTIME

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
TIMING = ("preprocess_ms", "inference_ms", "node")


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU, no NPU) + a board with 2 fake NPU cores + a board with 1; stopped afterwards."""
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                        "resources": {NPU_RESOURCE: 0}})
    made.add_node(num_cpus=1, resources={NPU_RESOURCE: 2})
    made.add_node(num_cpus=0, resources={NPU_RESOURCE: 1})
    connect(made.address)
    made.wait_for_nodes()
    yield made
    ray.shutdown()
    made.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """18 photos (copies of the test images under their own names) and one broken file."""
    folder = tmp_path_factory.mktemp("photos")
    sources = sorted(p for p in IMAGES.iterdir() if p.suffix in (".jpg", ".bmp") and "mask" not in p.name)
    for number in range(18):
        source = sources[number % len(sources)]
        shutil.copy(source, folder / f"{number:02d}-{source.name}")
    (folder / "07b-broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    return folder


def records(path):
    """The JSONL records without the fields that differ between runs (timings, node)."""
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in found], found


def test_cluster_classify_gives_the_local_records_in_input_order(cluster, photos, tmp_path, capfd):
    local, remote = tmp_path / "local.jsonl", tmp_path / "cluster.jsonl"
    assert run_cli(capfd, "classify", photos, "--jsonl", local).code == EXIT_IMAGE
    done = run_cli(capfd, "classify", photos, "--jsonl", remote, "--cluster", cluster.address)
    assert done.code == EXIT_IMAGE  # the broken image, reported like a local broken image
    expected, _ = records(local)
    got, raw = records(remote)
    assert got == expected and len(got) == 19
    assert all("node" in r for r in raw)
    assert len({r["node"] for r in raw}) == 2  # the NPU actors are on the two boards with cores
    assert "3 workers on 2 node(s)" in done.err


def test_shipped_images_give_the_same_detections(cluster, photos, tmp_path, capfd):
    local, remote = tmp_path / "local.jsonl", tmp_path / "ship.jsonl"
    run_cli(capfd, "detect", photos, "-m", SSD, "--jsonl", local)
    done = run_cli(capfd, "detect", photos, "-m", SSD, "--jsonl", remote, "--cluster", cluster.address,
                   "--ship")
    assert done.code == EXIT_IMAGE, done.err
    expected, _ = records(local)
    got, _ = records(remote)
    assert [r["image"] for r in got] == [r["image"] for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert ("error" in mine) == ("error" in theirs)
        if "error" not in mine:
            assert mine == theirs


def test_csv_has_the_local_columns_plus_the_node(cluster, photos, tmp_path, capfd):
    out = tmp_path / "out.csv"
    run_cli(capfd, "classify", photos, "--csv", out, "--cluster", cluster.address, "-k", "1")
    header = out.read_text().splitlines()[0]
    assert header == "image,rank,index,label,score,error,node"
    again = run_cli(capfd, "classify", photos, "--csv", out, "--cluster", cluster.address, "-k", "1",
                    "--resume")  # a cluster run continues its own file, node column and all
    assert again.code == 0 and "all 19 inputs were done before" in again.err, again.err

    # Continued here without --cluster: same columns, this machine named in the node column.
    before, extra, reference = out.read_bytes(), IMAGES / "grace_hopper.jpg", tmp_path / "local.csv"
    here = run_cli(capfd, "classify", photos, extra, "--csv", out, "-k", "1", "--resume")
    assert here.code == 0 and "19 done before were skipped" in here.err, here.err
    assert out.read_bytes().startswith(before)
    run_cli(capfd, "classify", extra, "--csv", reference, "-k", "1")
    [expected] = list(csv.DictReader(reference.open(newline="")))
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 20 and rows[-1] == {**expected, "node": socket.gethostname()}


def test_a_node_killed_mid_run_loses_and_repeats_nothing(cluster, photos):
    victim = cluster.add_node(num_cpus=0, resources={NPU_RESOURCE: 1})
    cluster.wait_for_nodes()
    sources = sorted(p for p in photos.iterdir() if "broken" not in p.name) * 3  # 54 inputs
    from bredos_npu import load

    expected = [[c.index for c in load(MODELS / "mobilenet_v1_0.25_128_quant.tflite", "cpu").classify(s, 3)]
                for s in sources[:18]] * 3
    run = run_on_cluster(cluster.address, MODELS / "mobilenet_v1_0.25_128_quant.tflite", "classify",
                         sources, {"top_k": 3}, batch=1, window=2)
    assert len(run.workers) == 4
    seen = []
    for result in run:
        if not seen:
            cluster.remove_node(victim)  # while its actor has work in flight
        seen.append(result)
    assert [r.index for r in seen] == list(range(len(sources)))  # each input exactly once, in order
    assert [[c.index for c in r.value] for r in seen] == expected
    assert run.lost_actors == 1 and run.retried >= 1
    assert run.replaced == 0  # the dead board's core went with it: no room for a replacement


def test_a_dead_worker_is_replaced_where_its_core_is_free_again(cluster, photos):
    """A worker process killed (its board still up): its core is free, a new worker takes it."""
    sources = sorted(p for p in photos.iterdir() if "broken" not in p.name) * 10  # 180 inputs
    run = run_on_cluster(cluster.address, MODELS / "mobilenet_v1_0.25_128_quant.tflite", "classify",
                         sources, {"top_k": 1}, batch=1, window=1)
    victim = run.workers[0]
    seen = []
    for result in run:
        if not seen:
            os.kill(victim["pid"], signal.SIGKILL)
        seen.append(result)
        if not run.replaced:
            time.sleep(0.1)  # a slow consumer: time for the replacement to start (18 s at most)
    assert [r.index for r in seen] == list(range(len(sources)))  # each input exactly once, in order
    assert all(r.error is None for r in seen)
    assert run.lost_actors == 1 and run.replaced == 1
    assert len(run.workers) == 4 and run.workers[-1]["pid"] != victim["pid"]
    assert run.workers[-1]["node"] == victim["node"]  # in the freed core's place
def test_unreachable_cluster_is_one_line_and_exit_7_within_the_deadline(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bredos_npu", "classify", "--cluster", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_BACKEND, done.stderr
    assert time.monotonic() - started < 30
    assert done.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in done.stderr


def test_missing_ray_is_one_line_and_exit_8(monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as when not installed
    done = run_cli(capfd, "classify", "--cluster", "127.0.0.1:6379")
    assert done.code == EXIT_RUNTIME
    assert "bredos-npu[cluster]" in done.err and done.err.count("\n") == 1


def test_a_ready_board_offers_three_npu_cores_and_another_none(ready_board, fake_system):
    from bredos_npu.cluster.nodes import offer, start_command

    ready = offer(str(ready_board.base))
    assert ready == (3, "NPU ready")
    command = start_command(ready.npu_cores, head=True, address=None, port=6390)
    assert command[command.index("--resources") + 1] == '{"rk3588_npu": 3}'
    assert "--include-dashboard=false" in command and "--disable-usage-stats" in command
    ready_board.remove("/dev/accel/accel0")
    assert offer(str(ready_board.base)).npu_cores == 0


def test_cluster_start_and_status_on_this_machine():
    """A real head started by `cluster start --block`; this machine has no NPU, so 0 cores."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen([sys.executable, "-m", "bredos_npu", "cluster", "start", "--head", "--port",
                             str(port), "--block"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_reachable(f"127.0.0.1:{port}", 90)
        status = subprocess.run([sys.executable, "-m", "bredos_npu", "cluster", "status", "--address",
                                 f"127.0.0.1:{port}"], env=env, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        row = status.stdout.splitlines()[1].split()
        assert row[1:3] == ["alive", "0"] and row[4] == "cpu" and int(row[3]) == os.cpu_count()
        assert "CPU only" in status.stdout and "0 NPU cores in all" in status.stdout
    finally:
        head.send_signal(signal.SIGTERM)  # reaches `ray start --block` itself, which stops its node
        _, err = head.communicate(timeout=60)
    assert "offers 0 NPU cores (CPU only" in err
