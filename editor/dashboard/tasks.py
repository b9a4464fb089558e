"""Beat task keeping the dashboard's rollup current."""
from __future__ import annotations

import logging

from celery import shared_task

from editor.dashboard.services import usage_rollup_refresh

logger = logging.getLogger(__name__)


@shared_task(name="editor.dashboard.tasks.refresh_usage_rollup", ignore_result=True)
def refresh_usage_rollup() -> list[str]:
    # Idempotent: a duplicate or late run rebuilds the same rows.
    days = usage_rollup_refresh()
    logger.info("usage rollup rebuilt for %s", ", ".join(day.isoformat() for day in days))
    return [day.isoformat() for day in days]
