"""Every figure on the staff dashboard, checked against a known history computed independently."""
from __future__ import annotations

import csv
import io
import math
import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from editor.dashboard.models import DailyUsage, DailyUserUsage
from editor.dashboard.selectors import DashboardData, dashboard_data, period_for
from editor.dashboard.services import usage_rollup_build_range
from editor.dashboard.tasks import refresh_usage_rollup
from editor.models import EditJob
from tests.dashboard.history import History, assert_quantile, expected_for, expected_queue, percentile

pytestmark = pytest.mark.django_db


def _rebuild_past(h: History) -> None:
    usage_rollup_build_range(start=h.today - timedelta(days=40), end=h.today - timedelta(days=1))


def _check(data: DashboardData, h: History, days: list[date], settings: Any) -> None:
    exp = expected_for(h, days)
    assert [row.day for row in data.days] == days
    assert data.missing_days == []
    assert data.jobs_total == len(exp.jobs)
    assert (data.succeeded, data.failed, data.refused, data.expired, data.in_flight) == (
        exp.succeeded, exp.failed, exp.refused, exp.expired, exp.in_flight)
    # Refusals (the person's photo or prompt) are not the provider's failures: out of the success rate.
    finished = exp.succeeded + exp.failed + exp.expired
    assert data.success_rate == pytest.approx(exp.succeeded / finished if finished else None)

    days_with = {name: sum(1 for d in exp.per_day.values() if d[name]) for name in ("inference", "e2e")}
    for name, timing, values in (("inference", data.inference, exp.inference), ("e2e", data.e2e, exp.e2e)):
        assert timing.count == len(values)
        assert timing.mean == pytest.approx(sum(values) / len(values) if values else None)
        assert timing.exact == (days_with[name] <= 1)
        assert_quantile(timing.p50, values, 0.5, exact=timing.exact)
        assert_quantile(timing.p95, values, 0.95, exact=timing.exact)

    assert data.credits_charged == -exp.credits["charge"]
    assert data.credits_refunded == exp.credits["refund"]
    assert data.credits_granted == exp.credits["grant"]
    assert data.credits_adjusted == exp.credits["adjust"]
    assert data.active_users == exp.active_users
    assert [(t.user_id, t.jobs, t.succeeded, t.failed, t.refused) for t in data.top_by_edits] == exp.top_by_edits
    assert [(t.user_id, t.credits) for t in data.top_by_credits] == exp.top_by_credits
    emails = {u.pk: u.email for u in h.users}
    assert all(t.email == emails[t.user_id] for t in data.top_by_edits + data.top_by_credits)
    assert data.provider_errors == exp.errors

    # The charts' per-day series.
    chart = data.chart_data()
    assert chart["labels"] == [d.isoformat() for d in days]
    for key in ("succeeded", "failed", "refused", "expired", "in_flight", "active_users"):
        assert chart[key] == [exp.per_day[d][key] for d in days], key
    assert chart["credits_charged"] == [exp.per_day[d]["charged"] for d in days]
    assert chart["credits_refunded"] == [exp.per_day[d]["refunded"] for d in days]
    assert chart["credits_granted"] == [exp.per_day[d]["granted"] for d in days]
    for d, rate in zip(days, chart["success_rate"], strict=True):
        row = exp.per_day[d]
        finished_day = row["succeeded"] + row["failed"] + row["expired"]
        assert rate == (round(100 * row["succeeded"] / finished_day, 1) if finished_day else None)
    for d, p50, p95, e50, e95 in zip(days, chart["inference_p50"], chart["inference_p95"], chart["e2e_p50"],
                                     chart["e2e_p95"], strict=True):
        # One day's percentiles are exact.
        for got, values, q in ((p50, "inference", 0.5), (p95, "inference", 0.95), (e50, "e2e", 0.5),
                               (e95, "e2e", 0.95)):
            want = percentile(exp.per_day[d][values], q)
            assert (got is None and want is None) or math.isclose(got, want, rel_tol=1e-9)
    assert chart["error_kinds"] == list(exp.errors)
    assert chart["error_counts"] == list(exp.errors.values())

    # The live queue and the alert banner.
    labels, oldest, near = expected_queue(h, retention=settings.FASHION_AI_RETENTION_SECONDS,
                                          margin=settings.DASHBOARD_RETENTION_WARNING_SECONDS)
    assert data.queue.in_flight == labels
    assert data.queue.total == sum(labels.values())
    assert data.queue.oldest_created_at == oldest
    assert data.queue.oldest_age_seconds == pytest.approx((h.now - oldest).total_seconds())
    assert data.queue.near_retention == near == 1
    kinds = {a.kind: a.count for a in data.alerts}
    assert kinds["provider_no_credits"] == 2  # two open 406 alerts; the resolved 401 is not shown
    assert "provider_key_rejected" not in kinds
    assert kinds["backlog"] == data.queue.total
    assert kinds["retention"] == 1
    assert ("workers" in kinds) == (data.queue.workers_alive == 0)


