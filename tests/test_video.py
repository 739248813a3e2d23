"""Video sources end to end: files, RTSP through real FFmpeg, annotated output, bad sources.

The videos are made here with PyAV from the test images (known objects in known frames), and
each per-frame result is compared with the still-image result of the same decoded frame.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from cli_runner import run_cli
from conftest import LABELS, MODELS
from rtsp_server import RtspServer
from video_tools import blank, decoded_frames, scenes_video, walking_video, write_video

import bredos_npu
from bredos_npu.errors import (
    EXIT_IMAGE,
    EXIT_OUTPUT,
    EXIT_RUNTIME,
    EXIT_SOURCE,
    EXIT_USAGE,
    ImageError,
)
from bredos_npu.runtime.video import VideoSource, source_kind

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
COCO = LABELS / "coco_labels.txt"
DETECT = ("-m", SSD, "-l", COCO, "-b", "cpu")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {"scenes": scenes_video(folder / "scenes.mp4"), "walk": walking_video(folder / "walk.mp4")}


@pytest.fixture(scope="module")
def detector() -> bredos_npu.Model:
    return bredos_npu.load(SSD, "cpu", labels=COCO)


@pytest.fixture(scope="module")
def reference() -> bredos_npu.Model:
    """A second interpreter, for still-image results while the first one streams."""
    return bredos_npu.load(SSD, "cpu", labels=COCO)


def labels_of(found: list) -> set[str]:
    return {d.label for d in found}


def test_file_frames_match_still_images(videos, detector, reference) -> None:
    stills = decoded_frames(videos["scenes"])
    results = list(detector.detect_stream(videos["scenes"]))
    assert [r.frame for r in results] == list(range(12))
    assert [r.time for r in results] == pytest.approx([i / 10 for i in range(12)])
    for result, still in zip(results, stills, strict=True):
        assert np.array_equal(result.image, still)
        assert result.value == reference.detect(still)
    assert all(not r.value for r in results[:4])
    assert all({"cat", "dog"} & labels_of(r.value) for r in results[4:8])
    assert all("person" in labels_of(r.value) for r in results[8:])


def test_other_tasks_take_video(videos, tmp_path) -> None:
    short = write_video(tmp_path / "short.mp4", decoded_frames(videos["scenes"])[7:9])
    stills = decoded_frames(short)
    classifier = bredos_npu.load(MODELS / "mobilenet_v1_0.25_128_quant.tflite", "cpu",
                                 labels=LABELS / "imagenet_labels.txt")
    assert [r.value for r in classifier.classify_stream(short, top_k=3)] == \
        [classifier.classify(s, top_k=3) for s in stills]
    poser = bredos_npu.load(MODELS / "movenet_single_pose_lightning_ptq.tflite", "cpu")
    assert [r.value for r in poser.pose_stream(short)] == [poser.pose(s) for s in stills]


def test_every_and_fps_through_the_cli(videos, capfd, tmp_path) -> None:
    every = run_cli(capfd, "detect", videos["scenes"], *DETECT, "--every", "3", "--jsonl", "-")
    assert every.code == 0, every.err
    records = [json.loads(line) for line in every.out.splitlines()]
    assert [r["frame"] for r in records] == [0, 3, 6, 9]
    assert [r["time"] for r in records] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert records[0]["detections"] == [] and "person" in {d["label"] for d in records[3]["detections"]}
    fps = run_cli(capfd, "detect", videos["scenes"], *DETECT, "--fps", "2.5", "--jsonl", tmp_path / "f.jsonl")
    assert fps.code == 0, fps.err
    assert [json.loads(x)["frame"] for x in (tmp_path / "f.jsonl").read_text().splitlines()] == [0, 4, 8]
    assert "3 of 12 frames of" in fps.err


def test_annotated_video_keeps_size_rate_and_count(videos, capfd, tmp_path) -> None:
    target = tmp_path / "boxes.mp4"
    done = run_cli(capfd, "detect", videos["scenes"], *DETECT, "-o", target, "--track", "--min-frames", "1")
    assert done.code == 0, done.err
    with av.open(str(target)) as out, av.open(str(videos["scenes"])) as source:
        assert out.streams.video[0].codec_context.name == "h264"
        assert out.streams.video[0].average_rate == source.streams.video[0].average_rate
        assert (out.streams.video[0].width, out.streams.video[0].height) == (320, 240)
    drawn, plain = decoded_frames(target), decoded_frames(videos["scenes"])
    assert len(drawn) == len(plain) == 12
    change = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(drawn, plain, strict=True)]
    assert max(change[:4]) < 2 < min(change[4:])  # boxes only where objects are
    assert "frame 5 (0.50 s)" in done.out and "#" in done.out  # track ids in the text
    again = run_cli(capfd, "detect", videos["scenes"], *DETECT, "-o", target)
    assert again.code == EXIT_OUTPUT and "already exists" in again.err
    picture = run_cli(capfd, "detect", videos["scenes"], *DETECT, "-o", tmp_path / "x.png")
    assert picture.code == EXIT_OUTPUT and ".mp4" in picture.err
    assert not (tmp_path / "x.png").exists()


def test_tracks_keep_their_ids_across_frames(videos, capfd) -> None:
    done = run_cli(capfd, "detect", videos["walk"], *DETECT, "--track", "--jsonl", "-")
    assert done.code == 0, done.err
    people = [[d for d in json.loads(line)["detections"] if d["label"] == "person"]
              for line in done.out.splitlines()]
    assert all(len(p) == 1 for p in people)  # the reference: one person in every frame
    ids = [p[0]["track"] for p in people]
    assert len(set(ids)) == 1 and ids[0] is not None
    xs = [p[0]["box"]["xmin"] for p in people]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 250  # it did walk across


def test_events_with_zone_and_line_from_a_video(videos, capfd, tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    done = run_cli(capfd, "detect", videos["walk"], *DETECT, "--min-frames", "2", "--zone",
                   "left=0,0;200,0;200,240;0,240", "--line", "middle=240,0,240,240",
                   "--events", events, "--jsonl", tmp_path / "frames.jsonl")
    assert done.code == 0, done.err
    found = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [(e["kind"], e.get("place"), e.get("direction")) for e in found if e["label"] == "person"]
    assert kinds[0] == ("appear", None, None)
    assert ("enter", "left", None) in kinds and ("exit", "left", None) in kinds
    assert kinds.count(("cross", "middle", "in")) == 1 and ("cross", "middle", "out") not in kinds
    assert kinds.index(("enter", "left", None)) < kinds.index(("exit", "left", None)) < \
        kinds.index(("cross", "middle", "in"))
    assert ("leave", None, None) not in kinds  # still in view at the end
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert sum(len(f.get("events", [])) for f in frames) == len(found)


def test_rtsp_camera_drop_and_reconnect(videos, detector, tmp_path) -> None:
    lines: list[str] = []
    with RtspServer(videos["walk"], tmp_path) as server:
        stream = detector.detect_stream(server.url, retries=3, read_timeout=3, backoff=(0.2, 1.0),
                                        on_event=lines.append)
        assert stream.info.live and (stream.info.width, stream.info.height) == (480, 240)
        results, deadline = [], time.monotonic() + 30
        for result in stream:
            results.append(result)
            if len(results) == 8:
                server.drop()
            if len(results) == 16 or time.monotonic() > deadline:
                stream.stop()
        assert len(results) >= 16
        assert stream.stats.reconnects == 1 and server.sessions == 2
        assert any("dropped" in line for line in lines) and any("reconnected" in line for line in lines)
        assert all("person" in labels_of(r.value) for r in results)
        times = [r.time for r in results]
        assert times[:8] == sorted(times[:8])
        assert max(r.delay_ms for r in results[2:]) < 3000


def test_stop_on_sigterm_keeps_outputs(videos, tmp_path) -> None:
    with RtspServer(videos["walk"], tmp_path) as server:
        frames, video = tmp_path / "live.jsonl", tmp_path / "live.mp4"
        child = subprocess.Popen(
            [sys.executable, "-m", "bredos_npu", "detect", server.url, *map(str, DETECT),
             "--jsonl", str(frames), "-o", str(video)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while (not frames.exists() or len(frames.read_text().splitlines()) < 5) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert "stopping after the frames in flight" in err and ", stopped by SIGTERM" in err
    records = [json.loads(line) for line in frames.read_text().splitlines()]
    assert len(records) >= 5
    assert len(decoded_frames(video)) == len(records)


def test_stalled_stream_gives_up_after_retries(videos, capfd, tmp_path) -> None:
    kept = tmp_path / "kept.jsonl"

    def stall_after_two_frames() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not kept.exists() or kept.read_text().count("\n") < 2):
            time.sleep(0.05)
        server.stall()

    with RtspServer(videos["walk"], tmp_path) as server:
        threading.Thread(target=stall_after_two_frames, daemon=True).start()
        started = time.monotonic()
        done = run_cli(capfd, "detect", server.url, *DETECT, "--retries", "1", "--timeout", "2",
                       "--jsonl", kept)
    assert done.code == EXIT_SOURCE
    assert time.monotonic() - started < 25
    last = done.err.strip().splitlines()[-1]
    assert last.startswith("bredos-npu: error: rtsp://127.0.0.1:")
    assert "did not come back after 1 attempt" in last
    assert kept.read_text().count("\n") >= 2  # what came before is kept


def test_unreachable_and_wrong_credentials(videos, capfd, tmp_path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = run_cli(capfd, "detect", f"rtsp://127.0.0.1:{closed_port}/x", *DETECT, "--timeout", "3")
    assert unreachable.code == EXIT_SOURCE
    assert unreachable.err.strip().splitlines()[-1] == (
        f"bredos-npu: error: rtsp://127.0.0.1:{closed_port}/x could not be reached within 3 s "
        "(Connection refused).")
    with RtspServer(videos["walk"], tmp_path, user="admin", password="right") as server:
        wrong = server.url.replace("rtsp://", "rtsp://admin:wrong@")
        refused = run_cli(capfd, "detect", wrong, *DETECT, "--timeout", "5")
        assert refused.code == EXIT_SOURCE
        assert refused.err.strip().splitlines()[-1] == (
            f"bredos-npu: error: rtsp://admin:***@127.0.0.1:{server.port}/live refused the credentials "
            "(401 Unauthorized): check the user name and password in the URL.")
        right = server.url.replace("rtsp://", "rtsp://admin:right@")
        with VideoSource(right, read_timeout=5) as source:
            assert next(source.frames()).image.shape == (240, 480, 3)


def test_files_that_are_not_usable_video(capfd, tmp_path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    done = run_cli(capfd, "detect", text, *DETECT)
    assert done.code == EXIT_IMAGE and done.err.count("\n") == 1
    assert f"{text} is not a video PyAV can read" in done.err
    missing = run_cli(capfd, "detect", tmp_path / "nothing.mkv", *DETECT)
    assert missing.code == EXIT_IMAGE and "Video not found" in missing.err
    # Commodore 64 multicolour: FFmpeg can encode it but has no decoder for it.
    odd = tmp_path / "a64.mkv"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x200:rate=5", "-frames:v", "3", "-c:v", "a64multi", str(odd)],
                   check=True, timeout=30)
    codec = run_cli(capfd, "detect", odd, *DETECT)
    assert codec.code == EXIT_IMAGE and codec.err.splitlines() == [
        f"bredos-npu: error: {odd}: its video codec is not supported by this FFmpeg (no decoder)."]
    mixed = run_cli(capfd, "detect", odd, text, *DETECT)
    assert mixed.code == EXIT_USAGE and "one video source at a time" in mixed.err


def test_v4l2_arguments_and_errors(tmp_path) -> None:
    assert source_kind("/dev/video0") == "device" and source_kind("/dev/video") is None
    assert source_kind("rtsps://cam/x") == "rtsp" and source_kind("https://cam/x.m3u8") == "http"
    assert source_kind("clip.MKV") == "file" and source_kind("photo.jpg") is None
    with pytest.raises(ImageError, match=r"No camera at /dev/video97: list them with `ls /dev/video\*`"):
        VideoSource("/dev/video97").open()
    device = VideoSource("/dev/zero")  # a character device that is no camera: FFmpeg's v4l2 refuses it
    device.kind = "device"
    with pytest.raises(ImageError, match=r"^Cannot open the camera /dev/zero \("):
        device.open()


def test_missing_extra_is_one_line_and_exit_8(videos) -> None:
    code = ("import sys; sys.modules['av'] = None\n"
            "from bredos_npu.cli import main\n"
            f"main(['detect', {str(videos['scenes'])!r}, '-m', {str(SSD)!r}, '-b', 'cpu'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BREDOS_NPU_DEBUG": ""})
    assert done.returncode == EXIT_RUNTIME
    assert done.stderr.strip().splitlines()[-1] == (
        "bredos-npu: error: Video sources need PyAV: pip install 'bredos-npu[video]'.")


def test_truncated_file_is_an_input_error(detector, tmp_path) -> None:
    whole = write_video(tmp_path / "whole.mp4", [blank()] * 30)
    broken = tmp_path / "cut.mp4"
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the index is at the end
    with pytest.raises(ImageError, match=r"cut\.mp4 is not a video PyAV can read"):
        detector.detect_stream(broken)
