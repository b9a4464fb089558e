"""Every figure the staff dashboard and the per-user usage page show. Staff-only reads.

Past days come from the rollup (a few hundred rows whatever the history), today from four indexed
queries over today's jobs, and the live queue and alerts from small queries on in-flight jobs.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Min, Q, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from editor.dashboard.histogram import histogram_merge, histogram_quantile
from editor.dashboard.models import DailyUsage, DailyUserUsage, SignupRecord
from editor.dashboard.services import DayUsage, day_bounds, local_today, refused_jobs, usage_day_compute
from editor.models import (
    ZERO_DECIMAL_CURRENCIES,
    CreditAccount,
    CreditEntry,
    EditJob,
    OperatorAlert,
    ProviderError,
    Purchase,
    WrongResultReport,
)
from fashionsite.heartbeat import HeartbeatsUnavailable, worker_heartbeats

# The error kinds the dashboard always shows, in this order (others appear after them when present).
ERROR_KINDS = ["401", "406", "422", "429", "5xx", "network"]
TOP_USERS = 10
SUM_NAMES = ("jobs", "succeeded", "failed", "refused", "charged", "refunded")


@dataclass
class Period:
    start: date
    end: date  # inclusive
    key: str  # today, 7d, 30d or custom

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def period_for(*, key: str, start: date | None = None, end: date | None = None, today: date | None = None) -> Period:
    today = today or local_today()
    if key == "today":
        return Period(today, today, key)
    if key == "30d":
        return Period(today - timedelta(days=29), today, key)
    if key == "custom" and start and end:
        return Period(start, min(end, today), key)
    return Period(today - timedelta(days=6), today, "7d")


@dataclass
class TopUser:
    user_id: int
    email: str
    jobs: int
    succeeded: int
    failed: int
    credits: int  # charged minus refunded in the period
    refused: int = 0  # refused for the photo or prompt (not in `failed`)


@dataclass
class Timing:
    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    exact: bool  # False when read from the merged histogram of several days


@dataclass
class QueueState:
    in_flight: dict[str, int]
    total: int
    oldest_created_at: datetime | None
    oldest_age_seconds: float | None
    near_retention: int
    backlog_threshold_seconds: int
    workers: list[dict[str, Any]]
    workers_error: str = ""

    @property
    def workers_alive(self) -> int:
        return sum(1 for worker in self.workers if worker.get("alive"))


@dataclass
class DashboardAlert:
    kind: str  # provider_no_credits, provider_key_rejected, backlog, retention
    level: str  # error or warning
    message: str
    count: int = 1


@dataclass
class SignupBurst:
    """One client address that created many accounts on one day: suspected credit farming."""

    day: date
    ip: str
    signups: int
    confirmed: int  # of those, accounts whose welcome credits went out (a confirmed address)


@dataclass
class DashboardData:
    period: Period
    days: list[DailyUsage]
    missing_days: list[date]
    jobs_total: int
    succeeded: int
    failed: int  # the provider's or the site's fault
    refused: int  # refused for the person's photo or prompt (no person, no colour, content blocked)
    expired: int
    in_flight: int
    success_rate: float | None  # succeeded / (succeeded + failed + expired), 0..1: refusals left out
    inference: Timing
    e2e: Timing
    credits_charged: int
    credits_refunded: int
    credits_granted: int
    credits_adjusted: int
    active_users: int
    top_by_edits: list[TopUser]
    top_by_credits: list[TopUser]
    provider_errors: dict[str, int]
    queue: QueueState
    alerts: list[DashboardAlert] = field(default_factory=list)
    signup_farming: list[SignupBurst] = field(default_factory=list)

    @property
    def success_rate_percent(self) -> float | None:
        return None if self.success_rate is None else 100 * self.success_rate

    def chart_data(self) -> dict[str, Any]:
        """The per-day series the charts draw (JSON-ready)."""
        def rate(row: DailyUsage) -> float | None:
            finished = row.jobs_succeeded + row.jobs_failed + row.jobs_expired  # refusals are not the provider's
            return round(100 * row.jobs_succeeded / finished, 1) if finished else None

        return {
            "labels": [row.day.isoformat() for row in self.days],
            "succeeded": [row.jobs_succeeded for row in self.days],
            "failed": [row.jobs_failed for row in self.days],
            "refused": [row.jobs_refused for row in self.days],
            "expired": [row.jobs_expired for row in self.days],
            "in_flight": [row.jobs_in_flight for row in self.days],
            "success_rate": [rate(row) for row in self.days],
            "inference_p50": [row.inference_p50 for row in self.days],
            "inference_p95": [row.inference_p95 for row in self.days],
            "e2e_p50": [row.e2e_p50 for row in self.days],
            "e2e_p95": [row.e2e_p95 for row in self.days],
            "credits_charged": [row.credits_charged for row in self.days],
            "credits_refunded": [row.credits_refunded for row in self.days],
            "credits_granted": [row.credits_granted for row in self.days],
            "active_users": [row.active_users for row in self.days],
            "error_kinds": list(self.provider_errors),
            "error_counts": list(self.provider_errors.values()),
        }


def _timing(days: list[DailyUsage], prefix: str) -> Timing:
    count = sum(getattr(row, f"{prefix}_count") for row in days)
    total = sum(getattr(row, f"{prefix}_sum") for row in days)
    mean = total / count if count else None
    with_data = [row for row in days if getattr(row, f"{prefix}_count")]
    if len(with_data) <= 1:
        # One day (or none) holds every value: its exact percentiles are the period's.
        row = with_data[0] if with_data else None
        return Timing(count, mean, getattr(row, f"{prefix}_p50", None), getattr(row, f"{prefix}_p95", None), True)
    merged = histogram_merge(getattr(row, f"{prefix}_hist") for row in with_data)
    return Timing(count, mean, histogram_quantile(merged, 0.5), histogram_quantile(merged, 0.95), False)


def _period_days(period: Period, *, now: datetime) -> tuple[list[DailyUsage], list[date], dict[int, dict[str, int]]]:
    """The period's day rows (rollup for past days, live for today) and per-user sums."""
    today = local_today(now)
    past_end = min(period.end, today - timedelta(days=1))
    stored: dict[date, DailyUsage] = {}
    per_user: dict[int, dict[str, int]] = {}
    if period.start <= past_end:
        stored = {row.day: row for row in DailyUsage.objects.filter(day__gte=period.start, day__lte=past_end)}
        sums = (
            DailyUserUsage.objects.filter(day__gte=period.start, day__lte=past_end)
            .order_by()
            .values("user_id")
            .annotate(
                jobs=Sum("jobs_total"),
                succeeded=Sum("jobs_succeeded"),
                failed=Sum("jobs_failed"),
                refused=Sum("jobs_refused"),
                charged=Sum("credits_charged"),
                refunded=Sum("credits_refunded"),
            )
        )
        per_user = {
            row["user_id"]: {name: int(row[name] or 0) for name in SUM_NAMES}  # type: ignore[literal-required]
            for row in sums
        }
    live: DayUsage | None = None
    if period.start <= today <= period.end:
        live = usage_day_compute(day=today, now=now)
        stored[today] = live.usage
        for user_id, user_row in live.users.items():
            sums_row = per_user.setdefault(
                user_id, {name: 0 for name in SUM_NAMES}
            )
            sums_row["jobs"] += user_row.jobs_total
            sums_row["succeeded"] += user_row.jobs_succeeded
            sums_row["failed"] += user_row.jobs_failed
            sums_row["refused"] += user_row.jobs_refused
            sums_row["charged"] += user_row.credits_charged
            sums_row["refunded"] += user_row.credits_refunded
    days: list[DailyUsage] = []
    missing: list[date] = []
    for day in period.days:
        if day in stored:
            days.append(stored[day])
        else:
            # Not built yet (the beat task backfills the last month; older days need the command).
            missing.append(day)
            days.append(DailyUsage(day=day, built_at=now))
    return days, missing, per_user


