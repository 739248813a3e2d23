"""`bredos-npu serve --source NAME=URL`: a camera watched continuously, shown live, with status.

A real server process, a real RTSP camera (FFmpeg through the tests' relay), real HTTP clients
and headless Chromium; the detections are checked against the Python API on a still frame.
"""

from __future__ import annotations

import io
import threading
import time

import pytest
import requests
from conftest import MODELS
from PIL import Image
from rtsp_server import RtspServer
from serve_process import ServeProcess
from video_tools import walking_video

from bredos_npu.cli import main

SSD_ARGS = ("-m", f"{MODELS / 'coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite'}=detect")
KEY = "stream key"
TIMEOUT = 10


def wait_for(check, seconds: float = 40.0, every: float = 0.2):
    """The first truthy ``check()`` within ``seconds``, else AssertionError."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {seconds} s")


def mjpeg_parts(url: str, count: int) -> list[bytes]:
    """The first ``count`` JPEG parts of a multipart/x-mixed-replace reply."""
    with requests.get(url, stream=True, timeout=TIMEOUT) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        buffer, parts = b"", []
        for chunk in reply.iter_content(8192):
            buffer += chunk
            while True:
                head, sep, rest = buffer.partition(b"\r\n\r\n")
                if not sep or not head.startswith(b"--frame"):
                    break
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if len(rest) < length + 2:
                    break
                parts.append(rest[:length])
                buffer = rest[length + 2:]
            if len(parts) >= count:
                return parts[:count]
    raise AssertionError("the MJPEG stream ended early")


def test_a_camera_is_watched_shown_live_and_reported(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    video = walking_video(tmp_path / "walk.mp4")
    with RtspServer(video, tmp_path) as camera, ServeProcess(
            *SSD_ARGS, "--threads", "1", "--api-key", KEY, "--grace", "8",
            "--source", f"porch={camera.url}") as server:
        headers = {"X-API-Key": KEY}

        def analysed() -> dict | None:
            status = requests.get(server.url + "/v1/streams", headers=headers, timeout=TIMEOUT).json()
            stream = status["streams"][0]
            return stream if stream["frames_analysed"] >= 5 else None

        stream = wait_for(analysed)
        assert stream["name"] == "porch" and stream["url"] == camera.url and stream["state"] == "running"
        assert (stream["width"], stream["height"], stream["source_fps"]) == (480, 240, 10.0)
        assert stream["fps_in"] > 0 and stream["fps_out"] > 0 and stream["dropped"] >= 0
        assert stream["frames_in"] >= stream["frames_analysed"]
        assert 0 < stream["latency_ms"]["median"] < 5000 and stream["inference_ms"] > 0
        assert [d["label"] for d in stream["detections"]] == ["person"]
        assert requests.get(server.url + "/v1/streams", timeout=TIMEOUT).status_code == 401
        missing = requests.get(server.url + "/v1/streams/garden", headers=headers, timeout=TIMEOUT)
        assert missing.status_code == 404 and "garden" in missing.json()["error"]

        still = requests.get(server.url + "/v1/streams/porch/frame.jpg", params={"api_key": KEY},
                             timeout=TIMEOUT)
        assert still.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(still.content)).size == (480, 240)
        parts = mjpeg_parts(f"{server.url}/v1/streams/porch/mjpeg?api_key={KEY}", 3)
        assert len(set(parts)) == 3  # three different frames
        assert all(Image.open(io.BytesIO(p)).size == (480, 240) for p in parts)

        camera.drop()  # the camera reboots: the source reconnects by itself
        wait_for(lambda: requests.get(server.url + "/v1/streams/porch", headers=headers,
                                      timeout=TIMEOUT).json()["reconnects"] >= 1)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, timeout=30_000,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            try:
                page = browser.new_page()
                page.set_default_timeout(20_000)
                page.goto(server.url + "/")
                page.fill("#api-key", KEY)
                page.dispatch_event("#api-key", "change")
                page.wait_for_function("document.querySelector('#stream-porch img')?.naturalWidth === 480")
                page.wait_for_function("document.querySelector('#stream-porch figcaption')"
                                       ".textContent.includes('running')")
                assert "analysed" in page.inner_text("#stream-porch figcaption")
            finally:
                browser.close()

        ended = []

        def viewer() -> None:
            try:
                mjpeg_parts(f"{server.url}/v1/streams/porch/mjpeg?api_key={KEY}", 10_000)
            except (AssertionError, requests.RequestException) as why:
                ended.append(why)

        watcher = threading.Thread(target=viewer, daemon=True)
        watcher.start()  # a viewer still watching must not hold the server up
        time.sleep(0.5)
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 8
        watcher.join(TIMEOUT)
        assert ended  # the server ended the viewer's stream


@pytest.mark.parametrize("args, message", [
    (("--source", "porch"), "is not of the form NAME=URL"),
    (("--source", "a=rtsp://127.0.0.1:1/x", "--source", "a=rtsp://127.0.0.1:2/y"),
     "There are two sources named 'a'"),
    (("-m", f"{MODELS / 'mobilenet_v1_0.25_128_quant.tflite'}=classify", "--source", "a=x.mp4"),
     "needs a detection model"),
])
def test_source_options_are_checked_at_start(capfd, args, message) -> None:
    capfd.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "0", *args])
    assert stopped.value.code == 2
    err = capfd.readouterr().err
    last = err.strip().splitlines()[-1]  # (after the log line of a model that loaded)
    assert last.startswith("bredos-npu: error: ") and message in last
    assert sum(line.startswith("bredos-npu: error") for line in err.splitlines()) == 1
