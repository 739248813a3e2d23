"""Input normalisation from a model's TFLite Support metadata."""

from __future__ import annotations

import flatbuffers
import numpy as np
from conftest import CAT, DEFAULT_MODEL, MODELS

import bredos_npu
from bredos_npu.models.inspection.graph import schema
from bredos_npu.models.metadata import Normalization, input_normalization
from bredos_npu.tasks.quant import Quantization, pixels_to_input

FLOAT_MODEL = MODELS / "mobilenet_v1_0.25_224_float.tflite"


def test_real_metadata_is_read():
    for model in (DEFAULT_MODEL, MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"):
        assert input_normalization(model.read_bytes()) == Normalization((127.5,), (127.5,))


def test_models_without_metadata():
    assert input_normalization(FLOAT_MODEL.read_bytes()) is None
    assert input_normalization((MODELS / "movenet_single_pose_lightning_ptq.tflite").read_bytes()) is None


def normalization_metadata(mean: list[float], std: list[float]) -> bytes:
    """ModelMetadata → SubGraphMetadata → TensorMetadata → ProcessUnit(NormalizationOptions)."""
    b = flatbuffers.Builder(256)

    def floats(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for value in reversed(values):
            b.PrependFloat32(value)
        return b.EndVector()

    def table(fields: int, slots: dict[int, int], ubyte: dict[int, int] | None = None) -> int:
        b.StartObject(fields)
        for slot, offset in slots.items():
            b.PrependUOffsetTRelativeSlot(slot, offset, 0)
        for slot, value in (ubyte or {}).items():
            b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()

    def one(offset: int) -> int:
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    mean_vector, std_vector = floats(mean), floats(std)
    options = table(2, {0: mean_vector, 1: std_vector})
    unit = table(2, {1: options}, {0: 1})
    tensor = table(7, {4: one(unit)})
    subgraph = table(9, {2: one(tensor)})
    root = table(8, {3: one(subgraph)})
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(content: bytes, metadata: bytes) -> bytes:
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(content, 0)
    buffer = fb.BufferT()
    buffer.data = np.frombuffer(metadata, np.uint8)
    model.buffers.append(buffer)
    entry = fb.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_float_model_uses_its_own_normalisation(tmp_path):
    path = tmp_path / "float_0_1.tflite"
    path.write_bytes(with_metadata(FLOAT_MODEL.read_bytes(), normalization_metadata([0.0], [255.0])))
    assert input_normalization(path.read_bytes()) == Normalization((0.0,), (255.0,))
    from_metadata = bredos_npu.load(path, backend="cpu")
    assert (from_metadata.mean, from_metadata.std) == ((0.0,), (255.0,))
    explicit = bredos_npu.load(FLOAT_MODEL, backend="cpu", mean=0, std=255)
    default = bredos_npu.load(FLOAT_MODEL, backend="cpu")
    assert np.array_equal(from_metadata.scores(CAT), explicit.scores(CAT))
    assert not np.array_equal(from_metadata.scores(CAT), default.scores(CAT))
    # an explicit choice still wins
    assert bredos_npu.load(path, backend="cpu", mean=127.5, std=127.5).mean == 127.5


def test_per_channel_normalisation():
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    out = pixels_to_input(pixels, np.float32, Quantization(0, 0), (0.0, 128.0, 255.0), (1.0, 2.0, 5.0))
    assert out.tolist() == [[[0.0, 0.0, 0.0]]]
