"""The Celery application. Settings live in Django settings under the CELERY_ namespace."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")

app = Celery("fashionsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers record a heartbeat in Redis for the operators' dashboard and their container health check.
from fashionsite.heartbeat import WorkerHeartbeatStep  # noqa: E402

app.steps["worker"].add(WorkerHeartbeatStep)


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender: Any = None, **_: Any) -> None:
    """Treat each task like a request: drop connections that are past CONN_MAX_AGE or broken, keep the rest.

    With CONN_MAX_AGE 0 (the default) this closes them after every task, as Celery itself would."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # ran inline in the caller's process and transaction: that connection is not the task's to close
    from django.db import close_old_connections

    close_old_connections()
