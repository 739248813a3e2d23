"""Hostile and broken model servers: trickles, endless bodies, redirect loops, bad mirror URLs,
partial files left by killed pulls, cached files damaged later. All on 127.0.0.1, with short
deadlines set through the environment, as a user would."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_runner import run_cli
from conftest import CAT, LABELS, mirror

from bredos_npu.errors import EXIT_DOWNLOAD, EXIT_MODEL

SSD = "ssd-mobilenet-v1"
SSD_FILE = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
SSD_SHA256 = "61d598093ed03ed41aa47c3a39a28ac01e960d6a810a5419b9a5016a1e9c469b"
SSD_SIZE = 4185023


def leftovers(cache):
    return sorted(p.name for p in cache.rglob("*.part"))


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(outcome):
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.err
    assert lines[0].startswith("bredos-npu: error: ")
    return lines[0]


# --- slow servers -------------------------------------------------------------------------------

def pull_in_child(cache, url, timeout=30, **settings):
    """``models pull`` in its own process, so that a regression hangs no longer than ``timeout``."""
    env = {**os.environ, "BREDOS_NPU_CACHE": str(cache), "BREDOS_NPU_MODEL_BASE_URL": url,
           **{f"BREDOS_NPU_DOWNLOAD_{name.upper()}": value for name, value in settings.items()}}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bredos_npu", "models", "pull", SSD], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def test_a_trickling_server_is_given_up_on_below_the_minimum_rate(cache, server):
    done, seconds = pull_in_child(cache, server.url + "/trickle/", rate_window="1", min_rate="1000")
    assert done.returncode == EXIT_DOWNLOAD and seconds < 10
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"bredos-npu: error: Downloading {server.url}/trickle/{SSD_FILE} is too "
                           "slow (")
    assert "less than 1000): check your network" in line and "BREDOS_NPU_DOWNLOAD_MIN_RATE" in line
    assert not (cache / SSD_FILE).exists() and leftovers(cache) == []


def test_the_overall_deadline_holds_even_at_an_acceptable_rate(cache, server):
    done, seconds = pull_in_child(cache, server.url + "/trickle/", deadline="1.5", min_rate="0")
    assert done.returncode == EXIT_DOWNLOAD and seconds < 10
    [line] = done.stderr.strip().splitlines()
    assert f"{SSD_FILE} did not finish within 1.5 s" in line
    assert leftovers(cache) == []


@pytest.mark.parametrize("value", ["fast", "-1", "nan"])
def test_bad_limits_are_usage_errors(capfd, cache, server, monkeypatch, value):
    mirror(monkeypatch, server.url)
    monkeypatch.setenv("BREDOS_NPU_DOWNLOAD_DEADLINE", value)
    outcome = run_cli(capfd, "models", "pull", SSD)
    assert outcome.code == 2
    assert f"BREDOS_NPU_DOWNLOAD_DEADLINE={value!r} is not a number above 0" in one_error_line(outcome)


# --- bodies longer than the file ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["huge", "endless"])
def test_a_body_longer_than_the_file_is_cut_at_its_size(capfd, cache, server, monkeypatch, mode):
    """300 MB announced, or zeros without a length: refused at the manifest's size, not read."""
    mirror(monkeypatch, f"{server.url}/{mode}/")
    started = time.monotonic()
    outcome = run_cli(capfd, "models", "pull", SSD)
    assert outcome.code == EXIT_DOWNLOAD and time.monotonic() - started < 10
    assert f"bytes or more for a file of {SSD_SIZE} bytes; nothing was cached" in one_error_line(outcome)
    assert leftovers(cache) == [] and not (cache / SSD_FILE).exists()


# --- URLs that go nowhere -----------------------------------------------------------------------

def test_a_redirect_loop_is_one_line(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url + "/loop/")
    outcome = run_cli(capfd, "models", "pull", SSD)
    assert outcome.code == EXIT_DOWNLOAD
    assert "the server redirects in a loop (or more than 10 times)" in one_error_line(outcome)
    assert 1 < len(server.requests) <= 12


@pytest.mark.parametrize(("url", "problem"), [
    ("http://[", "is not a usable URL (Invalid IPv6 URL)"),
    ("http://", "has no host name"),
    ("http://127.0.0.1:99999/", "is not a usable URL (Port out of range 0-65535)"),
    ("http://127.0.0.1:port/", "is not a usable URL (Port could not be cast"),
    ("file:///etc/", "is not an http(s) URL"),
])
def test_bad_mirror_urls_are_one_line(capfd, cache, monkeypatch, url, problem):
    mirror(monkeypatch, url)
    outcome = run_cli(capfd, "models", "pull", SSD)
    assert outcome.code == EXIT_DOWNLOAD
    assert f"BREDOS_NPU_MODEL_BASE_URL={url!r} {problem}" in one_error_line(outcome)
    # the same when the name is used as a model
    used = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", CAT)
    assert used.code == EXIT_DOWNLOAD and problem in one_error_line(used)


# --- partial files left behind --------------------------------------------------------------------

