"""The adaptive poll schedule (pure functions)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from editor.polling import PollPolicy, backoff_delay, next_poll_delay, poll_schedule, retry_after_seconds

POLICY = PollPolicy(min_interval=1.0, max_interval=30.0, approach_fraction=0.5, backoff_max=60.0)


@pytest.mark.smoke
@pytest.mark.parametrize(("finish_at", "late_by"), [(60.2, 2.0), (64.3, 1.0), (66.0, 1.0), (70.5, 1.5)])
def test_a_minute_long_job_costs_about_ten_calls_and_is_seen_within_a_second(finish_at: float, late_by: float) -> None:
    ages = poll_schedule(finish_at=finish_at, expected=64.0, policy=POLICY)
    assert len(ages) <= 12
    # Seen done at most one dense interval late around the expected finish; a bit later for outliers.
    assert 0 <= ages[-1] - finish_at <= late_by + 1e-9
    gaps = [b - a for a, b in zip([0.0, *ages], ages, strict=False)]
    assert gaps[0] >= 20 and gaps[-1] <= late_by + 1.0  # sparse while young, dense at the end


@pytest.mark.smoke
def test_overdue_jobs_are_polled_less_and_less_but_never_beyond_the_cap() -> None:
    delays = [next_poll_delay(age=age, expected=64.0, policy=POLICY) for age in (65, 100, 300, 3000)]
    assert delays == sorted(delays) and delays[0] < delays[-1] == POLICY.max_interval


@pytest.mark.smoke
def test_backoff_doubles_honours_retry_after_and_is_capped() -> None:
    assert [backoff_delay(errors=n, policy=POLICY) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(errors=1, policy=POLICY, retry_after=7) == 7.0
    assert backoff_delay(errors=30, policy=POLICY) == 60.0
    assert backoff_delay(errors=1, policy=POLICY, retry_after=3600) == 60.0


@pytest.mark.smoke
def test_retry_after_headers() -> None:
    now = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "5"}, now=now) == 5.0
    assert retry_after_seconds({"x-rate-limit-reset-at-utc": "2025-01-31T12:00:09Z"}, now=now) == 9.0
    assert retry_after_seconds({"retry-after": "Fri, 31 Jan 2025 12:00:03 GMT"}, now=now) == 3.0
    assert retry_after_seconds({"Retry-After": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None
    assert retry_after_seconds({"x-rate-limit-reset-at-utc": "2025-01-31T11:00:00Z"}, now=now) == 0.0