@pytest.mark.smoke
@pytest.mark.parametrize("key", ["today", "7d", "30d", "custom"])
def test_every_dashboard_figure_matches_the_history(history: History, settings: Any, key: str) -> None:
    h = history
    _rebuild_past(h)
    start, end = h.today - timedelta(days=8), h.today - timedelta(days=3)
    period = period_for(key=key, start=start, end=end, today=h.today)
    expected_days = {
        "today": [h.today],
        "7d": h.days(h.today - timedelta(days=6), h.today),
        "30d": h.days(h.today - timedelta(days=29), h.today),
        "custom": h.days(start, end),
    }[key]
    _check(dashboard_data(period=period, now=h.now), h, expected_days, settings)


def test_a_single_past_day_reads_exact_percentiles_from_the_rollup(history: History, settings: Any) -> None:
    h = history
    _rebuild_past(h)
    day = h.today - timedelta(days=4)
    data = dashboard_data(period=period_for(key="custom", start=day, end=day, today=h.today), now=h.now)
    assert data.inference.exact and data.e2e.exact
    _check(data, h, [day], settings)


@pytest.mark.smoke
def test_rollup_rows_after_a_rebuild(history: History) -> None:
    h = history
    first, last = h.today - timedelta(days=9), h.today - timedelta(days=1)
    call_command("rebuild_usage_rollup", "--from", first.isoformat(), "--to", last.isoformat(), stdout=io.StringIO())
    rows = {row.day: row for row in DailyUsage.objects.all()}
    assert sorted(rows) == h.days(first, last)
    for day, row in rows.items():
        exp = expected_for(h, [day])
        d = exp.per_day[day]
        assert (row.jobs_total, row.jobs_succeeded, row.jobs_failed, row.jobs_refused, row.jobs_expired,
                row.jobs_in_flight) == (len(exp.jobs), d["succeeded"], d["failed"], d["refused"], d["expired"],
                                        d["in_flight"])
        assert (row.credits_charged, row.credits_refunded, row.credits_granted, row.credits_adjusted) == (
            d["charged"], d["refunded"], d["granted"], exp.credits["adjust"])
        assert row.active_users == d["active_users"]
        assert row.inference_count == len(d["inference"]) and row.e2e_count == len(d["e2e"])
        assert row.inference_p95 == pytest.approx(percentile(d["inference"], 0.95))
        assert row.e2e_p50 == pytest.approx(percentile(d["e2e"], 0.5))
        assert sum(row.inference_hist.values()) == len(d["inference"])
        assert {k: v for k, v in row.provider_errors.items()} == {k: v for k, v in exp.errors.items() if v}
        per_user = {u.user_id: (u.jobs_total, u.jobs_failed, u.jobs_refused)
                    for u in DailyUserUsage.objects.filter(day=day) if u.jobs_total}
        owners = {j.owner_id for j in exp.jobs}
        assert per_user == {uid: (sum(1 for j in exp.jobs if j.owner_id == uid),
                                  sum(1 for j in exp.jobs if j.owner_id == uid and j.outcome == "failed"),
                                  sum(1 for j in exp.jobs if j.owner_id == uid and j.refused)) for uid in owners}

    # Idempotent: a second rebuild leaves the same rows.
    counts = (DailyUsage.objects.count(), DailyUserUsage.objects.count())
    call_command("rebuild_usage_rollup", "--from", first.isoformat(), "--to", last.isoformat(), stdout=io.StringIO())
    assert (DailyUsage.objects.count(), DailyUserUsage.objects.count()) == counts

    # Past days are read from the rollup: a change shows only after that day is rebuilt.
    day = h.today - timedelta(days=5)
    victim = next(j for j in h.jobs if j.outcome == "failed" and h.day_of(j.created_at) == day)
    EditJob.objects.filter(pk=victim.id).update(state="expired")
    period = period_for(key="custom", start=day, end=day, today=h.today)
    before = dashboard_data(period=period, now=h.now)
    call_command("rebuild_usage_rollup", "--from", day.isoformat(), stdout=io.StringIO())
    after = dashboard_data(period=period, now=h.now)
    assert (after.failed, after.expired) == (before.failed - 1, before.expired + 1)


