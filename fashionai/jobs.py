"""In-memory job store with retention: a finished job (and its output file) is forgotten `retention` seconds later.

Everything here runs on the event loop thread, so no locks are needed. Jobs do not survive a restart, like a
provider's queue losing its results: the site treats the resulting 404 as an expired job.
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUED, PROCESSING, COMPLETED, FAILED = "QUEUED", "PROCESSING", "COMPLETED", "FAILED"
TERMINAL = (COMPLETED, FAILED)
MAX_TOMBSTONES = 200_000  # ~100 bytes each


@dataclass
class Job:
    prompt: str
    clothing: str
    api_key: str
    output_path: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The output URL carries its own secret, so it can be fetched without the API key (like a presigned URL).
    output_name: str = field(default_factory=lambda: secrets.token_urlsafe(18) + ".png")
    state: str = QUEUED
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None
    expires_at: float | None = None
    error: str | None = None
    # Ours: why a FAILED job failed (fashionai/service.py FAILURE_CODES) and whether submitting it again may work.
    error_code: str | None = None
    started: float | None = None  # monotonic time the engine took it
    start_by: float | None = None  # ours: fail it (start_deadline_exceeded) if still QUEUED at this monotonic time
    seq: int = 0  # enqueue order, for queue_position
    position: int | None = None  # durable mode: jobs ahead of it in the queue, read along with the record
    base_url: str = ""  # the submit's base URL: a webhook's body carries absolute URLs like a poll's answer
    inference_time: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    simulate_failure: bool = False
    # Ours, optional: the (API key, Idempotency-Key) this job was created under, and its body's fingerprint.
    idempotency: tuple[str, str] | None = None
    fingerprint: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


class JobStore:
    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._jobs: dict[str, Job] = {}
        self._by_output: dict[str, Job] = {}
        # (API key, Idempotency-Key) -> the job made under it. A key lives exactly as long as its job: until the
        # retention window after the job finished.
        self._by_idempotency: dict[tuple[str, str], Job] = {}
        # Ours: id -> (API key, when it was forgotten) of expired jobs, so they answer 410 rather than 404. Bounded:
        # the oldest tombstones go first.
        self._tombstones: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self.on_forget: list[Callable[[str], None]] = []  # called with each forgotten job's id

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._by_output[job.output_name] = job
        if job.idempotency is not None:
            self._by_idempotency[job.idempotency] = job

    def get_by_idempotency(self, api_key: str, idempotency_key: str) -> Job | None:
        job = self._by_idempotency.get((api_key, idempotency_key))
        return None if job is None else self.get(job.id)

    def get(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None and self._expired(job, time.monotonic()):
            self._forget(job)
            return None
        return job

    def get_by_output(self, name: str) -> Job | None:
        job = self._by_output.get(name)
        if job is None or job.state != COMPLETED:
            return None
        return self.get(job.id)

    def finish(self, job: Job, state: str, *, error: str | None = None, code: str | None = None) -> None:
        job.state = state
        job.error = error
        job.error_code = code if state == FAILED else None
        job.finished = time.monotonic()
        job.expires_at = job.finished + self.retention
        job.done.set()

    def counts(self) -> dict[str, int]:
        counts = {QUEUED: 0, PROCESSING: 0, COMPLETED: 0, FAILED: 0}
        for job in self._jobs.values():
            counts[job.state] += 1
        return counts

    def sweep(self) -> int:
        now = time.monotonic()
        expired = [job for job in self._jobs.values() if self._expired(job, now)]
        for job in expired:
            self._forget(job)
        return len(expired)

    def clear(self) -> None:
        for job in list(self._jobs.values()):
            self._forget(job)
        self._tombstones.clear()

    @staticmethod
    def _expired(job: Job, now: float) -> bool:
        return job.expires_at is not None and now >= job.expires_at

    def expired(self, job_id: str) -> tuple[str, float] | None:
        """(API key, monotonic time it was forgotten) of a job past its retention, if we still remember it."""
        return self._tombstones.get(job_id)

    def _forget(self, job: Job) -> None:
        for callback in self.on_forget:
            callback(job.id)
        if self._jobs.pop(job.id, None) is not None and job.expires_at is not None:
            self._tombstones[job.id] = (job.api_key, job.expires_at)
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
        self._by_output.pop(job.output_name, None)
        if job.idempotency is not None:
            self._by_idempotency.pop(job.idempotency, None)
        try:
            os.unlink(job.output_path)
        except FileNotFoundError:
            pass
