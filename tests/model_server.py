"""A local HTTP server standing in for the model hosts: Range requests, drops, corruption, 404.

Paths: /<file> serves the file; /drop/<file> cuts the first response for each file halfway;
/corrupt/<file> flips one byte. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ModelServer:
    def __init__(self, folders: list[Path]) -> None:
        self.files = {p.name: p for folder in folders for p in folder.iterdir() if p.is_file()}
        self.requests: list[tuple[str, str | None]] = []
        self.dropped: set[str] = set()
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
                if mode == "drop" and name not in server.dropped:
                    server.dropped.add(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

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
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
