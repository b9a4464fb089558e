"""The HTTP side: Segmind's Fashion AI protocol (v1 sync, v2 async submit/status/result) on FastAPI.

The event loop only validates, fetches/decodes the input (in a thread) and enqueues; engine work runs in the process
pool, and simulated delays are timers, so one process can hold thousands of waiting jobs and still answer polls fast.
All errors are JSON `{"error": "..."}` like Segmind's; FAILED jobs are HTTP 422.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashionai import images
from fashionai.config import Settings
from fashionai.fetch import FetchError, fetch_image
from fashionai.jobs import COMPLETED, FAILED, PROCESSING, QUEUED, TERMINAL, Job, JobStore
from fashionai.pool import EnginePool

log = logging.getLogger("fashionai")

MODEL_SLUG = "fashion-ai"
CLOTHING = ("topwear", "bottomwear")
COST_PER_JOB = 1
SYNC_TIMEOUT = 600.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _retry_headers(seconds: float) -> dict[str, str]:
    seconds = max(1, math.ceil(seconds))
    reset = datetime.now(UTC) + timedelta(seconds=seconds)
    return {
        "Retry-After": str(seconds),
        # ISO 8601 UTC, e.g. 2025-01-31T12:00:05Z
        "x-rate-limit-reset-at-utc": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = JobStore(settings.retention)
        self.pool = EnginePool(settings.workers, settings.engine)
        self.queue: asyncio.Queue[tuple[Job, np.ndarray]] = asyncio.Queue(maxsize=settings.max_queue)
        self.credits: dict[str, int | None] = dict(settings.api_keys)
        self.submits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**32)
        # Separate streams: the fault pattern of jobs doesn't shift when the number of HTTP calls changes.
        self.fail_rng = random.Random(f"{seed}-fail")
        self.error_rng = random.Random(f"{seed}-error")
        self.data_dir = tempfile.mkdtemp(prefix="fashionai-")
        self.tasks: list[asyncio.Task[None]] = []
        self.timers: dict[str, asyncio.TimerHandle] = {}  # job id -> pending --delay timer
        self.recent_times: collections.deque[float] = collections.deque(maxlen=50)

    # -------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.pool.start()
        # One dispatcher per engine worker: a job leaves QUEUED exactly when a worker is free for it.
        self.tasks = [asyncio.create_task(self._dispatch()) for _ in range(self.settings.workers)]
        self.tasks.append(asyncio.create_task(self._sweep()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for timer in self.timers.values():
            timer.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.to_thread(self.pool.shutdown)
        self.store.clear()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    async def _sweep(self) -> None:
        interval = min(max(self.settings.retention / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            self.store.sweep()

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job, rgb = await self.queue.get()
            job.state = PROCESSING
            started = time.monotonic()
            if job.simulate_failure:
                outcome: dict[str, Any] = {"ok": False, "error": "Simulated failure (--fail-rate)"}
            else:
                outcome = await self.pool.run(rgb, job.prompt, job.clothing, job.output_path)
            del rgb
            # --delay is served by a timer, after the engine has released its worker.
            remaining = max(0.0, self.settings.delay - (time.monotonic() - started))
            if remaining > 0:
                self.timers[job.id] = loop.call_later(remaining, self._complete, job, outcome)
            else:
                self._complete(job, outcome)

    def _complete(self, job: Job, outcome: dict[str, Any]) -> None:
        self.timers.pop(job.id, None)
        if outcome.get("ok"):
            job.inference_time = float(outcome["inference_time"])
            job.meta = dict(outcome.get("meta") or {})
            self.recent_times.append(job.inference_time)
            self.store.finish(job, COMPLETED)
        else:
            self.store.finish(job, FAILED, error=str(outcome.get("error") or "The edit failed."))
            self._refund(job.api_key)
            log.info("request %s failed: %s", job.id, job.error)

    # -------------------------------------------------------------------------------------------- policy

    def authenticate(self, request: Request) -> str:
        key = request.headers.get("x-api-key", "")
        for known in self.credits:
            if key and hmac.compare_digest(key.encode(), known.encode()):
                return known
        raise ApiError(401, "Invalid or missing API key (send it in the x-api-key header)")

    def check_rate(self, key: str) -> None:
        limit = self.settings.rate_limit
        if not limit:
            return
        now = time.monotonic()
        window = self.submits[key]
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= limit:
            raise ApiError(
                429, f"Rate limit exceeded ({limit} requests per minute)", _retry_headers(window[0] + 60.0 - now)
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

    def queue_full_headers(self) -> dict[str, str]:
        per_job = (sum(self.recent_times) / len(self.recent_times)) if self.recent_times else 0.3
        return _retry_headers(self.queue.qsize() * per_job / self.settings.workers)

    # -------------------------------------------------------------------------------------------- jobs

    async def read_params(self, request: Request) -> tuple[str, str, str]:
        body = await _read_body(request, self.settings.max_body_bytes)
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Request body must be JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Request body must be a JSON object with image, prompt and clothing")
        image, prompt, clothing = data.get("image"), data.get("prompt"), data.get("clothing", "topwear")
        if not isinstance(image, str) or not image.strip():
            raise ApiError(400, "image is required (an http(s) URL, a data: URI or base64 image bytes)")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ApiError(400, "prompt is required")
        if len(prompt) > 1000:
            raise ApiError(400, "prompt is too long (at most 1000 characters)")
        if clothing is None:
            clothing = "topwear"
        if clothing not in CLOTHING:
            raise ApiError(400, f"clothing must be one of {CLOTHING[0]}, {CLOTHING[1]}")
        return image.strip(), prompt.strip(), str(clothing)

    async def load_image(self, value: str) -> np.ndarray:
        s = self.settings
        try:
            if value.lower().startswith(("http://", "https://")):
                data = await fetch_image(
                    value, allow=s.fetch_allow_hosts, timeout=s.fetch_timeout, max_bytes=s.max_image_bytes
                )
            else:
                data = images.decode_data_uri_or_base64(value, max_bytes=s.max_image_bytes)
            if len(data) > s.max_image_bytes:
                raise ApiError(400, f"image is too large (more than {s.max_image_bytes} bytes)")
            # Decoding a large photo takes tens of ms: keep it off the event loop.
            return await asyncio.to_thread(images.load_rgb_512, data, max_pixels=s.max_image_pixels)
        except (FetchError, images.ImageError) as exc:
            raise ApiError(400, str(exc)) from None

    async def submit(self, request: Request, key: str) -> Job:
        self.check_rate(key)
        self.check_credits(key)
        image_value, prompt, clothing = await self.read_params(request)
        rgb = await self.load_image(image_value)
        if self.queue.full():
            raise ApiError(429, "The service is busy (queue full); retry later", self.queue_full_headers())
        self.check_credits(key)  # again: another submit may have spent the last credit while we fetched
        job = Job(
            prompt=prompt,
            clothing=clothing,
            api_key=key,
            output_path="",
            simulate_failure=self.fail_rng.random() < self.settings.fail_rate,
        )
        job.output_path = os.path.join(self.data_dir, job.output_name)
        self.charge(key)
        self.store.add(job)
        self.queue.put_nowait((job, rgb))
        return job

    # -------------------------------------------------------------------------------------------- bodies

    def base_url(self, request: Request) -> str:
        return (self.settings.public_url or str(request.base_url)).rstrip("/") + "/"

    def urls(self, request: Request, job: Job) -> dict[str, str]:
        base = self.base_url(request)
        status_url = f"{base}v2/requests/{job.id}/status"
        return {"status_url": status_url, "response_url": f"{base}v2/requests/{job.id}", "poll_url": status_url}

    def metrics(self, job: Job) -> dict[str, Any]:
        if job.state != COMPLETED or job.inference_time is None:
            return {}
        assert job.finished is not None
        return {"inference_time": round(job.inference_time, 4), "total_time": round(job.finished - job.created, 4)}

    def status_body(self, request: Request, job: Job) -> tuple[int, dict[str, Any]]:
        urls = self.urls(request, job)
        body: dict[str, Any] = {
            "status": job.state,
            "request_id": job.id,
            "status_url": urls["status_url"],
            "response_url": urls["response_url"],
            "metrics": self.metrics(job),
        }
        if job.state == FAILED:
            body["error"] = job.error
            return 422, body
        return 200, body

    def result_body(self, request: Request, job: Job) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": job.state,
            "request_id": job.id,
            "error": job.error,
            "output": None,
            "metrics": self.metrics(job),
        }
        if job.state == COMPLETED:
            body["output"] = f"{self.base_url(request)}outputs/{job.output_name}"
            body["edit"] = job.meta
            return 200, body
        if job.state == FAILED:
            return 422, body
        return 200, body


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(400, f"Request body is too large (limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(400, f"Request body is too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image", "prompt"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "description": "http(s) URL, data: URI or base64 image; center-cropped to 512x512",
                        },
                        "prompt": {"type": "string", "example": "a person wearing blue jeans"},
                        "clothing": {"type": "string", "enum": list(CLOTHING), "default": "topwear"},
                    },
                }
            }
        },
    }
}


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        log.info("fashionai ready: engine=%s workers=%d", settings.engine, settings.workers)
        yield
        await service.stop()

    app = FastAPI(
        title="Fashion AI (self-hosted)",
        version="1.0",
        description=(
            "Segmind's Fashion AI API, self-hosted: recolours and patterns the worn garment. "
            "It cannot change a garment's type or shape. Auth: `x-api-key` header."
        ),
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "Bad request parameters")  # 422 is reserved for FAILED jobs in this protocol

    @app.middleware("http")
    async def inject_faults(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if settings.error_rate > 0 and path.startswith(("/v1/", "/v2/")):
            if service.error_rng.random() < settings.error_rate:
                status = service.error_rng.choice((500, 502, 429))
                headers = _retry_headers(1) if status == 429 else None
                return _error(status, f"Injected fault (--error-rate): HTTP {status}", headers)
        response: Response = await call_next(request)
        return response

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "engine": settings.engine,
            "workers": settings.workers,
            "queued": service.queue.qsize(),
            "jobs": service.store.counts(),
        }

    @app.post("/v2/{slug}", tags=["fashion-ai"], openapi_extra=_SUBMIT_BODY)
    async def submit_async(slug: str, request: Request) -> JSONResponse:
        """Async submit: answers at once with the request id and absolute status/response URLs."""
        key = service.authenticate(request)
        if slug != MODEL_SLUG:
            raise ApiError(404, f"Model {slug} not found")
        job = await service.submit(request, key)
        body = {"request_id": job.id, "status": QUEUED, **service.urls(request, job)}
        return JSONResponse(body, headers=service.credit_headers(key))

    @app.post("/v1/{slug}", tags=["fashion-ai"], openapi_extra=_SUBMIT_BODY, response_class=Response)
    async def run_sync(slug: str, request: Request) -> Response:
        """Sync: waits for the edit and answers with the PNG image itself (FAILED -> 422 JSON)."""
        key = service.authenticate(request)
        if slug != MODEL_SLUG:
            raise ApiError(404, f"Model {slug} not found")
        job = await service.submit(request, key)
        try:
            await asyncio.wait_for(job.done.wait(), SYNC_TIMEOUT)
        except TimeoutError:
            raise ApiError(504, "The edit did not finish in time; poll the request id instead") from None
        headers = {**service.credit_headers(key), "x-request-id": job.id}
        if job.state == FAILED:
            return JSONResponse({"status": FAILED, "error": job.error}, status_code=422, headers=headers)
        if job.inference_time is not None:
            headers["x-inference-time"] = f"{job.inference_time:.4f}"
        return FileResponse(job.output_path, media_type="image/png", headers=headers)

    @app.get("/v2/requests/{request_id}/status", tags=["requests"])
    async def request_status(request_id: str, request: Request) -> JSONResponse:
        service.authenticate(request)
        if settings.status_delay:  # a slow provider: the answer (and the connection) is held this long
            await asyncio.sleep(settings.status_delay)
        job = _job_or_404(service, request_id)
        status, body = service.status_body(request, job)
        return JSONResponse(body, status_code=status)

    @app.get("/v2/requests/{request_id}", tags=["requests"])
    async def request_result(request_id: str, request: Request) -> JSONResponse:
        service.authenticate(request)
        if settings.status_delay:
            await asyncio.sleep(settings.status_delay)
        job = _job_or_404(service, request_id)
        status, body = service.result_body(request, job)
        return JSONResponse(body, status_code=status)

    @app.get("/v1/requests/{request_id}", tags=["requests"])
    async def request_result_v1(request_id: str, request: Request) -> JSONResponse:
        """Backward-compatible poll: same body as GET /v2/requests/{id}."""
        return await request_result(request_id, request)

    @app.get("/outputs/{name}", tags=["outputs"], response_class=Response)
    async def output(name: str) -> Response:
        """The result image. Unguessable URL, no key needed (like a presigned link); gone after retention."""
        job = service.store.get_by_output(name)
        if job is None or not os.path.exists(job.output_path):
            raise ApiError(404, "Output not found (unknown or expired)")
        return FileResponse(job.output_path, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    return app


def _job_or_404(service: Service, request_id: str) -> Job:
    job = service.store.get(request_id)
    if job is None:
        raise ApiError(404, f"Request {request_id} not found")
    return job


__all__ = ["create_app", "TERMINAL"]
