"""The rollup kept by a REAL Celery worker with embedded beat (the schedule in settings), and its heartbeat
on the dashboard's live-queue panel."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from editor.dashboard.models import DailyUsage
from tests.dashboard.history import History, expected_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_keeps_the_rollup_and_the_worker_shows_on_the_dashboard(
    history: History, celery_worker_factory: Callable[..., Any], client: Client
) -> None:
    h = history
    worker = celery_worker_factory(beat=True, concurrency=1, env={"USAGE_ROLLUP_INTERVAL_SECONDS": "1"})
    yesterday = h.today - timedelta(days=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and DailyUsage.objects.filter(day__gte=yesterday).count() < 2:
        time.sleep(0.2)
    assert DailyUsage.objects.filter(day__gte=yesterday).count() == 2, worker.log()[-3000:]
    # The first run backfilled the month; every past day matches the history.
    assert DailyUsage.objects.filter(day__gte=h.today - timedelta(days=30)).count() == 31
    for row in DailyUsage.objects.filter(day__lt=h.today):
        exp = expected_for(h, [row.day])
        day = exp.per_day[row.day]
        assert (row.jobs_total, row.jobs_succeeded, row.jobs_failed, row.credits_charged) == (
            len(exp.jobs), day["succeeded"], day["failed"], day["charged"])

    client.force_login(h.staff)
    data = client.get("/staff/dashboard/?period=7d").context["data"]
    hostnames = [w["hostname"] for w in data.queue.workers if w["alive"]]
    assert any(name.startswith("test") for name in hostnames), (data.queue.workers, worker.log()[-2000:])
    assert "workers" not in {alert.kind for alert in data.alerts}
    assert data.missing_days == []
