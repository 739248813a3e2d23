"""Per-channel activation statistics of a float model over calibration images.

Equalization needs each channel's largest value (to keep ReLU6's clipping exact) and bias
correction each convolution input's mean (E[x] in Nagel et al., section 4.2; with calibration
images at hand it is measured rather than derived from batch-norm parameters).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np


class ChannelStats(NamedTuple):
    """Per channel (last axis): mean and maximum over all images and positions."""

    mean: np.ndarray
    maximum: np.ndarray


def tracing_interpreter(content: bytes) -> Any:
    """An allocated interpreter for the model ``content`` whose every tensor can be read after
    ``invoke`` (TFLite otherwise reuses the memory of intermediate ones)."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "intended for debugging": reading them is the point here
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def channel_stats(content: bytes, tensors: Iterable[int], inputs: Iterable[np.ndarray]
                  ) -> dict[int, ChannelStats]:
    """Statistics of the given tensors of a float model, run on each input tensor."""
    wanted = sorted(set(tensors))
    interpreter = tracing_interpreter(content)
    index = interpreter.get_input_details()[0]["index"]
    sums: dict[int, np.ndarray] = {}
    maxima: dict[int, np.ndarray] = {}
    count = 0
    for tensor in inputs:
        interpreter.set_tensor(index, tensor)
        interpreter.invoke()
        count += 1
        for t in wanted:
            values = interpreter.get_tensor(t)
            flat = values.reshape(-1, values.shape[-1])
            sums[t] = sums.get(t, 0) + flat.mean(axis=0, dtype=np.float64)
            top = flat.max(axis=0)
            maxima[t] = np.maximum(maxima[t], top) if t in maxima else top
    return {t: ChannelStats(sums[t] / max(count, 1), maxima[t]) for t in wanted}
