"""The API under many waiting requests, over a live uvicorn (docker/entrypoint.sh `api`, one process, no Celery
worker, so the edits stay running and every `Prefer: wait` is held to its end).

What bench/bench_api_costs.py measured as the biggest cost (docs/performance.md "Developer API"): a new PostgreSQL
connection for every database call (two per plain GET, one per waiter's recheck), each a server process fork. The
database work now runs on a few threads per process that keep their connections (editor/api/waiting.py)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connection

from devservices.celery_worker import worker_env
from tests.api.conftest import bearer, run_uvicorn
from tests.support.fixtures import purge_broker, subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)

WAITERS = 40
WAIT_SECONDS = 12
DB_THREADS, CREATE_THREADS = 2, 1


@pytest.fixture
def lone_api(transactional_db: None) -> Iterator[str]:
    env = worker_env(database_url=subprocess_database_url(), fashionai=None, extra={
        "API_RATE_LIMIT_PER_MINUTE": "10000", "LOG_LEVEL": "WARNING", "MAX_JOBS_IN_FLIGHT_PER_USER": "50",
        "API_DB_THREADS": str(DB_THREADS), "API_CREATE_THREADS": str(CREATE_THREADS)})
    purge_broker()
    with run_uvicorn(env) as (url, _, _):
        yield url
    purge_broker()


def sessions_opened() -> int:
    """Connections ever opened to this database (PostgreSQL counts them per database)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return int(row[0])


def test_plain_gets_answer_while_many_requests_wait_and_reuse_the_database_connections(
    lone_api: str, api_user: Callable[..., Any]
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL sessions: run through scripts/testenv.py")
    _, key = api_user(credits=20)
    created = requests.post(f"{lone_api}/api/v1/edits", headers=bearer(key), timeout=60,
                            data={"prompt": "a person wearing a red hoodie", "clothing": "topwear"},
                            files={"image": ("photo.png", _png(), "image/png")})
    assert created.status_code == 201, created.text
    edit_url = f"{lone_api}/api/v1/edits/{created.json()['id']}"

    def wait() -> requests.Response:
        return requests.get(edit_url, headers={**bearer(key), "Prefer": f"wait={WAIT_SECONDS}"},
                            timeout=WAIT_SECONDS + 30)

    with ThreadPoolExecutor(WAITERS) as pool:
        began = time.monotonic()
        waiting = [pool.submit(wait) for _ in range(WAITERS)]
        time.sleep(2)  # all of them subscribed and waiting
        before = sessions_opened()
        took = []
        for _ in range(30):
            t0 = time.monotonic()
            plain = requests.get(edit_url, headers=bearer(key), timeout=30)
            took.append(time.monotonic() - t0)
            assert plain.status_code == 200 and plain.json()["state"] in ("created", "submitted")
        assert not any(w.done() for w in waiting), "the waits ended before the GETs did"
        time.sleep(1.5)  # PostgreSQL reports a new session's count within a second
        opened = sessions_opened() - before
        answers = [w.result() for w in waiting]

    # Answered while 40 waited: each GET is its own request, never behind a wait.
    assert max(took) < 5, took
    # 30 GETs and 40 waiters' rechecks reuse the pool's connections (the old code opened two per GET: 60+).
    assert opened <= DB_THREADS + CREATE_THREADS, opened
    assert all(a.status_code == 200 and a.headers["Preference-Applied"] == f"wait={WAIT_SECONDS}" for a in answers)
    assert time.monotonic() - began >= WAIT_SECONDS


def _png() -> bytes:
    from devservices.samples import astronaut_png

    return astronaut_png()
