"""Latency statistics as the TFLite benchmark tool reports them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class LatencyStats(NamedTuple):
    """Statistics of per-inference latencies in milliseconds.

    Percentiles use linear interpolation between the closest ranks (numpy's default), so
    p50 of [1, 2, 3, 4] is 2.5. ``std`` is the population standard deviation.
    ``per_second`` is inferences per second at the mean latency.
    """

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    @property
    def per_second(self) -> float:
        return 1000.0 / self.mean if self.mean > 0 else 0.0


def latency_stats(samples_ms: Sequence[float]) -> LatencyStats:
    if not len(samples_ms):
        raise ValueError("no latency samples")
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return LatencyStats(len(values), float(values.mean()), float(values.std()), float(values.min()),
                        float(p50), float(p90), float(p99), float(values.max()))
