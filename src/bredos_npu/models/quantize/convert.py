"""Models that are not .tflite yet: a SavedModel folder, a Keras file or an ONNX file → float .tflite.

The heavier, optional inputs of ``quantize``: TensorFlow's own converter (the ``convert`` extra)
for SavedModel and Keras, onnx2tf (the ``onnx`` extra) for ONNX. Both are asked for a *float*
model only: quantization stays with ai-edge-quantizer and its per-tensor recipe, so TensorFlow's
post-training quantization, which quantizes convolution weights per channel (0% on the NPU), is
never switched on here and "per-channel disabled" needs no flag.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bredos_npu.errors import ModelError, Reason, RuntimeMissingError
from bredos_npu.inputs import MODEL, is_folder, open_regular
from bredos_npu.models.tflite_file import check_model_content

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
ONNX_SUFFIX = ".onnx"
ONNX2TF_SAMPLES = "calibration_image_sample_data_20x128x128x3_float32.npy"
SAVED_MODEL = "saved_model.pb"
CONVERT_HINT = "pip install 'bredos-npu[convert]'"
ONNX_HINT = "pip install 'bredos-npu[onnx]'"
# onnx2tf converts a MobileNet-sized model in well under a minute on 2 cores.
ONNX_DEADLINE_S = float(os.environ.get("BREDOS_NPU_ONNX2TF_TIMEOUT", "600"))


def needs_conversion(path: str | os.PathLike[str]) -> bool:
    """True for a folder, a Keras file or an ONNX file: inputs that :func:`to_float_tflite` takes."""
    suffix = Path(path).suffix.lower()
    return is_folder(path) or suffix in KERAS_SUFFIXES or suffix == ONNX_SUFFIX


def to_float_tflite(path: str | os.PathLike[str],
                    progress: Callable[[str], None] | None = None) -> bytes:
    """The float .tflite of a SavedModel folder, a Keras ``.keras``/``.h5`` file or an ``.onnx`` file.

    Raises ModelError for a folder without ``saved_model.pb``, a missing file or a failed
    conversion, RuntimeMissingError without the ``convert`` (TensorFlow) or ``onnx`` extra.
    ``progress`` hears one line once the checks have passed and the (slow) conversion starts.
    """
    say = progress or (lambda _message: None)
    source = Path(path)
    if is_folder(source):
        if not (source / SAVED_MODEL).is_file():
            raise ModelError(f"{source} is a folder without {SAVED_MODEL}", "pass a .tflite file, "
                             "a SavedModel folder, or a .keras, .h5 or .onnx file",
                             Reason.MODEL_IS_FOLDER, path=str(source))
    else:
        open_regular(source, MODEL).close()  # the usual sentence for a missing or unreadable file
    if source.suffix.lower() == ONNX_SUFFIX and not is_folder(source):
        content = _from_onnx(source, say)
    else:
        content = _from_tensorflow(source, say)
    return check_model_content(content, source)


def _tensorflow(hint: str, extra: str) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        import tensorflow as tf
    except ImportError:
        raise RuntimeMissingError("Converting this model needs TensorFlow", f"run `{hint}`",
                                  Reason.MISSING_PACKAGE, package="tensorflow", extra=extra) from None
    return tf


def _from_tensorflow(source: Path, say: Callable[[str], None]) -> bytes:
    tf = _tensorflow(CONVERT_HINT, "convert")
    say(f"converting {source} to a float .tflite with TensorFlow {tf.__version__}")
    try:
        # Keras prints the traced endpoints on stdout, which is the command's summary: keep it quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            if is_folder(source):
                converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
            else:
                keras_model = tf.keras.models.load_model(source, compile=False)
                converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
            # No converter.optimizations: a float model; ai-edge-quantizer quantizes it per tensor.
            return bytes(converter.convert())
    except Exception as error:  # TensorFlow raises many kinds; the user needs its one line
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"TensorFlow could not convert {source} ({detail})", None,
                         Reason.MODEL_LOAD_FAILED, path=str(source)) from None


def _from_onnx(source: Path, say: Callable[[str], None]) -> bytes:
    _tensorflow(ONNX_HINT, "onnx")
    import importlib.util

    if importlib.util.find_spec("onnx2tf") is None:
        raise RuntimeMissingError("Converting an ONNX model needs onnx2tf", f"run `{ONNX_HINT}`",
                                  Reason.MISSING_PACKAGE, package="onnx2tf", extra="onnx")
    say(f"converting {source} to a float .tflite with onnx2tf")
    with tempfile.TemporaryDirectory(prefix="bredos-npu-onnx2tf-") as folder:
        _sample_images(Path(folder))
        output = Path(folder) / "out"
        # A child process: onnx2tf prints a lot and keeps TensorFlow state; the deadline bounds it.
        try:
            done = subprocess.run([sys.executable, "-m", "onnx2tf", "-i", str(source.resolve()),
                                   "-o", str(output)], cwd=folder, capture_output=True, text=True,
                                  timeout=ONNX_DEADLINE_S, check=False)
        except subprocess.TimeoutExpired:
            raise ModelError(f"onnx2tf did not convert {source} within {ONNX_DEADLINE_S:.0f} s", None,
                             Reason.MODEL_LOAD_FAILED, path=str(source)) from None
        floats = sorted(output.glob("*_float32.tflite"))
        if done.returncode != 0 or not floats:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            detail = lines[-1].strip() if lines else f"exit status {done.returncode}"
            raise ModelError(f"onnx2tf could not convert {source} ({detail})", None,
                             Reason.MODEL_LOAD_FAILED, path=str(source))
        return floats[0].read_bytes()


def _sample_images(folder: Path) -> None:
    """The sample images onnx2tf runs both models on to compare them, written where it looks first.

    For a model with image inputs onnx2tf loads 20 128x128 RGB images (0..1) from this file in its
    working folder, else downloads them from GitHub (which fails offline). Only that comparison
    uses them, so fixed noise serves; calibration happens later, on the user's images.
    """
    noise = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    np.save(folder / ONNX2TF_SAMPLES, noise)
