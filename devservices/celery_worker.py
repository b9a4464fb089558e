"""A real `celery -A fashionsite worker` subprocess (optionally with embedded beat) for tests and benchmarks.

    worker = CeleryWorker(worker_env(database_url=url, fashionai=server), beat=True, concurrency=2).start()
    ...
    worker.kill()     # SIGKILL to the whole process group, as an OOM killer would
    worker.restart()
    worker.stop()

`start()` returns once the worker logs " ready."; the log (one file for every start) is `worker.log()`.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devservices.fashionai import FashionAIServer

REPO = Path(__file__).resolve().parents[1]
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


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A PostgreSQL URL for a Django connection's settings (a worker subprocess reads DATABASE_URL)."""
    if settings_dict["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError(
            "A Celery worker subprocess needs a server database: run through scripts/testenv.py (PostgreSQL)"
        )
    auth = settings_dict.get("USER") or ""
    if settings_dict.get("PASSWORD"):
        auth += f":{settings_dict['PASSWORD']}"
    host = settings_dict.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}@{host}:{settings_dict.get('PORT') or 5432}/{settings_dict['NAME']}"


def worker_env(
    *, database_url: str, fashionai: FashionAIServer | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process' environment (services from scripts/testenv.py) with the fast timings and the given parts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONAI_")}
    env.update(FAST_WORKER_ENV)
    env.update(
        {
            "DATABASE_URL": database_url,
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


class CeleryWorker:
    def __init__(
        self,
        env: dict[str, str],
        *,
        beat: bool,
        concurrency: int,
        app: str = "fashionsite",
        pool: str = "prefork",
        queues: str = "celery,images,compose",
    ) -> None:
        self.env = env
        self.app = app
        self.pool = pool
        self.queues = queues
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
            "-P", self.pool, "-c", str(self.concurrency), "-n", f"test{self.starts}-{uuid.uuid4().hex[:6]}@%h",
            # Default: both queues (fashionsite/settings.py CELERY_TASK_ROUTES) in one test worker.
            "-Q", self.queues,
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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
