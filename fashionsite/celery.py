"""The Celery application. Settings live in Django settings under the CELERY_ namespace."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")

app = Celery("fashionsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers record a heartbeat in Redis for the operators' dashboard and their container health check.
from fashionsite.heartbeat import WorkerHeartbeatStep  # noqa: E402

app.steps["worker"].add(WorkerHeartbeatStep)
