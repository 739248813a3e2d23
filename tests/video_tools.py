"""Test videos made with PyAV from the test images: known objects in known frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from conftest import IMAGES
from PIL import Image

SIZE = (320, 240)
GREY = 90


def picture(name: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.asarray(Image.open(IMAGES / name).convert("RGB").resize(size, Image.Resampling.BILINEAR))


def blank(size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.full((size[1], size[0], 3), GREY, dtype=np.uint8)


def write_video(path: Path, frames: list[np.ndarray], rate: int = 10, codec: str = "libx264",
                keyint: int = 10) -> Path:
    """Encode RGB frames (all the same size) as H.264 (yuv420p, a key frame every ``keyint``)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(keyint), "bf": "0", "preset": "veryfast"}
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB arrays, decoded independently of bredos_npu."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def scenes_video(path: Path, rate: int = 10) -> Path:
    """12 frames: 4 empty, 4 of cats and dogs, 4 of Grace Hopper (a person)."""
    frames = [blank()] * 4 + [picture("cats_and_dogs.jpg")] * 4 + [picture("grace_hopper.jpg")] * 4
    return write_video(path, frames, rate)


def walking_video(path: Path, frames: int = 24, rate: int = 10) -> Path:
    """A person (Grace Hopper's portrait, 120x150) crossing a 480x240 grey scene left to right."""
    person = picture("grace_hopper.jpg", (120, 150))
    shots = []
    for index in range(frames):
        scene = blank((480, 240)).copy()
        x = 10 + index * (480 - 140) // (frames - 1)
        scene[60:210, x:x + 120] = person
        shots.append(scene)
    return write_video(path, shots, rate)