def test_rebuild_command_rejects_bad_ranges() -> None:
    with pytest.raises(CommandError):
        call_command("rebuild_usage_rollup", "--from", "2026-13-01")
    with pytest.raises(CommandError):
        call_command("rebuild_usage_rollup", "--from", "2026-01-10", "--to", "2026-01-01")
    with pytest.raises(CommandError):
        call_command("rebuild_usage_rollup", "--from", (date.today() + timedelta(days=5)).isoformat())


def test_beat_task_builds_today_yesterday_and_backfills(history: History, settings: Any) -> None:
    h = history
    assert DailyUsage.objects.count() == 0
    built = refresh_usage_rollup()
    assert h.today.isoformat() in built and (h.today - timedelta(days=1)).isoformat() in built
    assert len(built) == 31
    data = dashboard_data(period=period_for(key="30d", today=h.today), now=h.now)
    assert data.missing_days == []
    # A second run rebuilds only today and yesterday now that the month is filled.
    assert refresh_usage_rollup() == [(h.today - timedelta(days=1)).isoformat(), h.today.isoformat()]
    _check(data, h, h.days(h.today - timedelta(days=29), h.today), settings)


def test_missing_rollup_days_are_flagged(history: History) -> None:
    h = history
    data = dashboard_data(period=period_for(key="7d", today=h.today), now=h.now)
    assert data.missing_days == h.days(h.today - timedelta(days=6), h.today - timedelta(days=1))


def _testid(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1).strip()


