"""Start the site under a real server, on a SQLite *file* database (the `make run` default), and talk HTTP to it.

site_server (function)
    `start(kind, env={...})` with kind "runserver" (the `web:` line of Procfile.dev, what `make run` serves) or
    "gunicorn" (`docker/entrypoint.sh web`, docker/gunicorn.conf.py) -> SiteServer with `.url`, `.env` (to run
    a script against the same database) and `.log()`. Stopped when the test ends. `start_site_server` is the same
    as a context manager, for module-scoped servers.

Each server gets a copy of one database migrated once per session, its own media folder, and the session's Redis
(from scripts/testenv.py) on a private database number as its broker, so no queued task reaches another test's
worker.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devservices.net import free_port, port_answers, wait_until

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# A broker database number nothing else in the suite uses.
BROKER_DB = 11


def procfile_web_command(port: int) -> list[str]:
    """The `web:` command of Procfile.dev (what `make run` starts), on another port."""
    for line in (REPO / "Procfile.dev").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line.partition(":")[2])
            argv[0] = sys.executable if argv[0].endswith("python") else argv[0]
            return [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in argv]
    raise RuntimeError("Procfile.dev has no web: line")


def base_env(folder: Path, database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "AWS_", "PYTEST_", "DATABASE_URL", "CELERY_", "FASHION_AI_"))}
    redis = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    env.update({
        "FAI_IGNORE_DOTENV": "1",
        "DJANGO_SETTINGS_MODULE": "fashionsite.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "MEDIA_ROOT": str(folder / "media"),
        "CELERY_BROKER_URL": f"redis://{redis.netloc}/{BROKER_DB}",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def migrated_sqlite() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="fai-sqlite-template-"))
    database = folder / "db.sqlite3"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, check=True,
                   env=base_env(folder, database), timeout=300)
    yield database
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class SiteServer:
    kind: str
    process: subprocess.Popen[bytes]
    port: int
    folder: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def start_site_server(kind: str, template: Path, env: dict[str, str] | None = None) -> Iterator[SiteServer]:
    folder = Path(tempfile.mkdtemp(prefix=f"fai-{kind}-"))
    database = folder / "db.sqlite3"
    shutil.copyfile(template, database)
    server_env = {**base_env(folder, database), **(env or {})}
    port = free_port()
    if kind == "runserver":
        argv = procfile_web_command(port)
    elif kind == "gunicorn":
        argv = [str(REPO / "docker" / "entrypoint.sh"), "web"]
        server_env.update({"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"})
    else:
        raise ValueError(kind)
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=server_env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = SiteServer(kind, process, port, folder, server_env)
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}:\n{server.log()[-3000:]}")
            return port_answers(port)

        wait_until(up, timeout=90, what=kind)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def site_server(migrated_sqlite: Path) -> Iterator[Callable[..., SiteServer]]:
    with contextlib.ExitStack() as stack:
        def start(kind: str, env: dict[str, str] | None = None) -> SiteServer:
            return stack.enter_context(start_site_server(kind, migrated_sqlite, env))

        yield start
