"""A tiny run of bench/bench_jobs.py's measuring code (this design only), so the bench cannot rot unnoticed."""
from __future__ import annotations

from typing import Any

import pytest

from devservices.fashionai import run_fashionai


@pytest.mark.django_db(transaction=True)
def test_bench_measures_this_design(celery_worker_factory: Any, settings: Any) -> None:
    import bench.bench_jobs as bench

    settings.MAX_JOBS_IN_FLIGHT_PER_USER = 100
    settings.STARTER_CREDITS = 0
    with run_fashionai(delay=1.0) as fai:
        # Started through the factory only so the database settings match the test database; then stopped.
        probe = celery_worker_factory(fashionai=fai, beat=False, concurrency=1)
        env = dict(probe.env)
        probe.stop()
        result = bench.run_ours(fai, jobs=6, delay=1.0, concurrency=2, env=env)
    assert result["completed"] == 6 and result["failed"] == 0
    assert result["peak_in_flight"] >= 1
    assert 1 <= result["calls"] <= 12
    assert result["store_median"] >= 0


@pytest.mark.django_db(transaction=True)
def test_bench_naive_design_completes_jobs(settings: Any) -> None:
    """The naive design's worker must serve the naive app's own queue: with the default queue list it started
    nothing (0 of 500 completed)."""
    import bench.bench_jobs as bench

    with run_fashionai(delay=0.3) as fai:
        result = bench.run_naive(fai, jobs=2, delay=0.3, concurrency=2, window=6.0)
    assert result["completed"] == 2, result
    assert result["left_waiting"] == 0
