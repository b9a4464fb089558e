"""A known usage history for the dashboard tests (the `history` fixture), written straight through the ORM
with set timestamps, and the expected figures computed from it in plain Python (independently of the rollup code)."""
from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

DAYS = 10  # today and the nine days before it


@dataclass
class JobRecord:
    id: Any
    owner_id: int
    state: str
    created_at: datetime
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    inference_time: float | None = None
    provider_status: str = ""
    error_code: str = ""

    @property
    def refused(self) -> bool:
        """Failed for the person's photo or prompt: the dashboard counts it apart from failures."""
        return self.state == "failed" and self.error_code in ("edit_refused", "content_blocked")

    @property
    def outcome(self) -> str:
        return "refused" if self.refused else self.state


@dataclass
class EntryRecord:
    user_id: int
    kind: str
    amount: int
    created_at: datetime


@dataclass
class History:
    now: datetime
    today: date
    staff: Any
    users: list[Any]
    jobs: list[JobRecord] = field(default_factory=list)
    entries: list[EntryRecord] = field(default_factory=list)
    errors: list[tuple[str, datetime]] = field(default_factory=list)
    open_alerts: Counter[str] = field(default_factory=Counter)

    def day_of(self, moment: datetime) -> date:
        return timezone.localdate(moment)

    def days(self, start: date, end: date) -> list[date]:
        return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


