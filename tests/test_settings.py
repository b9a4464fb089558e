"""Settings read the environment strictly and production passes Django's deploy checks."""
from __future__ import annotations

import os
import re
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


def _start_up(settings_module: str = "fashionsite.settings", **env: str) -> subprocess.CompletedProcess[str]:
    """Start Django the way every process does (web, worker, beat, manage.py): import the settings, set up apps."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AWS_", "SEGMIND_", "FASHION_AI_"))}
    base.update({"FAI_IGNORE_DOTENV": "1", "DJANGO_SETTINGS_MODULE": settings_module})
    if settings_module.endswith("production"):
        base.update({"DJANGO_SECRET_KEY": "p" * 60, "DJANGO_ALLOWED_HOSTS": "studio.example.com"})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"], cwd=REPO,
        env={**base, **env}, capture_output=True, text=True, timeout=120,
    )


NUMBER = "written as a plain decimal with no unit"
WHOLE = "written as plain digits with no unit"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # a unit suffix: once loaded as 2.5 s, 15 or 1 (whatever float()/int() made of the digits)
        ("JOB_TASK_LEASE_SECONDS", "2.5min", f"must be a number of seconds, greater than 0, {NUMBER}"),
        ("UPLOAD_MAX_BYTES", "15MB", f"must be a whole number of bytes, at least 1, {WHOLE}"),
        # empty: once a ValueError that named no variable (floats) or silently the default (flags)
        ("POLL_MIN_INTERVAL_SECONDS", "", "is set but empty"),
        ("STARTER_CREDITS", "  ", "is set but empty"),
        ("DJANGO_DEBUG", "", "is set but empty"),
        # zero or negative where the value must be positive: once loaded, then every task raised
        ("POLL_MIN_INTERVAL_SECONDS", "0", "greater than 0"),
        ("POLL_APPROACH_FRACTION", "0", "greater than 0 and at most 1"),
        ("JOB_TASK_LEASE_SECONDS", "-150", "greater than 0"),
        ("EDIT_COST_CREDITS", "0", "at least 1"),
        ("STARTER_CREDITS", "-3", "at least 0"),
        # garbage
        ("STARTER_CREDITS", "lots", WHOLE),
        ("MAX_JOBS_IN_FLIGHT_PER_USER", "5.5", WHOLE),
        ("FASHION_AI_TIMEOUT_SECONDS", "nan", NUMBER),
        ("POLL_BACKOFF_MAX_SECONDS", "1e3", NUMBER),
        # above the range
        ("POLL_APPROACH_FRACTION", "1.5", "greater than 0 and at most 1"),
        ("MEDIA_URL_EXPIRE_SECONDS", "700000", "between 1 and 604800"),
        # bad flags and choices
        ("DJANGO_DEBUG", "maybe", "must be true or false"),
        ("CELERY_TASK_ALWAYS_EAGER", "2", "must be true or false"),
        ("LOG_FORMAT", "xml", "must be one of plain, json"),
        ("FASHION_AI_BASE_URL", "http://127.0.0.1:8765/v2", "must end in /v1"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name: str, value: str, message: str) -> None:
    result = _start_up(**{name: value})
    assert result.returncode != 0 and "started" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"django.core.exceptions.ImproperlyConfigured: {name} "), result.stderr[-2000:]
    assert message in last


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"POLL_MIN_INTERVAL_SECONDS": "40"}, ("POLL_MIN_INTERVAL_SECONDS (40)", "POLL_MAX_INTERVAL_SECONDS (30)")),
        ({"POLL_MAX_INTERVAL_SECONDS": "4000"},
         ("POLL_MAX_INTERVAL_SECONDS (4000)", "CELERY_VISIBILITY_TIMEOUT (3600)")),
        ({"FASHION_AI_TIMEOUT_SECONDS": "120"}, ("FASHION_AI_TIMEOUT_SECONDS (120)", "soft time limit")),
        ({"UPLOAD_MIN_SIDE": "10000"}, ("UPLOAD_MIN_SIDE (10000)", "UPLOAD_MAX_PIXELS (40000000)")),
    ],
)
def test_values_that_contradict_each_other_stop_start_up(env: dict[str, str], names: tuple[str, ...]) -> None:
    result = _start_up(**env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr[-2000:]
    for name in names:
        assert name in last


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECURE_HSTS_SECONDS", "1y", WHOLE),
        ("ALLAUTH_TRUSTED_PROXY_COUNT", "-1", "between 0 and 10"),
        ("DJANGO_SECURE_SSL_REDIRECT", "sometimes", "must be true or false"),
    ],
)
def test_production_settings_are_just_as_strict(name: str, value: str, message: str) -> None:
    result = _start_up("fashionsite.settings_production", **{name: value})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"django.core.exceptions.ImproperlyConfigured: {name} "), result.stderr[-2000:]
    assert message in last


def test_good_values_load_as_written() -> None:
    result = _run_django(["shell", "-v", "0", "-c", (
        "from django.conf import settings as s;"
        "print(s.JOB_TASK_LEASE_SECONDS, s.POLL_MIN_INTERVAL_SECONDS, s.STARTER_CREDITS, s.DEBUG,"
        " s.CELERY_TASK_ALWAYS_EAGER, s.LOG_FORMAT, s.FASHION_AI_EXPECTED_SECONDS)")],
        JOB_TASK_LEASE_SECONDS=" 2.5 ", POLL_MIN_INTERVAL_SECONDS=".5", STARTER_CREDITS="0", DJANGO_DEBUG="Off",
        CELERY_TASK_ALWAYS_EAGER="YES", LOG_FORMAT="JSON", FASHION_AI_EXPECTED_SECONDS="0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2.5", "0.5", "0", "False", "True", "json", "0.0"]


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


def test_every_checked_variable_is_documented_in_env_example() -> None:
    # Each strict read (fashionsite/env.py) in the settings needs a line in .env.example saying its range.
    source = "".join((REPO / "fashionsite" / name).read_text() for name in ("settings.py", "settings_production.py"))
    read = set(re.findall(r"env_(?:int|float|bool|choice)\(\s*\"([A-Z0-9_]+)\"", source))
    assert len(read) > 30
    example = (REPO / ".env.example").read_text().splitlines()
    documented = {line.lstrip("# ").split("=", 1)[0] for line in example if "=" in line and " " not in
                  line.lstrip("# ").split("=", 1)[0]}
    assert read - documented == set()


def test_the_images_worker_runs_threads_and_takes_finish_before_compose() -> None:
    """A 512 result waits for no full-resolution compose (seconds of CPU): the images worker lists its queues
    images first and takes from the first queue that has messages (kombu's default, round robin, alternates).
    It runs threads: half of a finish waits on the network, which one prefork process sat through."""
    from fashionsite.celery import app

    assert app.conf.broker_transport_options["queue_order_strategy"] == "priority"
    entrypoint = (Path(__file__).resolve().parents[1] / "docker" / "entrypoint.sh").read_text()
    images_role = entrypoint.split("  images)", 1)[1].split(";;", 1)[0]
    assert "--queues images,compose" in images_role
    assert "--pool threads" in images_role
