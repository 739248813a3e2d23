"""HTTP sources: an MJPEG camera (multipart/x-mixed-replace, as most IP cameras and ESP32-CAMs
serve it) from a real HTTP server on 127.0.0.1, with and without Basic authentication."""

from __future__ import annotations

import base64
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from test_video import COCO, SSD
from video_tools import picture

import bredos_npu
from bredos_npu.errors import SourceError


class MjpegCamera:
    """Serves ``frames`` JPEGs at ``rate`` per second at /video.mjpg, forever (until closed)."""

    def __init__(self, frames: list[bytes], rate: float = 10.0, password: str | None = None) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                wanted = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
                if password and self.headers.get("Authorization") != wanted:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=cam")
                self.end_headers()
                index = 0
                while not camera.closing.is_set():
                    data = frames[index % len(frames)]
                    try:
                        self.wfile.write(b"--cam\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    index += 1
                    camera.closing.wait(1 / rate)

        self.closing = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, user: str = "") -> str:
        return f"http://{user}127.0.0.1:{self.server.server_address[1]}/video.mjpg"

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def jpeg(name: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture(name)).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def camera():
    running = MjpegCamera([jpeg("grace_hopper.jpg")], password="secret")
    yield running
    running.close()


def test_mjpeg_over_http_with_credentials(camera) -> None:
    model = bredos_npu.load(SSD, "cpu", labels=COCO)
    stream = model.detect_stream(camera.url("admin:secret@"), read_timeout=5)
    assert stream.info.live and (stream.info.width, stream.info.height) == (320, 240)
    assert stream.info.codec == "mjpeg"
    results, deadline = [], time.monotonic() + 20
    for result in stream:
        results.append(result)
        if len(results) == 4 or time.monotonic() > deadline:
            stream.stop()
    assert len(results) == 4
    still = model.detect(Image.open(io.BytesIO(jpeg("grace_hopper.jpg"))))
    assert all([d.label for d in r.value] == [d.label for d in still] for r in results)
    assert "person" in {d.label for d in still}


def test_mjpeg_wrong_password_is_one_sentence(camera) -> None:
    model = bredos_npu.load(SSD, "cpu", labels=COCO)
    with pytest.raises(SourceError) as refused:
        model.detect_stream(camera.url("admin:wrong@"), open_timeout=5)
    assert str(refused.value) == (
        f"http://admin:***@127.0.0.1:{camera.server.server_address[1]}/video.mjpg refused the "
        "credentials (401 Unauthorized): check the user name and password in the URL.")
