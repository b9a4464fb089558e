"""Commands enqueue worker steps through here: the one module above the tasks that imports them.

Kept apart so the commands import Celery tasks without the tasks (or the steps they run) ever importing a command.
"""

from __future__ import annotations

import logging
from typing import Literal

from editor.services.job_steps import NextStep
from editor.tasks import ACCOUNT_TASKS, dispatch_step

log = logging.getLogger(__name__)


def enqueue(task: Literal["submit", "poll", "finish", "compose"], job_id: str, countdown: float = 0.0) -> None:
    try:
        dispatch_step(job_id, NextStep(task, countdown))
    except Exception:  # the broker is down: the job is due, so the sweeper enqueues it later
        log.warning("could not enqueue %s for job %s; the sweeper will retry", task, job_id, exc_info=True)


def enqueue_task(task: str, *args: str) -> None:
    """One of the account tasks (emails, exports, deletions) by name; a broker outage is logged, and the beat
    sweeps pick up exports and deletions that never started."""
    try:
        ACCOUNT_TASKS[task].delay(*args)
    except Exception:
        log.warning("could not enqueue %s; it is retried by its sweep", task, exc_info=True)


def enqueue_provider_cancel(*, request_id: str, status_url: str) -> None:
    """Ask the provider (ours only) to stop a request nobody will collect; best effort."""
    try:
        dispatch_step("", NextStep(cancel=(request_id, status_url)))
    except Exception:  # the broker is down: the provider's start deadline still bounds the waste
        log.warning("could not enqueue the cancel of provider request %s", request_id, exc_info=True)
