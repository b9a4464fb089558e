"""fashionsite.settings_production with unhashed static names, for gunicorn started by a test: no collectstatic
in a test (as in prod_probe.py). Nothing else differs."""
from __future__ import annotations

from fashionsite.settings_production import *  # noqa: F403
from fashionsite.settings_production import STORAGES

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
