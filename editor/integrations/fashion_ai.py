"""The Fashion AI provider (Segmind's protocol) through the official `segmind` SDK.

Only `submit_async()`, `AsyncJob.status()` and `AsyncJob.result()` are used: each is ONE HTTP call. The SDK's
`wait()`/`run()` sleep in a loop (a worker would be held for a minute per job) and its files/webhooks/models/
generations helpers ignore `base_url`, so they are never called. Every answer becomes a `ProviderAnswer` whose
`outcome` tells the tasks what to do:

    OK          2xx with a usable body
    FAILED      the provider ran the job and it failed (HTTP 422 with status FAILED): refund
    BLOCKED     a FAILED whose error says "content not allowed": the provider's content filter refused the photo
                or the result (Segmind's RAI block; ours in fashionai/safety.py). The person's photo caused it,
                not a fault of the provider: refund, but no provider error and no alert
    REFUSED     a FAILED whose `error_code` (ours, docs/fashionai.md) says this photo or prompt cannot be edited
                (no person, garment not visible, no colour named, unreadable image): refund, no provider error;
                the dashboard counts it apart from provider faults. Segmind sends no code: its FAILED stays FAILED
    NOT_FOUND   404: unknown model or request (expired after the provider's retention), or 410 (ours:
                expired): expire, refund
    RETRY       429, 5xx, or a network error on a call that is safe to repeat: back off, try again
    AMBIGUOUS   submit sent but no answer (read timeout, dropped connection, 504): it may have been accepted
                and billed. Segmind has no idempotency key, so there it must not be blindly resubmitted; our own
                service honours the `Idempotency-Key` sent with FASHION_AI_EXTENSIONS, so there it is safe
    REJECTED    400/403/other 4xx: this request will never work
    NO_CREDITS  406: our provider account is out of credits (operator alert)
    UNAUTHORIZED 401: our key is rejected (operator alert)

Results are downloaded with `requests` (timeout, streamed size limit, no cross-host redirects, content-type check,
a pixel limit read from the header before decoding, Pillow verification).

`preview_region()` is not Segmind's protocol: our engine's free preview (`POST /v2/fashion-ai/preview`), one plain
httpx call with a short timeout; any failure means "no preview", never an error.
"""

from __future__ import annotations

import base64
import enum
import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import requests
from django.conf import settings
from PIL import Image, UnidentifiedImageError
from segmind import SegmindClient
from segmind.exceptions import SegmindError
from segmind.v2 import AsyncJob

from editor.polling import retry_after_seconds
from editor.progress import ProviderStatus

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    BLOCKED = "blocked"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    RETRY = "retry"
    AMBIGUOUS = "ambiguous"
    REJECTED = "rejected"
    NO_CREDITS = "no_credits"
    UNAUTHORIZED = "unauthorized"


# How a content filter's refusal reads in a FAILED job's error, on Segmind and on our own service.
CONTENT_BLOCKED_PHRASE = "content not allowed"


# Our service's FAILED `error_code`s that name the person's photo or prompt, not the engine (docs/fashionai.md).
REFUSAL_CODES = frozenset({"edit_not_possible", "input_unreadable"})


def _failed(detail: str, error_code: str = "") -> Outcome:
    if CONTENT_BLOCKED_PHRASE in detail.lower() or error_code == "content_blocked":
        return Outcome.BLOCKED
    return Outcome.REFUSED if error_code in REFUSAL_CODES else Outcome.FAILED


@dataclass(frozen=True)
class ProviderAnswer:
    outcome: Outcome
    body: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    detail: str = ""
    retry_after: float | None = None  # seconds, from Retry-After / x-rate-limit-reset-at-utc
    network: bool = False  # no HTTP answer at all

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def error_kind(self) -> str:
        """The ProviderError.Kind value for this answer."""
        if self.network:
            return "network"
        status = self.http_status or 0
        if 500 <= status < 600:
            return "5xx"
        if status in (400, 401, 403, 404, 406, 422, 429):
            return str(status)
        return "other"


