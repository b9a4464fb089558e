"""Helpers for the edit-job tests: wait for jobs to reach a final state, read the ledger."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest


def wait_for_jobs(job_ids: Iterable[Any], *, timeout: float = 30.0, worker: Any = None) -> list[Any]:
    """Poll the database until every job is final; fail with the worker log if they are not."""
    from editor.models import EditJob

    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = list(EditJob.objects.filter(pk__in=ids))
        if len(jobs) == len(ids) and all(job.is_final for job in jobs):
            return sorted(jobs, key=lambda j: ids.index(j.pk))
        time.sleep(0.1)
    states = list(EditJob.objects.filter(pk__in=ids).values_list("state", "provider_status", "next_poll_at"))
    log = worker.log()[-5000:] if worker is not None else ""
    raise AssertionError(f"jobs not final after {timeout}s: {states}\n--- worker log ---\n{log}")


@pytest.fixture
def funded_user(make_user: Callable[..., Any], settings: Any) -> Callable[..., Any]:
    """A user with exactly `credits` credits (no starter bonus), so balances in tests are exact."""
    from editor.services.credits import credits_grant

    settings.STARTER_CREDITS = 0

    def make(credits: int = 10) -> Any:
        user = make_user()
        if credits:
            credits_grant(user=user, amount=credits, reason="test credits")
        return user

    return make