def _top_users(per_user: dict[int, dict[str, int]]) -> tuple[int, list[TopUser], list[TopUser]]:
    active = {user_id: row for user_id, row in per_user.items() if row["jobs"]}
    by_edits = sorted(active, key=lambda uid: (-active[uid]["jobs"], uid))[:TOP_USERS]
    spend = {uid: row["charged"] - row["refunded"] for uid, row in per_user.items()}
    by_credits = sorted((uid for uid in spend if spend[uid] > 0), key=lambda uid: (-spend[uid], uid))[:TOP_USERS]
    wanted = set(by_edits) | set(by_credits)
    emails: dict[int, str] = {}
    if wanted:
        emails = dict(get_user_model().objects.filter(pk__in=wanted).values_list("pk", "email"))

    def top(uid: int) -> TopUser:
        row = per_user[uid]
        return TopUser(uid, emails.get(uid, "?"), row["jobs"], row["succeeded"], row["failed"], spend[uid],
                       row["refused"])

    return len(active), [top(uid) for uid in by_edits], [top(uid) for uid in by_credits]


def live_queue(*, now: datetime | None = None) -> QueueState:
    now = now or timezone.now()
    in_flight: dict[str, int] = {}
    oldest: datetime | None = None
    rows = (
        EditJob.objects.filter(state__in=EditJob.IN_FLIGHT_STATES)
        .order_by()
        .values("state", "provider_status")
        .annotate(n=Count("id"), oldest=Min("created_at"))
    )
    for row in rows:
        # Submitted jobs split by what the provider last said (QUEUED / PROCESSING).
        label = row["state"] if row["state"] == EditJob.State.CREATED else (
            f"{row['state']} ({row['provider_status'].lower()})" if row["provider_status"] else row["state"]
        )
        in_flight[label] = in_flight.get(label, 0) + row["n"]
        if oldest is None or row["oldest"] < oldest:
            oldest = row["oldest"]
    retention = timedelta(seconds=settings.FASHION_AI_RETENTION_SECONDS)
    margin = timedelta(seconds=settings.DASHBOARD_RETENTION_WARNING_SECONDS)
    near = EditJob.objects.filter(
        state=EditJob.State.SUBMITTED, submitted_at__lte=now - retention + margin
    ).count()
    workers, workers_error = _worker_heartbeats()
    return QueueState(
        in_flight=in_flight,
        total=sum(in_flight.values()),
        oldest_created_at=oldest,
        oldest_age_seconds=(now - oldest).total_seconds() if oldest else None,
        near_retention=near,
        backlog_threshold_seconds=settings.DASHBOARD_BACKLOG_ALERT_SECONDS,
        workers=workers,
        workers_error=workers_error,
    )


