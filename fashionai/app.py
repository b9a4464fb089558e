"""The HTTP side: Segmind's Fashion AI protocol (v1 sync, v2 async submit/status/result) on FastAPI.

This layer only turns requests into plain values (the key header, the size-capped body parsed into its model, the
base URL) for fashionai/service.py, and its answers into responses. All errors are JSON `{"error": "..."}` like
Segmind's; FAILED jobs are HTTP 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashionai.config import Settings
from fashionai.durable import DurableService
from fashionai.fetch import Resolver, system_resolve
from fashionai.jobs import FAILED, Job
from fashionai.schemas import BodyError, PreviewBody, SubmitBody, openapi_body, parse_preview, parse_submit
from fashionai.service import EXTENSIONS_HEADER, ApiError, Service, parse_start_deadline, retry_headers
from fashionai.streams import TooLarge, read_capped
from fashionai.webhooks import WebhookError

log = logging.getLogger("fashionai")

SYNC_TIMEOUT = 600.0


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(settings: Settings, *, resolve: Resolver = system_resolve) -> FastAPI:
    service = (DurableService if settings.redis_url else Service)(settings, resolve=resolve)

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
    submit_doc = openapi_body(SubmitBody)
    preview_doc = openapi_body(PreviewBody)

    def base_url(request: Request) -> str:
        return (settings.public_url or str(request.base_url)).rstrip("/") + "/"

    def api_key(request: Request) -> str:
        return service.authenticate(request.headers.get("x-api-key"))

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        try:
            return await read_capped(request.stream(), limit=limit, declared=request.headers.get("content-length"))
        except TooLarge:
            raise ApiError(400, f"Request body is too large (limit {limit} bytes)") from None

    async def submit_body(request: Request) -> SubmitBody:
        try:
            return parse_submit(await read_body(request))
        except BodyError as exc:
            raise ApiError(400, str(exc)) from None

    async def preview_body(request: Request) -> PreviewBody:
        try:
            return parse_preview(await read_body(request))
        except BodyError as exc:
            raise ApiError(400, str(exc)) from None

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
    async def inject_faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if settings.error_rate > 0 and request.url.path.startswith(("/v1/", "/v2/")):
            if service.error_rng.random() < settings.error_rate:
                status = service.error_rng.choice((500, 502, 429))
                headers = retry_headers(1) if status == 429 else None
                return _error(status, f"Injected fault (--error-rate): HTTP {status}", headers)
        return await call_next(request)

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        return await service.health()

    @app.post("/v2/fashion-ai/preview", tags=["extensions"], openapi_extra=preview_doc)
    async def preview(request: Request) -> JSONResponse:
        """Ours, not Segmind's: the free preview. The region mask (a 512x512 PNG data URI, white = would change)
        and the quality gate's verdict (`ok`, `code`, `message`, `score`, `checks`) for this photo and clothing,
        without charging or creating a job. The edit of the same image uses the same mask (`mask_digest`)."""
        key = api_key(request)
        return JSONResponse(await service.preview(key=key, body=await preview_body(request)))

    @app.post("/v2/{slug}", tags=["fashion-ai"], openapi_extra=submit_doc)
    async def submit_async(slug: str, request: Request) -> JSONResponse:
        """Async submit: answers at once with the request id and absolute status/response URLs."""
        key = api_key(request)
        service.check_model(slug)
        job, replayed = await service.submit(
            key=key,
            body=await submit_body(request),
            idempotency_key=request.headers.get("idempotency-key"),
            start_within=parse_start_deadline(request.headers.get("x-start-deadline")),
            base_url=base_url(request),
        )
        body = service.submitted_body(job, base_url=base_url(request))
        headers = service.credit_headers(key)
        if replayed:
            headers["idempotent-replayed"] = "true"
        return JSONResponse(body, headers=headers)

    @app.post("/v1/{slug}", tags=["fashion-ai"], openapi_extra=submit_doc, response_class=Response)
    async def run_sync(slug: str, request: Request) -> Response:
        """Sync: waits for the edit and answers with the PNG image itself (FAILED -> 422 JSON)."""
        key = api_key(request)
        service.check_model(slug)
        job, _replayed = await service.submit(
            key=key,
            body=await submit_body(request),
            idempotency_key=request.headers.get("idempotency-key"),
            start_within=parse_start_deadline(request.headers.get("x-start-deadline")),
            base_url=base_url(request),
        )
        try:
            job = await service.wait_finished(job, SYNC_TIMEOUT)
        except TimeoutError:
            raise ApiError(504, "The edit did not finish in time; poll the request id instead") from None
        headers = {**service.credit_headers(key), "x-request-id": job.id}
        if job.state == FAILED:
            return JSONResponse({"status": FAILED, "error": job.error}, status_code=422, headers=headers)
        if job.inference_time is not None:
            headers["x-inference-time"] = f"{job.inference_time:.4f}"
        return await output_response(job.output_name, headers, inline=True)

    async def _held() -> None:
        if settings.status_delay:  # a slow provider: the answer (and the connection) is held this long
            await asyncio.sleep(settings.status_delay)

    def wait_seconds(request: Request) -> float | None:
        raw = request.query_params.get("wait")
        if raw is None:
            return None
        try:
            seconds = float(raw)
        except ValueError:
            raise ApiError(400, "wait must be a number of seconds") from None
        if not 0 <= seconds <= 3600:
            raise ApiError(400, "wait must be between 0 and 3600 seconds")
        return seconds

    async def polled_job(request_id: str, request: Request) -> Job:
        key = api_key(request)
        wait = wait_seconds(request)
        await _held()
        job = await service.job_for(
            key=key, request_id=request_id, gone_is_410=request.headers.get(EXTENSIONS_HEADER) is not None
        )
        return await service.wait_for(job, wait)

    @app.get("/v2/requests/{request_id}/status", tags=["requests"])
    async def request_status(request_id: str, request: Request) -> JSONResponse:
        job = await polled_job(request_id, request)
        status, body = service.status_body(job, base_url=base_url(request))
        return JSONResponse(body, status_code=status, headers=service.poll_headers(job))

    @app.get("/v2/requests/{request_id}", tags=["requests"])
    async def request_result(request_id: str, request: Request) -> JSONResponse:
        job = await polled_job(request_id, request)
        status, body = service.result_body(job, base_url=base_url(request))
        return JSONResponse(body, status_code=status, headers=service.poll_headers(job))

    @app.post("/v2/requests/{request_id}/cancel", tags=["requests"])
    async def request_cancel(request_id: str, request: Request) -> JSONResponse:
        """Ours: cancel a QUEUED or PROCESSING request (it ends FAILED, error_code `cancelled`, refunded). A
        request that has already finished answers 409 with its status body."""
        key = api_key(request)
        job = await service.job_for(key=key, request_id=request_id, gone_is_410=True)
        cancelled = await service.cancel(job) or job.error_code == "cancelled"
        _status, body = service.status_body(job, base_url=base_url(request))
        return JSONResponse(body, status_code=200 if cancelled else 409)

    @app.get("/v1/requests/{request_id}", tags=["requests"])
    async def request_result_v1(request_id: str, request: Request) -> JSONResponse:
        """Backward-compatible poll: same body as GET /v2/requests/{id}."""
        return await request_result(request_id, request)

    @app.get("/v2/requests/{request_id}/deliveries", tags=["webhooks"])
    async def request_deliveries(request_id: str, request: Request) -> JSONResponse:
        """Ours: the webhook deliveries of this request and every attempt of each."""
        job = await service.job_for(key=api_key(request), request_id=request_id, gone_is_410=True)
        return JSONResponse({"request_id": job.id, "deliveries": await service.webhook_log(job.id)})

    @app.put("/v2/webhook", tags=["webhooks"])
    async def webhook_register(request: Request) -> JSONResponse:
        """Ours: register this API key's completion webhook. Body `{"url", "secret"?}` (a `whsec_` Standard
        Webhooks secret; one is made when missing). Answers `{"url", "secret"}`. Registering again replaces it."""
        key = api_key(request)
        try:
            raw = await read_capped(request.stream(), limit=16 * 1024, declared=request.headers.get("content-length"))
            payload = json.loads(raw)
        except (TooLarge, ValueError):
            raise ApiError(400, "Body must be a JSON object {url, secret?}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("url"), str):
            raise ApiError(400, "Body must be a JSON object {url, secret?}")
        secret = payload.get("secret")
        try:
            endpoint = await service.webhook_register(
                key, url=payload["url"], secret=secret if isinstance(secret, str) else None
            )
        except WebhookError as exc:
            raise ApiError(400, str(exc)) from None
        return JSONResponse({"url": endpoint.url, "secret": endpoint.secret})

    @app.delete("/v2/webhook", tags=["webhooks"], status_code=204, response_class=Response)
    async def webhook_unregister(request: Request) -> Response:
        """Ours: stop webhooks for this API key."""
        await service.webhook_unregister(api_key(request))
        return Response(status_code=204)

    @app.get("/outputs/{name}", tags=["outputs"], response_class=Response)
    async def output(name: str) -> Response:
        """The result image. Unguessable URL, no key needed (like a presigned link); gone after retention."""
        return await output_response(name, {"Cache-Control": "private, max-age=60"})

    async def output_response(name: str, headers: dict[str, str], *, inline: bool = False) -> Response:
        """The PNG itself, or (results in S3) a redirect to its presigned URL; `inline` (v1 sync): always the
        bytes, since that protocol answers with the image."""
        if (link := await service.output_link(name)) is not None:
            if inline:
                return Response(await service.output_bytes(name), media_type="image/png", headers=headers)
            return RedirectResponse(link, status_code=307, headers=headers)
        path = await service.output_path(name)
        if not os.path.exists(path):
            raise ApiError(404, "Output not found (unknown or expired)")
        return FileResponse(path, media_type="image/png", headers=headers)

    return app


__all__ = ["create_app"]
