"""The model zoo against a local HTTP server: pull, resume, integrity, errors, offline, import."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket

import pytest
from cli_runner import run_cli
from conftest import CAT, DATA, IMAGES, LABELS, MODELS, mirror

from bredos_npu.errors import EXIT_MODEL
from bredos_npu.models import zoo
from bredos_npu.models.integrity import Integrity, file_digest
from bredos_npu.tasks import registry

SSD_FILE = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
SSD_SHA256 = "61d598093ed03ed41aa47c3a39a28ac01e960d6a810a5419b9a5016a1e9c469b"


def cache_files(cache):
    """The cache's files, without the lock file that guards the imports index."""
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")
                  if p.is_file() and p.name != zoo.LOCK_FILE) if cache.exists() else []


def test_pull_verifies_and_caches(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url + "/")
    outcome = run_cli(capfd, "models", "pull", "ssd-mobilenet-v1")
    assert outcome.code == 0, outcome.err
    target = cache / SSD_FILE
    assert outcome.out.strip() == f"ssd-mobilenet-v1: {target}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == SSD_SHA256
    assert cache_files(cache) == [SSD_FILE]
    assert run_cli(capfd, "models", "path", "ssd-mobilenet-v1").out.strip() == str(target)
    listed = json.loads(run_cli(capfd, "models", "list", "--json").out)
    assert next(m for m in listed if m["name"] == "ssd-mobilenet-v1")["state"] == "cached"