def _worker_heartbeats() -> tuple[list[dict[str, Any]], str]:
    """The Celery workers' heartbeats, or an empty list and why (the page must render with Redis down)."""
    try:
        return [dict(beat) for beat in worker_heartbeats()], ""
    except HeartbeatsUnavailable as exc:
        return [], str(exc)


@dataclass
class RecentFaults:
    """Edits that finished in the last hour, for the provider-fault alert."""

    finished: int  # succeeded, failed or expired, refusals left out
    faults: int  # failed (not refused) or expired
    refused: int

    @property
    def percent(self) -> float:
        return 100 * self.faults / self.finished if self.finished else 0.0


def recent_faults(*, now: datetime, window: timedelta = timedelta(hours=1)) -> RecentFaults:
    """One range scan on the finished_at index. Refusals (the person's photo or prompt) never count as faults,
    so a run of photos with nobody in them cannot page an operator."""
    final = [EditJob.State.SUCCEEDED, EditJob.State.FAILED, EditJob.State.EXPIRED]
    refused = refused_jobs()
    row = EditJob.objects.filter(finished_at__gte=now - window, finished_at__lte=now, state__in=final).aggregate(
        total=Count("id"),
        refused=Count("id", filter=refused),
        faults=Count("id", filter=Q(state=EditJob.State.EXPIRED) | (Q(state=EditJob.State.FAILED) & ~refused)),
    )
    return RecentFaults(finished=row["total"] - row["refused"], faults=row["faults"], refused=row["refused"])


