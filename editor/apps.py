from __future__ import annotations

import django_stubs_ext
from django.apps import AppConfig

# Lets the admin classes name their model (`admin.ModelAdmin[Photo]`) at run time, as mypy's strict mode wants.
# Here because Django imports every app's config before any admin module.
django_stubs_ext.monkeypatch()


class EditorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "editor"
    verbose_name = "Fashion AI Studio"

    def ready(self) -> None:
        # Receivers load once the app registry is ready (Django's documented hook); at the top they would load
        # the models too early. tests/test_architecture.py allows exactly this one.
        from editor import signals  # noqa: F401, PLC0415  (connects the sign-up credit grant)
