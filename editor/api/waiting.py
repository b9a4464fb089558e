"""`Prefer: wait=N`: answer when the edit is final or after N seconds, without a thread waiting.

The API runs under an ASGI server (uvicorn; docs/api.md says why), so a waiting request is a coroutine: it
subscribes to the edit's Redis channel (editor/events.py publishes there once the final state commits), checks
the database once after subscribing (the edit may have finished before), and then sleeps on the socket. It looks
at the database again every RECHECK_SECONDS in case a message was lost, and polls once a second if Redis is down.

Database work runs through `run_sync`, on a few threads per process that keep their database connection between
calls (docs/performance.md "Developer API" measured why): a new PostgreSQL connection per call cost the database
more CPU than the whole request cost the API, and a thread per in-flight request let 200 uploads decode at once
and starve the event loop. Light calls (key check, reads) and creates (upload decode, URL fetch) have separate
pools, so a plain GET never queues behind an upload. A waiting request holds no thread and no connection.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from editor.events import edit_final_channel

log = logging.getLogger(__name__)
RECHECK_SECONDS = 5.0
P = ParamSpec("P")
T = TypeVar("T")


class DatabaseThreads:
    """A bounded pool whose threads keep their connection for API_DB_CONN_MAX_AGE seconds. Django would close a
    CONN_MAX_AGE=0 connection when the request ends; these threads outlive requests, so they apply the age
    themselves, and Django's own check still drops a broken connection (CONN_HEALTH_CHECKS) before a call."""

    def __init__(self, name: str, size: Callable[[], int]) -> None:
        self.name = name
        self.size = size
        self.executor: ThreadPoolExecutor | None = None
        self.wrappers: list[Any] = []  # each thread's DatabaseWrapper, for close()
        self.lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.executor is None:
                self.executor = ThreadPoolExecutor(max_workers=self.size(), thread_name_prefix=f"api-{self.name}")
            return self.executor

    def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        max_age = settings.API_DB_CONN_MAX_AGE
        connection.close_if_unusable_or_obsolete()  # broken, in error, or past its age: closed here
        try:
            return func(*args, **kwargs)
        finally:
            if max_age <= 0:
                connection.close()
            elif connection.connection is not None and getattr(_opened, "raw", None) is not connection.connection:
                # Opened by this call: Django dated it by CONN_MAX_AGE (0: close at once); this thread keeps it.
                _opened.raw = connection.connection
                connection.close_at = time.monotonic() + max_age
                with self.lock:
                    if connection not in self.wrappers:
                        self.wrappers.append(connection)

    def close(self) -> None:
        """Stop the threads and close their connections (tests, before the test database is dropped)."""
        with self.lock:
            executor, self.executor = self.executor, None
            wrappers, self.wrappers = self.wrappers, []
        if executor is not None:
            executor.shutdown(wait=True)
        for wrapper in wrappers:  # their threads have ended: nothing else uses them now
            if wrapper.connection is not None:
                wrapper.connection.close()
                wrapper.connection = None


_opened = threading.local()  # the raw connection each pool thread last dated
READS = DatabaseThreads("db", lambda: settings.API_DB_THREADS)
CREATES = DatabaseThreads("create", lambda: settings.API_CREATE_THREADS)


def run_sync(func: Callable[P, T], *, pool: DatabaseThreads = READS) -> Callable[P, Awaitable[T]]:
    """`func` on one of `pool`'s threads, awaited from the event loop. Each call is a unit of its own (no
    transaction spans two calls), so any of the pool's threads may run it."""
    return sync_to_async(functools.partial(pool.call, func), thread_sensitive=False, executor=pool.get())


def close_database_threads() -> None:
    READS.close()
    CREATES.close()


def parse_prefer_wait(prefer: str | None) -> int:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped at API_MAX_WAIT_SECONDS; 0 when absent."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            value = value.split(";")[0].strip().strip('"')
            if value.isdigit():
                return min(int(value), settings.API_MAX_WAIT_SECONDS)
    return 0


async def wait_until_final(job_id: str, seconds: float, is_final: Callable[[], Awaitable[bool]]) -> bool:
    """True once `is_final()` holds, False when `seconds` pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(edit_final_channel(job_id))
            if await is_final():
                return True
            while (left := deadline - loop.time()) > 0:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, RECHECK_SECONDS))
                if message is not None or await is_final():
                    return True
    except (RedisError, OSError):
        log.warning("Redis unavailable for Prefer: wait; polling instead", exc_info=True)
        while loop.time() < deadline:
            if await is_final():
                return True
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
    finally:
        await client.aclose()
    return await is_final()
