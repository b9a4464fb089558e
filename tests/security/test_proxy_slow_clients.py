"""Slow request bodies through the deployment's proxy (issue 13 item 1).

Real Caddy with docker/Caddyfile in front of real gunicorn with docker/gunicorn.conf.py and production settings.
gunicorn runs 1 process x 2 threads here, so a handful of slow clients would hold every thread if the proxy
streamed their bodies (Caddy's default).
"""
from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devservices.caddy import Caddy
from tests.deploy.conftest import UNHASHED_STATIC_SETTINGS, http_get, production_env
from tests.deploy.conftest import run_gunicorn as run_gunicorn  # noqa: PLC0414 (the fixture, for this module)

SLOW_CLIENTS = 6  # three times gunicorn's threads
DECLARED_BYTES = 1_000_000  # never sent: at 2 bytes a second this would take days
GIVE_UP_SECONDS = 60.0  # how long a slow client keeps sending if nobody cuts it off
READ_BODY_TIMEOUT = "8s"


@dataclass
class SlowClient:
    """POSTs a large Content-Length and sends its body a byte every half second until the server stops it.

    Anonymous, with a made-up CSRF cookie: what an attacker needs to make Django wait for the body. With
    `headers_only` it trickles a header line instead and never finishes its headers."""

    port: int
    headers_only: bool = False
    sent: int = 0
    ended_at: float | None = None
    cut_off: bool = False  # the server answered or closed the connection while the body was still coming
    answer: bytes = b""
    thread: threading.Thread = field(init=False)

    def start(self) -> SlowClient:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        head = (f"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {DECLARED_BYTES}\r\n"
                # Any 32-character cookie: Django's CSRF check then reads the body to find the form's token.
                f"Cookie: csrftoken={'x' * 32}\r\n\r\n")
        if self.headers_only:
            head = f"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nX-Slow: "
        give_up = time.monotonic() + GIVE_UP_SECONDS
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(head.encode())
            sock.settimeout(0.5)  # between two bytes, listen for the server's answer or close
            while time.monotonic() < give_up:
                try:
                    chunk = sock.recv(4096)
                    self.answer += chunk
                    self.cut_off = True  # an answer, or b"" for a closed connection
                    break
                except TimeoutError:
                    pass
                except OSError:
                    self.cut_off = True
                    break
                try:
                    sock.sendall(b"a")
                    self.sent += 1
                except OSError:
                    self.cut_off = True
                    break
        self.ended_at = time.monotonic()


def _post(url: str, body: bytes) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (loopback test server)
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


@pytest.fixture
def proxied_site(run_gunicorn: Any, tmp_path: Path) -> Iterator[tuple[Caddy, Any]]:
    server = run_gunicorn(production_env(
        DJANGO_ALLOWED_HOSTS="127.0.0.1", DJANGO_SECURE_SSL_REDIRECT="false", MEDIA_ROOT=str(tmp_path),
        DJANGO_SETTINGS_MODULE=UNHASHED_STATIC_SETTINGS,
    ))
    caddy = Caddy(f"127.0.0.1:{server.port}", env={"CADDY_READ_BODY_TIMEOUT": READ_BODY_TIMEOUT}).start()
    try:
        yield caddy, server
    finally:
        caddy.stop()


def test_slow_clients_hold_no_gunicorn_thread_and_are_cut_off(proxied_site: tuple[Caddy, Any]) -> None:
    caddy, _server = proxied_site
    slow = [SlowClient(caddy.port).start() for _ in range(SLOW_CLIENTS)]
    slow += [SlowClient(caddy.port, headers_only=True).start() for _ in range(2)]
    # Every slow client is in flight: headers sent and its body trickling through the proxy.
    deadline = time.monotonic() + 30
    while any(client.sent < 2 for client in slow) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(client.sent >= 2 and client.ended_at is None for client in slow), slow

    page = http_get(f"{caddy.base_url}/no-such-page/", timeout=GIVE_UP_SECONDS + 30)
    still_sending = [client.ended_at is None for client in slow]
    # Django's 404 (its security headers show it came from gunicorn, not from the proxy)...
    assert page.status == 404 and page.headers.get("X-Frame-Options") == "DENY", page
    # ...answered while every slow client was still sending: none of them held a thread.
    assert all(still_sending), "the page waited for the slow clients to finish"

    # A whole body still goes through: the buffered request reaches Django, which refuses it (no CSRF token).
    status, headers = _post(f"{caddy.base_url}/accounts/login/", b"login=a&password=" + b"b" * 200_000)
    assert status == 403 and headers.get("X-Frame-Options") == "DENY", (status, headers)

    for client in slow:
        client.thread.join(GIVE_UP_SECONDS + 10)
    # The proxy's read-header and read-body deadlines cut every slow client off before it could finish or give up.
    assert all(client.cut_off for client in slow), slow
    assert all(client.sent < DECLARED_BYTES for client in slow)
