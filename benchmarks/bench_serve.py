#!/usr/bin/env python3
"""`bredos-npu serve` under load, against the invoke-bound rate of its one interpreter.

All figures come from one run on this machine, on 127.0.0.1 only:
1. the bare invoke rate of SSD MobileNet V1 (tests/data/models) on the CPU with 1 XNNPACK thread;
2. a server with that one interpreter of one thread (`--parallel 1 --threads 1`): 8 concurrent
   clients post 640x480 JPEGs to /v1/vision/detection for --seconds (default 60) over keep-alive
   connections; throughput as a share of (1) (target >= 0.85: the other core decodes and speaks
   HTTP, as the CPU does beside the NPU on a board), p50/p99 latency, and the server's peak RSS at
   minute 1 (or half-way in shorter runs) against the end;
3. the latency of Frigate-style requests (a 320x320 JPEG, Frigate's encoding) to the idle server,
   against Frigate's default 100 ms timeout.
Usage: python benchmarks/bench_serve.py [--seconds 60] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

import bredos_npu

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
MODEL = DATA / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
IMAGES = sorted((DATA / "images").glob("*"))
REQUEST_TIMEOUT = 30.0


def jpeg(source: Path, size: tuple[int, int], **options: int) -> bytes:
    with Image.open(source) as image, io.BytesIO() as out:
        image.convert("RGB").resize(size).save(out, format="JPEG", **options)
        return out.getvalue()


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"frame.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def bare_rate(seconds: float) -> float:
    model = bredos_npu.load(MODEL, backend="cpu", threads=1)
    tensor = model.preprocess(np.asarray(Image.open(IMAGES[0]).convert("RGB")))
    for _ in range(5):
        model.invoke(tensor)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.invoke(tensor)
        calls += 1
    return calls / (time.perf_counter() - started)


class Server:
    def __init__(self) -> None:
        command = [sys.executable, "-c", "from bredos_npu.cli import main; main()", "serve", "--port", "0",
                   "-m", f"{MODEL}=detect", "--parallel", "1", "--threads", "1"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.port = 0
        deadline = time.monotonic() + 60
        assert self.process.stderr is not None
        while time.monotonic() < deadline and not self.port:
            line = self.process.stderr.readline()
            if not line:
                break
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            self.port = int(found.group(1)) if found else 0
        if not self.port:
            self.stop()
            raise SystemExit("the server did not start")
        # Keep reading its log so the pipe never fills.
        threading.Thread(target=lambda: [None for _ in self.process.stderr], daemon=True).start()

    def memory_kib(self, field: str) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+)", status).group(1))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)


def post(connection: http.client.HTTPConnection, body: bytes, content_type: str
         ) -> tuple[int, float, float]:
    """(status, seconds, the server's inferenceMs) of one detection request."""
    started = time.perf_counter()
    connection.request("POST", "/v1/vision/detection", body, {"Content-Type": content_type})
    response = connection.getresponse()
    reply = json.loads(response.read())
    return response.status, time.perf_counter() - started, float(reply.get("inferenceMs", 0))


def load(port: int, clients: int, seconds: float, server: Server) -> dict[str, float]:
    bodies = [multipart(jpeg(IMAGES[i % len(IMAGES)], (640, 480), quality=90)) for i in range(clients)]
    latencies: list[float] = []
    failures: list[int] = []
    invoke_ms: list[float] = []
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        body, content_type = bodies[number]
        while time.monotonic() < stop_at:
            status, elapsed, inference = post(connection, body, content_type)
            (latencies if status == 200 else failures).append(elapsed if status == 200 else status)
            invoke_ms.append(inference)
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    mark = min(60.0, seconds / 2)
    peak_at_mark = None
    while any(t.is_alive() for t in threads):
        if peak_at_mark is None and time.perf_counter() - started >= mark:
            peak_at_mark = server.memory_kib("VmHWM")
        time.sleep(0.2)
    for thread in threads:
        thread.join(REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1e3
    return {"rate": len(latencies) / elapsed, "ok": len(latencies), "failed": len(failures),
            "busy": sum(invoke_ms) / 1e3 / elapsed, "invoke_ms": float(np.mean(invoke_ms)),
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mark": mark,
            "peak_mark": (peak_at_mark or 0) / 1024, "peak_end": server.memory_kib("VmHWM") / 1024}


def frigate_latency(port: int, count: int) -> np.ndarray:
    """Frigate's request: its 320x320 input tensor saved as a JPEG with PIL's defaults."""
    frame = np.asarray(Image.open(IMAGES[1]).convert("RGB").resize((320, 320)))
    with io.BytesIO() as out:
        Image.fromarray(frame).save(out, format="JPEG")
        body, content_type = multipart(out.getvalue())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    times = []
    for _ in range(count):
        status, elapsed, _ = post(connection, body, content_type)
        assert status == 200, status
        times.append(elapsed * 1e3)
    connection.close()
    return np.array(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="Length of the load test.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--frigate-requests", type=int, default=50)
    args = parser.parse_args()
    print(f"model {MODEL.name}, CPU, 1 interpreter x 1 XNNPACK thread; {args.clients} clients, "
          f"640x480 JPEGs, {args.seconds:g} s; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    bare = bare_rate(min(10.0, max(3.0, args.seconds / 6)))
    print(f"bare invoke rate:           {bare:6.1f} inf/s ({1e3 / bare:.1f} ms per invoke)")
    server = Server()
    try:
        result = load(server.port, args.clients, args.seconds, server)
        print(f"server throughput:          {result['rate']:6.1f} req/s = {result['rate'] / bare:.2f} x the "
              f"invoke-bound rate (target >= 0.85); {result['ok']} answered, {result['failed']} not 200")
        print(f"interpreter busy:           {result['busy']:.0%} of the time, {result['invoke_ms']:.1f} ms "
              "per invoke in the server (slower than bare when other work shares its core)")
        print(f"latency under load:         p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms")
        growth = result["peak_end"] - result["peak_mark"]
        print(f"server peak RSS:            {result['peak_mark']:.1f} MiB at {result['mark']:g} s, "
              f"{result['peak_end']:.1f} MiB at the end ({growth:+.1f} MiB)")
        frigate = frigate_latency(server.port, args.frigate_requests)
        within = float(np.mean(frigate < 100.0))
        print(f"Frigate-style 320x320 JPEG: p50 {np.percentile(frigate, 50):.1f} ms, p99 "
              f"{np.percentile(frigate, 99):.1f} ms, max {frigate.max():.1f} ms; {within:.0%} within "
              f"Frigate's default 100 ms timeout ({args.frigate_requests} requests, idle server)")
    finally:
        server.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share these cores: "
          "figures are only comparable within one quiet run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