def test_the_page_shows_the_figures_within_the_query_budget(
    history: History, client: Client, settings: Any, django_assert_max_num_queries: Any
) -> None:
    h = history
    _rebuild_past(h)
    client.force_login(h.staff)
    # 20 (one is the last hour's faults for the alert), and 2 for the "results reported wrong" card (one
    # aggregate, the latest reports), whatever the history.
    with django_assert_max_num_queries(22):
        response = client.get("/staff/dashboard/?period=7d")
    assert response.status_code == 200
    html = response.content.decode()
    exp = expected_for(h, h.days(h.today - timedelta(days=6), h.today))
    finished = exp.succeeded + exp.failed + exp.expired
    assert _testid(html, "kpi-jobs") == f"{len(exp.jobs):,}"
    assert _testid(html, "kpi-succeeded") == str(exp.succeeded)
    assert _testid(html, "kpi-failed") == str(exp.failed)
    assert _testid(html, "kpi-refused") == str(exp.refused) != "0"
    assert _testid(html, "kpi-expired") == str(exp.expired)
    assert _testid(html, "kpi-success-rate") == f"{100 * exp.succeeded / finished:.1f} %"
    assert _testid(html, "kpi-charged") == f"{-exp.credits['charge']:,}"
    assert _testid(html, "kpi-refunded") == str(exp.credits["refund"])
    assert _testid(html, "kpi-granted") == str(exp.credits["grant"])
    assert _testid(html, "kpi-adjusted") == str(exp.credits["adjust"])
    assert _testid(html, "kpi-active-users") == str(exp.active_users)
    labels, _, near = expected_queue(h, retention=settings.FASHION_AI_RETENTION_SECONDS,
                                     margin=settings.DASHBOARD_RETENTION_WARNING_SECONDS)
    assert _testid(html, "kpi-in-flight") == str(sum(labels.values()))
    assert _testid(html, "near-retention") == str(near)
    data = response.context["data"]
    assert _testid(html, "kpi-inference") == f"{data.inference.p50:.1f} s"
    assert_quantile(data.inference.p95, exp.inference, 0.95, exact=False)
    for kind, count in exp.errors.items():
        assert f'data-error-kind="{kind}">{count}<' in html
    for state, count in labels.items():
        assert f'data-queue-state="{state}">{count}<' in html
    emails = {u.pk: u.email for u in h.users}
    top = re.search(r'data-testid="top-edits">(.*?)</table>', html, re.S)
    assert top and [emails[uid] for uid, *_ in exp.top_by_edits] == re.findall(r">([^<>]+@example\.com)<", top.group(1))
    assert 'data-alert="provider_no_credits"' in html and 'data-alert="retention"' in html
    assert 'id="dashboard-data"' in html and "chart.umd.min.js" in html


def test_csv_export_of_a_period(history: History, client: Client) -> None:
    h = history
    _rebuild_past(h)
    client.force_login(h.staff)
    response = client.get("/staff/dashboard/export.csv?period=7d")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    days = h.days(h.today - timedelta(days=6), h.today)
    assert [r["day"] for r in rows] == [d.isoformat() for d in days]
    for row, day in zip(rows, days, strict=True):
        exp = expected_for(h, [day])
        d = exp.per_day[day]
        assert (int(row["jobs"]), int(row["succeeded"]), int(row["failed"]), int(row["refused"]),
                int(row["expired"])) == (len(exp.jobs), d["succeeded"], d["failed"], d["refused"], d["expired"])
        assert int(row["credits_charged"]) == d["charged"] and int(row["credits_refunded"]) == d["refunded"]
        assert int(row["provider_errors"]) == sum(exp.errors.values())


def test_custom_period_validation_falls_back_to_seven_days(history: History, client: Client) -> None:
    client.force_login(history.staff)
    response = client.get("/staff/dashboard/?period=custom&start=2026-02-10&end=2026-02-01")
    assert response.status_code == 200
    assert "The period ends before it starts." in response.content.decode()
    assert response.context["period"].key == "7d"


def test_per_user_usage_page(history: History, client: Client) -> None:
    h = history
    user = h.users[0]
    jobs = [j for j in h.jobs if j.owner_id == user.pk]
    entries = [e for e in h.entries if e.user_id == user.pk]
    client.force_login(h.staff)
    html = client.get(f"/staff/users/{user.pk}/").content.decode()
    for state in ("created", "submitted", "succeeded", "failed", "expired"):
        assert _testid(html, f"user-jobs-{state}") == str(sum(j.state == state for j in jobs))
    for kind in ("grant", "charge", "refund", "adjust"):
        assert _testid(html, f"user-credits-{kind}") == str(sum(e.amount for e in entries if e.kind == kind))
    assert _testid(html, "user-balance") == _testid(html, "user-ledger-sum") == str(sum(e.amount for e in entries))
    failures = re.search(r'data-testid="user-failures">(.*?)</table>', html, re.S)
    failed_jobs = sum(j.state in ("failed", "expired") for j in jobs)
    assert failures and failures.group(1).count("<tr>") - 1 == min(50, failed_jobs)
    assert client.get("/staff/users/999999/").status_code == 404
