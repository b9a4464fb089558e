"""How long the provider takes, and so when to ask it next: read by the worker steps and the progress selector.

Below both: the submit and poll steps need the learned provider time without reaching up into a selector.
"""

from __future__ import annotations

import statistics

from django.conf import settings
from django.core.cache import cache

from editor.models import EditJob
from editor.polling import PollPolicy

EXPECTED_CACHE_KEY = "editor:expected-provider-seconds"
EXPECTED_CACHE_SECONDS = 30
EXPECTED_SAMPLE = 50

State = EditJob.State


def expected_provider_seconds() -> float:
    """How long the provider takes for a job: the median of recent successful jobs' provider time
    (metrics.total_time when the provider reports it, else inference_time), cached briefly.
    Falls back to settings.FASHION_AI_EXPECTED_SECONDS while there is no history."""
    cached = cache.get(EXPECTED_CACHE_KEY)
    if cached is not None:
        return float(cached)
    rows = (
        EditJob.objects.filter(state=State.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("provider_metrics", "inference_time")[:EXPECTED_SAMPLE]
    )
    samples: list[float] = []
    for metrics, inference_time in rows:
        value = (metrics or {}).get("total_time") if isinstance(metrics, dict) else None
        if not isinstance(value, int | float):
            value = inference_time
        if isinstance(value, int | float) and value > 0:
            samples.append(float(value))
    expected = statistics.median(samples) if samples else float(settings.FASHION_AI_EXPECTED_SECONDS)
    cache.set(EXPECTED_CACHE_KEY, expected, EXPECTED_CACHE_SECONDS)
    return expected


def poll_policy() -> PollPolicy:
    return PollPolicy(
        min_interval=settings.POLL_MIN_INTERVAL_SECONDS,
        max_interval=settings.POLL_MAX_INTERVAL_SECONDS,
        approach_fraction=settings.POLL_APPROACH_FRACTION,
        backoff_max=settings.POLL_BACKOFF_MAX_SECONDS,
    )
