"""Helpers for the deployment tests: run the real site under gunicorn with production settings."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devservices.net import free_port, port_answers, wait_until

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# A production-looking secret key: long and random enough for `check --deploy`.
PRODUCTION_SECRET_KEY = "prod-" + "k3Y9" * 15
# Production settings with unhashed static names: a test never runs collectstatic, and the hashed storage answers
# any page that names a static file with a 500 ("Missing staticfiles manifest entry"). Nothing else differs.
UNHASHED_STATIC_SETTINGS = "tests.security.settings_production_unhashed"


def production_env(**extra: str) -> dict[str, str]:
    """The test process' environment (services from scripts/testenv.py) with production settings on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update({
        "FAI_IGNORE_DOTENV": "1",
        "DJANGO_SETTINGS_MODULE": "fashionsite.settings_production",
        "DJANGO_SECRET_KEY": PRODUCTION_SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "studio.example.com",
        "LOG_FORMAT": "json",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def http_get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 15) -> Response:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback test server)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return Response(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read(), dict(exc.headers))


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """Stop gunicorn and return everything it logged (stdout and stderr)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def run_gunicorn() -> Iterator[Any]:
    """Start `docker/entrypoint.sh web` (gunicorn with docker/gunicorn.conf.py) with the given environment."""
    started: list[Gunicorn] = []

    def start(env: dict[str, str]) -> Gunicorn:
        port = free_port()
        log_dir = Path(tempfile.mkdtemp(prefix="fai-gunicorn-"))
        log_path = log_dir / "gunicorn.log"
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
        process = subprocess.Popen(
            [str(REPO / "docker" / "entrypoint.sh"), "web"], cwd=REPO, env=env,
            stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        )
        server = Gunicorn(process, port, log_path)
        started.append(server)

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
            return port_answers(port)

        wait_until(up, timeout=60, what="gunicorn")
        return server

    yield start
    for server in started:
        server.stop()


def wait_for_status(url: str, status: int, *, timeout: float = 20) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        response = http_get(url)
        if response.status == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)