def dashboard_alerts(*, queue: QueueState, now: datetime | None = None) -> list[DashboardAlert]:
    alerts: list[DashboardAlert] = []
    open_alerts = (
        OperatorAlert.objects.filter(resolved_at__isnull=True)
        .order_by()
        .values("kind")
        .annotate(n=Count("id"))
    )
    messages: dict[str, str] = {
        OperatorAlert.Kind.PROVIDER_NO_CREDITS: "The provider answered 406: our provider account is out of credits. "
        "Top it up, then resolve the alert in the admin.",
        OperatorAlert.Kind.PROVIDER_KEY_REJECTED: "The provider answered 401: our API key is rejected. "
        "Check FASHION_AI_API_KEY, then resolve the alert in the admin.",
        OperatorAlert.Kind.ACCOUNT_HELD: "A refunded or disputed payment's credits were already spent: the account "
        "is held (no new edits) until it is paid. See the alert in the admin for the user.",
        OperatorAlert.Kind.PAYMENT_REVERSED: "A payment was disputed or partly refunded: see the alert in the admin.",
        OperatorAlert.Kind.PAYMENT_MISMATCH: "A Stripe payment did not match its purchase: no credits were given. "
        "See the alert in the admin.",
    }
    for row in sorted(open_alerts, key=lambda r: r["kind"]):
        alerts.append(DashboardAlert(row["kind"], "error", messages.get(row["kind"], row["kind"]), row["n"]))
    if queue.oldest_age_seconds is not None and queue.oldest_age_seconds > queue.backlog_threshold_seconds:
        alerts.append(
            DashboardAlert(
                "backlog",
                "warning",
                f"Backlog: the oldest job in flight has waited {int(queue.oldest_age_seconds // 60)} min "
                f"(threshold {queue.backlog_threshold_seconds // 60} min). Are the workers running?",
                queue.total,
            )
        )
    if queue.workers_error:
        alerts.append(DashboardAlert("workers", "warning", f"Worker heartbeats unreadable: {queue.workers_error}."))
    elif not queue.workers_alive:
        alerts.append(
            DashboardAlert("workers", "warning", "No Celery worker has sent a heartbeat recently: jobs will not move.")
        )
    faults = recent_faults(now=now or timezone.now())
    if faults.finished >= settings.DASHBOARD_FAULT_ALERT_MIN_EDITS and (
        faults.percent >= settings.DASHBOARD_FAULT_ALERT_PERCENT
    ):
        alerts.append(
            DashboardAlert(
                "provider_faults",
                "warning",
                f"{faults.faults} of the {faults.finished} edits finished in the last hour failed or expired "
                f"({faults.percent:.0f} %, threshold {settings.DASHBOARD_FAULT_ALERT_PERCENT} %); "
                f"{faults.refused} more were refused for their photo or prompt and are not counted.",
                faults.faults,
            )
        )
    if queue.near_retention:
        alerts.append(
            DashboardAlert(
                "retention",
                "warning",
                f"{queue.near_retention} job(s) are close to the provider's retention deadline "
                f"({settings.FASHION_AI_RETENTION_SECONDS // 60} min): their results will be lost if not fetched soon.",
                queue.near_retention,
            )
        )
    return alerts


def dashboard_data(*, period: Period, now: datetime | None = None) -> DashboardData:
    now = now or timezone.now()
    days, missing, per_user = _period_days(period, now=now)
    succeeded = sum(row.jobs_succeeded for row in days)
    failed = sum(row.jobs_failed for row in days)
    expired = sum(row.jobs_expired for row in days)
    finished = succeeded + failed + expired
    active, by_edits, by_credits = _top_users(per_user)
    errors: dict[str, int] = {kind: 0 for kind in ERROR_KINDS}
    for row in days:
        for kind, count in row.provider_errors.items():
            errors[kind] = errors.get(kind, 0) + count
    queue = live_queue(now=now)
    return DashboardData(
        period=period,
        days=days,
        missing_days=missing,
        jobs_total=sum(row.jobs_total for row in days),
        succeeded=succeeded,
        failed=failed,
        refused=sum(row.jobs_refused for row in days),
        expired=expired,
        in_flight=sum(row.jobs_in_flight for row in days),
        success_rate=succeeded / finished if finished else None,
        inference=_timing(days, "inference"),
        e2e=_timing(days, "e2e"),
        credits_charged=sum(row.credits_charged for row in days),
        credits_refunded=sum(row.credits_refunded for row in days),
        credits_granted=sum(row.credits_granted for row in days),
        credits_adjusted=sum(row.credits_adjusted for row in days),
        active_users=active,
        top_by_edits=by_edits,
        top_by_credits=by_credits,
        provider_errors=errors,
        queue=queue,
        alerts=dashboard_alerts(queue=queue, now=now),
        signup_farming=signup_bursts(period=period),
    )


def signup_bursts(*, period: Period, limit: int = 20) -> list[SignupBurst]:
    """Addresses with at least DASHBOARD_SIGNUP_FARMING_THRESHOLD sign-ups on one day of the period, most first."""
    start, _ = day_bounds(period.start)
    _, end = day_bounds(period.end)
    threshold = settings.DASHBOARD_SIGNUP_FARMING_THRESHOLD
    counts: dict[tuple[date, str], list[int]] = {}
    rows = SignupRecord.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
        "created_at", "ip", "user_id"
    )
    for created_at, ip, user_id in rows:
        counts.setdefault((timezone.localdate(created_at), ip), []).append(user_id)
    suspects = {key: users for key, users in counts.items() if len(users) >= threshold}
    welcomed = set(
        CreditEntry.objects.filter(
            user_id__in=[u for users in suspects.values() for u in users],
            kind=CreditEntry.Kind.GRANT, created_by__isnull=True, idempotency_key__isnull=False,
        ).values_list("user_id", flat=True)
    )
    bursts = [
        SignupBurst(day=day, ip=ip, signups=len(users), confirmed=sum(1 for u in users if u in welcomed))
        for (day, ip), users in suspects.items()
    ]
    bursts.sort(key=lambda b: (-b.signups, b.day, b.ip))
    return bursts[:limit]


