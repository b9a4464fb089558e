"""Writes for the operators: the daily usage rollup and resolving alerts.

`usage_day_compute` reads one day from the raw tables (four indexed range queries) and returns unsaved
rows; `usage_rollup_build_day` stores them, replacing whatever was there, so it can run any number of
times (the beat task rebuilds today and yesterday every few minutes, the management command any range).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from editor.dashboard.histogram import exact_quantile, histogram_of
from editor.dashboard.models import DailyUsage, DailyUserUsage, SignupRecord
from editor.models import CreditEntry, EditJob, OperatorAlert, ProviderError
from editor.progress import USER_CAUSED_ERRORS

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the site's time zone, as aware datetimes."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    return start, end


def local_today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now())


@dataclass
class DayUsage:
    """One day's figures, unsaved: either a stored rollup or today's live numbers."""

    usage: DailyUsage
    users: dict[int, DailyUserUsage] = field(default_factory=dict)


def refused_jobs() -> Q:
    """Failed edits the person's photo or prompt caused: counted apart from failures, never provider faults."""
    return Q(state=EditJob.State.FAILED, error_code__in=sorted(USER_CAUSED_ERRORS))


def usage_day_compute(*, day: date, now: datetime | None = None) -> DayUsage:
    start, end = day_bounds(day)
    usage = DailyUsage(day=day, built_at=now or timezone.now())
    users: dict[int, DailyUserUsage] = {}

    def user_row(user_id: int) -> DailyUserUsage:
        if user_id not in users:
            users[user_id] = DailyUserUsage(day=day, user_id=user_id)
        return users[user_id]

    jobs = EditJob.objects.filter(created_at__gte=start, created_at__lt=end)
    outcome_field: dict[str, str] = {
        EditJob.State.SUCCEEDED: "jobs_succeeded",
        EditJob.State.FAILED: "jobs_failed",
        EditJob.State.EXPIRED: "jobs_expired",
    }
    counted = jobs.order_by().values("owner_id", "state").annotate(
        n=Count("id"), refused=Count("id", filter=refused_jobs())
    )
    for row in counted:
        per_user = user_row(row["owner_id"])
        per_user.jobs_total += row["n"]
        usage.jobs_total += row["n"]
        name = outcome_field.get(row["state"])
        if name is None:
            usage.jobs_in_flight += row["n"]
            continue
        per_user.jobs_refused += row["refused"]
        usage.jobs_refused += row["refused"]
        n = row["n"] - row["refused"]
        setattr(per_user, name, getattr(per_user, name) + n)
        setattr(usage, name, getattr(usage, name) + n)
    usage.active_users = sum(1 for row in users.values() if row.jobs_total)

    # Times of the day's succeeded jobs: what a user waited for a result and what the provider spent.
    inference: list[float] = []
    e2e: list[float] = []
    timings = jobs.filter(state=EditJob.State.SUCCEEDED).order_by().values_list(
        "inference_time", "created_at", "finished_at"
    )
    for inference_time, created_at, finished_at in timings:
        if inference_time is not None:
            inference.append(float(inference_time))
        if finished_at is not None:
            e2e.append(max(0.0, (finished_at - created_at).total_seconds()))
    inference.sort()
    e2e.sort()
    usage.inference_count, usage.inference_sum = len(inference), sum(inference)
    usage.inference_p50, usage.inference_p95 = exact_quantile(inference, 0.5), exact_quantile(inference, 0.95)
    usage.inference_hist = histogram_of(inference)
    usage.e2e_count, usage.e2e_sum = len(e2e), sum(e2e)
    usage.e2e_p50, usage.e2e_p95 = exact_quantile(e2e, 0.5), exact_quantile(e2e, 0.95)
    usage.e2e_hist = histogram_of(e2e)

    entries = CreditEntry.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    for user_id, kind, total in entries.values_list("user_id", "kind").annotate(total=Sum("amount")):
        total = total or 0
        if kind == CreditEntry.Kind.CHARGE:
            usage.credits_charged += -total
            user_row(user_id).credits_charged += -total
        elif kind == CreditEntry.Kind.REFUND:
            usage.credits_refunded += total
            user_row(user_id).credits_refunded += total
        elif kind == CreditEntry.Kind.GRANT:
            usage.credits_granted += total
        elif kind == CreditEntry.Kind.ADJUST:
            usage.credits_adjusted += total

    errors = ProviderError.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    usage.provider_errors = {
        row["kind"]: row["n"] for row in errors.values("kind").annotate(n=Count("id")).order_by("kind")
    }
    return DayUsage(usage=usage, users=users)


@transaction.atomic
def usage_rollup_build_day(*, day: date, now: datetime | None = None) -> DailyUsage:
    """Store (or replace) one day's rollup rows."""
    computed = usage_day_compute(day=day, now=now)
    usage = computed.usage
    # Lock the day's row so two builders of the same day (beat and a manual rebuild) take turns.
    existing = DailyUsage.objects.select_for_update().filter(day=day).first()
    if existing is not None:
        usage.pk = existing.pk
    usage.save()
    DailyUserUsage.objects.filter(day=day).delete()
    DailyUserUsage.objects.bulk_create(list(computed.users.values()))
    return usage


def usage_rollup_build_range(*, start: date, end: date) -> int:
    """Rebuild every day from start to end inclusive; returns how many days were built."""
    if end < start:
        raise ValueError("the range ends before it starts")
    built = 0
    day = start
    while day <= end:
        usage_rollup_build_day(day=day)
        built += 1
        day += timedelta(days=1)
    return built


def usage_rollup_refresh(*, now: datetime | None = None, backfill_days: int = 31) -> list[date]:
    """The beat task's work: rebuild today and yesterday (late finishes and refunds land on yesterday's
    jobs after midnight), and fill in any missing day of the last `backfill_days` so a fresh deploy
    or a stopped beat heals by itself. Returns the days built."""
    today = local_today(now)
    yesterday = today - timedelta(days=1)
    window = [today - timedelta(days=n) for n in range(backfill_days)]  # today and the days before it
    present = set(DailyUsage.objects.filter(day__gte=window[-1], day__lt=yesterday).values_list("day", flat=True))
    days = sorted(day for day in window if day >= yesterday or day not in present)
    for day in days:
        usage_rollup_build_day(day=day, now=now)
    return days


def operator_alert_resolve(*, alert: OperatorAlert, staff_user: AbstractBaseUser) -> bool:
    """Mark an alert resolved; False when it already was (so the action is safe to repeat)."""
    updated = OperatorAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=staff_user
    )
    return bool(updated)


def signup_record(*, user: AbstractBaseUser, ip: str) -> SignupRecord:
    """Remember where an account was created from (the dashboard's sign-up farming table)."""
    record, _ = SignupRecord.objects.get_or_create(user_id=user.pk, defaults={"ip": ip})
    return record
