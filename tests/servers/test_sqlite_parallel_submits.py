"""`make run`'s SQLite under parallel submits: no request fails with "database is locked", no money goes astray.

A deferred SQLite transaction that reads and then writes cannot wait for another writer (SQLite refuses the
upgrade at once, whatever the busy timeout), so parallel submits got HTTP 500. The settings open every
transaction with BEGIN IMMEDIATE on SQLite, so writers queue on the busy timeout instead.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.servers.client import csrf_token, signed_in
from tests.servers.conftest import REPO, SiteServer

pytestmark = pytest.mark.smoke

USERS = 10
SUBMITS_PER_USER = 5  # the default MAX_JOBS_IN_FLIGHT_PER_USER: every submit may be accepted
CREDITS = 20


def seed(server: SiteServer, *args: str) -> Any:
    result = subprocess.run([sys.executable, "-m", "tests.servers.seed", *args], cwd=REPO, env=server.env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_fifty_parallel_submits_on_sqlite_never_fail(site_server: Callable[..., SiteServer]) -> None:
    server = site_server("runserver", env={"STARTER_CREDITS": "0"})  # the seed grants CREDITS itself
    accounts = seed(server, "users", str(USERS), str(CREDITS))
    # Sign in (real allauth form posts); each client then opens the form on its own connection, as a browser
    # does, and all of them post it at once.
    clients = []
    for account in accounts:
        cookies = signed_in(server.url, account["email"], account["password"]).cookies.get_dict()
        for n in range(SUBMITS_PER_USER):
            session = requests.Session()
            session.cookies.update(cookies)
            clients.append((session, {
                "csrfmiddlewaretoken": csrf_token(session, f"{server.url}/edit/new/"), "photo": account["photo"],
                "clothing": "topwear", "prompt": f"a person wearing a red hoodie {n}",
            }))
    start = threading.Barrier(len(clients))
    statuses: list[int | str] = []

    def submit(session: requests.Session, form: dict[str, str]) -> None:
        with session:
            start.wait()
            try:
                response = session.post(f"{server.url}/edit/new/", data=form, allow_redirects=False, timeout=120)
                statuses.append(response.status_code)
            except requests.RequestException as exc:
                statuses.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=submit, args=client) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    counts = Counter(statuses)
    assert counts == {302: USERS * SUBMITS_PER_USER}, (counts, server.log()[-3000:])
    assert "database is locked" not in server.log()
    money = seed(server, "money")
    assert len(money) == USERS
    for email, row in money.items():
        assert row["jobs"] == SUBMITS_PER_USER, email
        assert row["balance"] == row["ledger"] == CREDITS - SUBMITS_PER_USER, (email, row)
