"""Edits refused for the person's photo or prompt (no person, garment not visible, no colour named, content not
allowed) are not the provider's failures: the rollup counts them apart, the success rate and the fault alert leave
them out. Before this, a day of photos with nobody in them read as a 62 % provider success rate."""
from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from editor.dashboard.models import DailyUsage, DailyUserUsage
from editor.dashboard.selectors import dashboard_data, period_for
from editor.dashboard.services import local_today, usage_rollup_build_day
from editor.models import EditJob, Photo

pytestmark = pytest.mark.django_db


def _finished_jobs(user: Any, outcomes: list[tuple[str, str]], *, minutes_ago: float = 10) -> None:
    """Jobs created and finished `minutes_ago`, one per (state, error_code)."""
    photo = Photo.objects.create(owner=user, image=f"users/{user.pk}/photos/p.jpg", width=512, height=512)
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    EditJob.objects.bulk_create([
        EditJob(owner=user, photo=photo, prompt=f"a person wearing look {n}", clothing="topwear", state=state,
                cost_credits=1, error_code=code, submitted_at=finished - timedelta(seconds=20), finished_at=finished)
        for n, (state, code) in enumerate(outcomes)
    ])


SUCCEEDED = ("succeeded", "")
NO_PERSON = ("failed", "edit_refused")
BLOCKED = ("failed", "content_blocked")
PROVIDER_FAILED = ("failed", "provider_failed")
EXPIRED = ("expired", "expired")


def test_a_day_of_refusals_keeps_the_success_rate_and_raises_no_alert(make_user: Any, settings: Any) -> None:
    settings.DASHBOARD_FAULT_ALERT_PERCENT, settings.DASHBOARD_FAULT_ALERT_MIN_EDITS = 25, 5
    user = make_user()
    # The reviewer's day: 5 good edits, 3 refused for the photo or prompt.
    _finished_jobs(user, [SUCCEEDED] * 5 + [NO_PERSON] * 2 + [BLOCKED])
    data = dashboard_data(period=period_for(key="today"))
    assert (data.succeeded, data.failed, data.refused, data.expired) == (5, 0, 3, 0)
    assert data.success_rate == 1.0  # was 5 / 8 = 62.5 %
    assert data.chart_data()["refused"] == [3] and data.chart_data()["success_rate"] == [100.0]
    assert "provider_faults" not in {alert.kind for alert in data.alerts}
    (top,) = data.top_by_edits
    assert (top.jobs, top.succeeded, top.failed, top.refused) == (8, 5, 0, 3)


def test_provider_faults_in_the_last_hour_raise_the_alert(make_user: Any, settings: Any) -> None:
    settings.DASHBOARD_FAULT_ALERT_PERCENT, settings.DASHBOARD_FAULT_ALERT_MIN_EDITS = 25, 5
    user = make_user()
    _finished_jobs(user, [SUCCEEDED] * 5 + [PROVIDER_FAILED, EXPIRED] + [NO_PERSON] * 4)
    # An hour-old fault is out of the window.
    _finished_jobs(user, [PROVIDER_FAILED] * 3, minutes_ago=90)
    data = dashboard_data(period=period_for(key="today"))
    assert (data.succeeded, data.failed, data.refused, data.expired) == (5, 4, 4, 1)
    assert data.success_rate == pytest.approx(5 / 10)
    (alert,) = [alert for alert in data.alerts if alert.kind == "provider_faults"]
    # 2 faults of the 7 that finished in the hour (refusals left out): 29 % >= 25 %.
    assert alert.count == 2 and "2 of the 7 edits" in alert.message and "4 more were refused" in alert.message

    settings.DASHBOARD_FAULT_ALERT_PERCENT = 30
    assert "provider_faults" not in {a.kind for a in dashboard_data(period=period_for(key="today")).alerts}


def test_the_page_and_the_export_show_refusals_apart(make_user: Any, client: Client) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    _finished_jobs(make_user(), [SUCCEEDED] * 3 + [NO_PERSON, PROVIDER_FAILED])
    client.force_login(staff)
    html = client.get("/staff/dashboard/?period=today").content.decode()
    assert 'data-testid="kpi-refused"' in html and ">1</span> refused" in html and ">1</span> failed" in html
    assert 'data-testid="kpi-success-rate">75.0 %' in html
    export = client.get("/staff/dashboard/export.csv?period=today").content.decode().splitlines()
    assert export[0].startswith("day,jobs,succeeded,failed,refused,expired")
    assert export[1].split(",")[1:6] == ["5", "3", "1", "1", "0"]


def test_the_migration_moves_stored_refusals_out_of_failed(make_user: Any) -> None:
    """Days rolled up before this release counted content blocks as failures: the migration splits them."""
    user = make_user()
    _finished_jobs(user, [SUCCEEDED, BLOCKED, BLOCKED, PROVIDER_FAILED], minutes_ago=0)
    day = local_today()
    usage_rollup_build_day(day=day)
    # As the old code stored it: every failure in jobs_failed.
    DailyUsage.objects.filter(day=day).update(jobs_failed=3, jobs_refused=0)
    DailyUserUsage.objects.filter(day=day, user=user).update(jobs_failed=3, jobs_refused=0)

    migration = importlib.import_module("editor.dashboard.migrations.0003_jobs_refused")
    migration.split_refused(apps, None)
    row = DailyUsage.objects.get(day=day)
    assert (row.jobs_failed, row.jobs_refused) == (1, 2)
    per_user = DailyUserUsage.objects.get(day=day, user=user)
    assert (per_user.jobs_failed, per_user.jobs_refused) == (1, 2)
    migration.split_refused(apps, None)  # a second run finds nothing more to move
    row = DailyUsage.objects.get(day=day)
    assert (row.jobs_failed, row.jobs_refused) == (1, 2)
