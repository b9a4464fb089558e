"""gunicorn reached without the proxy: forged X-Forwarded-* headers are ignored (issue 13 item 12).

Real gunicorn with docker/gunicorn.conf.py and production settings, trusting only loopback's 127.0.0.1 (the
default). The attacker connects from 127.0.0.2, which is another peer as far as gunicorn can tell.
"""
from __future__ import annotations

import http.client
import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import UNHASHED_STATIC_SETTINGS, production_env
from tests.deploy.conftest import run_gunicorn as run_gunicorn  # noqa: PLC0414 (the fixture, for this module)

PROXY = "127.0.0.1"
OUTSIDER = "127.0.0.2"
TOO_MANY = "Too many failed login attempts"
PER_IP_LIMIT = 3


def _request(port: int, source: str, method: str, path: str, headers: dict[str, str],
             body: str | None = None) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers={"Host": "127.0.0.1", **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        connection.close()


def _failed_login(port: int, source: str, forwarded_for: str) -> str:
    """One wrong password for an unknown account, with the given X-Forwarded-For; returns the page."""
    status, headers, page = _request(port, source, "GET", "/accounts/login/", {})
    assert status == 200, page[-2000:]
    cookie = SimpleCookie(headers["Set-Cookie"])["csrftoken"].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page[-2000:]
    status, _, page = _request(
        port, source, "POST", "/accounts/login/",
        {"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded",
         "X-Forwarded-For": forwarded_for},
        f"csrfmiddlewaretoken={token[1]}&login=nobody%40example.com&password=wrong-password",
    )
    assert status == 200, page[-2000:]
    return page


def _test_database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("needs PostgreSQL from scripts/testenv.py: gunicorn shares the test database")
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_forged_forwarded_for_from_outside_the_proxy_does_not_pick_the_rate_limited_ip(
    run_gunicorn: Any, tmp_path: Path,
) -> None:
    server = run_gunicorn(production_env(
        DATABASE_URL=_test_database_url(), CACHE_URL="locmemcache://", DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false", MEDIA_ROOT=str(tmp_path),
        LOGIN_FAILED_RATE_LIMIT=f"{PER_IP_LIMIT}/m/ip,100/m/key",
        DJANGO_SETTINGS_MODULE=UNHASHED_STATIC_SETTINGS,
    ))
    # Straight to gunicorn, a fresh made-up client address each time: the limit still counts the real peer.
    pages = [_failed_login(server.port, OUTSIDER, f"10.9.8.{n}") for n in range(PER_IP_LIMIT + 1)]
    assert all(TOO_MANY not in page for page in pages[:PER_IP_LIMIT])
    assert TOO_MANY in pages[PER_IP_LIMIT], "the forged X-Forwarded-For chose the client address"

    # Through the proxy the header is what tells clients apart: one behind it using up its budget does not lock
    # out the next one.
    for _ in range(PER_IP_LIMIT):
        _failed_login(server.port, PROXY, "198.51.100.30")
    assert TOO_MANY not in _failed_login(server.port, PROXY, "198.51.100.31")


def test_forged_forwarded_proto_from_outside_the_proxy_is_not_https(run_gunicorn: Any, tmp_path: Path) -> None:
    server = run_gunicorn(production_env(DJANGO_ALLOWED_HOSTS="127.0.0.1", MEDIA_ROOT=str(tmp_path),
                                        DJANGO_SETTINGS_MODULE=UNHASHED_STATIC_SETTINGS))
    forged = {"X-Forwarded-Proto": "https"}
    # Plain HTTP claiming to be HTTPS, from outside: still redirected to HTTPS (secure cookies, CSRF's HTTPS rules
    # and the redirect all follow request.is_secure()).
    status, headers, _ = _request(server.port, OUTSIDER, "GET", "/no-such-page/", forged)
    assert status == 301 and headers["Location"].startswith("https://"), (status, headers)
    # The same header from the proxy is believed.
    status, _, _ = _request(server.port, PROXY, "GET", "/no-such-page/", forged)
    assert status == 404
