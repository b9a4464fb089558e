"""Celery worker heartbeats in Redis, for the operators' dashboard and the worker's container health check.

Each worker writes `{hostname, pid, ts, started, concurrency}` to `fai:worker-heartbeat:<hostname>:<pid>` every
WORKER_HEARTBEAT_SECONDS with a TTL of three intervals, from a timer in the worker's own event loop (a bootstep),
so a heartbeat means the consumer loop is turning, not merely that the process exists. A clean shutdown deletes
the key; a killed worker's key expires on its own.

    worker_heartbeats() -> list[WorkerHeartbeat]   # newest first; raises HeartbeatsUnavailable if Redis is down
    check_local_worker() -> bool                    # a worker in this container beat recently (docker/healthcheck.py)
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, TypedDict

import redis
from celery import bootsteps
from django.conf import settings

KEY_PREFIX = "fai:worker-heartbeat:"
DEFAULT_INTERVAL_SECONDS = 10


class WorkerHeartbeat(TypedDict):
    hostname: str  # Celery node name, e.g. "celery@3f2a9c1b7d4e"
    pid: int  # the worker's main process id
    ts: float  # Unix time of the last heartbeat
    started: float  # Unix time the worker became ready
    concurrency: int | None  # pool processes
    age_seconds: float  # now - ts, rounded to 0.1 s
    alive: bool  # age_seconds <= 2 heartbeat intervals


class HeartbeatsUnavailable(RuntimeError):
    """Redis could not be read: the dashboard should say so rather than show 'no workers'."""


def interval_seconds() -> int:
    return int(getattr(settings, "WORKER_HEARTBEAT_SECONDS", DEFAULT_INTERVAL_SECONDS))


def _client() -> redis.Redis:
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or settings.REDIS_URL)
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _key(hostname: str, pid: int) -> str:
    return f"{KEY_PREFIX}{hostname}:{pid}"


def record_heartbeat(*, hostname: str, pid: int, started: float, concurrency: int | None) -> None:
    payload = {"hostname": hostname, "pid": pid, "ts": time.time(), "started": started, "concurrency": concurrency}
    client = _client()
    try:
        client.set(_key(hostname, pid), json.dumps(payload), ex=3 * interval_seconds())
    finally:
        client.close()


def clear_heartbeat(*, hostname: str, pid: int) -> None:
    client = _client()
    try:
        client.delete(_key(hostname, pid))
    finally:
        client.close()


def worker_heartbeats(*, now: float | None = None) -> list[WorkerHeartbeat]:
    """Every worker whose heartbeat has not expired, newest first."""
    now = time.time() if now is None else now
    limit = 2 * interval_seconds()
    client = _client()
    try:
        keys = sorted(client.scan_iter(match=f"{KEY_PREFIX}*", count=500))
        raw_values = client.mget(keys) if keys else []
    except redis.RedisError as exc:
        raise HeartbeatsUnavailable(f"cannot read worker heartbeats from Redis: {type(exc).__name__}") from exc
    finally:
        client.close()
    beats: list[WorkerHeartbeat] = []
    for raw in raw_values:
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            data: dict[str, Any] = json.loads(raw)
            ts = float(data["ts"])
            beats.append(WorkerHeartbeat(
                hostname=str(data["hostname"]), pid=int(data["pid"]), ts=ts,
                started=float(data.get("started") or ts), concurrency=data.get("concurrency"),
                age_seconds=round(max(0.0, now - ts), 1), alive=now - ts <= limit,
            ))
        except (ValueError, KeyError, TypeError):
            continue  # a malformed entry is not a worker
    beats.sort(key=lambda beat: beat["ts"], reverse=True)
    return beats


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """Worker bootstep: a repeating timer in the worker's event loop records the heartbeat."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None
        self.started = time.time()

    def _beat(self, worker: Any) -> None:
        try:
            record_heartbeat(hostname=worker.hostname, pid=os.getpid(), started=self.started,
                             concurrency=getattr(worker, "concurrency", None))
        except redis.RedisError:
            pass  # Redis is down: the missing heartbeat is the signal; the broker connection logs the outage

    def start(self, parent: Any) -> None:
        self.started = time.time()
        self._beat(parent)
        self.tref = parent.timer.call_repeatedly(interval_seconds(), self._beat, (parent,), priority=10)

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        try:
            clear_heartbeat(hostname=parent.hostname, pid=os.getpid())
        except redis.RedisError:
            pass  # it expires on its own


def check_local_worker(*, hostname: str | None = None) -> bool:
    """True when a worker on this host (container) has a live heartbeat."""
    host = hostname or socket.gethostname()
    return any(beat["alive"] and beat["hostname"].split("@", 1)[-1] == host for beat in worker_heartbeats())
