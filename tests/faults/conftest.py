"""Fault-test helpers: funded users, waiting for final states, pointing this process's Celery producer at a
throwaway broker, and the consistency check (tests/faults/consistency.py) asserted at the end of every test."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import kombu.pools
import pytest

from tests.faults.consistency import consistency_report


@pytest.fixture
def funded_user(make_user: Callable[..., Any], settings: Any) -> Callable[..., Any]:
    from editor.services.credits import credits_grant

    settings.STARTER_CREDITS = 0
    settings.MAX_JOBS_IN_FLIGHT_PER_USER = 100

    def make(credits: int) -> Any:
        user = make_user()
        credits_grant(user=user, amount=credits, reason="fault test credits")
        return user

    return make


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, worker: Any = None,
               supervise: bool = False) -> int:
    """Poll `check`; with `supervise`, restart the worker whenever it exits, as the deployment's process
    supervisor does (compose `restart: unless-stopped`). Returns how many restarts that took."""
    restarts = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return restarts
        if supervise and worker is not None and (worker.process is None or worker.process.poll() is not None):
            restarts += 1
            worker.start()
        time.sleep(0.1)
    log = worker.log()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n--- worker log ---\n{log}")


def states(ids: Iterable[Any]) -> list[str]:
    from editor.models import EditJob

    return list(EditJob.objects.filter(pk__in=list(ids)).values_list("state", flat=True))


def wait_final(ids: list[Any], *, timeout: float, worker: Any = None, supervise: bool = False) -> list[Any]:
    from editor.models import EditJob

    def done() -> bool:
        now = states(ids)
        return len(now) == len(ids) and all(s in ("succeeded", "failed", "expired") for s in now)

    wait_until(done, timeout=timeout, what=f"jobs to finish (now {sorted(states(ids))})", worker=worker,
               supervise=supervise)
    return list(EditJob.objects.filter(pk__in=ids))


def assert_consistent(users: list[Any]) -> None:
    report = consistency_report(user_ids=[u.pk for u in users])
    assert report.inconsistencies == 0, report.summary()


@contextlib.contextmanager
def producer_broker(url: str) -> Iterator[None]:
    """Make this process publish tasks to `url` (the views and services enqueue on commit, like the web)."""
    from fashionsite.celery import app

    celery: Any = app  # private pool attributes: Celery has no public way to switch brokers at run time

    def reset() -> None:
        # app.pool is kombu's process-wide pool for the URL: closing it without clearing kombu's registry leaves
        # a closed pool behind, and every later enqueue in this process fails ("Acquire on closed pool").
        kombu.pools.reset()
        celery._pool = None
        celery.amqp._producer_pool = None

    old = {key: app.conf.get(key) for key in ("broker_url", "broker_write_url")}
    reset()
    app.conf.update(broker_url=url, broker_write_url=url)
    try:
        yield
    finally:
        reset()
        app.conf.update(old)
