"""Users' webhooks: endpoints (event filters, a per-endpoint secret that can be rotated), the messages made from
events, their delivery with Standard Webhooks signatures, retries for 24 hours, redelivery and test events.

A message is a WebhookDelivery row before anything is sent, so nothing is lost when a receiver or a worker is
down: the first attempt is queued on commit, later ones are due rows that the beat sweeper hands out
(`webhook_deliveries_due`). Each attempt claims its row with a conditional UPDATE (a lease on next_attempt_at), so
a duplicate task or sweep never sends one attempt twice. The same `webhook-id` goes with every attempt, so
receivers can drop repeats. Sending goes through editor/integrations/outbound.py: public addresses only.
"""
from __future__ import annotations

import base64
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from editor.api.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from editor.errors import Refused
from editor.integrations.outbound import FetchError, post_webhook
from editor.models import EditJob
from editor.selectors.api import api_edit_for_owner

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

TEST_EVENT = "webhook.test"
# Seconds after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, and the last try 24 h after the first
# (8 attempts). Scaled by WEBHOOK_RETRY_SCALE (tests).
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 23095)
# An attempt holds its row this long; a worker killed mid-send leaves it due again afterwards.
ATTEMPT_LEASE = timedelta(seconds=120)
STATE_EVENTS = {
    EditJob.State.SUCCEEDED: WebhookEvent.EDIT_SUCCEEDED,
    EditJob.State.FAILED: WebhookEvent.EDIT_FAILED,
    EditJob.State.EXPIRED: WebhookEvent.EDIT_EXPIRED,
}


class WebhookRefused(Refused):
    pass


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
        raise WebhookRefused("Enter an http:// or https:// URL (at most 500 characters).", field="url")
    if parts.username or parts.password:
        raise WebhookRefused("Put no user name or password in the URL; check the signature instead.", field="url")
    local = (parts.hostname.lower(), parts.port or 80) in settings.WEBHOOK_ALLOW_INTERNAL
    if parts.scheme != "https" and not (settings.DEBUG or local):
        raise WebhookRefused("Webhook URLs must use https://.", field="url")
    return url


def _clean_events(events: list[str]) -> list[str]:
    chosen = sorted(set(events))
    if not chosen or any(e not in WebhookEvent.values for e in chosen):
        raise WebhookRefused("Choose at least one event.", field="events")
    return chosen


def webhook_endpoint_create(
    *, user: AbstractBaseUser, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown once)."""
    url = _clean_url(url)
    chosen = _clean_events(events)
    if WebhookEndpoint.objects.filter(user_id=user.pk).count() >= settings.WEBHOOK_ENDPOINTS_PER_USER:
        raise WebhookRefused(f"You have {settings.WEBHOOK_ENDPOINTS_PER_USER} endpoints; delete one first.")
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        user_id=user.pk, url=url, events=chosen, description=" ".join(description.split())[:200], secret=secret
    )
    return endpoint, secret


def _owned(user: AbstractBaseUser, endpoint_id: Any) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, user_id=user.pk).first() if str(
        endpoint_id).isdigit() else None
    if endpoint is None:
        raise WebhookRefused("That webhook endpoint was not found.")
    return endpoint


def webhook_endpoint_rotate_secret(*, user: AbstractBaseUser, endpoint_id: Any) -> str:
    """A new secret; the old one keeps signing beside it for WEBHOOK_SECRET_OVERLAP_SECONDS."""
    endpoint = _owned(user, endpoint_id)
    secret = new_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        secret=secret, previous_secret=endpoint.secret,
        previous_secret_until=timezone.now() + timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS),
    )
    return secret


def webhook_endpoint_delete(*, user: AbstractBaseUser, endpoint_id: Any) -> None:
    _owned(user, endpoint_id).delete()


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _message(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    # The Standard Webhooks payload shape: type, timestamp, data.
    return {"type": event_type, "timestamp": timezone.now().isoformat(), "data": _json_safe(data)}


def _create_deliveries(
    endpoints: list[WebhookEndpoint], event_type: str, data: dict[str, Any], dedupe: str = ""
) -> list[int]:
    made: list[int] = []
    for endpoint in endpoints:
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    endpoint=endpoint, event_type=event_type, payload=_message(event_type, data),
                    next_attempt_at=timezone.now(), dedupe_key=f"{dedupe}" if dedupe else "",
                )
        except IntegrityError:  # this event was already turned into a message for this endpoint
            continue
        made.append(delivery.pk)
    return made


def _subscribed(user_id: int, event_type: str) -> list[WebhookEndpoint]:
    return [e for e in WebhookEndpoint.objects.filter(user_id=user_id, is_active=True) if event_type in e.events]


def webhook_emit_edit(*, job_id: str) -> list[int]:
    """The messages for an edit that reached a final state (once per endpoint and state, however often called)."""
    job = EditJob.objects.filter(pk=job_id).select_related("owner").first()
    if job is None or job.state not in STATE_EVENTS:
        return []
    event_type = STATE_EVENTS[EditJob.State(job.state)]
    endpoints = _subscribed(job.owner_id, event_type)
    if not endpoints:
        return []
    data = api_edit_for_owner(user=job.owner, job_id=job.pk) or {}
    return _create_deliveries(endpoints, event_type, data, dedupe=f"{job.pk}:{job.state}")


def webhook_emit_credits_low(*, user_id: int, balance: int) -> list[int]:
    endpoints = _subscribed(user_id, WebhookEvent.CREDITS_LOW)
    data = {"balance": balance, "threshold": settings.WEBHOOK_CREDITS_LOW_THRESHOLD}
    return _create_deliveries(endpoints, WebhookEvent.CREDITS_LOW, data) if endpoints else []


def webhook_send_test(*, user: AbstractBaseUser, endpoint_id: Any) -> int:
    """A `webhook.test` message to one endpoint, whatever its filter; delivered and logged like any other."""
    endpoint = _owned(user, endpoint_id)
    data = {"message": "A test event from Fashion AI Studio.", "endpoint_id": endpoint.pk}
    return _create_deliveries([endpoint], TEST_EVENT, data)[0]


def webhook_redeliver(*, user: AbstractBaseUser, delivery_id: Any) -> int:
    """Send a logged message again (same webhook-id), with a fresh retry schedule."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id, endpoint__user_id=user.pk).first() if str(
        delivery_id).isdigit() else None
    if delivery is None:
        raise WebhookRefused("That delivery was not found.")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=WebhookDelivery.State.PENDING, next_attempt_at=timezone.now(), attempts=0,
        created_at=timezone.now(),  # the 24 h window starts again
    )
    return delivery.pk


