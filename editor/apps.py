from __future__ import annotations

from django.apps import AppConfig


class EditorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "editor"
    verbose_name = "Fashion AI Studio"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the sign-up credit grant)
