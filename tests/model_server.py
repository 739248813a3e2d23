"""A local HTTP server standing in for the model hosts: Range requests, drops, corruption, 404.

Paths: /<file> serves the file; /drop/<file> cuts the first response for each file halfway;
/corrupt/<file> flips one byte; /trickle/<file> sends the first ``trickle_head`` bytes, then one
byte every ``trickle_interval`` seconds; /huge/<file> announces 300 MB; /endless/<file> sends zeros
without a length until the client hangs up; /loop/<file> redirects to itself. Only 127.0.0.1 is
used; slow responses end when the server stops.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ModelServer:
    def __init__(self, folders: list[Path]) -> None:
        self.files = {p.name: p for folder in folders for p in folder.iterdir() if p.is_file()}
        self.requests: list[tuple[str, str | None]] = []
        self.dropped: set[str] = set()
        self.trickle_head = 64 * 1024
        self.trickle_interval = 0.2
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                mode, _, name = self.path.strip("/").rpartition("/")
                source = server.files.get(name)
                if source is None:
                    self.send_error(404, "Not Found")
                    return
                if mode in ("loop", "huge", "endless"):
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.misbehave(mode)  # until the client gives up, as it should
                    return
                data = source.read_bytes()
                if mode == "corrupt":
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                start = 0
                wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if wanted:
                    start = int(wanted.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if mode == "trickle":
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.trickle(body)
                    return
                if mode == "drop" and name not in server.dropped:
                    server.dropped.add(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def trickle(self, body: bytes) -> None:
                self.wfile.write(body[: server.trickle_head])
                self.wfile.flush()
                for offset in range(server.trickle_head, len(body)):
                    if server.stopping.wait(server.trickle_interval):
                        break
                    self.wfile.write(body[offset: offset + 1])
                    self.wfile.flush()
                self.close_connection = True

            def misbehave(self, mode: str) -> None:
                if mode == "loop":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                if mode == "huge":
                    self.send_header("Content-Length", str(300 * 1024 * 1024))
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                block = bytes(64 * 1024)
                deadline = time.monotonic() + 30
                while not server.stopping.is_set() and time.monotonic() < deadline:
                    self.wfile.write(block)  # until the client hangs up (BrokenPipe ends it)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # serve_forever polls for shutdown every poll_interval; 10 ms keeps teardown in milliseconds.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
