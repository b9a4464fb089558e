"""Pytest fixtures for the real moving parts (Celery worker, the Fashion AI service), shared by all tests.

Registered from tests/conftest.py via `pytest_plugins`; the processes themselves come from devservices/. Run the
suite through `scripts/testenv.py`, which provides Redis, SeaweedFS S3 and PostgreSQL in the environment.

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

shared_worker (function; the worker process lives for the whole test module)
    One Celery worker (default fast env, key `test-key`) for the tests of a module that only differ in the provider
    they run against: it reaches "the provider" through a loopback TCP proxy, and `shared_worker.serve(fai)` points
    that proxy at the service the test started (`serve(None)`: connections are refused, nothing listens). Saves a
    worker start per test. Tests that kill the worker or need other worker settings use celery_worker_factory,
    which stops the shared worker first (only one worker consumes a test's broker at a time).

make_photo (function)
    `make_photo(user)` -> a Photo row with a real 512x512 PNG (skimage's astronaut) in default storage.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devservices.celery_worker import CeleryWorker, database_url, worker_env
from devservices.fashionai import FashionAIServer, run_fashionai
from devservices.samples import astronaut_png
from devservices.tcpproxy import TcpProxy


def subprocess_database_url() -> str:
    """The URL of the database this test session uses (pytest-django's test_<name>), for subprocesses."""
    from django.db import connection

    return database_url(connection.settings_dict)


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
    # A test with its own worker has the broker to itself: a module's shared worker (and its beat) would run this
    # test's jobs too. It starts again at the next shared_worker.serve().
    for shared in SharedWorker.instances:
        shared.worker.stop()
    purge_broker()
    started: list[CeleryWorker] = []

    def start(
        *,
        fashionai: FashionAIServer | None = None,
        beat: bool = True,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
    ) -> CeleryWorker:
        environment = worker_env(database_url=subprocess_database_url(), fashionai=fashionai, extra=env)
        worker = CeleryWorker(environment, beat=beat, concurrency=concurrency)
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


class SharedWorker:
    """A module's worker and the proxy in front of whichever provider the current test serves."""

    api_key = "test-key"
    instances: list[SharedWorker] = []

    def __init__(self) -> None:
        self.proxy = TcpProxy(1)  # retargeted by serve(); down until then
        self.base_url = f"{self.proxy.url()}/v1"
        self.root_url = self.proxy.url()
        self.worker = CeleryWorker(
            worker_env(database_url=subprocess_database_url(), fashionai=None,
                       extra={"FASHION_AI_BASE_URL": self.base_url, "FASHION_AI_API_KEY": self.api_key}),
            beat=True, concurrency=2,
        )

    def serve(self, fashionai: FashionAIServer | None) -> CeleryWorker:
        """The worker's provider is now `fashionai` (its key must be `test-key`); None: connections refused."""
        if fashionai is None:
            self.proxy.cut()
        else:
            assert fashionai.api_key == self.api_key, "the shared worker calls the provider with key test-key"
            self.proxy.retarget(fashionai.port)
            self.proxy.restore()
        if not self.worker.running:
            self.worker.start()
        return self.worker


@pytest.fixture(scope="module")
def _module_worker(django_db_setup: None) -> Iterator[SharedWorker]:
    shared = SharedWorker()
    SharedWorker.instances.append(shared)
    yield shared
    SharedWorker.instances.remove(shared)
    shared.worker.stop()
    shared.proxy.cut()


@pytest.fixture
def shared_worker(_module_worker: SharedWorker, transactional_db: None) -> Iterator[SharedWorker]:
    purge_broker()  # the previous test's queued messages never reach this test (its rows are gone anyway)
    yield _module_worker
    _module_worker.proxy.cut()
    purge_broker()


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
