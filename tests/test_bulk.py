"""Classifying folders and streams: order, failures, output files, bounded memory."""

from __future__ import annotations

import csv
import json
import re
import shutil
import threading
import time

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES

import bredos_npu
from bredos_npu.errors import EXIT_IMAGE
from bredos_npu.runtime.pipeline import default_decoders, run_pipeline

GOOD = [CAT, IMAGES / "grace_hopper.bmp", IMAGES / "sunflower.bmp", IMAGES / "grace_hopper.jpg"]
EXPECTED = {"cat.bmp": 286, "grace_hopper.bmp": 653, "grace_hopper.jpg": 653}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for number, image in enumerate(GOOD):
        shutil.copy(image, root / f"{number:02d}_{image.name}")
    (root / "05_corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "06_unreadable.png").symlink_to(tmp_path / "gone.png")  # reading it fails
    (root / "notes.txt").write_text("not an image, not picked up from a folder")
    sub = root / "more"
    sub.mkdir()
    shutil.copy(CAT, sub / "cat_again.bmp")
    return root


@pytest.fixture(scope="module")
def model():
    return bredos_npu.load(DEFAULT_MODEL, backend="cpu", threads=1)


def test_folder_finishes_the_rest_and_reports_failures(capfd, folder):
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", folder)
    assert outcome.code == EXIT_IMAGE
    assert outcome.out.count("Egyptian cat") == 1 and outcome.out.count("military uniform") == 2
    errors = [line for line in outcome.err.splitlines() if line.startswith("bredos-npu: error:")]
    assert len(errors) == 2
    assert "05_corrupt.jpg is not an image Pillow can read" in errors[0]
    assert "06_unreadable.png: check the path" in errors[1]
    assert re.search(r"4 of 6 images classified, 2 failed in", outcome.err)


def test_recursive_includes_subfolders(capfd, folder):
    flat = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", "--json", folder)
    deep = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", "--json", "--recursive", folder)
    flat_images = [r["image"] for r in json.loads(flat.out)["results"]]
    deep_images = [r["image"] for r in json.loads(deep.out)["results"]]
    assert len(deep_images) == len(flat_images) + 1
    assert deep_images[-1].endswith("more/cat_again.bmp")


def test_jsonl_output(capfd, folder, tmp_path):
    target = tmp_path / "out.jsonl"
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "2", folder, "--jsonl", target)
    assert outcome.code == EXIT_IMAGE
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == 6 and sum("error" in line for line in lines) == 2
    first = lines[0]
    assert first["image"].endswith("00_cat.bmp") and first["classes"][0]["index"] == 286
    assert len(first["classes"]) == 2 and 0 <= first["classes"][0]["score"] <= 1
    assert outcome.out == ""  # results go to the file; stdout stays clean
    assert f"results in {target}" in outcome.err


def test_csv_output(capfd, tmp_path):
    target = tmp_path / "out.csv"
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "3", CAT, "--csv", target)
    assert outcome.code == 0
    with target.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["label"] == "Egyptian cat" and rows[0]["index"] == "286"


def test_output_file_is_not_overwritten_without_force(capfd, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("mine\n")
    outcome = run_cli(capfd, "classify", "-b", "cpu", CAT, "--jsonl", target)
    assert outcome.code == 9 and "already exists: pass --force" in outcome.err
    assert target.read_text() == "mine\n"


def test_failed_run_leaves_no_partial_file(capfd, tmp_path, monkeypatch):
    target = tmp_path / "out.jsonl"

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # A failure of one image is that image's error line; writing failing is the whole run's.
    monkeypatch.setattr("bredos_npu.cli.records.json.dumps", explode)
    outcome = run_cli(capfd, "classify", "-b", "cpu", CAT, "--jsonl", target)
    assert outcome.code == 1 and "disk on fire" in outcome.err
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_parallel_results_equal_serial_in_input_order(model):
    images = [GOOD[i % len(GOOD)] for i in range(12)]
    serial = [(r.index, r.source, r.value) for r in model.classify_many(images, top_k=3)]
    parallel = [(r.index, r.source, r.value) for r in model.classify_many(images, top_k=3, parallel=3)]
    assert parallel == serial
    assert [i for i, _, _ in serial] == list(range(12))
    assert [s for _, s, _ in serial] == [str(p) for p in images]


def test_inputs_are_read_lazily_with_bounded_look_ahead(model):
    pulled = []

    def endless():
        while True:
            pulled.append(1)
            yield CAT

    results = model.classify_many(endless(), top_k=1, parallel=2)
    first = next(results)
    assert first.value[0].index == 286
    window = 2 * (2 + default_decoders())
    assert len(pulled) <= window + 1
    results.close()


def test_a_live_source_gets_each_result_before_its_next_frame_is_read(model):
    """Streams pass window=1: the first frame's result must not wait for the camera's second
    frame (a stalled camera would hold it back for as long as it stalls)."""
    next_frame = threading.Event()

    def camera():
        yield CAT
        next_frame.wait(timeout=20)  # a camera between two frames
        yield CAT

    results = run_pipeline(model, camera(), lambda m, prepared: m.run(prepared.tensor), window=1)
    started = time.perf_counter()
    first = next(results)
    waited = time.perf_counter() - started
    next_frame.set()
    assert first.ok and waited < 10, f"the first result waited {waited:.1f} s for the second frame"
    assert [r.index for r in results] == [1]


def test_api_reports_errors_per_item(model, tmp_path):
    results = list(model.classify_many([CAT, tmp_path / "missing.jpg"], top_k=1))
    assert results[0].ok and not results[1].ok
    assert results[1].error == f"Image not found: {tmp_path / 'missing.jpg'}: check the path."


def test_empty_folder(capfd, tmp_path):
    outcome = run_cli(capfd, "classify", "-b", "cpu", tmp_path)
    assert outcome.code == EXIT_IMAGE
    assert "No images found" in outcome.err


def test_choose_one_output_format(capfd, tmp_path):
    outcome = run_cli(capfd, "classify", CAT, "--jsonl", tmp_path / "a", "--csv", tmp_path / "b")
    assert outcome.code == 2 and "choose one of --jsonl and --csv" in outcome.err


def test_jsonl_to_standard_output(capfd):
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", CAT, "--jsonl", "-")
    assert outcome.code == 0
    assert json.loads(outcome.out)["classes"][0]["index"] == 286


def test_output_files_get_ordinary_permissions(capfd, tmp_path):
    import os

    target = tmp_path / "out.jsonl"
    assert run_cli(capfd, "classify", "-b", "cpu", CAT, "--jsonl", target).code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_folders_are_walked_lazily(tmp_path):
    from bredos_npu.runtime.pipeline import expand_sources

    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(b"x")
    (tmp_path / "0.png").write_bytes(b"x")
    walker = expand_sources([tmp_path], recursive=True)
    assert next(walker) == tmp_path / "0.png"  # yielded before the subfolders are read
    assert list(walker) == [tmp_path / "a" / "1.jpg", tmp_path / "b" / "1.jpg"]
    assert list(expand_sources([tmp_path])) == [tmp_path / "0.png"]
