"""`Prefer: wait=N`: answer when the edit is final or after N seconds, without a thread waiting.

The API runs under an ASGI server (uvicorn; docs/api.md says why), so a waiting request is a coroutine: it
subscribes to the edit's Redis channel (editor/events.py publishes there once the final state commits), checks
the database once after subscribing (the edit may have finished before), and then sleeps on the socket. It looks
at the database again every RECHECK_SECONDS in case a message was lost, and polls once a second if Redis is down.
Database work runs through `run_sync`: in the request's own thread (Django's thread-sensitive mode, where the ORM
is safe), closing its connection afterwards, so a waiting request holds no database connection and no thread is
busy for it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

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


def run_sync(func: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """`func` as Django runs sync code from async (thread-sensitive: the request's own thread, one call at a time),
    its database connection closed afterwards, so no connection stays open while a request waits."""

    def call_and_release(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return sync_to_async(call_and_release, thread_sensitive=True)


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
