"""The staff dashboard on 100,000 jobs: query count and server time per request.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_dashboard.py [--jobs 100000] [--runs 9]

Needs the throwaway PostgreSQL that scripts/testenv.py starts (DATABASE_URL); it migrates it, bulk-creates a
history (users, photos, jobs over 35 days, their ledger entries, provider errors, a few jobs in flight), builds
the daily rollup, then renders /staff/dashboard/ for today, 7 and 30 days through Django's test client and
prints the query count and the median server time of several requests (plus what the same 30 days cost when
computed from the raw tables, i.e. without the rollup).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")
os.environ.setdefault("STARTER_CREDITS", "0")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from editor.dashboard.services import usage_day_compute, usage_rollup_build_range  # noqa: E402
from editor.models import CreditAccount, CreditEntry, EditJob, Photo, ProviderError  # noqa: E402

DAYS = 35


def build_history(n_jobs: int, n_users: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    # History needs real past timestamps: let bulk_create keep the ones we set.
    for model in (EditJob, CreditEntry, ProviderError):
        model._meta.get_field("created_at").auto_now_add = False  # type: ignore[attr-defined]
    now = timezone.now()
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"bench{i}", email=f"bench{i}@example.com", password="!") for i in range(n_users)]
    )
    photos = Photo.objects.bulk_create(
        [Photo(owner=u, image=f"users/{u.pk}/photos/p.jpg", width=512, height=512) for u in users]
    )
    weights = [1 / (i + 1) for i in range(n_users)]  # a few heavy users, a long tail
    jobs, entries, errors = [], [], []
    for i in range(n_jobs):
        k = rng.choices(range(n_users), weights)[0]
        created = now - timedelta(seconds=rng.uniform(60, DAYS * 86_400))
        state = rng.choices(["succeeded", "failed", "expired"], [85, 10, 5])[0]
        inference = round(rng.lognormvariate(4.1, 0.25), 3) if state == "succeeded" else None
        finished = created + timedelta(seconds=(inference or 30) + rng.uniform(1, 10))
        job = EditJob(id=uuid.uuid4(), owner=users[k], photo=photos[k], prompt=f"a person wearing look {i}",
                      state=state, cost_credits=1, request_id=f"bench-{i}", inference_time=inference,
                      created_at=created, submitted_at=created + timedelta(seconds=1), finished_at=finished,
                      provider_status="COMPLETED" if state == "succeeded" else "FAILED")
        jobs.append(job)
        entries.append(CreditEntry(user=users[k], kind="charge", amount=-1, balance_after=0, job=job,
                                   created_at=created))
        if state != "succeeded":
            entries.append(CreditEntry(user=users[k], kind="refund", amount=1, balance_after=0, job=job,
                                       created_at=finished))
        if rng.random() < 0.05:
            errors.append(ProviderError(kind=rng.choice(["401", "406", "422", "429", "5xx", "network"]), job=job,
                                        created_at=created))
    for n in range(40):  # in flight right now
        k = n % n_users
        created = now - timedelta(seconds=10 + 20 * n)
        jobs.append(EditJob(owner=users[k], photo=photos[k], prompt="in flight", cost_credits=1,
                            state="submitted" if n % 2 else "created", provider_status="QUEUED" if n % 2 else "",
                            created_at=created, submitted_at=created if n % 2 else None))
    for u in users:
        entries.append(CreditEntry(user=u, kind="grant", amount=10_000, balance_after=0, reason="bench",
                                   created_at=now - timedelta(days=DAYS)))
    EditJob.objects.bulk_create(jobs, batch_size=5000)
    CreditEntry.objects.bulk_create(entries, batch_size=5000)
    ProviderError.objects.bulk_create(errors, batch_size=5000)
    CreditAccount.objects.bulk_create([CreditAccount(user=u, balance=0) for u in users], ignore_conflicts=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def measure(client: Client, url: str, runs: int) -> tuple[int, float, float]:
    client.get(url)  # warm-up: templates, connections
    times, queries = [], 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        queries = len(captured.captured_queries)
    return queries, statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("run me under scripts/testenv.py (PostgreSQL)", file=sys.stderr)
        return 2
    setup_test_environment()
    call_command("migrate", verbosity=0)

    started = time.perf_counter()
    build_history(args.jobs, args.users)
    print(f"history: {EditJob.objects.count():,} jobs, {CreditEntry.objects.count():,} ledger entries, "
          f"{ProviderError.objects.count():,} provider errors, {args.users} users "
          f"({time.perf_counter() - started:.1f} s to create)")

    today = timezone.localdate()
    started = time.perf_counter()
    built = usage_rollup_build_range(start=today - timedelta(days=DAYS), end=today - timedelta(days=1))
    print(f"rollup: {built} days rebuilt in {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    for n in range(30):
        usage_day_compute(day=today - timedelta(days=n))
    raw_ms = (time.perf_counter() - started) * 1000
    print(f"without the rollup, computing 30 days from the raw tables takes {raw_ms:.0f} ms")

    staff = get_user_model().objects.create_user("bench-staff", "staff@example.com", "x", is_staff=True)
    client = Client()
    client.force_login(staff)
    print(f"{'period':<8} {'queries':>7} {'median ms':>10} {'max ms':>8}   ({args.runs} requests each)")
    for period in ("today", "7d", "30d"):
        queries, median, worst = measure(client, f"/staff/dashboard/?period={period}", args.runs)
        print(f"{period:<8} {queries:>7} {median:>10.1f} {worst:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
