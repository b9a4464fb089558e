"""Exact percentiles for one day and a small log-bucket histogram that merges across days.

A period's p95 cannot be computed from the days' p95s, and re-reading every job defeats the rollup. Each
day therefore also stores a sparse histogram of its values in buckets whose bounds grow by 2 % each
(a DDSketch-like layout): merging days is adding counts, and a percentile read from the merged histogram
is the geometric middle of the bucket that holds the wanted rank, so it is within about 1 % of an
actual value near that rank. Times below 1 ms share bucket 0.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

GROWTH = 1.02
SMALLEST = 0.001
_LOG_GROWTH = math.log(GROWTH)

Histogram = dict[str, int]  # JSON keys are strings


def bucket_of(value: float) -> int:
    if value <= SMALLEST:
        return 0
    return max(0, int(math.floor(math.log(value / SMALLEST) / _LOG_GROWTH)))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    return SMALLEST * GROWTH**bucket, SMALLEST * GROWTH ** (bucket + 1)


def bucket_value(bucket: int) -> float:
    return float(SMALLEST * GROWTH ** (bucket + 0.5))


def histogram_of(values: Iterable[float]) -> Histogram:
    counts: dict[int, int] = {}
    for value in values:
        bucket = bucket_of(value)
        counts[bucket] = counts.get(bucket, 0) + 1
    return {str(bucket): count for bucket, count in sorted(counts.items())}


def histogram_merge(histograms: Iterable[Mapping[str, int]]) -> Histogram:
    merged: dict[int, int] = {}
    for histogram in histograms:
        for key, count in histogram.items():
            merged[int(key)] = merged.get(int(key), 0) + int(count)
    return {str(bucket): count for bucket, count in sorted(merged.items())}


def histogram_quantile(histogram: Mapping[str, int], q: float) -> float | None:
    """The value at quantile q (0..1), read from the bucket holding the nearest rank."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = int(math.floor(q * (total - 1) + 0.5))
    seen = 0
    for bucket in sorted(int(key) for key in histogram):
        seen += histogram[str(bucket)]
        if seen > rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable: the rank is below the total")


def exact_quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the two nearest ranks (what PostgreSQL's percentile_cont does)."""
    if not sorted_values:
        return None
    position = q * (len(sorted_values) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