# --- One user's usage (staff) ------------------------------------------------------------------


@dataclass
class UserUsage:
    user: Any
    balance: int
    ledger_sum: int
    jobs_by_state: dict[str, int]
    credits_by_kind: dict[str, int]
    recent_jobs: list[EditJob]
    failures: list[EditJob]
    ledger: list[CreditEntry]
    provider_errors: int


def user_usage(*, user_id: int, limit: int = 50) -> UserUsage:
    user = get_object_or_404(get_user_model(), pk=user_id)
    account = CreditAccount.objects.filter(user_id=user_id).first()
    jobs = EditJob.objects.filter(owner_id=user_id)
    by_state = {row["state"]: row["n"] for row in jobs.order_by().values("state").annotate(n=Count("id"))}
    entries = CreditEntry.objects.filter(user_id=user_id).order_by()
    by_kind = {row["kind"]: row["total"] for row in entries.values("kind").annotate(total=Sum("amount"))}
    failures = jobs.filter(state__in=[EditJob.State.FAILED, EditJob.State.EXPIRED])
    return UserUsage(
        user=user,
        balance=account.balance if account else 0,
        ledger_sum=sum(by_kind.values()),
        jobs_by_state={state: by_state.get(state, 0) for state in EditJob.State.values},
        credits_by_kind={kind: by_kind.get(kind, 0) for kind in CreditEntry.Kind.values},
        recent_jobs=list(jobs.order_by("-created_at")[:limit]),
        failures=list(failures.order_by("-created_at")[:limit]),
        ledger=list(CreditEntry.objects.filter(user_id=user_id).select_related("job", "created_by")[:limit]),
        provider_errors=ProviderError.objects.filter(job__owner_id=user_id).count(),
    )


def usage_rows_for_export(*, period: Period, now: datetime | None = None) -> Iterable[list[Any]]:
    """A period's usage per day as CSV rows (header first)."""
    days, _, _ = _period_days(period, now=now or timezone.now())
    yield [
        "day", "jobs", "succeeded", "failed", "refused", "expired", "in_flight", "active_users",
        "inference_p50_s", "inference_p95_s", "e2e_p50_s", "e2e_p95_s",
        "credits_charged", "credits_refunded", "credits_granted", "credits_adjusted", "provider_errors",
    ]
    for row in days:
        yield [
            row.day.isoformat(), row.jobs_total, row.jobs_succeeded, row.jobs_failed, row.jobs_refused,
            row.jobs_expired, row.jobs_in_flight, row.active_users,
            _round(row.inference_p50), _round(row.inference_p95), _round(row.e2e_p50), _round(row.e2e_p95),
            row.credits_charged, row.credits_refunded, row.credits_granted, row.credits_adjusted,
            sum(row.provider_errors.values()),
        ]


