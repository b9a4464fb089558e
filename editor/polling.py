"""When to ask the provider about a job next: pure functions, no Django, no clock of their own.

The shape: a job that is expected to take E seconds is asked about rarely while young (each wait is a fraction of
the time left until E), densely (every `min_interval`) around E, and with a slowly growing interval once it is
overdue. With E = 64 s, fraction 0.5, a 1 s floor and the 30 s cap (the defaults), a job finishing at 64 s is
asked at about 30, 47, 55.5, 59.8, 61.9, 62.9, 63.9, 64.9 s: 8 status calls, and COMPLETED is seen at most ~1 s
after it happens (`poll_schedule` computes this; tests/jobs/test_jobs_polling.py checks it).
A provider that says when the job should be done (our service's `eta_seconds`, or a Retry-After on an
in-progress status) is asked again just after that instead: a job of D seconds then costs 2 status calls (the
first, sparse one and the one that sees it done) whatever D is.
With completion webhooks a poll only covers a lost delivery: it comes `fallback` seconds after the job should
have been done (`webhook_fallback_delay`), so a delivered job costs no status call at all.
Transient errors (429, 5xx, network) back off exponentially, honouring the provider's Retry-After or
x-rate-limit-reset-at-utc, and never exceed a cap far below the broker's visibility timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class PollPolicy:
    min_interval: float = 1.0  # densest interval, near the expected finish
    max_interval: float = 30.0  # longest countdown for a healthy job
    approach_fraction: float = 0.5  # while young, wait this share of the time left until the expected finish
    backoff_max: float = 60.0  # longest countdown after errors
    overdue_growth: float = 0.2  # once overdue, the interval grows by this share of the overdue time
    eta_margin: float = 0.25  # asked this long after the provider's ETA (its clock and ours differ a little)

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        if not 0 < self.approach_fraction <= 1:
            raise ValueError("approach_fraction must be in (0, 1]")


def next_poll_delay(*, age: float, expected: float, policy: PollPolicy, eta: float | None = None) -> float:
    """Seconds to wait before the next status call for a job submitted `age` seconds ago that is expected
    to finish after `expected` seconds. `eta`: the provider's own word on the seconds left, when it gave one."""
    if eta is not None and eta > 0:
        # The provider knows its queue and its engine: ask once it should be done, not on the way there.
        return _clamp(eta + policy.eta_margin, policy.min_interval, policy.max_interval)
    age = max(0.0, age)
    expected = max(policy.min_interval, expected)
    remaining = expected - age
    if remaining > policy.min_interval:
        # Young: close in on the expected finish geometrically (32 s, 16 s, 8 s, ... for E = 64 s).
        delay = remaining * policy.approach_fraction
    else:
        # Around and after the expected finish: dense, then slowly sparser for jobs that run long.
        overdue = max(0.0, -remaining)
        delay = policy.min_interval + policy.overdue_growth * overdue
    return _clamp(delay, policy.min_interval, policy.max_interval)


WEBHOOK_WAIT_INTERVALS = 10  # a fallback poll never waits more than this many max_intervals past the fallback


def webhook_fallback_delay(
    *, age: float, expected: float, policy: PollPolicy, fallback: float, eta: float | None = None
) -> float:
    """With completion webhooks: seconds until the poll that covers a lost delivery, `fallback` seconds after
    the job should have been done (the provider's `eta` when it gave one, else `expected`)."""
    remaining = eta if eta is not None else expected - max(0.0, age)
    remaining = _clamp(remaining, 0.0, WEBHOOK_WAIT_INTERVALS * policy.max_interval)
    return max(policy.min_interval, remaining + fallback)


def backoff_delay(*, errors: int, policy: PollPolicy, retry_after: float | None = None) -> float:
    """Seconds to wait after `errors` consecutive transient failures (errors >= 1).

    The provider's own hint wins when it asks for longer than our exponential step; nothing waits longer
    than `backoff_max`."""
    step = policy.min_interval * (2 ** max(0, min(errors, 20) - 1))
    delay = max(step, retry_after or 0.0)
    return _clamp(delay, policy.min_interval, policy.backoff_max)


def retry_after_seconds(headers: dict[str, str], *, now: datetime | None = None) -> float | None:
    """Read Retry-After (seconds or an HTTP date) or Segmind's x-rate-limit-reset-at-utc (ISO 8601 UTC).

    Returns None when there is no usable hint. Header names are matched case-insensitively."""
    lowered = {k.lower(): v for k, v in headers.items()}
    now = now or datetime.now(UTC)
    hints: list[float] = []
    raw = lowered.get("retry-after", "").strip()
    if raw:
        try:
            hints.append(float(raw))
        except ValueError:
            try:
                when = parsedate_to_datetime(raw)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                hints.append((when - now).total_seconds())
            except (TypeError, ValueError):
                pass
    raw = lowered.get("x-rate-limit-reset-at-utc", "").strip()
    if raw:
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            hints.append((when - now).total_seconds())
        except ValueError:
            pass
    if not hints:
        return None
    return max(0.0, max(hints))


def poll_schedule(
    *, finish_at: float, expected: float, policy: PollPolicy, provider_eta: bool = False
) -> list[float]:
    """The ages at which a job finishing at `finish_at` is polled, the last one seeing it done. With
    `provider_eta` each in-progress answer carries the true seconds left (as our service's `eta_seconds` does).

    Used by tests and the docs to show the cost of the schedule; the tasks call `next_poll_delay`."""
    ages: list[float] = []
    age = next_poll_delay(age=0.0, expected=expected, policy=policy)  # the submit answer carries no ETA
    while True:
        ages.append(age)
        if age >= finish_at or len(ages) > 10_000:
            return ages
        eta = finish_at - age if provider_eta else None
        age += next_poll_delay(age=age, expected=expected, policy=policy, eta=eta)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