# ------------------------------------------------------------------------------------------------ the client

_state = threading.local()
_lock = threading.Lock()
_client: SegmindClient | None = None
_client_key: tuple[Any, ...] | None = None


EXTENSIONS_HEADER = "X-Fashionai-Extensions"


def _add_extension_headers(request: httpx.Request) -> None:
    # The SDK's submit_async() takes model parameters only; our extensions travel as headers set per call. With
    # FASHION_AI_EXTENSIONS every call also says so, which makes an expired request 410 rather than 404.
    if settings.FASHION_AI_EXTENSIONS:
        request.headers[EXTENSIONS_HEADER] = "1"
    for name, value in (getattr(_state, "extra_headers", None) or {}).items():
        request.headers[name] = value


def _remember_response(response: httpx.Response) -> None:
    # SegmindError keeps only status and detail; the hook keeps the headers (Retry-After) for this thread.
    _state.last_headers = dict(response.headers)


def get_client() -> SegmindClient:
    """The process's client, built on first use. A forked worker child builds its own (an httpx connection pool
    inherited across fork would share sockets between processes); changed settings (tests) build a new one."""
    global _client, _client_key
    key = (
        os.getpid(),
        settings.FASHION_AI_BASE_URL,
        settings.FASHION_AI_API_KEY,
        settings.FASHION_AI_TIMEOUT_SECONDS,
    )
    if _client is None or _client_key != key:
        with _lock:
            if _client is None or _client_key != key:
                client = SegmindClient(
                    api_key=settings.FASHION_AI_API_KEY or None,
                    base_url=settings.FASHION_AI_BASE_URL,
                    timeout=settings.FASHION_AI_TIMEOUT_SECONDS,
                )
                client._client.event_hooks["request"].append(_add_extension_headers)
                client._client.event_hooks["response"].append(_remember_response)
                _client, _client_key = client, key
    assert _client is not None
    return _client


def reset_client() -> None:
    """Forget the client (the next call builds a fresh one)."""
    global _client, _client_key
    with _lock:
        _client, _client_key = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: globals().update(_client=None, _client_key=None))


def job_handle(*, request_id: str, status_url: str, response_url: str) -> AsyncJob:
    """Rebuild the SDK's job handle from what we stored (AsyncJob does not pickle; Celery gets strings)."""
    return AsyncJob(
        request_id=request_id,
        status_url=status_url,
        response_url=response_url,
        submit_response={},
        _client=get_client(),
    )


# ------------------------------------------------------------------------------------------------ calls


