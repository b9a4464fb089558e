"""The developer API over a live server, as production runs it: uvicorn serving fashionsite.asgi (docker/entrypoint.sh
`api`) against the test database, a real Celery worker (with beat) and the real Fashion AI service.

api_stack (module)
    `.url` of the uvicorn server, `.worker`, `.receiver` (a webhook receiver on loopback: records every request and
    answers with the statuses queued in `.receiver.plan`, then 200), `.image_url` (an image server on loopback).
    Outbound rules as in production, except that exactly these two loopback ports are allowed
    (API_FETCH_ALLOW_INTERNAL, WEBHOOK_ALLOW_INTERNAL), the retry schedule is scaled down, and beat sweeps every
    second.
api_user (function)
    `api_user(credits=10, scopes=(...))` -> (user, plaintext key).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from devservices.celery_worker import CeleryWorker, worker_env
from devservices.fashionai import FashionAIServer
from devservices.net import free_port, port_answers, wait_until
from devservices.samples import astronaut_png
from tests.support.fixtures import purge_broker, subprocess_database_url

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)  # statuses to answer next, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        wait_until(lambda: len(self.requests) >= count, timeout=timeout, what=f"{count} webhook requests")
        return list(self.requests)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.plan.clear()


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


@contextlib.contextmanager
def run_receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            receiver = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k: v for k, v in self.headers.items()}, body))
                status = receiver.plan.pop(0) if receiver.plan else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server, port = _serve(Handler)
    holder["r"] = Receiver(port)
    try:
        yield holder["r"]
    finally:
        server.shutdown()


@contextlib.contextmanager
def run_image_server() -> Iterator[int]:
    png = astronaut_png()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args: Any) -> None:
            pass

    server, port = _serve(Handler)
    try:
        yield port
    finally:
        server.shutdown()


@dataclass
class ApiStack:
    url: str
    worker: CeleryWorker
    receiver: Receiver
    image_port: int
    env: dict[str, str]
    log_path: Path

    @property
    def image_url(self) -> str:
        return f"http://127.0.0.1:{self.image_port}/astronaut.png"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stack_env(receiver: Receiver, image_port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "API_FETCH_ALLOW_INTERNAL": f"127.0.0.1:{image_port}",
        "WEBHOOK_ALLOW_INTERNAL": f"127.0.0.1:{receiver.port}",
        # 5 s, 5 min, 30 min ... become 1 ms, 60 ms, 0.36 s ...: a 24 h schedule in seconds.
        "WEBHOOK_RETRY_SCALE": "0.0002",
        "WEBHOOK_SWEEP_INTERVAL_SECONDS": "1",
        "API_RATE_LIMIT_PER_MINUTE": "10000",
        "LOG_LEVEL": "WARNING",
        **(extra or {}),
    }


@contextlib.contextmanager
def run_uvicorn(env: dict[str, str], *, workers: int = 1) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="fai-api-"))
    log_path = folder / "uvicorn.log"
    argv = [str(REPO / "docker" / "entrypoint.sh"), "api"]
    process_env = {**env, "API_LISTEN_HOST": "127.0.0.1", "API_LISTEN_PORT": str(port), "API_WORKERS": str(workers),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=process_env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{log_path.read_text()[-3000:]}")
            return port_answers(port)

        wait_until(up, timeout=60, what="uvicorn")
        yield f"http://127.0.0.1:{port}", log_path, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def _api_stack(request: pytest.FixtureRequest, django_db_setup: None,
               fashionai_service: FashionAIServer) -> Iterator[ApiStack]:
    # A test module may add settings: API_STACK_ENV = {...}.
    extra = getattr(request.module, "API_STACK_ENV", {})
    with run_receiver() as receiver, run_image_server() as image_port:
        env = worker_env(database_url=subprocess_database_url(), fashionai=fashionai_service,
                         extra=stack_env(receiver, image_port, extra))
        purge_broker()
        worker = CeleryWorker(env, beat=True, concurrency=2).start()
        try:
            with run_uvicorn(env) as (url, log_path, _):
                yield ApiStack(url=url, worker=worker, receiver=receiver, image_port=image_port, env=env,
                               log_path=log_path)
        finally:
            worker.stop()
            purge_broker()


@pytest.fixture
def api_stack(_api_stack: ApiStack, transactional_db: None, settings: Any) -> Iterator[ApiStack]:
    # The same outbound exceptions in this process, where tests call services directly.
    settings.WEBHOOK_ALLOW_INTERNAL = frozenset({("127.0.0.1", _api_stack.receiver.port)})
    settings.API_FETCH_ALLOW_INTERNAL = frozenset({("127.0.0.1", _api_stack.image_port)})
    _api_stack.receiver.reset()
    yield _api_stack
    purge_broker()


@pytest.fixture
def api_user(make_user: Callable[..., Any], settings: Any) -> Callable[..., tuple[Any, str]]:
    from editor.services.api_keys import api_key_create
    from editor.services.credits import credits_grant

    settings.STARTER_CREDITS = 0

    def make(credits: int = 10, scopes: tuple[str, ...] = ("edits:read", "edits:write")) -> tuple[Any, str]:
        user = make_user()
        if credits:
            credits_grant(user=user, amount=credits, reason="test credits")
        return user, api_key_create(user=user, name="tests", scopes=list(scopes)).plaintext

    return make


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_edit(stack: ApiStack, key: str, *, prompt: str = "a person wearing a red hoodie",
                clothing: str = "topwear", headers: dict[str, str] | None = None, image: bytes | None = None,
                **form: str) -> requests.Response:
    files = None if form.get("image_url") or form.get("photo_id") else {
        "image": ("photo.png", image or astronaut_png(), "image/png")}
    return requests.post(f"{stack.url}/api/v1/edits", headers={**bearer(key), **(headers or {})},
                         data={"prompt": prompt, "clothing": clothing, **form}, files=files, timeout=90)


def problem(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.text[:300]
    body: dict[str, Any] = json.loads(response.content)
    assert body["status"] == response.status_code
    return body
