"""The service's logic on plain values: keys, bodies, jobs. No HTTP objects here; fashionai/app.py parses requests
and turns answers into responses.

The event loop only checks, fetches and enqueues; engine work (decoding included) runs in the process pool, and
simulated delays are timers, so one process can hold thousands of waiting jobs and still answer polls fast. Memory
is bounded by what the queue may hold in compressed input bytes, and each key by its jobs in flight.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fashionai import images
from fashionai.config import Settings
from fashionai.fetch import FetchError, FetchPolicy, Resolver, fetch_image, system_resolve
from fashionai.jobs import COMPLETED, FAILED, PROCESSING, QUEUED, Job, JobStore
from fashionai.outputs import OutputDir, sweep_abandoned
from fashionai.pool import EnginePool
from fashionai.redact import redact_url
from fashionai.schemas import PreviewBody, SubmitBody
from fashionai.webhooks import Endpoint, Webhooks

log = logging.getLogger("fashionai")

MODEL_SLUG = "fashion-ai"
COST_PER_JOB = 1


# Ours: FAILED jobs carry `error_code` and `retryable` (would submitting the same request again possibly work?).
FAILURE_CODES: dict[str, bool] = {
    "edit_not_possible": False,  # the engine cannot make this edit of this photo (no person, no garment...)
    "content_blocked": False,  # the content screen refused the photo or the result (fashionai/safety.py)
    "input_unreadable": False,  # the image could not be decoded
    "engine_error": True,  # an engine bug on this image
    "engine_crashed": True,  # the engine worker died (killed, out of memory) while on this job
    "simulated_failure": True,  # --fail-rate
    "cancelled": False,  # POST /v2/requests/{id}/cancel
    "start_deadline_exceeded": True,  # not started before its X-Start-Deadline
}
MAX_WAIT_SECONDS = 30.0  # ?wait=N long-poll cap: below every sane client read timeout
MAX_START_DEADLINE = 86400.0
EXTENSIONS_HEADER = "x-fashionai-extensions"  # a client that sends it opts in to 410 for expired requests

IDEMPOTENCY_CONFLICT = "This Idempotency-Key was already used with a different request body"
MAX_IDEMPOTENCY_KEY = 255


def check_idempotency_key(value: str) -> None:
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or not value.isascii() or not value.isprintable():
        raise ApiError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")


def body_fingerprint(body: SubmitBody) -> str:
    """The parsed body's hash: the same request re-serialised (key order, whitespace) is the same request, and so
    is one whose image URL was signed again (a retry carries a fresh presigned URL: its query string differs)."""
    fields = body.model_dump(mode="json")
    if body.image.lower().startswith(("http://", "https://")):
        parts = urlsplit(body.image)
        fields["image"] = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _iso(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_start_deadline(raw: str | None) -> float | None:
    """Ours: `X-Start-Deadline: <seconds>`, how long the job may wait in the queue before it is given up."""
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_START_DEADLINE or math.isnan(seconds):
        raise ApiError(400, f"X-Start-Deadline must be seconds, more than 0 and at most {MAX_START_DEADLINE:g}")
    return seconds


def retry_headers(seconds: float) -> dict[str, str]:
    seconds = max(1, math.ceil(seconds))
    reset = datetime.now(UTC) + timedelta(seconds=seconds)
    return {
        "Retry-After": str(seconds),
        # ISO 8601 UTC, e.g. 2025-01-31T12:00:05Z
        "x-rate-limit-reset-at-utc": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class Service:
    def __init__(self, settings: Settings, *, resolve: Resolver = system_resolve) -> None:
        self.settings = settings
        self.store = JobStore(settings.retention)
        self.pool = EnginePool(settings.workers, settings.engine, settings.safety_policy())
        # Queued jobs hold their compressed input; `queued_bytes` is what the byte budget counts.
        self.queue: asyncio.Queue[tuple[Job, bytes]] = asyncio.Queue(maxsize=settings.max_queue)
        self.queued_bytes = 0
        self.inflight: collections.Counter[str] = collections.Counter()  # key -> jobs not finished
        self.credits: dict[str, int | None] = dict(settings.api_keys)
        self.submits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**32)
        # Separate streams: the fault pattern of jobs doesn't shift when the number of HTTP calls changes.
        self.fail_rng = random.Random(f"{seed}-fail")
        self.error_rng = random.Random(f"{seed}-error")
        self.fetch_policy = FetchPolicy(
            allow_hosts=settings.fetch_allow_hosts,
            allow_internal=settings.fetch_allow_internal,
            timeout=settings.fetch_timeout,
            max_bytes=settings.max_image_bytes,
        )
        self.resolve = resolve
        self.webhooks = Webhooks(
            policy=FetchPolicy(
                allow_hosts=("*",),
                allow_internal=settings.webhook_allow_internal,
                timeout=settings.webhook_timeout,
                max_bytes=0,
            ),
            attempts=settings.webhook_attempts,
            backoff=settings.webhook_backoff,
            resolve=resolve,
        )
        self.store.on_forget.append(self.webhooks.forget)
        self.outputs: OutputDir | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.timers: dict[str, asyncio.TimerHandle] = {}  # job id -> pending --delay timer
        self.recent_times: collections.deque[float] = collections.deque(maxlen=50)
        self.previews = 0  # previews being computed now (bounded: they share the engine workers with jobs)
        self.queued_seqs: list[int] = []  # seq of every QUEUED job, ascending: queue_position is a bisect
        self.next_seq = 0
        self.deadline_timers: dict[str, asyncio.TimerHandle] = {}  # job id -> its start-deadline timer
        self.engine_runs = 0  # jobs handed to the engine since start (health; tests count duplicate runs)
        # (API key, Idempotency-Key) -> (body fingerprint, set when that first submit has answered)
        self.idempotency_pending: dict[tuple[str, str], tuple[str, asyncio.Event]] = {}

    # -------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.outputs = OutputDir()
        for path in sweep_abandoned(self.outputs.root, keep=self.outputs.path):
            log.info("removed %s, left behind by a service that was killed", path)
        await self.pool.start()
        # One dispatcher per engine worker: a job leaves QUEUED exactly when a worker is free for it.
        self.tasks = [asyncio.create_task(self._dispatch()) for _ in range(self.settings.workers)]
        self.tasks.append(asyncio.create_task(self._sweep()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for timer in [*self.timers.values(), *self.deadline_timers.values()]:
            timer.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.webhooks.stop()
        await asyncio.to_thread(self.pool.shutdown)
        self.store.clear()
        if self.outputs is not None:
            self.outputs.remove()

    async def _sweep(self) -> None:
        interval = min(max(self.settings.retention / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            self.store.sweep()

    def _leave_queue(self, job: Job) -> None:
        index = bisect.bisect_left(self.queued_seqs, job.seq)
        if index < len(self.queued_seqs) and self.queued_seqs[index] == job.seq:
            del self.queued_seqs[index]
        timer = self.deadline_timers.pop(job.id, None)
        if timer is not None:
            timer.cancel()

    def queue_position(self, job: Job) -> int | None:
        """Jobs ahead of this one in the queue (0: next to start); None once it has left the queue."""
        if job.state != QUEUED:
            return None
        return bisect.bisect_left(self.queued_seqs, job.seq)

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job, data = await self.queue.get()
            self.queued_bytes -= len(data)
            if job.state != QUEUED:  # cancelled or past its start deadline while it waited
                continue
            self._leave_queue(job)
            job.state = PROCESSING
            started = time.monotonic()
            job.started = started
            if job.simulate_failure:
                outcome: dict[str, Any] = {
                    "ok": False, "error": "Simulated failure (--fail-rate)", "code": "simulated_failure"
                }
            else:
                self.engine_runs += 1
                outcome = await self.pool.run(
                    data,
                    job.prompt,
                    job.clothing,
                    job.output_path,
                    self.settings.max_image_pixels,
                    self.settings.engine_hold,
                )
            del data
            # --delay is served by a timer, after the engine has released its worker.
            remaining = max(0.0, self.settings.delay - (time.monotonic() - started))
            if remaining > 0:
                self.timers[job.id] = loop.call_later(remaining, self._complete, job, outcome)
            else:
                self._complete(job, outcome)

    def _complete(self, job: Job, outcome: dict[str, Any]) -> None:
        self.timers.pop(job.id, None)
        if job.state != PROCESSING:  # cancelled while the engine worked: the outcome is dropped
            with contextlib.suppress(FileNotFoundError):
                os.unlink(job.output_path)
            return
        self._release(job.api_key)
        if outcome.get("ok"):
            job.inference_time = float(outcome["inference_time"])
            job.meta = dict(outcome.get("meta") or {})
            self.recent_times.append(job.inference_time)
            self.store.finish(job, COMPLETED)
            self._announce(job)
        else:
            code = str(outcome.get("code") or "engine_error")
            self.store.finish(job, FAILED, error=str(outcome.get("error") or "The edit failed."), code=code)
            self._refund(job.api_key)
            self._announce(job)
            classes = ", ".join(outcome.get("blocked") or ())
            log.info("request %s failed: %s%s", job.id, job.error, f" (classes: {classes})" if classes else "")

    def _release(self, key: str) -> None:
        self.inflight[key] -= 1
        if self.inflight[key] <= 0:
            del self.inflight[key]

    # -------------------------------------------------------------------------------------------- policy

    def authenticate(self, key: str | None) -> str:
        for known in self.credits:
            if key and hmac.compare_digest(key.encode(), known.encode()):
                return known
        raise ApiError(401, "Invalid or missing API key (send it in the x-api-key header)")

    def check_model(self, slug: str) -> None:
        if slug != MODEL_SLUG:
            raise ApiError(404, f"Model {slug} not found")

    async def check_rate(self, key: str) -> None:
        limit = self.settings.rate_limit
        if not limit:
            return
        now = time.monotonic()
        window = self.submits[key]
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= limit:
            raise ApiError(
                429, f"Rate limit exceeded ({limit} requests per minute)", retry_headers(window[0] + 60.0 - now)
            )
        window.append(now)

    def check_credits(self, key: str) -> None:
        remaining = self.credits[key]
        if remaining is not None and remaining < COST_PER_JOB:
            raise ApiError(406, "Not enough credits to process this request")

    def charge(self, key: str) -> None:
        remaining = self.credits[key]
        if remaining is not None:
            self.credits[key] = remaining - COST_PER_JOB

    def _refund(self, key: str) -> None:
        remaining = self.credits.get(key)
        if remaining is not None:
            self.credits[key] = remaining + COST_PER_JOB

    def credit_headers(self, key: str) -> dict[str, str]:
        headers = {"x-cost": str(COST_PER_JOB)}
        remaining = self.credits.get(key)
        if remaining is not None:
            headers["x-remaining-credits"] = str(remaining)
        return headers

    def _busy_headers(self) -> dict[str, str]:
        per_job = (sum(self.recent_times) / len(self.recent_times)) if self.recent_times else 0.3
        return retry_headers(self.queue.qsize() * per_job / self.settings.workers)

    def _reserve_slot(self, key: str) -> None:
        limit = self.settings.max_inflight_per_key
        if limit and self.inflight[key] >= limit:
            raise ApiError(
                429, f"Too many requests in progress for this API key (limit {limit}); retry later",
                self._busy_headers(),
            )
        self.inflight[key] += 1

    # -------------------------------------------------------------------------------------------- jobs

    async def load_image(self, value: str) -> bytes:
        """The input's compressed bytes, checked to be an image within the limits (not decoded: the engine
        worker decodes it)."""
        s = self.settings
        try:
            if value.lower().startswith(("http://", "https://")):
                data = await fetch_image(value, self.fetch_policy, resolve=self.resolve)
                log.info("input fetched from %s (%d bytes)", redact_url(value), len(data))
            else:
                data = images.decode_data_uri_or_base64(value, max_bytes=s.max_image_bytes)
            if len(data) > s.max_image_bytes:
                raise ApiError(400, f"image is too large (more than {s.max_image_bytes} bytes)")
            images.probe(data, max_pixels=s.max_image_pixels)
            return data
        except FetchError as exc:
            log.info("input not fetched from %s: %s", redact_url(value), exc.reason)
            raise ApiError(400, str(exc)) from None
        except images.ImageError as exc:
            raise ApiError(400, str(exc)) from None

    async def submit(
        self,
        *,
        key: str,
        body: SubmitBody,
        idempotency_key: str | None = None,
        start_within: float | None = None,
        base_url: str = "",
    ) -> tuple[Job, bool]:
        """A new job, or with an `Idempotency-Key` (ours) the job first made under it: (job, replayed).

        The same key with the same body returns the first job (no second charge, no second engine run), with
        another body it is 409. While the first submit is still fetching its image a second one waits for it, so
        two racing retries make one job."""
        if idempotency_key is None:
            return await self._submit_new(key=key, body=body, start_within=start_within, base_url=base_url), False
        check_idempotency_key(idempotency_key)
        slot = (key, idempotency_key)
        fingerprint = body_fingerprint(body)
        while True:
            pending = self.idempotency_pending.get(slot)
            if pending is not None:
                if pending[0] != fingerprint:
                    raise ApiError(409, IDEMPOTENCY_CONFLICT)
                await pending[1].wait()
                continue
            first = self.store.get_by_idempotency(key, idempotency_key)
            if first is None:
                break
            if first.fingerprint != fingerprint:
                raise ApiError(409, IDEMPOTENCY_CONFLICT)
            return first, True
        done = asyncio.Event()
        self.idempotency_pending[slot] = (fingerprint, done)
        try:
            job = await self._submit_new(
                key=key,
                body=body,
                idempotency=slot,
                fingerprint=fingerprint,
                start_within=start_within,
                base_url=base_url,
            )
        finally:
            # A refused first submit (400, 429...) leaves no key behind: a retry is a fresh attempt.
            del self.idempotency_pending[slot]
            done.set()
        return job, False

    async def _submit_new(
        self,
        *,
        key: str,
        body: SubmitBody,
        idempotency: tuple[str, str] | None = None,
        fingerprint: str = "",
        start_within: float | None = None,
        base_url: str = "",
    ) -> Job:
        await self.check_rate(key)
        self.check_credits(key)
        self._reserve_slot(key)
        try:
            data = await self.load_image(body.image)
            if self.queue.full() or self.queued_bytes + len(data) > self.settings.max_queue_bytes:
                raise ApiError(429, "The service is busy (queue full); retry later", self._busy_headers())
            self.check_credits(key)  # again: another submit may have spent the last credit while we fetched
        except BaseException:
            self._release(key)
            raise
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
        assert self.outputs is not None, "submit before start"
        job.output_path = self.outputs.file(job.output_name)
        self.charge(key)
        self.next_seq += 1
        job.seq = self.next_seq
        self.queued_seqs.append(job.seq)
        if start_within is not None:
            job.start_by = job.created + start_within
            loop = asyncio.get_running_loop()
            self.deadline_timers[job.id] = loop.call_later(start_within, self._start_deadline_passed, job)
        self.store.add(job)
        self.queue.put_nowait((job, data))
        self.queued_bytes += len(data)
        return job

    async def preview(self, *, key: str, body: PreviewBody) -> dict[str, Any]:
        """The free preview (our extension, not Segmind's): the region an edit would change and the quality gate's
        verdict, computed by the same code the edit runs. No credits, no job; it shares the engine workers with
        jobs (it takes the next free one, ahead of the queue) and the key's rate limit with submits."""
        if self.settings.engine != "recolor":
            raise ApiError(404, "This service has no preview: it needs the recolor engine")
        await self.check_rate(key)
        if self.previews >= 2 * self.settings.workers:
            raise ApiError(429, "Too many previews in progress; retry shortly", retry_headers(1))
        self.previews += 1
        try:
            data = await self.load_image(body.image)
            outcome = await self.pool.preview(data, body.clothing, body.prompt, self.settings.max_image_pixels)
        finally:
            self.previews -= 1
        if not outcome.get("ok"):
            raise ApiError(400, str(outcome.get("error") or "The preview failed."))
        mask = base64.b64encode(outcome["mask_png"]).decode()
        return {
            "verdict": outcome["verdict"],
            "mask": f"data:image/png;base64,{mask}",
            "width": images.SIZE,
            "height": images.SIZE,
            **outcome["meta"],
            "inference_time": round(float(outcome["seconds"]), 4),
            "extension": "fashionai-preview",  # not part of Segmind's protocol
        }

    async def cancel(self, job: Job) -> bool:
        """Ours: end a QUEUED or PROCESSING job as FAILED with error_code `cancelled`, refunded (the engine's work
        on a PROCESSING job is dropped when it returns). False: it had already finished. `job` shows its new state."""
        if job.state not in (QUEUED, PROCESSING):
            return False
        self._end_early(job, code="cancelled", error="Cancelled by the client.")
        return True

    def _start_deadline_passed(self, job: Job) -> None:
        self.deadline_timers.pop(job.id, None)
        if job.state == QUEUED:
            self._end_early(job, code="start_deadline_exceeded", error="Not started before its start deadline.")

    def _end_early(self, job: Job, *, code: str, error: str) -> None:
        if job.state == QUEUED:
            self._leave_queue(job)  # its queue entry is skipped by the dispatcher
        timer = self.timers.pop(job.id, None)
        if timer is not None:  # engine done, --delay running: the result is dropped now
            timer.cancel()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(job.output_path)
        self._release(job.api_key)
        self.store.finish(job, FAILED, error=error, code=code)
        self._refund(job.api_key)
        log.info("request %s ended early: %s", job.id, code)
        self._announce(job)

    def _announce(self, job: Job) -> None:
        """Ours: the key's webhook endpoint (if any) hears about the finished job, with the result body."""
        _status, data = self.result_body(job, base_url=job.base_url)
        event = "request.completed" if job.state == COMPLETED else "request.failed"
        self.webhooks.job_finished(api_key=job.api_key, job_id=job.id, event=event, data=data)

    # -------------------------------------------------------------------------------------------- webhooks

    async def webhook_register(self, key: str, *, url: str, secret: str | None) -> Endpoint:
        return self.webhooks.register(key, url=url, secret=secret)

    async def webhook_unregister(self, key: str) -> None:
        self.webhooks.unregister(key)

    async def webhook_log(self, job_id: str) -> list[dict[str, Any]]:
        return self.webhooks.log_for(job_id)

    async def job_for(self, *, key: str, request_id: str, gone_is_410: bool = False) -> Job:
        """The key's own job. Another key's job answers exactly like an unknown one."""
        job = self.store.get(request_id)
        if job is None and gone_is_410:
            expired = self.store.expired(request_id)
            if expired is not None and hmac.compare_digest(expired[0].encode(), key.encode()):
                raise ApiError(410, f"Request {request_id} expired (results are kept {self.settings.retention:g} s)")
        if job is None or not hmac.compare_digest(job.api_key.encode(), key.encode()):
            raise ApiError(404, f"Request {request_id} not found")
        return job

    async def output_path(self, name: str) -> str:
        """The result file of a COMPLETED job by its output name (the unguessable last part of its URL)."""
        job = self.store.get_by_output(name)
        if job is None:
            raise ApiError(404, "Output not found (unknown or expired)")
        return job.output_path

    async def output_link(self, name: str) -> str | None:
        """Where the result is served from elsewhere (a presigned S3 URL, durable mode); None: served here."""
        return None

    async def output_bytes(self, name: str) -> bytes:
        with open(await self.output_path(name), "rb") as fh:
            return fh.read()

    def output_url(self, job: Job, *, base_url: str) -> str:
        return f"{base_url}outputs/{job.output_name}"

    # -------------------------------------------------------------------------------------------- bodies

    def urls(self, job: Job, *, base_url: str) -> dict[str, str]:
        status_url = f"{base_url}v2/requests/{job.id}/status"
        return {"status_url": status_url, "response_url": f"{base_url}v2/requests/{job.id}", "poll_url": status_url}

    def submitted_body(self, job: Job, *, base_url: str) -> dict[str, Any]:
        return {"request_id": job.id, "status": QUEUED, **self.urls(job, base_url=base_url)}

    def metrics(self, job: Job) -> dict[str, Any]:
        if job.state != COMPLETED or job.inference_time is None:
            return {}
        assert job.finished is not None
        return {"inference_time": round(job.inference_time, 4), "total_time": round(job.finished - job.created, 4)}

    def _per_job_seconds(self) -> float:
        engine = (sum(self.recent_times) / len(self.recent_times)) if self.recent_times else 0.3
        return engine + self.settings.delay

    def eta_seconds(self, job: Job) -> float | None:
        """Ours: seconds until the job should be finished, from recent engine times and the queue ahead of it."""
        per_job = self._per_job_seconds()
        if job.state == QUEUED:
            ahead = self.queue_position(job) or 0
            return (ahead // self.settings.workers + 1) * per_job
        if job.state == PROCESSING:
            return max(0.0, (job.started or job.created) + per_job - time.monotonic())
        return None

    def ours(self, job: Job) -> dict[str, Any]:
        """The fields we add to Segmind's status and result bodies (clients that don't know them ignore them)."""
        now = time.monotonic()
        eta = self.eta_seconds(job)
        fields: dict[str, Any] = {
            "queue_position": self.queue_position(job),
            "eta_seconds": None if eta is None else round(eta, 3),
            "eta": None if eta is None else _iso(eta),
            "expires_at": None if job.expires_at is None else _iso(job.expires_at - now),
        }
        if job.state == FAILED:
            code = job.error_code or "engine_error"
            fields["error_code"] = code
            fields["retryable"] = FAILURE_CODES.get(code, False)
        return fields

    def poll_headers(self, job: Job) -> dict[str, str]:
        """Ours: an unfinished job's answers say when asking again is worth it."""
        eta = self.eta_seconds(job)
        if eta is None:
            return {}
        return {"Retry-After": str(max(1, min(30, math.ceil(eta))))}

    async def wait_for(self, job: Job, seconds: float | None) -> Job:
        """Ours (`?wait=N`): hold the answer until the job finishes or N seconds (at most MAX_WAIT_SECONDS) pass.
        Returns the job as it is then."""
        if not seconds or seconds <= 0 or job.state not in (QUEUED, PROCESSING):
            return job
        with contextlib.suppress(TimeoutError):
            return await self.wait_finished(job, min(seconds, MAX_WAIT_SECONDS))
        return job

    async def wait_finished(self, job: Job, timeout: float) -> Job:
        """The job once it has finished; TimeoutError after `timeout` seconds."""
        await asyncio.wait_for(job.done.wait(), timeout)
        return job

    def status_body(self, job: Job, *, base_url: str) -> tuple[int, dict[str, Any]]:
        urls = self.urls(job, base_url=base_url)
        body: dict[str, Any] = {
            "status": job.state,
            "request_id": job.id,
            "status_url": urls["status_url"],
            "response_url": urls["response_url"],
            "metrics": self.metrics(job),
            **self.ours(job),
        }
        if job.state == FAILED:
            body["error"] = job.error
            return 422, body
        return 200, body

    def result_body(self, job: Job, *, base_url: str) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": job.state,
            "request_id": job.id,
            "error": job.error,
            "output": None,
            "metrics": self.metrics(job),
            **self.ours(job),
        }
        if job.state == COMPLETED:
            body["output"] = self.output_url(job, base_url=base_url)
            body["edit"] = job.meta
            return 200, body
        if job.state == FAILED:
            return 422, body
        return 200, body

    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "engine": self.settings.engine,
            "content_screening": self.settings.safety_policy().enabled,
            "workers": self.settings.workers,
            "queued": self.queue.qsize(),
            "queued_bytes": self.queued_bytes,
            "jobs": self.store.counts(),
            "engine_runs": self.engine_runs,
        }