def sign(endpoint: WebhookEndpoint, *, message_id: str, when: datetime, body: str) -> str:
    """The webhook-signature header: v1 signatures with the secret and, during an overlap, the previous one."""
    signatures = [Webhook(endpoint.secret).sign(msg_id=message_id, timestamp=when, data=body)]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > when:
        signatures.append(Webhook(endpoint.previous_secret).sign(msg_id=message_id, timestamp=when, data=body))
    return " ".join(signatures)


def _retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None: give up."""
    if attempts > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts - 1] * settings.WEBHOOK_RETRY_SCALE


def webhook_deliver(*, delivery_id: int) -> float | None:
    """One attempt, if the delivery is due and nobody else holds it. Returns seconds until the next attempt (None:
    delivered, given up, or not ours to send)."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(
        pk=delivery_id, state=WebhookDelivery.State.PENDING).first()
    if delivery is None or delivery.next_attempt_at is None or delivery.next_attempt_at > now:
        return None
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=WebhookDelivery.State.PENDING, next_attempt_at=delivery.next_attempt_at
    ).update(next_attempt_at=now + ATTEMPT_LEASE)
    if claimed != 1:
        return None
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"))
    when = datetime.now(tz=UTC)
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", "FashionAIStudio-Webhooks/1"),
        ("webhook-id", delivery.message_id),
        ("webhook-timestamp", str(int(when.timestamp()))),
        ("webhook-signature", sign(endpoint, message_id=delivery.message_id, when=when, body=body)),
    ]
    status: int | None = None
    error = ""
    response = ""
    try:
        answer = post_webhook(endpoint.url, body=body.encode(), headers=headers)
        status = answer.status
        response = answer.body[:500].decode("utf-8", "replace")
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except FetchError as exc:
        error = exc.reason[:300]
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error,
                              "last_response": response}
    if not error:
        fields.update(state=WebhookDelivery.State.SUCCEEDED, delivered_at=timezone.now(), next_attempt_at=None)
        delay = None
    else:
        delay = _retry_delay(attempts)
        if delay is None:  # the schedule (24 h) is spent
            fields.update(state=WebhookDelivery.State.FAILED, next_attempt_at=None)
            delay = None
        else:
            fields["next_attempt_at"] = timezone.now() + timedelta(seconds=delay)
        log.info("webhook %s to endpoint %s failed (%s); attempt %s", delivery.message_id, endpoint.pk, error,
                 attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return delay


def webhook_deliveries_due(*, limit: int = 200) -> list[int]:
    return list(
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
