"""Durable mode's API role: the same protocol as fashionai/service.py, with every job, queue entry, idempotency key,
counter and webhook endpoint in Redis (fashionai/redis_jobs.py) instead of this process's memory. Chosen by
FASHIONAI_REDIS_URL.

An API process here runs no engine: it accepts jobs onto the Redis stream, which engine processes
(`python -m fashionai engine`, fashionai/engine_role.py) consume, on this machine or others. Any API process answers
for any job, so they can sit behind one load balancer, and one killed at any moment loses nothing: a job is accepted
in one atomic step (SUBMIT_SCRIPT) or not at all.

Webhooks: the script that finishes a job also adds it to the finished stream when its key has an endpoint; the API
processes read that stream (a consumer group, like the engines') and deliver, renewing a lease (FASHIONAI_LEASE)
while they retry, so a delivery interrupted by a killed API process is made by another (with the same
`webhook-id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import time
from dataclasses import asdict
from typing import Any

from fashionai.config import Settings
from fashionai.fetch import Resolver, system_resolve
from fashionai.jobs import COMPLETED, FAILED, PROCESSING, QUEUED, TERMINAL, Job
from fashionai.outputs import ResultStore, S3Outputs, SharedFolderOutputs
from fashionai.redis_jobs import PENDING_SECONDS, RedisJobs, consumer_name
from fashionai.schemas import SubmitBody
from fashionai.service import (
    COST_PER_JOB,
    IDEMPOTENCY_CONFLICT,
    ApiError,
    Service,
    body_fingerprint,
    check_idempotency_key,
    retry_headers,
)
from fashionai.webhooks import Attempt, Delivery, Endpoint, event_body, make_endpoint

log = logging.getLogger("fashionai")

WAIT_POLL_SECONDS = 0.1  # how often a waiting request (?wait=N, v1 sync) re-reads its job
STATS_SECONDS = 1.0  # how often the ETA's inputs (engine times, engine slots) are re-read
MAX_DELIVERIES_IN_FLIGHT = 256  # webhook deliveries one API process retries at once


def make_outputs(settings: Settings) -> ResultStore:
    if settings.output_s3_bucket:
        return S3Outputs(
            bucket=settings.output_s3_bucket, prefix=settings.output_s3_prefix,
            endpoint_url=settings.output_s3_endpoint_url, region=settings.output_s3_region,
        )
    return SharedFolderOutputs(settings.output_dir)


class DurableService(Service):
    def __init__(self, settings: Settings, *, resolve: Resolver = system_resolve) -> None:
        super().__init__(settings, resolve=resolve)
        self.jobs = RedisJobs(
            settings.redis_url, settings.redis_prefix, retention=settings.retention, output_dir=settings.output_dir
        )
        self.results = make_outputs(settings)
        self.engine_slots = 0  # engine worker slots reporting in, for the ETA
        self.consumer = consumer_name()  # this process in the finished stream's consumer group
        self.delivering: set[asyncio.Task[None]] = set()
        self.delivery_slots = asyncio.Semaphore(MAX_DELIVERIES_IN_FLIGHT)

    async def start(self) -> None:
        # No engine pool here: previews start one worker lazily, jobs go to the engine processes.
        await self.jobs.setup(self.settings.api_keys)
        self.tasks = [asyncio.create_task(self._refresh_stats()), asyncio.create_task(self._read_finished())]

    async def stop(self) -> None:
        for task in [*self.tasks, *self.delivering]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.delivering, return_exceptions=True)
        await self.webhooks.stop()
        await asyncio.to_thread(self.pool.shutdown)
        await self.jobs.close()

    async def _refresh_stats(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # Redis away for a moment: the ETA is just staler
                times = await self.jobs.recent_times()
                self.recent_times.clear()
                self.recent_times.extend(times)
                self.engine_slots = await self.jobs.engine_slots(fresh_within=max(3 * self.settings.lease, 5.0))
            await asyncio.sleep(STATS_SECONDS)

    # -------------------------------------------------------------------------------------------- webhooks

    async def webhook_register(self, key: str, *, url: str, secret: str | None) -> Endpoint:
        endpoint = make_endpoint(url, secret)
        await self.jobs.set_webhook_endpoint(key, {"url": endpoint.url, "secret": endpoint.secret})
        return endpoint

    async def webhook_unregister(self, key: str) -> None:
        await self.jobs.set_webhook_endpoint(key, None)

    async def webhook_log(self, job_id: str) -> list[dict[str, Any]]:
        return await self.jobs.deliveries(job_id)

    async def _read_finished(self) -> None:
        while True:
            await self.delivery_slots.acquire()
            try:
                entry = await self.jobs.next_entry(
                    self.consumer, lease=self.settings.lease, block=1.0, finished=True
                )
            except Exception:
                self.delivery_slots.release()
                log.exception("could not read the finished stream; retrying")
                await asyncio.sleep(1.0)
                continue
            if entry is None:
                self.delivery_slots.release()
                continue
            task = asyncio.create_task(self._deliver(*entry))
            self.delivering.add(task)
            task.add_done_callback(self.delivering.discard)

    async def _deliver(self, entry_id: str, job_id: str) -> None:
        renewing = asyncio.create_task(self._renew_delivery(entry_id))
        try:
            job = await self.jobs.get(job_id)
            endpoint = None if job is None else await self.jobs.webhook_endpoint(job.api_key)
            if job is not None and endpoint is not None:
                _status, data = self.result_body(job, base_url=job.base_url)
                event = "request.completed" if job.state == COMPLETED else "request.failed"
                # The same id whichever process delivers it: the receiver drops a repeat after a takeover.
                digest = hashlib.sha256(f"{entry_id} {job_id}".encode()).hexdigest()[:32]
                delivery = Delivery(id=f"msg_{digest}", type=event, url=endpoint["url"])
                history = await self.jobs.deliveries(job_id)
                # Taking over another process's delivery: its attempts so far stay in the log.
                for earlier in (d for d in history if d.get("id") == delivery.id):
                    delivery.attempts = [Attempt(**attempt) for attempt in earlier["attempts"]]
                history = [d for d in history if d.get("id") != delivery.id]

                async def save() -> None:
                    await self.jobs.save_deliveries(
                        job_id, [*history, asdict(delivery)], keep=min(seconds_left(job), self.settings.retention)
                    )

                await self.webhooks.deliver(
                    delivery, Endpoint(url=endpoint["url"], secret=endpoint["secret"]), event_body(event, data),
                    after_attempt=save,
                )
            await self.jobs.drop_entry(entry_id, finished=True)
        except asyncio.CancelledError:
            raise  # this process is stopping: the entry stays pending, another API process takes it over
        except Exception:
            log.exception("webhook for %s: not delivered here; another process retries after the lease", job_id)
        finally:
            renewing.cancel()
            self.delivery_slots.release()

    async def _renew_delivery(self, entry_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            with contextlib.suppress(Exception):
                await self.jobs.renew(self.consumer, entry_id, finished=True)

    # -------------------------------------------------------------------------------------------- policy

    async def check_rate(self, key: str) -> None:
        limit = self.settings.rate_limit
        if not limit:
            return
        count, reset_in = await self.jobs.count_submit(key)
        if count > limit:
            raise ApiError(429, f"Rate limit exceeded ({limit} requests per minute)", retry_headers(reset_in))

    def _busy_headers(self) -> dict[str, str]:
        return retry_headers(5)

    # -------------------------------------------------------------------------------------------- jobs

    async def submit(
        self,
        *,
        key: str,
        body: SubmitBody,
        idempotency_key: str | None = None,
        start_within: float | None = None,
        base_url: str = "",
    ) -> tuple[Job, bool]:
        if idempotency_key is None:
            return await self._accept(key=key, body=body, start_within=start_within, base_url=base_url), False
        check_idempotency_key(idempotency_key)
        fingerprint = body_fingerprint(body)
        name = self.jobs.idempotency_name(key, idempotency_key)
        give_up = time.monotonic() + PENDING_SECONDS
        while True:
            held = await self.jobs.idempotency_claim(name, fingerprint)
            if held is None:
                break  # this submit is the first under the key
            kind, _sep, rest = held.partition(" ")
            held_fingerprint, _sep, job_id = rest.partition(" ")
            if kind in ("pending", "job") and held_fingerprint != fingerprint:
                raise ApiError(409, IDEMPOTENCY_CONFLICT)
            if kind == "job":
                first = await self.jobs.get(job_id)
                if first is not None:
                    return first, True
            # The first submit (on any API process) is still fetching its image: wait for its answer.
            if time.monotonic() > give_up:
                raise ApiError(409, "A request with this Idempotency-Key is still being accepted; retry later")
            await asyncio.sleep(0.05)
        try:
            job = await self._accept(
                key=key, body=body, start_within=start_within, base_url=base_url,
                idempotency=(key, idempotency_key), fingerprint=fingerprint, idempotency_name=name,
            )
        except BaseException:
            await self.jobs.idempotency_release(name, fingerprint)
            raise
        return job, False

    async def _accept(
        self,
        *,
        key: str,
        body: SubmitBody,
        start_within: float | None,
        base_url: str,
        idempotency: tuple[str, str] | None = None,
        fingerprint: str = "",
        idempotency_name: str = "",
    ) -> Job:
        await self.check_rate(key)
        remaining = await self.jobs.credits(key)
        if remaining is not None and remaining < COST_PER_JOB:  # before fetching: the common refusal is cheap
            raise ApiError(406, "Not enough credits to process this request")
        data = await self.load_image(body.image)
        job = Job(
            prompt=body.prompt,
            clothing=body.clothing,
            api_key=key,
            output_path="",
            simulate_failure=self.fail_rng.random() < self.settings.fail_rate,
            idempotency=idempotency,
            fingerprint=fingerprint,
            base_url=base_url,
        )
        job.output_path = self.results.path(job.output_name)
        if start_within is not None:
            job.start_by = job.created + start_within
        verdict, remaining = await self.jobs.create(
            job, data, cost=COST_PER_JOB, inflight_limit=self.settings.max_inflight_per_key,
            max_queue=self.settings.max_queue, max_queue_bytes=self.settings.max_queue_bytes,
            idempotency_name=idempotency_name,
        )
        if verdict == "credits":
            raise ApiError(406, "Not enough credits to process this request")
        if verdict == "inflight":
            limit = self.settings.max_inflight_per_key
            raise ApiError(
                429, f"Too many requests in progress for this API key (limit {limit}); retry later",
                self._busy_headers(),
            )
        if verdict == "queue":
            raise ApiError(429, "The service is busy (queue full); retry later", self._busy_headers())
        if remaining is not None:
            self.credits[key] = remaining  # this answer's x-remaining-credits
        job.position = await self.jobs.queue_position(job.id)
        return job

    async def cancel(self, job: Job) -> bool:
        if job.state not in (QUEUED, PROCESSING):
            return False
        moved = await self.jobs.finish(
            job, FAILED, error="Cancelled by the client.", code="cancelled", cost=COST_PER_JOB
        )
        if moved:
            log.info("request %s ended early: cancelled", job.id)
        return moved

    async def job_for(self, *, key: str, request_id: str, gone_is_410: bool = False) -> Job:
        job = await self.jobs.get(request_id)
        if job is None and gone_is_410:
            owner = await self.jobs.tombstone(request_id)
            if owner is not None and self._same_key(owner, key):
                raise ApiError(410, f"Request {request_id} expired (results are kept {self.settings.retention:g} s)")
        if job is None or not self._same_key(job.api_key, key):
            raise ApiError(404, f"Request {request_id} not found")
        await self._read_position(job)
        return job

    @staticmethod
    def _same_key(a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())

    async def _read_position(self, job: Job) -> None:
        """Also ends a job found QUEUED past its start deadline (the engine would, when it reached it)."""
        if job.state == QUEUED and job.start_by is not None and job.start_by <= time.monotonic():
            await self.jobs.finish(
                job, FAILED, error="Not started before its start deadline.", code="start_deadline_exceeded",
                cost=COST_PER_JOB,
            )
        job.position = await self.jobs.queue_position(job.id) if job.state == QUEUED else None

    async def wait_finished(self, job: Job, timeout: float) -> Job:
        """Re-reads the job until it has finished (`job` is updated in place); TimeoutError after `timeout`."""
        give_up = time.monotonic() + timeout
        while job.state not in TERMINAL:
            if time.monotonic() >= give_up:
                raise TimeoutError
            await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, give_up - time.monotonic())))
            fresh = await self.jobs.get(job.id)
            if fresh is None:
                raise ApiError(404, f"Request {job.id} not found")
            job.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "done"})
            await self._read_position(job)
        return job

    async def _completed_by_output(self, name: str) -> Job:
        job = await self.jobs.get_by_output(name)
        if job is None or job.state != COMPLETED:
            raise ApiError(404, "Output not found (unknown or expired)")
        return job

    async def output_path(self, name: str) -> str:
        await self._completed_by_output(name)
        return self.results.path(name)

    async def output_link(self, name: str) -> str | None:
        job = await self._completed_by_output(name)
        return self.results.url(name, expires_in=seconds_left(job))

    async def output_bytes(self, name: str) -> bytes:
        await self._completed_by_output(name)
        data = await self.results.read(name)
        if data is None:
            raise ApiError(404, "Output not found (unknown or expired)")
        return data

    def output_url(self, job: Job, *, base_url: str) -> str:
        # S3: a presigned URL, valid until the job expires; a shared folder: this service's /outputs/ link.
        return self.results.url(job.output_name, expires_in=seconds_left(job)) or super().output_url(
            job, base_url=base_url
        )

    # -------------------------------------------------------------------------------------------- bodies

    def queue_position(self, job: Job) -> int | None:
        return job.position if job.state == QUEUED else None

    def eta_seconds(self, job: Job) -> float | None:
        per_job = self._per_job_seconds()
        slots = max(1, self.engine_slots)
        if job.state == QUEUED:
            return ((job.position or 0) // slots + 1) * per_job
        if job.state == PROCESSING:
            return max(0.0, (job.started or job.created) + per_job - time.monotonic())
        return None

    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "mode": "redis",
            "engine": self.settings.engine,
            "content_screening": self.settings.safety_policy().enabled,
            "engine_slots": self.engine_slots,
            **await self.jobs.stats(),
        }


def seconds_left(job: Job) -> float:
    """Seconds until the job's result is forgotten (for presigned URLs); the full window while it runs."""
    if job.expires_at is None:
        return math.inf
    return max(0.0, job.expires_at - time.monotonic())
