"""The one percentile definition every benchmark reports with."""

import pytest

from bench.stats import percentile


def test_nearest_rank_returns_one_of_the_values():
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([0.3, 0.1, 0.2], 50) == 0.2
    assert percentile([1.0, 2.0], 99) == 2.0  # a p99 of few samples is their maximum, not an interpolation


def test_no_values_and_bad_levels():
    assert percentile([], 99) == 0.0
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 0.99 * 1000)