def test_pull_also_fetches_the_label_file(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    assert run_cli(capfd, "models", "pull", "deeplabv3-mnv2-dm05").code == 0
    assert cache_files(cache) == ["deeplabv3_mnv2_dm05_pascal_quant.tflite",
                                  "pascal_voc_segmentation_labels.txt"]


def test_bundled_labels_are_not_downloaded(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    assert run_cli(capfd, "models", "pull", "mobilenet-v1-0.25-128").code == 0
    assert cache_files(cache) == ["mobilenet_v1_0.25_128_quant.tflite"]


def test_resume_after_the_server_drops_the_connection(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url + "/drop/")
    outcome = run_cli(capfd, "models", "pull", "ssd-mobilenet-v1")
    assert outcome.code == 0, outcome.err
    assert hashlib.sha256((cache / SSD_FILE).read_bytes()).hexdigest() == SSD_SHA256
    ranges = [r for path, r in server.requests if path.endswith(SSD_FILE)]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) > 0


def test_hash_mismatch_leaves_nothing(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url + "/corrupt/")
    outcome = run_cli(capfd, "models", "pull", "ssd-mobilenet-v1")
    assert outcome.code == 10
    assert f"The download of {SSD_FILE} failed its integrity check (sha256 " in outcome.err
    assert f"expected {SSD_SHA256}); nothing was cached" in outcome.err
    assert cache_files(cache) == []


def test_404(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url + "/nothing-here/")
    outcome = run_cli(capfd, "models", "pull", "mobilenet-v1")
    assert outcome.code == 10
    assert "HTTP 404 Not Found: check the model name, or the mirror" in outcome.err
    assert cache_files(cache) == []


def test_connection_refused(capfd, cache, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mirror(monkeypatch, f"http://127.0.0.1:{port}/")
    outcome = run_cli(capfd, "models", "pull", "ssd-mobilenet-v1")
    assert outcome.code == 10
    assert outcome.err.strip() == (f"bredos-npu: error: Cannot connect to 127.0.0.1:{port} "
                                   "(connection refused): check your network, or set "
                                   "BREDOS_NPU_MODEL_BASE_URL to a mirror.")


def test_offline_without_and_with_a_cached_model(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    refused = run_cli(capfd, "--offline", "detect", "-m", "ssd-mobilenet-v1", "-b", "cpu",
                      IMAGES / "cats_and_dogs.jpg")
    assert refused.code == EXIT_MODEL
    assert "ssd-mobilenet-v1 is not in the cache and offline mode is on" in refused.err
    assert server.requests == []
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "")
    assert run_cli(capfd, "models", "pull", "ssd-mobilenet-v1").code == 0
    served = len(server.requests)
    works = run_cli(capfd, "--offline", "detect", "-m", "ssd-mobilenet-v1", "-b", "cpu",
                    IMAGES / "cats_and_dogs.jpg")
    assert works.code == 0 and "cat" in works.out
    assert len(server.requests) == served


def test_zoo_name_is_pulled_when_used(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    outcome = run_cli(capfd, "classify", "-m", "mobilenet-v1-0.5-160", "-b", "cpu", "-k", "1",
                      IMAGES / "sunflower.bmp")
    assert outcome.code == 0, outcome.err
    assert "daisy" in outcome.out
    assert (cache / "mobilenet_v1_0.5_160_quant.tflite").is_file()


def test_bundled_model_needs_no_download(capfd, cache, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "1")
    assert run_cli(capfd, "classify", "-m", "mobilenet-v2", "-b", "cpu", CAT).code == 0
    outcome = run_cli(capfd, "models", "remove", "mobilenet-v2")
    assert outcome.code == EXIT_MODEL and "bundled with bredos-npu" in outcome.err


def test_inspect_accepts_a_zoo_name(capfd, cache, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "1")
    outcome = run_cli(capfd, "inspect", "mobilenet-v2")
    assert outcome.code == 0 and "NPU: 63/66 ops" in outcome.out


def test_import_use_and_remove(capfd, cache, tmp_path):
    outcome = run_cli(capfd, "models", "import", MODELS / "mobilenet_v1_0.5_160_quant.tflite",
                      "--name", "my-net", "--labels", LABELS / "imagenet_labels.txt")
    assert outcome.code == 0, outcome.err
    assert (cache / "imported" / "my-net.tflite").is_file()
    classified = run_cli(capfd, "classify", "-m", "my-net", "-b", "cpu", "-k", "1", IMAGES / "sunflower.bmp")
    assert classified.code == 0 and "daisy" in classified.out
    listed = json.loads(run_cli(capfd, "models", "list", "--json").out)
    mine = next(m for m in listed if m["name"] == "my-net")
    assert mine["state"] == "cached" and mine["coverage"].startswith("NPU: 28/31 ops")
    again = run_cli(capfd, "models", "import", MODELS / "mobilenet_v1_0.5_160_quant.tflite",
                    "--name", "my-net")
    assert again.code == EXIT_MODEL and "pass --force to replace it" in again.err
    removed = run_cli(capfd, "models", "remove", "my-net")
    assert removed.code == 0 and not (cache / "imported" / "my-net.tflite").exists()
    assert run_cli(capfd, "models", "path", "my-net").code == EXIT_MODEL


def test_import_rejects_a_non_tflite_file(capfd, cache):
    outcome = run_cli(capfd, "models", "import", DATA / "README.md", "--name", "x")
    assert outcome.code == EXIT_MODEL and "is not a TensorFlow Lite model" in outcome.err


def test_unknown_name(capfd, cache):
    outcome = run_cli(capfd, "models", "path", "resnet-9000")
    assert outcome.code == EXIT_MODEL
    assert "Unknown model 'resnet-9000': see `bredos-npu models list`" in outcome.err


def test_path_of_a_model_not_downloaded(capfd, cache):
    outcome = run_cli(capfd, "models", "path", "movenet-thunder")
    assert outcome.code == EXIT_MODEL
    assert "movenet-thunder is not downloaded: run `bredos-npu models pull movenet-thunder`" in outcome.err


def test_git_blob_integrity_matches_git():
    # zoo-sources lists imagenet_labels.txt with git blob 0f975ffd...; computed here from the file
    blob = Integrity("git_blob", "0f975ffd415baaea2267b4363717daff56451ad0")
    assert file_digest(LABELS / "imagenet_labels.txt", blob) == blob.digest


def test_manifest_is_complete():
    for model in zoo.models().values():
        assert model.task in registry.names() and model.file is not None
        assert model.file.url.startswith("https://raw.githubusercontent.com/")
        assert len(model.file.integrity.digest) in (40, 64)
        assert model.labels in (None, "embedded") or zoo.label_file(model.labels).url


def test_detect_without_a_model_uses_the_zoo_default(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    outcome = run_cli(capfd, "detect", "-b", "cpu", IMAGES / "cats_and_dogs.jpg")
    assert outcome.code == 0, outcome.err
    assert "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite" in outcome.out and "cat" in outcome.out


@pytest.mark.parametrize("name", ["../../outside", "", ".", "..", "x/y", "/abs/name", "-x"])
def test_import_refuses_names_that_are_paths(capfd, cache, tmp_path, name):
    outcome = run_cli(capfd, "models", "import", MODELS / "mobilenet_v1_0.25_128_quant.tflite",
                      "--name", name)
    assert outcome.code == EXIT_MODEL and "is not a usable model name" in outcome.err
    assert not (tmp_path / "outside.tflite").exists() and cache_files(cache) == []


def test_import_with_a_missing_label_file_leaves_nothing(capfd, cache, tmp_path):
    outcome = run_cli(capfd, "models", "import", MODELS / "mobilenet_v1_0.25_128_quant.tflite",
                      "--name", "mine", "--labels", tmp_path / "missing.txt")
    assert outcome.code == 6 and cache_files(cache) == []


def test_explicit_labels_win_over_a_missing_zoo_label_file(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    cache.mkdir(parents=True)
    shutil.copy(MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite", cache)
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "1")
    listed = json.loads(run_cli(capfd, "models", "list", "--json").out)
    assert next(m for m in listed if m["name"] == "deeplabv3-mnv2-dm05")["state"] == "cached, labels missing"
    outcome = run_cli(capfd, "segment", "-m", "deeplabv3-mnv2-dm05", "-b", "cpu",
                      "-l", LABELS / "pascal_voc_segmentation_labels.txt", IMAGES / "bird_segmentation.bmp")
    assert outcome.code == 0, outcome.err
    assert "bird" in outcome.out


def test_mirror_must_be_a_url(capfd, cache, monkeypatch):
    mirror(monkeypatch, "notaurl")
    outcome = run_cli(capfd, "models", "pull", "ssd-mobilenet-v1")
    assert outcome.code == 10 and "BREDOS_NPU_MODEL_BASE_URL='notaurl' is not an http(s) URL" in outcome.err


def test_cache_that_is_a_file(capfd, tmp_path, server, monkeypatch):
    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    monkeypatch.setenv("BREDOS_NPU_CACHE", str(blocker))
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "")
    mirror(monkeypatch, server.url)
    outcome = run_cli(capfd, "models", "pull", "ssd-mobilenet-v1")
    assert outcome.code == 10 and f"Cannot use the model cache {blocker}" in outcome.err
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 5}', '{"x": {"name": "x"}}'])
def test_corrupt_imports_file(capfd, cache, content):
    cache.mkdir(parents=True)
    (cache / "imported.json").write_text(content)
    outcome = run_cli(capfd, "models", "list")
    assert outcome.code == 10 and "imported.json is corrupt: fix or delete it" in outcome.err
    # built-in models do not depend on it
    assert run_cli(capfd, "classify", "-m", "mobilenet-v2", "-b", "cpu", CAT).code == 0


def test_two_pulls_of_the_same_model_at_once(cache, server, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    mirror(monkeypatch, server.url + "/drop/")  # slow them down with a resume each
    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: zoo.pull("ssd-mobilenet-v1"), range(3)))
    assert len(set(paths)) == 1
    assert hashlib.sha256(paths[0].read_bytes()).hexdigest() == SSD_SHA256
    assert cache_files(cache) == [SSD_FILE]


def test_reimport_without_labels_drops_the_old_label_file(capfd, cache):
    model = MODELS / "mobilenet_v1_0.5_160_quant.tflite"
    assert run_cli(capfd, "models", "import", model, "--name", "n", "--labels",
                   LABELS / "imagenet_labels.txt").code == 0
    assert run_cli(capfd, "models", "import", model, "--name", "n", "--force").code == 0
    assert cache_files(cache) == ["imported.json", "imported/n.tflite"]


@pytest.mark.parametrize("name", ["mobilenet-v2", "mobilenet-v1-0.5-160", "mobilenet-v1-0.25-128",
                                  "ssd-mobilenet-v1", "deeplabv3-mnv2-dm05", "movenet-lightning"])
def test_manifest_coverage_matches_inspect(name):
    # The manifest's figures must follow the rules: recompute them from the test copies.
    import bredos_npu

    model = zoo.get(name)
    local = MODELS / model.file.file_name
    path = local if local.exists() else zoo.local_path(model)
    assert model.coverage == bredos_npu.inspect(path).summary.rsplit(",", 1)[0]
