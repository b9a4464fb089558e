"""Liveness and readiness endpoints for load balancers, compose health checks and uptime monitors.

- `/health/live/` (and `/health/`): the process answers HTTP. No dependency is touched, so a database outage never
  makes an orchestrator restart every web container at once.
- `/health/ready/`: the database, the Redis broker and media storage each answer, checked concurrently with a
  deadline. 200 `{"status": "ok", ...}` or 503 `{"status": "fail", "failing": [...], "checks": {...}}`, each check
  with its time in milliseconds and, when it failed, a one-line reason (redacted like the logs).

`HealthCheckMiddleware` (first in MIDDLEWARE) answers these paths before SecurityMiddleware and host validation:
probes come from inside the network over plain HTTP with a container IP or `localhost` as Host, and must get an
answer rather than an HTTPS redirect or a DisallowedHost 400. No login, no session, no cookies.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from typing import Any

import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path

from fashionsite.logging import redact

logger = logging.getLogger(__name__)

# A probe that takes longer than this is as bad as a failure: the load balancer would time out first.
CHECK_TIMEOUT_SECONDS = 5.0
STORAGE_PROBE_PREFIX = "health/"


def check_database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # Runs in a pool thread: never leave a connection open behind it.
        connection.close()


def broker_url() -> str:
    return str(getattr(settings, "CELERY_BROKER_URL", "") or settings.REDIS_URL)


def check_redis() -> None:
    client = redis.Redis.from_url(broker_url(), socket_connect_timeout=2, socket_timeout=2)
    try:
        if not client.ping():
            raise RuntimeError("PING did not answer PONG")
    finally:
        client.close()


def check_storage() -> None:
    """Write, read back and delete a tiny object: proves credentials, bucket and permissions, not just a socket."""
    payload = uuid.uuid4().hex.encode()
    name = default_storage.save(f"{STORAGE_PROBE_PREFIX}ready-{payload.decode()}.txt", ContentFile(payload))
    try:
        with default_storage.open(name, "rb") as handle:
            if handle.read() != payload:
                raise RuntimeError("read back different bytes than were written")
    finally:
        default_storage.delete(name)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "storage": check_storage,
}

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    # Created lazily (gunicorn forks after import) and bounded: a hung dependency can hold a few threads, never
    # grow them without limit; later probes then queue behind it and report a timeout.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2 * len(CHECKS), thread_name_prefix="health")
        return _pool


def _timed(check: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        return {"ok": False, "ms": round((time.perf_counter() - started) * 1000, 1), "error": redact(reason)}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def run_checks(timeout: float = CHECK_TIMEOUT_SECONDS) -> dict[str, dict[str, Any]]:
    """Run every readiness check concurrently; a check still running at the deadline counts as failed."""
    futures: dict[str, Future[dict[str, Any]]] = {
        name: _executor().submit(_timed, check) for name, check in CHECKS.items()
    }
    wait_for_futures(futures.values(), timeout=timeout)
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            future.cancel()
            results[name] = {"ok": False, "ms": round(timeout * 1000, 1),
                             "error": f"timed out after {timeout:g} s"}
    return results


def _json(body: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def live(request: HttpRequest) -> HttpResponse:
    return _json({"status": "ok"})


def ready(request: HttpRequest) -> HttpResponse:
    checks = run_checks()
    failing = [name for name, result in checks.items() if not result["ok"]]
    if failing:
        logger.warning("readiness check failed: %s", "; ".join(f"{n}: {checks[n]['error']}" for n in failing))
        return _json({"status": "fail", "failing": failing, "checks": checks}, status=503)
    return _json({"status": "ok", "checks": checks})


class HealthCheckMiddleware:
    """Answers the health paths before host validation, the HTTPS redirect, sessions and CSRF."""

    VIEWS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
        "/health/": live,
        "/health/live/": live,
        "/health/ready/": ready,
    }

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.VIEWS.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)


# Also routed normally (under /health/ in fashionsite/urls.py) so reverse() and the URL list show them.
urlpatterns: list[URLPattern] = [
    path("", live, name="health"),
    path("live/", live, name="health_live"),
    path("ready/", ready, name="health_ready"),
]