@pytest.fixture
def history(make_user: Callable[..., Any], settings: Any) -> History:
    from editor.models import CreditAccount, CreditEntry, EditJob, OperatorAlert, Photo, ProviderError

    settings.STARTER_CREDITS = 0  # the ledger holds exactly what the history writes
    rng = random.Random(20261125)
    causes = random.Random(20261201)  # why a failed edit failed: its own stream, so the rest of the history holds
    now = timezone.now().replace(microsecond=0)
    today = timezone.localdate(now)
    staff = make_user(is_staff=True, is_superuser=True)
    users = [make_user() for _ in range(8)]
    weights = [12, 9, 7, 5, 4, 3, 1, 1]  # a few heavy users, a long tail
    photos = {user.pk: Photo(owner=user, image=f"users/{user.pk}/photos/p.jpg", width=512, height=512)
              for user in users}
    Photo.objects.bulk_create(photos.values())
    h = History(now=now, today=today, staff=staff, users=users)

    for offset in range(DAYS - 1, -1, -1):
        day = today - timedelta(days=offset)
        start = _day_start(day)
        span = 86_399.0 if offset else max(1.0, (now - start).total_seconds() - 61)
        for _ in range(rng.randint(22, 40)):
            owner = rng.choices(users, weights)[0]
            created = start + timedelta(seconds=rng.uniform(0, span))
            state = rng.choices(["succeeded", "failed", "expired"], [75, 15, 10])[0]
            job = JobRecord(id=None, owner_id=owner.pk, state=state, created_at=created,
                            submitted_at=created + timedelta(seconds=rng.uniform(0.2, 3)))
            if state == "succeeded":
                # Some providers report no metrics: the job counts for end-to-end time, not provider time.
                job.inference_time = None if rng.random() < 0.06 else round(rng.uniform(3, 90), 3)
                job.finished_at = created + timedelta(seconds=(job.inference_time or 40) + rng.uniform(1, 15))
                job.provider_status = "COMPLETED"
            elif state == "failed":
                job.finished_at = created + timedelta(seconds=rng.uniform(5, 60))
                job.provider_status = "FAILED"
                job.error_code = causes.choice(["provider_failed", "provider_5xx", "edit_refused", "edit_refused",
                                                "content_blocked"])
            else:
                job.finished_at = created + timedelta(seconds=3600 + rng.uniform(0, 120))
                job.error_code = "expired"
            h.jobs.append(job)
    # Jobs in flight right now: three waiting to be submitted, four at the provider...
    for n in range(7):
        created = now - timedelta(seconds=5 + 8 * n)
        status = ["", "", "", "QUEUED", "QUEUED", "PROCESSING", "PROCESSING"][n]
        h.jobs.append(JobRecord(id=None, owner_id=users[n % 3].pk, state="created" if not status else "submitted",
                                created_at=created, submitted_at=created + timedelta(seconds=1) if status else None,
                                provider_status=status))
    # ...and one stuck for two days: past the backlog threshold and the provider's retention deadline.
    stuck = now - timedelta(days=2, hours=1)
    h.jobs.append(JobRecord(id=None, owner_id=users[4].pk, state="submitted", created_at=stuck,
                            submitted_at=stuck + timedelta(seconds=2), provider_status="PROCESSING"))

    rows = [
        EditJob(owner_id=j.owner_id, photo=photos[j.owner_id], prompt=f"a person wearing look {i}",
                clothing="topwear" if i % 3 else "bottomwear", state=j.state, cost_credits=1,
                request_id=f"req-{i:05d}", provider_status=j.provider_status, inference_time=j.inference_time,
                submitted_at=j.submitted_at, finished_at=j.finished_at,
                error_code=j.error_code)
        for i, j in enumerate(h.jobs)
    ]
    EditJob.objects.bulk_create(rows)
    for row, record in zip(rows, h.jobs, strict=True):
        row.created_at = record.created_at  # auto_now_add stamped "now": put the history's time back
        record.id = row.pk
    EditJob.objects.bulk_update(rows, ["created_at"])

    # The ledger: a grant per user, a charge per job, a refund per failed/expired job, two staff adjustments.
    for user in users:
        h.entries.append(EntryRecord(user.pk, "grant", 200, _day_start(today - timedelta(days=rng.randint(0, DAYS - 1)))
                                     + timedelta(hours=rng.uniform(0, 1))))
    job_entries: list[tuple[EntryRecord, Any]] = []
    for record in h.jobs:
        charge = EntryRecord(record.owner_id, "charge", -1, record.created_at + timedelta(milliseconds=5))
        job_entries.append((charge, record.id))
        if record.state in ("failed", "expired"):
            assert record.finished_at is not None
            job_entries.append((EntryRecord(record.owner_id, "refund", 1, record.finished_at), record.id))
    h.entries += [entry for entry, _ in job_entries]
    h.entries.append(EntryRecord(users[0].pk, "adjust", 5, now - timedelta(days=3)))
    h.entries.append(EntryRecord(users[1].pk, "adjust", -2, now - timedelta(days=1)))
    job_of = {id(entry): job_id for entry, job_id in job_entries}
    balance: dict[int, int] = defaultdict(int)
    entry_rows = []
    for entry in sorted(h.entries, key=lambda e: e.created_at):
        balance[entry.user_id] += entry.amount
        entry_rows.append(CreditEntry(user_id=entry.user_id, kind=entry.kind, amount=entry.amount,
                                      balance_after=balance[entry.user_id], job_id=job_of.get(id(entry)),
                                      reason=f"history {entry.kind}",
                                      created_by=staff if entry.kind in ("grant", "adjust") else None))
    created_rows = CreditEntry.objects.bulk_create(entry_rows)
    for row, entry in zip(created_rows, sorted(h.entries, key=lambda e: e.created_at), strict=True):
        row.created_at = entry.created_at
    CreditEntry.objects.bulk_update(created_rows, ["created_at"])
    for user in users:
        CreditAccount.objects.update_or_create(user=user, defaults={"balance": balance[user.pk]})

    kinds = ["401", "406", "422", "429", "5xx", "network", "400"]
    error_rows = []
    for _ in range(45):
        kind = rng.choices(kinds, [2, 1, 6, 4, 3, 3, 1])[0]
        back = rng.uniform(0, (DAYS - 1) * 86_400 + (now - _day_start(today)).total_seconds())
        moment = now - timedelta(seconds=back)
        h.errors.append((kind, moment))
        error_rows.append(ProviderError(kind=kind, detail=f"history {kind}"))
    ProviderError.objects.bulk_create(error_rows)
    for row, (_, moment) in zip(error_rows, h.errors, strict=True):
        row.created_at = moment
    ProviderError.objects.bulk_update(error_rows, ["created_at"])

    OperatorAlert.objects.create(kind="provider_no_credits", message="406 from the provider")
    OperatorAlert.objects.create(kind="provider_no_credits", message="406 again")
    OperatorAlert.objects.create(kind="provider_key_rejected", message="401 from the provider", resolved_at=now)
    h.open_alerts["provider_no_credits"] = 2
    return h


# --- Expected figures, computed from the history records alone -------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q * 100)) if values else None


def assert_quantile(got: float | None, values: list[float], q: float, *, exact: bool) -> None:
    """Exact: numpy's linear percentile. Approximate (several days merged): within the 2 % bucket around
    the order statistics that bracket the wanted rank."""
    if not values:
        assert got is None
        return
    assert got is not None
    if exact:
        assert math.isclose(got, percentile(values, q), rel_tol=1e-9), (got, percentile(values, q))
        return
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = ordered[math.floor(rank)], ordered[math.ceil(rank)]
    assert low / 1.0201 <= got <= high * 1.0201, (got, low, high)


