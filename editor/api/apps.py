from __future__ import annotations

from django.apps import AppConfig


class DeveloperApiConfig(AppConfig):
    name = "editor.api"
    label = "developer_api"
    verbose_name = "Developer API"
    default_auto_field = "django.db.models.BigAutoField"
