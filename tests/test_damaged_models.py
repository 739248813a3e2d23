"""Damaged, hostile and odd models, and text that must not drive the terminal.

Every answer is one line on stderr with the model's exit code (4), or a usage error (2) for
option values; never "unexpected error" (1), a traceback, nan% or a negative count.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, MODELS
from PIL import Image
from tflite_builder import ModelBuilder

import bredos_npu
from bredos_npu.errors import EXIT_MODEL, EXIT_USAGE, ModelError, UsageError


def one_error(outcome, code: int, *fragments: str) -> str:
    assert outcome.code == code, outcome.err
    lines = outcome.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bredos-npu: error: "), outcome.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --- truncated models ----------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [1_000, 3_000, 10_000])
def test_a_model_cut_short_is_refused_not_run_without_its_labels(capfd, tmp_path, cut):
    whole = bredos_npu.load(DEFAULT_MODEL, backend="cpu")
    assert whole.labels and whole.labels[286] == "Egyptian cat"  # the labels live at the file's end
    path = tmp_path / "cut.tflite"
    path.write_bytes(DEFAULT_MODEL.read_bytes()[:-cut])
    one_error(run_cli(capfd, "classify", "-b", "cpu", "-m", path, CAT), EXIT_MODEL,
              f"{path} is truncated or corrupt")
    one_error(run_cli(capfd, "inspect", path), EXIT_MODEL, "truncated or corrupt")
    with pytest.raises(ModelError, match="truncated or corrupt"):
        bredos_npu.load(path, backend="cpu")


def test_a_weight_buffer_past_the_end_of_the_file(capfd, tmp_path):
    m = ModelBuilder()
    x = m.tensor((1, 8, 8, 3))
    content = bytearray(m.build([x], [m.conv(x, 4)]))
    # stretch the length of the largest weight vector beyond the end of the file
    weights = bytes(m.buffers[1].data)
    start = content.find(weights)
    struct.pack_into("<I", content, start - 4, len(content))
    path = tmp_path / "stretched.tflite"
    path.write_bytes(bytes(content))
    one_error(run_cli(capfd, "inspect", path), EXIT_MODEL, "truncated or corrupt")
    one_error(run_cli(capfd, "classify", "-b", "cpu", "-m", path, CAT), EXIT_MODEL, "truncated or corrupt")


# --- odd graphs ----------------------------------------------------------------------------------

def test_huge_dimensions_count_exactly(capfd, tmp_path):
    m = ModelBuilder()
    x = m.tensor((1, 2**21, 2**21, 8))
    path = tmp_path / "huge.tflite"
    path.write_bytes(m.build([x], [m.conv(x, 2**21, kernel=1)]))
    outcome = run_cli(capfd, "inspect", path, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    op = report["ops"][0]
    assert op["macs"] == 2**63 * 8  # out 1x2^21x2^21x2^21, 1x1 kernel over 8 channels: no int64 wrap
    text = run_cli(capfd, "inspect", path).out
    assert "-" not in text.split("MACs:")[1].split("\n")[0]  # no negative totals
    assert "KiB copied" in text and " -" not in text.split("partition p0:")[1].split("\n")[0]


def test_a_tensor_index_that_does_not_exist(capfd, tmp_path):
    m = ModelBuilder()
    x = m.tensor((1, 8, 8, 3))
    y = m.conv(x, 4)
    m.ops[0].inputs = [x, 999, 1000]
    path = tmp_path / "bad-index.tflite"
    path.write_bytes(m.build([x], [y]))
    one_error(run_cli(capfd, "inspect", path), EXIT_MODEL, "truncated or corrupt")
    one_error(run_cli(capfd, "classify", "-b", "cpu", "-m", path, CAT), EXIT_MODEL)


def reshaping_model(dtype: str) -> bytes:
    m = ModelBuilder()
    x = m.tensor((1, 8, 8, 3), dtype, None)
    options = m.fb.ReshapeOptionsT()
    options.newShape = [1, 192]
    return m.build([x], [m.unary("RESHAPE", x, options, "ReshapeOptions", shape=(1, 192))])


def test_an_int32_input_is_not_an_image_input(capfd, tmp_path):
    path = tmp_path / "int32.tflite"
    path.write_bytes(reshaping_model("int32"))
    assert run_cli(capfd, "inspect", path).code == 0
    one_error(run_cli(capfd, "classify", "-b", "cpu", "-m", path, CAT), EXIT_MODEL,
              "takes int32 input without quantization parameters")


@pytest.mark.parametrize("option", [("--input-std", "1e-300"), ("--input-mean", "1e39"),
                                    ("--input-std", "inf")])
def test_normalisation_that_is_not_finite_in_float32(capfd, tmp_path, option):
    path = tmp_path / "float.tflite"
    path.write_bytes(reshaping_model("float32"))
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-m", path, *option, CAT)
    assert "nan%" not in outcome.out
    one_error(outcome, EXIT_USAGE, f"{option[0]} ", "finite")
    with pytest.raises(UsageError):
        bredos_npu.load(path, backend="cpu", std=1e-300)


# --- the terminal --------------------------------------------------------------------------------

CONTROL = ("\x1b", "\x00", "\x07", "\x9b", "\u202e")


def test_labels_with_control_characters_are_escaped(capfd, tmp_path):
    names = [f"class{i}" for i in range(1001)]
    names[286] = "\x1b]0;owned\x07\x1b[2Jcat\u202etxt.exe\x00"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(names))
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", "-l", labels, CAT)
    assert outcome.code == 0, outcome.err
    assert not any(c in outcome.out + outcome.err for c in CONTROL)
    assert "\\x1b]0;owned\\x07\\x1b[2Jcat\\u202etxt.exe\\x00" in outcome.out
    as_json = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", "-l", labels, CAT, "--json")
    assert json.loads(as_json.out)["results"][0]["classes"][0]["label"] == names[286]


def test_operator_names_and_file_names_with_control_characters(capfd, tmp_path):
    m = ModelBuilder()
    x = m.tensor((1, 8, 8, 3))
    y = m.unary("CUSTOM", x)
    path = tmp_path / "custom.tflite"
    content = m.build([x], [y])
    fb = m.fb
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(content, 0))
    model.operatorCodes[0].customCode = b"EVIL\x1b[31m\nforged line\x07"
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    outcome = run_cli(capfd, "inspect", path)
    assert outcome.code == 0, outcome.err
    assert not any(c in outcome.out for c in CONTROL) and "forged line" in outcome.out
    row = next(line for line in outcome.out.splitlines() if "EVIL" in line)
    assert "\\x1b[31m\\nforged line\\x07" in row  # still one row of the table
    hostile = tmp_path / "x\x1b[2J\nfake.jpg"
    outcome = run_cli(capfd, "classify", "-b", "cpu", hostile)
    assert len(outcome.err.splitlines()) == 1 and "\x1b" not in outcome.err
    assert "x\\x1b[2J\\nfake.jpg" in outcome.err


def test_library_warnings_are_one_line(capfd, tmp_path):
    # EXIF whose description claims 1000 bytes past the end of the data: Pillow warns
    tiff = (b"II*\x00" + struct.pack("<IH", 8, 2) + struct.pack("<HHII", 0x010E, 2, 1000, 200)
            + struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 0))
    photo = tmp_path / "bad-exif.jpg"
    Image.new("RGB", (64, 48), "red").save(photo, exif=b"Exif\x00\x00" + tiff)
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", photo, photo)
    assert outcome.code == 0
    warned = [line for line in outcome.err.splitlines() if "warning" in line.lower()]
    assert warned == ["bredos-npu: warning: Tag data larger than file. Skipping tag 270"], outcome.err
    # larger than Pillow's decompression-bomb warning limit, below its error limit: a photo
    big = tmp_path / "big.png"
    Image.new("L", (10_000, 9_500)).save(big, compress_level=1)
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", big)
    assert outcome.code == 0 and "warning" not in outcome.err.lower(), outcome.err


# --- fuzzing ------------------------------------------------------------------------------------

FUZZ_CASES = 200
FUZZ_SEED = 8
FUZZ_DEADLINE_S = 300


def test_fuzzed_models_always_get_a_clean_answer(tmp_path):
    """200 byte-mutated copies of a real model (fixed seed) through classify, 100 through inspect:
    each answer is a result (0) or one line and the model's exit code (4)."""
    model = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("fuzz_models.py")), str(model),
                           str(CAT), str(FUZZ_SEED), str(FUZZ_CASES), str(tmp_path)],
                          capture_output=True, text=True, timeout=FUZZ_DEADLINE_S)
    records = [json.loads(line) for line in done.stdout.splitlines()]
    finished = [r for r in records if "code" in r]
    assert done.returncode == 0, f"crashed ({done.returncode}) on {records[-1]}: {done.stderr[-2000:]}"
    assert len(finished) == FUZZ_CASES * 3 // 2
    codes = {}
    for record in finished:
        lines = record["stderr"].splitlines()
        assert record["code"] in (0, EXIT_MODEL), record
        if record["code"] == EXIT_MODEL:
            assert len(lines) == 1 and lines[0].startswith("bredos-npu: error: "), record
        assert "Traceback" not in record["stderr"] and "unexpected error" not in record["stderr"], record
        codes[record["code"]] = codes.get(record["code"], 0) + 1
    assert codes.get(0, 0) > 20 and codes.get(EXIT_MODEL, 0) > 20, codes  # both kinds exercised
