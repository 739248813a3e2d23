"""Latency statistics on known timing lists."""

from __future__ import annotations

import pytest

from bredos_npu.runtime.stats import latency_stats


def test_four_values():
    stats = latency_stats([4.0, 1.0, 3.0, 2.0])
    assert stats.count == 4
    assert (stats.min, stats.max, stats.mean, stats.p50) == (1.0, 4.0, 2.5, 2.5)
    assert stats.std == pytest.approx(1.118033988749895)
    assert stats.per_second == 400.0


def test_percentiles_interpolate_between_ranks():
    stats = latency_stats([float(v) for v in range(1, 101)])
    assert stats.p50 == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)
    assert stats.p99 == pytest.approx(99.01)


def test_single_value():
    stats = latency_stats([7.0])
    assert stats[1:] == (7.0, 0.0, 7.0, 7.0, 7.0, 7.0, 7.0)


def test_no_samples():
    with pytest.raises(ValueError, match="no latency samples"):
        latency_stats([])
