"""A small RTSP server for tests: real FFmpeg packetizes a video file as RTP, this relays it.

FFmpeg's own ``-rtsp_flags listen`` only *receives* streams (it answers DESCRIBE with "Unexpected
command"), so it cannot be played from. Here FFmpeg (``-re -stream_loop -1 ... -f rtp``) sends RTP
to a UDP port on 127.0.0.1 in real time, and this server speaks RTSP to the client under test
(OPTIONS, DESCRIBE, SETUP with TCP interleaving, PLAY, TEARDOWN; optional Basic authentication)
and forwards each RTP packet inside the RTSP connection. :meth:`drop` closes the clients'
connections (a camera rebooting), :meth:`stall` stops sending while keeping them open.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path


class RtspServer:
    def __init__(self, video: Path, workdir: Path, user: str | None = None,
                 password: str | None = None) -> None:
        self.auth = base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.playing: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.sessions = 0
        sdp = workdir / f"rtp-{self.port}.sdp"
        ffmpeg = shutil.which("ffmpeg")
        assert ffmpeg, "the RTSP tests need FFmpeg (apt-get install ffmpeg)"
        self.ffmpeg = subprocess.Popen(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video),
             "-an", "-c:v", "copy", "-f", "rtp", "-sdp_file", str(sdp),
             f"rtp://127.0.0.1:{self.udp.getsockname()[1]}?pkt_size=1200"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (sdp.exists() and "m=video" in sdp.read_text()):
            assert time.monotonic() < deadline and self.ffmpeg.poll() is None, "FFmpeg did not start"
            time.sleep(0.05)
        lines = [line for line in sdp.read_text().splitlines() if line and not line.startswith("SDP:")]
        lines = [("m=video 0 RTP/AVP 96" if line.startswith("m=video") else line) for line in lines]
        self.sdp = "\r\n".join([*lines, "a=control:track0"]) + "\r\n"
        self.threads = [threading.Thread(target=self._accept, daemon=True),
                        threading.Thread(target=self._relay, daemon=True)]
        for thread in self.threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def drop(self) -> None:
        """Close every client connection, as a camera that reboots does."""
        with self.lock:
            for client in self.clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
            self.clients.clear()
            self.playing.clear()

    def stall(self) -> None:
        """Keep connections open but send nothing more."""
        self.stalled.set()

    def close(self) -> None:
        self.closing.set()
        self.drop()
        self.ffmpeg.terminate()
        try:
            self.ffmpeg.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.ffmpeg.kill()
            self.ffmpeg.wait(timeout=5)
        for thread in self.threads:
            thread.join(timeout=2)
        self.listener.close()
        self.udp.close()

    def __enter__(self) -> RtspServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _relay(self) -> None:
        while not self.closing.is_set():
            try:
                packet = self.udp.recv(65536)
            except OSError:
                continue
            if self.stalled.is_set():
                continue
            frame = b"$\x00" + struct.pack(">H", len(packet)) + packet
            with self.lock:
                for client in list(self.playing):
                    try:
                        client.sendall(frame)
                    except OSError:
                        self.playing.discard(client)

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            with self.lock:
                self.clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        client.settimeout(0.5)
        while not self.closing.is_set():
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buffer += data
            while True:
                if buffer[:1] == b"$":  # the client's interleaved RTCP reports
                    if len(buffer) < 4 or len(buffer) < 4 + struct.unpack(">H", buffer[2:4])[0]:
                        break
                    buffer = buffer[4 + struct.unpack(">H", buffer[2:4])[0]:]
                    continue
                head, sep, rest = buffer.partition(b"\r\n\r\n")
                if not sep:
                    break
                buffer = rest
                if not self._answer(client, head.decode("latin-1")):
                    return

    def _answer(self, client: socket.socket, request: str) -> bool:
        lines = request.split("\r\n")
        method = lines[0].split(" ")[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        reply = [f"CSeq: {headers.get('cseq', '0')}"]
        body = ""
        if self.auth and headers.get("authorization") != f"Basic {self.auth}":
            status = "401 Unauthorized"
            reply.append('WWW-Authenticate: Basic realm="test"')
        elif method == "OPTIONS":
            status = "200 OK"
            reply.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
        elif method == "DESCRIBE":
            status, body = "200 OK", self.sdp
            reply += ["Content-Type: application/sdp", f"Content-Base: {self.url}/"]
        elif method == "SETUP":
            status = "200 OK"
            reply += ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", "Session: 12345678;timeout=60"]
        elif method == "PLAY":
            status = "200 OK"
            reply += ["Session: 12345678", "Range: npt=0.000-"]
        else:  # GET_PARAMETER keep-alives, TEARDOWN
            status = "200 OK"
        reply.append(f"Content-Length: {len(body.encode())}")
        with self.lock:
            try:
                client.sendall((f"RTSP/1.0 {status}\r\n" + "\r\n".join(reply) + "\r\n\r\n" + body).encode())
            except OSError:
                return False
            if method == "PLAY" and status.startswith("200"):
                self.sessions += 1
                self.playing.add(client)
        return method != "TEARDOWN"
