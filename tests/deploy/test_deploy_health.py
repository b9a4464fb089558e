"""Liveness and readiness: real database, Redis and storage, and real outages of each."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

from devservices.servers import PostgresServer, RedisServer
from tests.deploy.conftest import production_env, wait_for_status


def _json(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


@pytest.mark.smoke
def test_liveness_answers_without_touching_any_dependency(client: Client) -> None:
    # No `db` fixture: pytest-django would raise if the view touched the database. The Host is a container IP
    # that ALLOWED_HOSTS does not list, as an internal probe sends it.
    for path in ("/health/live/", "/health/"):
        response = client.get(path, HTTP_HOST="10.1.2.3:8000")
        assert response.status_code == 200
        assert _json(response) == {"status": "ok"}
        assert response["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response


@pytest.mark.smoke
def test_readiness_reports_each_dependency_with_timing(client: Client, db: None) -> None:
    response = client.get("/health/ready/")
    body = _json(response)
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "storage"}
    for result in body["checks"].values():
        assert result["ok"] is True
        assert isinstance(result["ms"], float) and result["ms"] >= 0


def test_readiness_fails_with_a_clear_body_when_redis_is_down(client: Client, db: None) -> None:
    redis = RedisServer().start()
    url = redis.url
    redis.stop()  # the port is closed now: a Redis that went away
    with override_settings(CELERY_BROKER_URL=url, REDIS_URL=url):
        response = client.get("/health/ready/")
    body = _json(response)
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert "refused" in body["checks"]["redis"]["error"].lower()
    assert body["checks"]["database"]["ok"] is True and body["checks"]["storage"]["ok"] is True


def test_readiness_fails_when_storage_cannot_write(client: Client, db: None, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(blocker)}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        response = client.get("/health/ready/")
    body = _json(response)
    assert response.status_code == 503
    assert body["failing"] == ["storage"]
    assert body["checks"]["storage"]["error"]


def test_production_web_probes_and_outages_under_gunicorn(run_gunicorn: Any, tmp_path: Path) -> None:
    """docker/entrypoint.sh web with production settings, its own PostgreSQL and Redis, which we then stop."""
    postgres = PostgresServer().start()
    redis = RedisServer().start()
    try:
        env = production_env(DATABASE_URL=postgres.url, REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url,
                             MEDIA_ROOT=str(tmp_path / "media"))
        server = run_gunicorn(env)
        ready_url = f"{server.base_url}/health/ready/"

        # Plain HTTP with a Host outside ALLOWED_HOSTS (an internal probe): answered, not redirected or refused.
        response = wait_for_status(ready_url, 200)
        assert response.status == 200, response.body
        assert json.loads(response.body)["status"] == "ok"
        # Everything else still redirects plain HTTP to HTTPS.
        from tests.deploy.conftest import http_get

        page = http_get(f"{server.base_url}/accounts/login/", headers={"Host": "studio.example.com"})
        assert page.status == 301 and page.headers["Location"].startswith("https://studio.example.com/")

        postgres.stop(remove=False)
        response = wait_for_status(ready_url, 503)
        body = json.loads(response.body)
        assert response.status == 503
        assert body["failing"] == ["database"]
        assert "OperationalError" in body["checks"]["database"]["error"]
        assert body["checks"]["redis"]["ok"] is True

        redis.stop(remove=False)
        response = wait_for_status(ready_url, 503)
        body = json.loads(response.body)
        assert body["failing"] == ["database", "redis"]
        # Liveness does not depend on either: the orchestrator must not restart healthy web processes.
        assert http_get(f"{server.base_url}/health/live/").status == 200
        log = server.stop()
    finally:
        redis.stop()
        postgres.stop()
    # The failures were logged as JSON lines, without the database URL's details beyond what the body says.
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r["logger"] == "fashionsite.health" and "database" in r["message"] for r in records), log[-2000:]
