"""Celery tasks of the developer API's webhooks. Thin: each calls one service function.

Retries further away than SHORT_RETRY_SECONDS are not Celery countdowns (one longer than the broker's visibility
timeout would be delivered twice): the row says when, and `deliver_due_webhooks` (beat) hands it out.
"""
from __future__ import annotations

import logging

from celery import shared_task

from editor.services import api_edits, webhooks

SHORT_RETRY_SECONDS = 30.0
log = logging.getLogger(__name__)


def deliver_soon(delivery_id: int) -> None:
    """Queue one attempt now; with the broker down the row is due anyway and the sweeper sends it later."""
    try:
        deliver_webhook.delay(delivery_id)
    except Exception:  # noqa: BLE001
        log.warning("could not queue webhook delivery %s; the sweeper will", delivery_id, exc_info=True)


def _deliver_soon(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        deliver_soon(delivery_id)


@shared_task(name="editor.api.tasks.emit_edit_event", ignore_result=True)
def emit_edit_event(job_id: str) -> None:
    _deliver_soon(webhooks.webhook_emit_edit(job_id=job_id))


@shared_task(name="editor.api.tasks.emit_credits_low", ignore_result=True)
def emit_credits_low(user_id: int, balance: int) -> None:
    _deliver_soon(webhooks.webhook_emit_credits_low(user_id=user_id, balance=balance))


@shared_task(name="editor.api.tasks.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    delay = webhooks.webhook_deliver(delivery_id=delivery_id)
    if delay is not None and delay <= SHORT_RETRY_SECONDS:
        deliver_webhook.apply_async(args=(delivery_id,), countdown=delay)


@shared_task(name="editor.api.tasks.deliver_due_webhooks", ignore_result=True)
def deliver_due_webhooks() -> int:
    due = webhooks.webhook_deliveries_due()
    _deliver_soon(due)
    return len(due)


@shared_task(name="editor.api.tasks.expire_idempotency_keys", ignore_result=True)
def expire_idempotency_keys() -> int:
    return api_edits.idempotency_records_expire()