def submit(
    *, image: str, prompt: str, clothing: str, idempotency_key: str = "", start_within: float | None = None
) -> ProviderAnswer:
    """POST /v2/{model}. OK carries request_id, status_url and response_url in `body`.

    Only with FASHION_AI_EXTENSIONS (our service): `idempotency_key` is sent as `Idempotency-Key`, so sending the
    submit again after an AMBIGUOUS answer returns the first job instead of making (and billing) a second one;
    `start_within` as `X-Start-Deadline`, so the provider gives the job up if it cannot start it in time."""
    _state.last_headers = {}
    extra: dict[str, str] = {}
    if settings.FASHION_AI_EXTENSIONS:
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key
        if start_within is not None:
            extra["X-Start-Deadline"] = f"{max(1.0, start_within):.0f}"
    _state.extra_headers = extra
    try:
        job = get_client().submit_async(settings.FASHION_AI_MODEL, image=image, prompt=prompt, clothing=clothing)
    except SegmindError as exc:
        return _from_error(exc, submitting=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # The request never left: safe to send again.
        return ProviderAnswer(Outcome.RETRY, detail=_describe(exc), network=True)
    except (httpx.HTTPError, ValueError) as exc:
        # Sent (perhaps received and billed) but no answer, or an unreadable one.
        return ProviderAnswer(Outcome.AMBIGUOUS, detail=_describe(exc), network=True)
    finally:
        _state.extra_headers = {}
    body = {"request_id": job.request_id, "status_url": job.status_url, "response_url": job.response_url}
    return ProviderAnswer(Outcome.OK, body=body, http_status=200)


def status(*, request_id: str, status_url: str, response_url: str) -> ProviderAnswer:
    """GET the status URL once. OK with body["status"] in QUEUED/PROCESSING/COMPLETED; FAILED for FAILED."""
    return _fetch("status", request_id=request_id, status_url=status_url, response_url=response_url)


def result(*, request_id: str, status_url: str, response_url: str) -> ProviderAnswer:
    """GET the response URL once. OK with body["output"] (a media URL) and body["metrics"]."""
    return _fetch("result", request_id=request_id, status_url=status_url, response_url=response_url)


def cancel(*, request_id: str, status_url: str) -> ProviderAnswer:
    """Ours (FASHION_AI_EXTENSIONS only): POST .../requests/{id}/cancel. OK also when the request had already
    finished (409) or is gone (404/410): there is nothing left to stop."""
    if not settings.FASHION_AI_EXTENSIONS or not status_url.endswith("/status"):
        return ProviderAnswer(Outcome.REJECTED, detail="the provider has no cancel")
    _state.last_headers = {}
    url = status_url.removesuffix("/status") + "/cancel"
    try:
        response = get_client()._client.post(url)
    except httpx.HTTPError as exc:
        return ProviderAnswer(Outcome.RETRY, detail=_describe(exc), network=True)
    if response.status_code in (200, 404, 409, 410):
        return ProviderAnswer(Outcome.OK, http_status=response.status_code)
    if response.status_code == 429 or response.status_code >= 500:
        return ProviderAnswer(
            Outcome.RETRY, http_status=response.status_code, retry_after=retry_after_seconds(dict(response.headers))
        )
    return ProviderAnswer(Outcome.REJECTED, http_status=response.status_code, detail=response.text[:500])


def register_webhook(*, url: str, secret: str) -> ProviderAnswer:
    """Ours (FASHION_AI_EXTENSIONS only): PUT /v2/webhook, this API key's completion webhook endpoint."""
    root = settings.FASHION_AI_BASE_URL.removesuffix("/v1")
    _state.last_headers = {}
    try:
        response = get_client()._client.put(f"{root}/v2/webhook", json={"url": url, "secret": secret})
    except httpx.HTTPError as exc:
        return ProviderAnswer(Outcome.RETRY, detail=_describe(exc), network=True)
    if response.status_code == 200:
        return ProviderAnswer(Outcome.OK, http_status=200)
    outcome = Outcome.RETRY if response.status_code == 429 or response.status_code >= 500 else Outcome.REJECTED
    return ProviderAnswer(outcome, http_status=response.status_code, detail=response.text[:500])


def _fetch(which: str, **handle: str) -> ProviderAnswer:
    _state.last_headers = {}
    job = job_handle(**handle)
    try:
        body = job.status() if which == "status" else job.result()
    except SegmindError as exc:
        return _from_error(exc, submitting=False)
    except (httpx.HTTPError, ValueError) as exc:
        # A GET changes nothing at the provider: any network failure is safe to retry.
        return ProviderAnswer(Outcome.RETRY, detail=_describe(exc), network=True)
    provider_status = str(body.get("status") or "")
    if provider_status == ProviderStatus.FAILED:
        detail = str(body.get("error") or "failed")
        outcome = _failed(detail, str(body.get("error_code") or ""))
        return ProviderAnswer(outcome, body=body, http_status=422, detail=detail)
    if provider_status not in (ProviderStatus.QUEUED, ProviderStatus.PROCESSING, ProviderStatus.COMPLETED):
        # A 2xx we cannot read: treat like a server hiccup and ask again later.
        return ProviderAnswer(
            Outcome.RETRY, body=body, http_status=200, detail=f"unexpected status {provider_status!r}"
        )
    # An in-progress answer may say when asking again is worth it (ours: Retry-After from its ETA).
    in_progress = provider_status != ProviderStatus.COMPLETED
    hint = retry_after_seconds(getattr(_state, "last_headers", {}) or {}) if in_progress else None
    return ProviderAnswer(Outcome.OK, body=body, http_status=200, retry_after=hint)


def _from_error(exc: SegmindError, *, submitting: bool) -> ProviderAnswer:
    code = exc.status or 0
    detail = (exc.detail or f"HTTP {code}")[:500]
    headers: dict[str, str] = getattr(_state, "last_headers", {}) or {}
    if code == 429 or code in (500, 502, 503):
        # The gateway answered with an error: the job was not accepted, asking again is safe.
        return ProviderAnswer(Outcome.RETRY, http_status=code, detail=detail, retry_after=retry_after_seconds(headers))
    if code >= 500:
        # 504 and friends: an upstream may have accepted a submit we never heard back about.
        outcome = Outcome.AMBIGUOUS if submitting else Outcome.RETRY
        return ProviderAnswer(outcome, http_status=code, detail=detail, retry_after=retry_after_seconds(headers))
    if code == 401:
        return ProviderAnswer(Outcome.UNAUTHORIZED, http_status=code, detail=detail)
    if code == 406:
        return ProviderAnswer(Outcome.NO_CREDITS, http_status=code, detail=detail)
    if code in (404, 410):  # 410: ours, an expired request (only sent to clients using our extensions)
        return ProviderAnswer(Outcome.NOT_FOUND, http_status=code, detail=detail)
    if code == 422:
        return ProviderAnswer(_failed(detail), http_status=code, detail=detail)
    return ProviderAnswer(Outcome.REJECTED, http_status=code or None, detail=detail)


def _describe(exc: BaseException) -> str:
    # The exception text names the URL at most; the API key travels in a header and never appears here.
    return f"{type(exc).__name__}: {exc}"[:500]


# ------------------------------------------------------------------------------------------------ downloads


class DownloadError(Exception):
    """The output could not be downloaded. `retryable` says whether asking again may help; `gone` that the
    provider has forgotten it (404)."""

    def __init__(self, message: str, *, retryable: bool = False, gone: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.gone = gone


@dataclass(frozen=True)
class DownloadedImage:
    data: bytes
    image: Image.Image  # decoded once here; `image.format` is Pillow's name for it (PNG, JPEG, WEBP, ...)


# The formats a result may come in: each decoder we allow is attack surface on untrusted bytes.
RESULT_FORMATS = ["PNG", "JPEG", "WEBP"]
_MAX_REDIRECTS = 3


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _get_following_same_host(url: str) -> requests.Response:
    """GET `url`, following a few redirects on the same scheme, host and port only: the provider must not send
    our worker to another host (an internal service, a metadata endpoint, a slow tarpit)."""
    origin = _origin(url)
    for _ in range(_MAX_REDIRECTS + 1):
        response = requests.get(
            url, stream=True, timeout=(5, settings.FASHION_AI_TIMEOUT_SECONDS), allow_redirects=False
        )
        if not response.is_redirect:
            return response
        response.close()
        target = urljoin(url, response.headers.get("location", ""))
        if _origin(target) != origin:
            raise DownloadError("The provider's output redirects to another host.")
        url = target
    raise DownloadError("The provider's output redirects too many times.")


def download_output(url: str) -> DownloadedImage:
    """Fetch the provider's output with a timeout, a streamed size limit and no cross-host redirects, and prove
    it is an image of at most FASHION_AI_RESULT_MAX_PIXELS (checked from the header, before any decoding)."""
    limit = settings.FASHION_AI_RESULT_MAX_BYTES
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError("The provider's output is not an http(s) URL.")
    try:
        with _get_following_same_host(url) as response:
            if response.status_code == 404 or response.status_code == 410:
                raise DownloadError("The provider no longer has the output.", gone=True)
            if response.status_code == 429 or response.status_code >= 500:
                raise DownloadError(f"Output download answered HTTP {response.status_code}.", retryable=True)
            if response.status_code != 200:
                raise DownloadError(f"Output download answered HTTP {response.status_code}.")
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise DownloadError(f"The output is not an image (content-type {content_type or 'missing'}).")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise DownloadError(f"The output is larger than {limit} bytes.")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(chunk_size=64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise DownloadError(f"The output is larger than {limit} bytes.")
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise DownloadError(f"Output download failed: {type(exc).__name__}", retryable=True) from exc
    data = b"".join(chunks)
    return DownloadedImage(data=data, image=_decode_checked(data))


def _decode_checked(data: bytes) -> Image.Image:
    max_pixels = settings.FASHION_AI_RESULT_MAX_PIXELS
    too_many = "The output has too many pixels ({}, the limit is {})."
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice that: our limit, read from the header, decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=RESULT_FORMATS) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise DownloadError(too_many.format(f"{width}x{height}", max_pixels))
                probe.verify()
            image = Image.open(io.BytesIO(data), formats=RESULT_FORMATS)
            image.load()  # verify() checks structure; load() decodes every pixel
    except DownloadError:
        raise
    except Image.DecompressionBombError as exc:  # beyond Pillow's own hard limit: refused at open
        raise DownloadError(too_many.format("more than Pillow's limit", max_pixels)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DownloadError(f"The output is not a readable image: {exc}") from exc
    return image


# ------------------------------------------------------------------------------------------------ the free preview


@dataclass(frozen=True)
class RegionPreview:
    """What our engine's preview (its extension of the protocol, not Segmind's) says about a photo: the region an
    edit would change (`mask`, a PNG data URI, white = changes) and whether its quality gate would let the edit
    through (`ok`; else `message` says why, as the failed edit would)."""

    ok: bool
    code: str
    message: str
    mask: str
    score: float
    estimate: bool  # the provider is Segmind's cloud: our engine's region is only an estimate of theirs


_MASK_PREFIX = "data:image/png;base64,"
_MAX_MASK_CHARS = 200_000  # a 1-bit 512x512 PNG is a few KiB; anything far larger is not what we asked for


def preview_enabled() -> bool:
    return bool(settings.FASHION_AI_PREVIEW_URL)


def preview_region(*, image: bytes, clothing: str, prompt: str) -> RegionPreview | None:
    """Ask the preview engine once, with a short timeout. None when there is no preview engine or it gave no usable
    answer: the page then shows no preview, and the edit itself is unaffected."""
    url = settings.FASHION_AI_PREVIEW_URL
    if not url:
        return None
    body = {"image": base64.b64encode(image).decode(), "clothing": clothing, "prompt": prompt}
    try:
        response = httpx.post(
            url, json=body, headers={"x-api-key": settings.FASHION_AI_PREVIEW_API_KEY},
            timeout=settings.FASHION_AI_PREVIEW_TIMEOUT_SECONDS, follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        log.info("region preview unavailable: %s", type(exc).__name__)
        return None
    if response.status_code != 200:
        log.info("region preview answered HTTP %s", response.status_code)
        return None
    try:
        answer = response.json()
        verdict = answer["verdict"]
        mask = str(answer["mask"])
        result = RegionPreview(
            ok=bool(verdict["ok"]), code=str(verdict["code"])[:40], message=str(verdict["message"])[:500],
            mask=mask, score=float(verdict["score"]), estimate=settings.FASHION_AI_PREVIEW_IS_ESTIMATE,
        )
    except (ValueError, KeyError, TypeError):
        log.info("region preview answered an unreadable body")
        return None
    if not mask.startswith(_MASK_PREFIX) or len(mask) > _MAX_MASK_CHARS:
        log.info("region preview answered an unexpected mask")
        return None
    return result
