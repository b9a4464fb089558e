"""Pytest fixtures for the real moving parts (Celery worker, the Fashion AI service), shared by all tests.

Registered from tests/conftest.py via `pytest_plugins`. Run the suite through `scripts/testenv.py`, which
provides Redis, SeaweedFS S3 and PostgreSQL in the environment.

fashionai_service (session)
    The self-hosted Fashion AI service (`python -m fashionai serve`, passthrough engine, 0.5 s delay) over HTTP.

celery_worker (function; needs a transactional database)
    A REAL `celery -A fashionsite worker` subprocess (2 prefork processes, embedded beat running the sweeper every
    second) talking to the test database (pytest-django's `test_<name>`), the session's Redis and S3, and the
    `fashionai_service`. Timings are scaled down (poll floor 0.2 s, expected job 1 s, lease 4 s) so jobs finish
    in about a second. Use it from any test marked `@pytest.mark.django_db(transaction=True)`, or together with
    `live_server` (browser tests)::

        def test_upload_finishes(live_server, page, celery_worker):
            ...  # the submit view queues the job; the worker runs it against the local service

celery_worker_factory (function)
    `start(fashionai=server, beat=True, concurrency=2, env={...})` -> CeleryWorker with `.kill()` (SIGKILL to the
    whole process group, for fault tests), `.stop()`, `.restart()` and `.log()`. Every worker started is stopped
    when the test ends. The broker queue is purged when the factory is set up, so a previous test's messages
    never reach this test's worker.

make_photo (function)
    `make_photo(user)` -> a Photo row with a real 512x512 PNG (skimage's astronaut) in default storage.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fashionai_server import FashionAIServer, run_fashionai

REPO = Path(__file__).resolve().parents[2]
WORKER_READY_TIMEOUT = 60.0

# Fast, test-sized timings for the worker (see fashionsite/settings.py for what each means).
FAST_WORKER_ENV = {
    "POLL_MIN_INTERVAL_SECONDS": "0.2",
    "POLL_MAX_INTERVAL_SECONDS": "2",
    "POLL_BACKOFF_MAX_SECONDS": "1",
    "JOB_TASK_LEASE_SECONDS": "4",
    "SWEEP_OVERDUE_GRACE_SECONDS": "1",
    "SWEEP_INTERVAL_SECONDS": "1",
    "FASHION_AI_EXPECTED_SECONDS": "1",
    "FASHION_AI_TIMEOUT_SECONDS": "5",
}


def subprocess_database_url() -> str:
    """The URL of the database this test session uses (pytest-django's test_<name>), for subprocesses."""
    from django.db import connection

    data = connection.settings_dict
    if data["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError(
            "A Celery worker subprocess needs a server database: run through scripts/testenv.py (PostgreSQL)"
        )
    auth = data.get("USER") or ""
    if data.get("PASSWORD"):
        auth += f":{data['PASSWORD']}"
    return f"postgres://{auth}@{data.get('HOST') or '127.0.0.1'}:{data.get('PORT') or 5432}/{data['NAME']}"


class CeleryWorker:
    def __init__(self, env: dict[str, str], *, beat: bool, concurrency: int, app: str = "fashionsite") -> None:
        self.env = env
        self.app = app
        self.beat = beat
        self.concurrency = concurrency
        self.dir = Path(tempfile.mkdtemp(prefix="fai-worker-"))
        self.log_path = self.dir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        self.starts += 1
        args = [
            sys.executable, "-m", "celery", "-A", self.app, "worker", "-l", "INFO",
            "-P", "prefork", "-c", str(self.concurrency), "-n", f"test{self.starts}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        if self.beat:
            args += ["-B", "-s", str(self.dir / "beat-schedule")]
        return args

    def start(self) -> CeleryWorker:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            self.command(), cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if " ready." in self.log()[offset:]:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"celery worker not ready in {WORKER_READY_TIMEOUT:.0f}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as an OOM killer or a crashed host would."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def restart(self) -> CeleryWorker:
        self.stop()
        return self.start()


def worker_env(*, fashionai: FashionAIServer | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONAI_")}
    env.update(FAST_WORKER_ENV)
    env.update(
        {
            "DATABASE_URL": subprocess_database_url(),
            "DJANGO_SETTINGS_MODULE": "fashionsite.settings",
            "FAI_IGNORE_DOTENV": "1",
            "PYTHONUNBUFFERED": "1",
            "CELERY_TASK_ALWAYS_EAGER": "false",
        }
    )
    if fashionai is not None:
        env["FASHION_AI_BASE_URL"] = fashionai.base_url
        env["FASHION_AI_API_KEY"] = fashionai.api_key
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


def purge_broker() -> None:
    from fashionsite.celery import app

    with contextlib.suppress(Exception):
        app.control.purge()


@pytest.fixture(scope="session")
def fashionai_service() -> Iterator[FashionAIServer]:
    with run_fashionai(delay=0.5, retention=3600, workers=1) as server:
        yield server


@pytest.fixture
def celery_worker_factory(transactional_db: None) -> Iterator[Callable[..., CeleryWorker]]:
    purge_broker()
    started: list[CeleryWorker] = []

    def start(
        *,
        fashionai: FashionAIServer | None = None,
        beat: bool = True,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
    ) -> CeleryWorker:
        worker = CeleryWorker(worker_env(fashionai=fashionai, extra=env), beat=beat, concurrency=concurrency)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()
    # The next test starts from an empty queue (and this test's jobs are about to be flushed from the database).
    purge_broker()


@pytest.fixture
def celery_worker(celery_worker_factory: Callable[..., CeleryWorker], fashionai_service: FashionAIServer) -> Any:
    return celery_worker_factory(fashionai=fashionai_service)


def astronaut_png(side: int = 512) -> bytes:
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def astronaut_bytes() -> bytes:
    return astronaut_png()


@pytest.fixture
def make_photo(astronaut_bytes: bytes) -> Callable[..., Any]:
    """Create a Photo row directly (the upload normalisation service is tested on its own)."""

    def make(user: Any, data: bytes | None = None) -> Any:
        from django.core.files.base import ContentFile

        from editor.models import Photo

        content = data or astronaut_bytes
        photo = Photo(owner=user, size_bytes=len(content), original_name="astronaut.png")
        photo.image.save("photo.png", ContentFile(content), save=False)
        photo.width = photo.height = 512  # the fixture images are 512x512 like normalised uploads
        photo.save()
        return photo

    return make
