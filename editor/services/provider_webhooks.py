"""Completion webhooks from our own Fashion AI service (docs/fashionai.md "Ours"): verify, refuse, hand on.

A delivery is accepted only when its Standard Webhooks signature is valid for our secret and its timestamp is within
five minutes (the `standardwebhooks` package checks both), its `webhook-id` has not been seen before (Redis,
`SET NX`, kept longer than the timestamp window so a replay inside the window is caught and one outside it fails the
timestamp check), and it names a request of ours. It then does what a poll would have done: COMPLETED -> the finish
step at once (no status call), FAILED -> one poll, whose status call records the failure the usual way. Polling
stays the fallback for a delivery that never comes.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

import redis
from django.conf import settings
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from editor.dispatch import enqueue
from editor.models import EditJob
from editor.progress import ProviderStatus
from editor.services.job_state import edit_job_record_progress

log = logging.getLogger(__name__)

SEEN_KEY = "fashion-ai:webhook-seen:"
SEEN_TTL_SECONDS = 15 * 60  # longer than the 5-minute timestamp tolerance on either side


class Verdict(enum.IntEnum):
    """The HTTP status the endpoint answers."""

    ACCEPTED = 204
    BAD_SIGNATURE = 401
    UNKNOWN = 404
    REPLAYED = 409
    MALFORMED = 400


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def provider_webhook_receive(*, body: bytes, headers: Mapping[str, str]) -> Verdict:
    if not settings.FASHION_AI_WEBHOOKS:
        return Verdict.UNKNOWN
    try:
        payload: Any = Webhook(settings.FASHION_AI_WEBHOOK_SECRET).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError):  # ValueError: a malformed signature header or body
        return Verdict.BAD_SIGNATURE
    data = payload.get("data") if isinstance(payload, dict) else None
    request_id = data.get("request_id") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(request_id, str) or not request_id:
        return Verdict.MALFORMED
    webhook_id = str({k.lower(): v for k, v in headers.items()}["webhook-id"])
    if not _redis().set(SEEN_KEY + webhook_id, 1, nx=True, ex=SEEN_TTL_SECONDS):
        log.warning("provider webhook %s replayed; refused", webhook_id)
        return Verdict.REPLAYED
    job = EditJob.objects.filter(request_id=request_id).only("pk", "state", "provider_status").first()
    if job is None:
        log.warning("provider webhook %s names an unknown request; refused", webhook_id)
        return Verdict.UNKNOWN
    if job.state != EditJob.State.SUBMITTED:
        return Verdict.ACCEPTED  # already final here (a poll got there first): nothing left to do
    status = data.get("status")
    if status == ProviderStatus.COMPLETED:
        # What the poll step records on COMPLETED, then the finish step now instead of at the next poll.
        edit_job_record_progress(
            job_id=job.pk, provider_status=ProviderStatus.COMPLETED, next_poll_in=0.0, polled=False
        )
        enqueue("finish", str(job.pk))
    elif status == ProviderStatus.FAILED:
        # Due now, so the poll's claim takes it: one status call records the failure (and the refund) as usual.
        edit_job_record_progress(job_id=job.pk, provider_status=job.provider_status, next_poll_in=0.0, polled=False)
        enqueue("poll", str(job.pk))
    return Verdict.ACCEPTED