@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_partial_file_left_by_a_stopped_pull_is_resumed(cache, server, tmp_path, stop):
    env = {**os.environ, "BREDOS_NPU_CACHE": str(cache),
           "BREDOS_NPU_MODEL_BASE_URL": server.url + "/trickle/"}
    pulling = subprocess.Popen([sys.executable, "-m", "bredos_npu", "models", "pull", SSD], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not [p for p in cache.rglob("*.part") if p.stat().st_size >= server.trickle_head]:
            assert time.monotonic() < deadline and pulling.poll() is None, "no partial file appeared"
            time.sleep(0.05)
    finally:
        pulling.send_signal(stop)
        pulling.wait(timeout=30)
    left = {p: p.stat().st_size for p in cache.rglob("*.part")}
    env["BREDOS_NPU_MODEL_BASE_URL"] = server.url + "/"
    done = subprocess.run([sys.executable, "-m", "bredos_npu", "models", "pull", SSD], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sha256(cache / SSD_FILE) == SSD_SHA256
    assert leftovers(cache) == []
    if stop == signal.SIGKILL:
        assert len(left) == 1  # a killed process cleans nothing up
    if left:  # resumed from where the stopped pull was, not from zero
        resumed = [r for path, r in server.requests if path == f"/{SSD_FILE}"]
        assert resumed == [f"bytes={max(left.values())}-"]


def test_partial_files_that_cannot_be_resumed_are_removed(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    partial = cache / ".partial"
    partial.mkdir(parents=True)
    (partial / f"{SSD_FILE}.old1.part").write_bytes(b"x" * 100)  # not the file's first bytes
    (partial / f"{SSD_FILE}.old2.part").write_bytes(b"y" * 50)
    outcome = run_cli(capfd, "models", "pull", SSD)
    assert outcome.code == 0, outcome.err
    assert sha256(cache / SSD_FILE) == SSD_SHA256 and leftovers(cache) == []
    # the larger one was tried (Range from 100), failed its check, and the file came whole
    assert [r for _, r in server.requests] == ["bytes=100-", None]


# --- cached files damaged later -------------------------------------------------------------------

def damage(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_list_shows_and_pull_repairs_a_damaged_file(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    assert run_cli(capfd, "models", "pull", SSD).code == 0
    damage(cache / SSD_FILE)
    listed = run_cli(capfd, "models", "list", "--json")
    assert next(m for m in json.loads(listed.out) if m["name"] == SSD)["state"] == "damaged"
    text = run_cli(capfd, "models", "list")
    assert text.err.strip() == (f"bredos-npu: warning: the cached files of {SSD} do not match the "
                                f"manifest: run `bredos-npu models pull {SSD}` to repair them.")
    repaired = run_cli(capfd, "models", "pull", SSD)
    assert repaired.code == 0, repaired.err
    assert repaired.out.strip() == f"{SSD}: {cache / SSD_FILE} (repaired: the cached copy was damaged)"
    assert sha256(cache / SSD_FILE) == SSD_SHA256
    listed = run_cli(capfd, "models", "list", "--json")
    assert next(m for m in json.loads(listed.out) if m["name"] == SSD)["state"] == "cached"
    assert run_cli(capfd, "models", "pull", SSD).out.strip() == f"{SSD}: {cache / SSD_FILE}"


def test_a_damaged_label_file_is_repaired_too(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    assert run_cli(capfd, "models", "pull", "deeplabv3-mnv2-dm05").code == 0
    labels = cache / "pascal_voc_segmentation_labels.txt"
    labels.write_text("background\nnot the right labels\n")
    assert "damaged" in run_cli(capfd, "models", "list").out
    assert run_cli(capfd, "models", "pull", "deeplabv3-mnv2-dm05").code == 0
    assert labels.read_bytes() == (LABELS / labels.name).read_bytes()


def test_a_cached_file_of_the_wrong_size_is_fetched_again_when_used(capfd, cache, server, monkeypatch):
    mirror(monkeypatch, server.url)
    assert run_cli(capfd, "models", "pull", SSD).code == 0
    with open(cache / SSD_FILE, "r+b") as cut:
        cut.truncate(SSD_SIZE - 4096)  # a truncated copy (a full disk, an interrupted cp)
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "1")
    offline = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", CAT)
    assert offline.code == EXIT_MODEL
    assert "is damaged (it does not match the manifest) and offline mode is on" in one_error_line(offline)
    monkeypatch.setenv("BREDOS_NPU_OFFLINE", "")
    used = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", CAT)
    assert used.code == 0, used.err
    assert sha256(cache / SSD_FILE) == SSD_SHA256


def _claim_at_once(target, count):
    """``count`` threads claiming a partial file for ``target`` at the same moment."""
    import threading

    from bredos_npu.models.download import _claim_partial

    start, claims, failures = threading.Barrier(count), [], []

    def claim():
        start.wait(timeout=10)
        try:
            claims.append(_claim_partial(target, 1 << 20))
        except Exception as error:  # the failure is the finding
            failures.append(error)

    threads = [threading.Thread(target=claim) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return claims, failures


def test_concurrent_claims_of_partial_files_never_collide(tmp_path):
    # Many downloads of one model starting at once: each gets its own locked partial file, and no
    # scan for leftovers grabs (or removes) another's file between its creation and its lock.
    target = tmp_path / "model.tflite"
    for _ in range(30):
        claims, failures = _claim_at_once(target, 8)
        assert not failures and len({path for path, _ in claims}) == 8
        assert all(path.exists() for path, _ in claims)
        for path, handle in claims:
            path.unlink()
            handle.close()