@dataclass
class Expected:
    jobs: list[JobRecord]
    per_day: dict[date, dict[str, Any]]
    succeeded: int
    failed: int
    refused: int
    expired: int
    in_flight: int
    inference: list[float]
    e2e: list[float]
    credits: dict[str, int]
    active_users: int
    top_by_edits: list[tuple[int, int, int, int, int]]
    top_by_credits: list[tuple[int, int]]
    errors: dict[str, int]


def _e2e(job: JobRecord) -> float:
    assert job.finished_at is not None
    return (job.finished_at - job.created_at).total_seconds()


def expected_for(h: History, days: Iterable[date]) -> Expected:
    wanted = set(days)
    jobs = [j for j in h.jobs if h.day_of(j.created_at) in wanted]
    entries = [e for e in h.entries if h.day_of(e.created_at) in wanted]
    per_day: dict[date, dict[str, Any]] = {}
    for day in sorted(wanted):
        day_jobs = [j for j in jobs if h.day_of(j.created_at) == day]
        done = [j for j in day_jobs if j.state == "succeeded"]
        day_entries = [e for e in entries if h.day_of(e.created_at) == day]
        per_day[day] = {
            "succeeded": len(done),
            "failed": sum(j.outcome == "failed" for j in day_jobs),
            "refused": sum(j.refused for j in day_jobs),
            "expired": sum(j.state == "expired" for j in day_jobs),
            "in_flight": sum(j.state in ("created", "submitted") for j in day_jobs),
            "inference": [j.inference_time for j in done if j.inference_time is not None],
            "e2e": [_e2e(j) for j in done],
            "charged": -sum(e.amount for e in day_entries if e.kind == "charge"),
            "refunded": sum(e.amount for e in day_entries if e.kind == "refund"),
            "granted": sum(e.amount for e in day_entries if e.kind == "grant"),
            "active_users": len({j.owner_id for j in day_jobs}),
        }
    by_user = Counter(j.owner_id for j in jobs)
    ok_by_user = Counter(j.owner_id for j in jobs if j.state == "succeeded")
    failed_by_user = Counter(j.owner_id for j in jobs if j.outcome == "failed")
    refused_by_user = Counter(j.owner_id for j in jobs if j.refused)
    spend: Counter[int] = Counter()
    for e in entries:
        if e.kind == "charge":
            spend[e.user_id] -= e.amount
        elif e.kind == "refund":
            spend[e.user_id] -= e.amount
    top_edits = sorted(by_user, key=lambda uid: (-by_user[uid], uid))[:10]
    top_credits = sorted((uid for uid in spend if spend[uid] > 0), key=lambda uid: (-spend[uid], uid))[:10]
    errors = {kind: 0 for kind in ["401", "406", "422", "429", "5xx", "network"]}
    for kind, moment in h.errors:
        if h.day_of(moment) in wanted:
            errors[kind] = errors.get(kind, 0) + 1
    done_jobs = [j for j in jobs if j.state == "succeeded"]
    return Expected(
        jobs=jobs,
        per_day=per_day,
        succeeded=len(done_jobs),
        failed=sum(j.outcome == "failed" for j in jobs),
        refused=sum(j.refused for j in jobs),
        expired=sum(j.state == "expired" for j in jobs),
        in_flight=sum(j.state in ("created", "submitted") for j in jobs),
        inference=[j.inference_time for j in done_jobs if j.inference_time is not None],
        e2e=[_e2e(j) for j in done_jobs],
        credits={kind: sum(e.amount for e in entries if e.kind == kind)
                 for kind in ("charge", "refund", "grant", "adjust")},
        active_users=len(by_user),
        top_by_edits=[(uid, by_user[uid], ok_by_user[uid], failed_by_user[uid], refused_by_user[uid])
                      for uid in top_edits],
        top_by_credits=[(uid, spend[uid]) for uid in top_credits],
        errors=errors,
    )


def expected_queue(h: History, *, retention: int, margin: int) -> tuple[dict[str, int], datetime, int]:
    flying = [j for j in h.jobs if j.state in ("created", "submitted")]
    labels: Counter[str] = Counter()
    for j in flying:
        labels[j.state if not j.provider_status else f"{j.state} ({j.provider_status.lower()})"] += 1
    near = sum(
        1 for j in flying
        if j.state == "submitted" and j.submitted_at is not None
        and j.submitted_at <= h.now - timedelta(seconds=retention - margin)
    )
    return dict(labels), min(j.created_at for j in flying), near
