"""Ours: completion webhooks, signed per Standard Webhooks (the `standardwebhooks` package), retried with backoff,
with a delivery log per job. Segmind has no webhooks for this protocol; a client that registers none sees nothing.

An API key registers one endpoint (`PUT /v2/webhook {"url", "secret"?}`). When one of its jobs finishes, the endpoint
gets `POST {"type": "request.completed" | "request.failed", "timestamp", "data": <the result body>}` with the
headers `webhook-id` (the same on every attempt of one delivery), `webhook-timestamp` and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). Any 2xx ends the delivery; anything else (or no answer) is
tried again after 1, 2, 4... x `--webhook-backoff` seconds, up to `--webhook-attempts` attempts. Endpoints are
checked like image URLs (fashionai/fetch.py): public addresses only, unless the exact host:port is in
FASHIONAI_WEBHOOK_ALLOW_INTERNAL (the site on a private network).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from fashionai.fetch import FetchError, FetchPolicy, Resolver, post_checked, system_resolve
from fashionai.redact import redact_url

log = logging.getLogger("fashionai.webhooks")

MAX_BACKOFF_SECONDS = 300.0
MIN_SECRET_BYTES = 24


class WebhookError(ValueError):
    """A registration was refused; the message is for the API caller."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    secret: str  # whsec_<base64>


@dataclass
class Attempt:
    at: str  # ISO 8601 UTC
    status: int | None  # the endpoint's HTTP status, None when it did not answer
    error: str | None
    seconds: float


@dataclass
class Delivery:
    id: str  # webhook-id: the same on every attempt, so the receiver can drop duplicates
    type: str
    url: str
    state: str = "pending"  # pending -> delivered | failed
    attempts: list[Attempt] = field(default_factory=list)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "==", validate=False)
    except ValueError:
        raise WebhookError("secret must be whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise WebhookError(f"secret must hold at least {MIN_SECRET_BYTES} random bytes")
    return secret if secret.startswith("whsec_") else "whsec_" + raw


def make_endpoint(url: str, secret: str | None) -> Endpoint:
    if not url.lower().startswith(("http://", "https://")) or len(url) > 2000:
        raise WebhookError("url must be an http(s) URL")
    return Endpoint(url=url, secret=check_secret(secret) if secret else new_secret())


def event_body(event: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": event, "timestamp": _now_iso(), "data": data}, separators=(",", ":"))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Webhooks:
    def __init__(
        self, *, policy: FetchPolicy, attempts: int, backoff: float, resolve: Resolver = system_resolve
    ) -> None:
        self.policy = policy
        self.attempts = attempts
        self.backoff = backoff
        self.resolve = resolve
        self.endpoints: dict[str, Endpoint] = {}  # API key -> its endpoint
        self.deliveries: dict[str, list[Delivery]] = {}  # job id -> its deliveries (the log)
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, api_key: str, *, url: str, secret: str | None) -> Endpoint:
        endpoint = make_endpoint(url, secret)
        self.endpoints[api_key] = endpoint
        log.info("webhook endpoint registered: %s", redact_url(url))
        return endpoint

    def unregister(self, api_key: str) -> None:
        self.endpoints.pop(api_key, None)

    def job_finished(self, *, api_key: str, job_id: str, event: str, data: dict[str, Any]) -> None:
        endpoint = self.endpoints.get(api_key)
        if endpoint is None:
            return
        delivery = Delivery(id=f"msg_{uuid.uuid4().hex}", type=event, url=endpoint.url)
        self.deliveries.setdefault(job_id, []).append(delivery)
        body = event_body(event, data)
        task = asyncio.get_running_loop().create_task(self.deliver(delivery, endpoint, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(
        self, delivery: Delivery, endpoint: Endpoint, body: str,
        after_attempt: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Every attempt of one delivery; `after_attempt` (durable mode: save the log) runs after each. A delivery
        taken over from another process (durable mode) carries its attempts so far: only the rest are made, the first
        at once (the lease that ran out before the takeover stands in for that backoff)."""
        signer = Webhook(endpoint.secret)
        if len(delivery.attempts) >= self.attempts:
            delivery.state = "failed"
            if after_attempt is not None:
                await after_attempt()
            return
        for attempt in range(len(delivery.attempts) + 1, self.attempts + 1):
            sent_at = datetime.now(UTC)
            headers = {
                "webhook-id": delivery.id,
                "webhook-timestamp": str(int(sent_at.timestamp())),
                "webhook-signature": signer.sign(delivery.id, sent_at, body),
            }
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            try:
                sent = [*headers.items(), ("Content-Type", "application/json"), ("User-Agent", "fashionai-webhooks")]
                answer = await post_checked(
                    endpoint.url, self.policy, body=body.encode(), headers=sent, keep=0, resolve=self.resolve
                )
                status = answer.status
            except FetchError as exc:
                error = exc.reason
            delivery.attempts.append(
                Attempt(at=_now_iso(), status=status, error=error, seconds=round(time.monotonic() - started, 4))
            )
            if status is not None and 200 <= status < 300:
                delivery.state = "delivered"
            elif attempt == self.attempts:
                delivery.state = "failed"
            if after_attempt is not None:
                await after_attempt()
            if delivery.state == "delivered":
                return
            log.info(
                "webhook %s attempt %d to %s: %s", delivery.id, attempt, redact_url(endpoint.url), error or status
            )
            if attempt < self.attempts:
                await asyncio.sleep(min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (attempt - 1)))

    def log_for(self, job_id: str) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.deliveries.get(job_id, [])]

    def forget(self, job_id: str) -> None:
        self.deliveries.pop(job_id, None)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