def _round(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"



# --- One job's timeline (admin) ---------------------------------------------------------------------


@dataclass
class TimelineEvent:
    at: datetime
    what: str
    detail: str = ""


def job_timeline(*, job: EditJob) -> list[TimelineEvent]:
    """Every recorded moment of a job: its transitions, its ledger entries and its provider errors."""
    events = [
        TimelineEvent(at, what)
        for at, what in [
            (job.created_at, "created"),
            (job.submitted_at, "submitted to the provider"),
            (job.processing_at, "processing at the provider"),
            (job.provider_completed_at, "provider completed"),
            (job.finished_at, f"finished: {job.state}"),
        ]
        if at is not None
    ]
    if job.finished_at and job.error_code:
        events[-1].detail = f"{job.error_code}: {job.error_detail}"[:300]
    for entry in CreditEntry.objects.filter(job=job).order_by("created_at", "id"):
        events.append(TimelineEvent(entry.created_at, f"ledger {entry.kind} {entry.amount:+d}", entry.reason))
    for error in ProviderError.objects.filter(job=job).order_by("created_at", "id"):
        events.append(TimelineEvent(error.created_at, f"provider error {error.kind}", error.detail))
    return sorted(events, key=lambda event: event.at)


@dataclass
class Revenue:
    currency: str
    purchases: int
    credits: int
    gross_minor: int  # every payment of the period
    reversed_minor: int  # of those, what went back since: refunds (partial ones by their amount) and disputes
    credits_reversed: int = 0  # the credits those reversals took back

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.reversed_minor

    def _show(self, minor: int) -> str:
        if self.currency in ZERO_DECIMAL_CURRENCIES:
            return str(minor)
        return f"{minor // 100}.{minor % 100:02d}"

    @property
    def gross(self) -> str:
        return self._show(self.gross_minor)

    @property
    def net(self) -> str:
        return self._show(self.net_minor)


@dataclass
class PurchaseFigures:
    revenue: list[Revenue]
    paid: int
    refunded: int
    disputed: int
    waiting: int  # Checkout started, no payment (yet)
    held_accounts: int
    partly_refunded: int = 0
    processing: int = 0  # delayed methods (bank debits) the bank has not confirmed yet
    failed: int = 0  # delayed payments the bank refused


def purchase_figures(*, period: Period) -> PurchaseFigures:
    """Purchases paid in the period, by currency (read live: a few rows a day, no rollup needed). What went back is
    each purchase's own running total (`amount_reversed_minor`), so a partial refund counts by its amount."""
    start, _ = day_bounds(period.start)
    _, end = day_bounds(period.end)
    paid = Purchase.objects.filter(paid_at__gte=start, paid_at__lt=end, status__in=Purchase.PAID_STATUSES)
    rows = (
        paid.order_by().values("currency")
        .annotate(n=Count("id"), credits=Sum("credits"), gross=Sum("amount_minor"),
                  reversed=Sum("amount_reversed_minor"), credits_reversed=Sum("credits_reversed"))
        .order_by("currency")
    )
    counts = dict(paid.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"))
    started = dict(
        Purchase.objects.filter(created_at__gte=start, created_at__lt=end).exclude(status__in=Purchase.PAID_STATUSES)
        .order_by().values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return PurchaseFigures(
        revenue=[Revenue(r["currency"], r["n"], r["credits"] or 0, r["gross"] or 0, r["reversed"] or 0,
                         r["credits_reversed"] or 0) for r in rows],
        paid=sum(counts.values()),
        refunded=counts.get(Purchase.Status.REFUNDED, 0),
        disputed=counts.get(Purchase.Status.DISPUTED, 0),
        waiting=started.get(Purchase.Status.PENDING, 0),
        held_accounts=CreditAccount.objects.filter(owed__gt=0).count(),
        partly_refunded=counts.get(Purchase.Status.PARTLY_REFUNDED, 0),
        processing=started.get(Purchase.Status.PROCESSING, 0),
        failed=started.get(Purchase.Status.FAILED, 0),
    )


@dataclass(frozen=True)
class WrongResults:
    """"This result is wrong" reports in a period: how many, how many refunded, their share of finished edits,
    and the latest ones with what people said."""

    reported: int
    refunded: int
    succeeded: int
    by_reason: dict[str, int]
    latest: list[WrongResultReport]

    @property
    def percent_of_done(self) -> float | None:
        return round(100 * self.reported / self.succeeded, 1) if self.succeeded else None


def wrong_results(*, period: Period, succeeded: int, latest: int = 20) -> WrongResults:
    """Two queries: one aggregate (totals and per reason) and the latest reports. `succeeded` is the period's
    finished edits from the rollup (DashboardData.succeeded), so the share costs nothing more."""
    start, _ = day_bounds(period.start)
    _, end = day_bounds(period.end)
    reports = WrongResultReport.objects.filter(created_at__gte=start, created_at__lt=end)
    reasons = WrongResultReport.Reason.choices
    counts = reports.aggregate(
        reported=Count("id"), refunded=Count("id", filter=Q(refunded=True)),
        **{f"r_{value}": Count("id", filter=Q(reason=value)) for value, _ in reasons},
    )
    return WrongResults(
        reported=counts["reported"] or 0,
        refunded=counts["refunded"] or 0,
        succeeded=succeeded,
        by_reason={str(label): counts[f"r_{value}"] for value, label in reasons if counts[f"r_{value}"]},
        latest=list(reports.select_related("user").order_by("-created_at")[:latest]),
    )
