from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "editor.dashboard"
    label = "dashboard"
    verbose_name = "Usage dashboard"
