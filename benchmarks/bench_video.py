#!/usr/bin/env python3
"""Video throughput and live latency of ``detect``, measured in one run.

1. A 720p H.264 file (made here with PyAV from the test images, moving): frames/s of
   ``model.detect_stream(file)`` against the invoke-bound rate of the same interpreters (the same
   number of invokes on already-prepared tensors, no decoding). With decoding overlapped the
   ratio should be >= 0.85.
2. The same file played in real time over RTSP (FFmpeg sends it at its frame rate through the
   tests' RTSP relay): the median delay from a frame's arrival (decoded, ready for the model) to
   its result, against one inference plus one frame interval.

Usage: python benchmarks/bench_video.py [--frames 150] [--threads 1] [--parallel 1] [--live-seconds 8]
On this x86_64 machine the model runs on the CPU (XNNPACK); the NPU figures are not measured here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import bredos_npu  # noqa: E402

MODEL = ROOT / "tests/data/models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
LABELS = ROOT / "tests/data/labels/coco_labels.txt"
WIDTH, HEIGHT, RATE = 1280, 720, 30


def make_video(path: Path, frames: int) -> Path:
    """``frames`` frames of 720p H.264: the test photos sliding across a grey scene."""
    people, cats = (np.asarray(Image.open(ROOT / "tests/data/images" / name).convert("RGB").resize(size))
                    for name, size in (("grace_hopper.jpg", (360, 450)), ("cats_and_dogs.jpg", (480, 360))))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"g": str(RATE), "bf": "0", "preset": "veryfast"}
        for index in range(frames):
            scene = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
            x = 20 + (index * 6) % (WIDTH - 400)
            scene[200:650, x:x + 360] = people
            scene[20:380, WIDTH - 500 - (index * 3) % 400:WIDTH - 20 - (index * 3) % 400] = cats
            frame = av.VideoFrame.from_ndarray(scene, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def invoke_bound(model: bredos_npu.Model, parallel: int, frames: int, video: Path) -> tuple[float, float]:
    """(frames/s, median ms per invoke) of bare invokes on ``parallel`` interpreters."""
    with av.open(str(video)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    tensor = model.preprocess(first)
    workers = model.workers(parallel)
    for worker in workers:
        worker.invoke(tensor)  # warm-up
    share = [frames // parallel + (i < frames % parallel) for i in range(parallel)]
    times: list[float] = []

    def run(worker: bredos_npu.Model, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            worker.invoke(tensor)
            times.append((time.perf_counter() - started) * 1e3)

    threads = [threading.Thread(target=run, args=(w, n)) for w, n in zip(workers, share, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return frames / (time.perf_counter() - started), statistics.median(times)


def file_rate(model: bredos_npu.Model, parallel: int, video: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(1 for result in model.detect_stream(video, parallel=parallel) if result.ok)
    return count, count / (time.perf_counter() - started)


def live_delays(model: bredos_npu.Model, parallel: int, video: Path, seconds: float,
                workdir: Path) -> tuple[list[float], list[float], int, int, int]:
    """Delays and inference times (ms) of results from an RTSP source played in real time;
    frames in, out, dropped."""
    from rtsp_server import RtspServer

    with RtspServer(video, workdir) as server:
        stream = model.detect_stream(server.url, parallel=parallel, read_timeout=5)
        delays: list[float] = []
        inferences: list[float] = []
        deadline = time.monotonic() + seconds
        for result in stream:
            delays.append(result.delay_ms)
            inferences.append(result.preprocess_ms + result.inference_ms)
            if time.monotonic() > deadline:
                stream.stop()
        stats = stream.stats
        return delays[5:], inferences[5:], stats.frames_in, stats.frames_out, stats.dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1, help="XNNPACK threads per interpreter")
    parser.add_argument("--parallel", type=int, default=1, help="interpreters")
    parser.add_argument("--live-seconds", type=float, default=8.0)
    args = parser.parse_args()
    model = bredos_npu.load(MODEL, "auto", labels=LABELS, threads=args.threads)
    print(f"model: {MODEL.name} on {model.backend.name} ({args.parallel} interpreter(s) x "
          f"{args.threads} thread(s)); NPU figures: not measured on this machine"
          if model.backend.name != "npu" else f"model: {MODEL.name} on the NPU")
    with tempfile.TemporaryDirectory() as folder:
        video = make_video(Path(folder) / "720p.mp4", args.frames)
        print(f"video: {WIDTH}x{HEIGHT} H.264, {args.frames} frames at {RATE} frames/s")
        bound, invoke_ms = invoke_bound(model, args.parallel, args.frames, video)
        count, rate = file_rate(model, args.parallel, video)
        print(f"file:  detect {rate:.1f} frames/s ({count} frames) vs invoke-bound {bound:.1f} frames/s "
              f"= {rate / bound:.2f}x (target >= 0.85x)")
        delays, inferences, frames_in, frames_out, dropped = live_delays(
            model, args.parallel, video, args.live_seconds, Path(folder))
        # One inference as it ran during the stream (resize + invoke, sharing the CPU with the
        # decoder here; on a board the NPU invokes while the CPU decodes).
        inference = statistics.median(inferences)
        budget = inference + 1000 / RATE
        median = statistics.median(delays)
        print(f"live:  RTSP in real time, {frames_in} frames in, {frames_out} analysed, {dropped} dropped "
              f"as stale (first 5 results left out as start-up)")
        print(f"       delay from arrival to result: median {median:.1f} ms, p90 "
              f"{np.percentile(delays, 90):.1f} ms vs one inference + one frame interval = "
              f"{inference:.1f} + {1000 / RATE:.1f} = {budget:.1f} ms: {median / budget:.2f}x (target <= 1); "
              f"the bare invoke alone took {invoke_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
