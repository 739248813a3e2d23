"""One Model shared by many threads: every call answers for its own input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import numpy as np
from conftest import CAT, IMAGES, MODELS
from PIL import Image

import bredos_npu

SMALL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"  # ~3 ms a call: 400 calls stay cheap
CALLS = 100


def test_four_threads_share_one_model():
    model = bredos_npu.load(SMALL, backend="cpu", threads=1)
    paths = [IMAGES / "grace_hopper.bmp", CAT, IMAGES / "sunflower.bmp", IMAGES / "cats_and_dogs.jpg"]
    # at the input size, so that the threads spend their time in the interpreter, not in Pillow
    images = [np.asarray(Image.open(p).convert("RGB").resize(model.input_size)) for p in paths]
    expected = [model.classify(image, top_k=1)[0].index for image in images]  # one thread
    assert len(set(expected)) == len(images)  # each answer tells whose input it was
    start = Barrier(len(images))

    def hammer(which: int) -> list[int]:
        start.wait(timeout=30)
        return [model.classify(images[which], top_k=1)[0].index for _ in range(CALLS)]

    with ThreadPoolExecutor(len(images)) as pool:
        answers = list(pool.map(hammer, range(len(images)), timeout=120))
    for which, got in enumerate(answers):
        assert got == [expected[which]] * CALLS


def test_threads_detect_with_one_shared_detector():
    model = bredos_npu.load(MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite", backend="cpu")
    pets = np.asarray(Image.open(IMAGES / "cats_and_dogs.jpg").convert("RGB").resize(model.input_size))
    flipped = np.ascontiguousarray(pets[:, ::-1])
    expected = [model.detect(pets), model.detect(flipped)]
    assert expected[0] != expected[1]

    def run(which: int) -> list:
        return [model.detect([pets, flipped][which]) for _ in range(10)]

    with ThreadPoolExecutor(2) as pool:
        for which, got in enumerate(pool.map(run, [0, 1], timeout=120)):
            assert got == [expected[which]] * 10
