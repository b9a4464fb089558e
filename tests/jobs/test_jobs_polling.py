"""The adaptive poll schedule (pure functions)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from editor.polling import (
    PollPolicy,
    backoff_delay,
    next_poll_delay,
    poll_schedule,
    retry_after_seconds,
    webhook_fallback_delay,
)

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


@pytest.mark.smoke
@pytest.mark.parametrize(("seconds", "expected"), [(3.0, 3.0), (60.0, 60.0), (64.3, 60.0), (90.0, 60.0), (300, 60)])
def test_with_the_providers_eta_a_job_costs_two_calls_and_is_seen_at_once(seconds: float, expected: float) -> None:
    """Our service says when a running job should be done: ask then, not on a geometric approach (8 calls for a
    minute-long job without it)."""
    ages = poll_schedule(finish_at=seconds, expected=expected, policy=POLICY, provider_eta=True)
    assert len(ages) <= 2 + int(seconds // POLICY.max_interval)  # the first sparse poll, then one per 30 s cap
    assert len(poll_schedule(finish_at=60.0, expected=60.0, policy=POLICY, provider_eta=True)) == 2
    assert 0 <= ages[-1] - seconds <= POLICY.eta_margin + 1e-9 or ages[-1] - seconds <= POLICY.min_interval


@pytest.mark.smoke
def test_an_eta_never_shortens_below_the_floor_nor_waits_past_the_cap() -> None:
    assert next_poll_delay(age=10, expected=60, policy=POLICY, eta=0.01) == POLICY.min_interval
    assert next_poll_delay(age=10, expected=60, policy=POLICY, eta=5000) == POLICY.max_interval
    # No ETA, or an overdue one (0): the schedule decides.
    assert next_poll_delay(age=70, expected=60, policy=POLICY, eta=0) == next_poll_delay(
        age=70, expected=60, policy=POLICY
    )


@pytest.mark.smoke
def test_with_webhooks_the_fallback_poll_comes_after_the_job_should_be_done() -> None:
    """A poll with webhooks only covers a lost delivery: for a minute-long job not at 30 s and 60 s (2 calls per
    delivered job), but once, `fallback` seconds after the expected finish."""
    first = webhook_fallback_delay(age=0, expected=60, policy=POLICY, fallback=30)
    assert first == 90
    assert webhook_fallback_delay(age=90, expected=60, policy=POLICY, fallback=30) == 30
    assert webhook_fallback_delay(age=20, expected=60, policy=POLICY, fallback=30, eta=100) == 130
    assert webhook_fallback_delay(age=0, expected=1e6, policy=POLICY, fallback=30) == 30 + 10 * POLICY.max_interval
