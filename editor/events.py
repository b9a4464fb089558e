"""What happened, told to whoever listens, once the transaction that did it commits.

- An edit reached a final state: a Redis message on its channel wakes the API requests waiting on it
  (`Prefer: wait`, editor/api/waiting.py), and a Celery task (sent by name, so nothing here imports the tasks)
  turns it into the owner's webhook messages.
- A charge took a balance below WEBHOOK_CREDITS_LOW_THRESHOLD: the credits.low webhook.

Both are best effort: with Redis down, a waiting request still answers by its own timer, and a lost webhook is
logged. Sits below the state writer and the credits service; imports no project module.
"""
from __future__ import annotations

import functools
import logging
import uuid

import redis
from celery import current_app
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

EDIT_FINAL_CHANNEL_PREFIX = "fai:edit-final:"


def edit_final_channel(job_id: uuid.UUID | str) -> str:
    return f"{EDIT_FINAL_CHANNEL_PREFIX}{job_id}"


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _announce_edit(job_id: str) -> None:
    try:
        _redis().publish(edit_final_channel(job_id), "final")
    except Exception:  # noqa: BLE001 - waiters fall back to their own timer
        log.warning("could not publish the end of job %s", job_id, exc_info=True)
    try:
        current_app.send_task("editor.api.tasks.emit_edit_event", args=[job_id])
    except Exception:  # noqa: BLE001
        log.warning("could not queue the webhooks of job %s", job_id, exc_info=True)


def edit_finished(*, job_id: uuid.UUID | str) -> None:
    """Call inside the transaction that moved the job to a final state."""
    job = str(job_id)
    transaction.on_commit(lambda: _announce_edit(job))


def balance_lowered(*, user_id: int, before: int, after: int) -> None:
    """Call inside the transaction of a charge; fires credits.low only when this charge crossed the threshold."""
    threshold = settings.WEBHOOK_CREDITS_LOW_THRESHOLD
    if not (before >= threshold > after):
        return

    def send() -> None:
        try:
            current_app.send_task("editor.api.tasks.emit_credits_low", args=[user_id, after])
        except Exception:  # noqa: BLE001
            log.warning("could not queue credits.low for user %s", user_id, exc_info=True)

    transaction.on_commit(send)
