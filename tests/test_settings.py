"""Settings read the environment strictly and production passes Django's deploy checks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.smoke


def _run_django(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(
        ("DJANGO_", "AWS_", "DATABASE_URL", "REDIS_URL", "CELERY_", "FASHION_AI_", "SEGMIND_"))}
    base["FAI_IGNORE_DOTENV"] = "1"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env={**base, **env}, capture_output=True, text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STARTER_CREDITS", "-3", "STARTER_CREDITS must be a positive integer"),
        ("STARTER_CREDITS", "lots", "invalid literal"),
        ("FASHION_AI_BASE_URL", "http://127.0.0.1:8765/v2", "must end in /v1"),
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be true or false"),
    ],
)
def test_bad_values_fail_loudly(name: str, value: str, message: str) -> None:
    result = _run_django(["check"], **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_check_deploy() -> None:
    result = _run_django(
        ["check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_SETTINGS_MODULE="fashionsite.settings_production",
        DJANGO_SECRET_KEY="x" * 20 + "-production-secret-" + "y" * 30,
        DJANGO_ALLOWED_HOSTS="studio.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _run_django(
        ["check"], DJANGO_SETTINGS_MODULE="fashionsite.settings_production", DJANGO_ALLOWED_HOSTS="a.example.com"
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_embedded_defaults_need_nothing_installed() -> None:
    result = _run_django(["shell", "-v", "0", "-c", (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.STORAGES['default']['BACKEND'],"
        " s.CELERY_BROKER_URL, s.FASHION_AI_BASE_URL)")], REDIS_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3", "django.core.files.storage.FileSystemStorage",
        "redis://127.0.0.1:6379/0", "http://127.0.0.1:8765/v1",
    ]


@pytest.mark.parametrize(
    ("cache_url", "engine"),
    [
        ("locmemcache://", "django.contrib.sessions.backends.db"),  # per process: a logout must reach every one
        ("redis://127.0.0.1:6379/1", "django.contrib.sessions.backends.cached_db"),
    ],
)
def test_sessions_are_read_through_a_shared_cache_only(cache_url: str, engine: str) -> None:
    result = _run_django(["shell", "-v", "0", "-c", "from django.conf import settings; print(settings.SESSION_ENGINE)"],
                         CACHE_URL=cache_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == engine


def test_a_copied_env_example_starts_the_site(tmp_path: Path) -> None:
    # What a self-hoster does first: copy .env.example to .env. Every line must load as written.
    script = (
        "import environ, os, sys; environ.Env.read_env(sys.argv[1], overwrite=True);"
        "os.environ['FAI_IGNORE_DOTENV'] = '1';"
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.CELERY_BROKER_URL, s.FASHION_AI_BASE_URL, s.FASHION_AI_EXPECTED_SECONDS, s.DEBUG)"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AWS_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO / ".env.example")], cwd=REPO, capture_output=True, text=True,
        env={**base, "DJANGO_SETTINGS_MODULE": "fashionsite.settings"}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis://127.0.0.1:6379/0", "http://127.0.0.1:8765/v1", "4.0", "True"]
