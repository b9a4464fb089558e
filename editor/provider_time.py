"""How long the provider takes, and so when to ask it next: read by the worker steps and the progress selector.

Below both: the submit and poll steps need the learned provider time without reaching up into a selector.
"""

from __future__ import annotations

import statistics
from urllib.parse import urlsplit

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


WAIT_CACHE_KEY = "editor:expected-wait-seconds"


def provider_origin() -> str:
    """The configured provider (scheme://host:port of FASHION_AI_BASE_URL); its jobs' status URLs start with it."""
    parts = urlsplit(settings.FASHION_AI_BASE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def expected_wait_seconds() -> float:
    """How long a person waits for an edit, submit to stored: the median of the current provider's recent
    successful edits (created_at -> finished_at, so queueing, submit, polling and saving count, not just the
    provider's compute time), cached briefly. Falls back to FASHION_AI_EXPECTED_SECONDS with no history."""
    origin = provider_origin()
    key = f"{WAIT_CACHE_KEY}:{origin}"
    cached = cache.get(key)
    if cached is not None:
        return float(cached)
    rows = (
        EditJob.objects.filter(state=State.SUCCEEDED, finished_at__isnull=False, status_url__startswith=origin)
        .order_by("-finished_at")
        .values_list("created_at", "finished_at")[:EXPECTED_SAMPLE]
    )
    samples = [(finished - created).total_seconds() for created, finished in rows if finished is not None]
    samples = [value for value in samples if value > 0]
    expected = statistics.median(samples) if samples else float(settings.FASHION_AI_EXPECTED_SECONDS)
    cache.set(key, expected, EXPECTED_CACHE_SECONDS)
    return expected


def poll_policy() -> PollPolicy:
    return PollPolicy(
        min_interval=settings.POLL_MIN_INTERVAL_SECONDS,
        max_interval=settings.POLL_MAX_INTERVAL_SECONDS,
        approach_fraction=settings.POLL_APPROACH_FRACTION,
        backoff_max=settings.POLL_BACKOFF_MAX_SECONDS,
    )
