"""The first user's whole journey in Chromium, black box: the site as `make run` serves it (`Procfile.dev`'s
runserver), a real Celery worker with beat, and the bundled Fashion AI service with its real recolour engine.

Sign up, verify (the link from the console email), opt in to emails, edit, wait, result (zoom, download), edit
again, a failed edit (not charged), the gallery, the credits, and the "ready" emails on the worker's console.
Runs on `make run`'s defaults (SQLite file, local files) and on PostgreSQL + S3 (a fresh database and bucket on the
servers scripts/testenv.py started)."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devservices.celery_worker import FAST_WORKER_ENV, CeleryWorker
from devservices.fashionai import run_fashionai
from devservices.samples import astronaut_png
from tests.servers.conftest import REPO, SiteServer, start_site_server
from tests.web.test_web_browser import capture

# The whole walk takes ~2 minutes on a quiet machine (three real edits by the recolour engine).
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

PASSWORD = "First-visit-2026!"
# Private broker databases (xdist workers use 1..N, the other server tests 11), one per variant, so this test's
# worker never takes another test's messages.
BROKER_DBS = {"sqlite-local": 13, "postgres-s3": 14}


@contextlib.contextmanager
def postgres_and_s3() -> Iterator[dict[str, str]]:
    """A fresh database on the testenv PostgreSQL and a fresh bucket on its S3, dropped afterwards."""
    import boto3
    import psycopg

    server = urlsplit(os.environ["DATABASE_URL"])
    name = f"journey_{uuid.uuid4().hex[:8]}"
    admin_url = os.environ["DATABASE_URL"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    bucket = f"journey-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"],
                      aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
                      aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                      region_name=os.environ.get("AWS_S3_REGION_NAME") or "us-east-1")
    s3.create_bucket(Bucket=bucket)
    env = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    env.update({"DATABASE_URL": server._replace(path=f"/{name}").geturl(), "AWS_STORAGE_BUCKET_NAME": bucket})
    try:
        yield env
    finally:
        with contextlib.suppress(Exception):
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env,
                   check=True, timeout=300)


@pytest.fixture(params=[
    pytest.param("sqlite-local", marks=pytest.mark.smoke),
    pytest.param("postgres-s3"),
])
def stack(request: Any, migrated_sqlite: Path) -> Iterator[tuple[SiteServer, CeleryWorker]]:
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if request.param == "postgres-s3":
            on_servers = os.environ.get("DATABASE_URL", "").startswith("postgres") and bool(
                os.environ.get("AWS_S3_ENDPOINT_URL"))
            assert on_servers, "run through scripts/testenv.py with PostgreSQL and S3"
            env = stack.enter_context(postgres_and_s3())
        engine = stack.enter_context(run_fashionai(engine="recolor"))
        redis = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        env["CELERY_BROKER_URL"] = f"redis://{redis.netloc}/{BROKER_DBS[request.param]}"
        env.update({"FASHION_AI_BASE_URL": engine.base_url, "FASHION_AI_API_KEY": engine.api_key,
                    "STARTER_CREDITS": "10", "EDIT_COST_CREDITS": "1"})
        if request.param == "postgres-s3":
            _migrate({**os.environ, "FAI_IGNORE_DOTENV": "1", "DJANGO_SETTINGS_MODULE": "fashionsite.settings", **env})
        server = stack.enter_context(start_site_server("runserver", migrated_sqlite, env))
        worker_env = {**server.env, **FAST_WORKER_ENV, "LOG_LEVEL": "INFO", "CELERY_TASK_ALWAYS_EAGER": "false",
                      "PYTHONPATH": str(REPO)}
        worker = CeleryWorker(worker_env, beat=True, concurrency=2)
        subprocess.run([sys.executable, "-m", "celery", "-A", "fashionsite", "purge", "-f"], cwd=REPO,
                       env=worker_env, capture_output=True, timeout=60)  # a previous run's leftovers
        stack.callback(worker.stop)
        worker.start()
        yield server, worker


def _console_link(log: str, path: str) -> str:
    links = re.findall(rf"https?://[^/\s]+({re.escape(path)}\S+)", log)
    assert links, log[-3000:]
    return links[-1]


def _wait_final(page: Any, worker: CeleryWorker, server: SiteServer) -> str:
    try:
        page.locator("[data-testid=job-panel]:not([data-phase=queued]):not([data-phase=processing])"
                     ":not([data-phase=saving])").wait_for(timeout=90_000)
    except Exception:
        print(worker.log()[-4000:], server.log()[-3000:])
        raise
    return page.locator("[data-testid=job-panel]").get_attribute("data-phase") or ""


def test_first_user_journey(page: Any, stack: tuple[SiteServer, CeleryWorker]) -> None:
    server, worker = stack
    base = server.url
    email = f"first-{uuid.uuid4().hex[:6]}@example.com"
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The home page shows what the product does, and the price.
    page.goto(f"{base}/")
    assert page.get_by_test_id("examples").locator("img").count() >= 2
    assert "1 credit an edit" in page.get_by_test_id("price").inner_text()
    page.locator(".examples img").last.scroll_into_view_if_needed()
    capture(page, "home")
    page.get_by_role("link", name="Create a free account").click()

    # Sign up, in the site's own layout.
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password:?$")).fill(PASSWORD)
    page.get_by_label(re.compile(r"Password \(again\)")).fill(PASSWORD)
    capture(page, "signup")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    capture(page, "check-email")

    # Verify: the link from the email printed on the console (runserver's log in development).
    page.wait_for_timeout(500)
    page.goto(base + _console_link(server.log(), "/accounts/confirm-email/"))
    page.get_by_role("button", name="Confirm my email address").click()
    page.wait_for_url(f"{base}/")
    assert page.get_by_test_id("balance").inner_text().endswith("10 credits")

    # Opt in to "email me when it is ready" on the profile.
    page.goto(f"{base}/profile/")
    page.get_by_label("Email me when an edit is ready").check()
    page.get_by_test_id("ready-email-save").click()
    page.get_by_text("new edits will email you when ready").wait_for()

    # Edit: upload, pick an example prompt, start; the form carries the profile's choice.
    page.goto(f"{base}/edit/new/")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": astronaut_png()}])
    page.locator("#crop:not([hidden])").wait_for()
    page.locator('.chip[data-prompt="a person wearing a red hoodie"]').click()
    page.get_by_label(re.compile(r"Top \(shirt")).check()
    assert page.get_by_label("Email me when it is ready").is_checked()
    page.get_by_role("button", name="Start the edit").click()
    page.wait_for_url(re.compile(r"/edits/[0-9a-f-]{36}/$"))
    first_url = page.url

    # Wait (no reload), then the result: large, full view, download.
    assert _wait_final(page, worker, server) == "done"
    page.get_by_test_id("zoom").click()
    assert page.get_by_test_id("zoom-dialog").evaluate("d => d.open")
    page.get_by_test_id("zoom-close").click()
    download = page.request.get(base + (page.get_by_test_id("download").get_attribute("href") or ""))
    assert download.ok and download.body()[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")

    # Edit again from the result (the other region is pre-selected; this photo only shows a top, so keep Top).
    page.get_by_test_id("edit-again").click()
    page.wait_for_url(re.compile(r"/edit/new/\?from="))
    page.get_by_label("What should the clothing become?").fill("a person wearing a navy and white striped shirt")
    page.get_by_label(re.compile(r"Top \(shirt")).check()
    page.get_by_role("button", name="Start the edit").click()
    page.wait_for_url(re.compile(r"/edits/[0-9a-f-]{36}/$"))
    assert page.url != first_url
    assert _wait_final(page, worker, server) == "done"

    # A failed edit: the engine cannot apply a prompt without a colour. Not charged, said plainly.
    page.goto(f"{base}/edit/new/")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": astronaut_png()}])
    page.locator("#crop:not([hidden])").wait_for()
    page.get_by_label("What should the clothing become?").fill("a person wearing something nicer")
    page.get_by_role("button", name="Start the edit").click()
    page.wait_for_url(re.compile(r"/edits/[0-9a-f-]{36}/$"))
    failed_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert _wait_final(page, worker, server) == "failed"
    assert "no colour" in page.get_by_test_id("failure-reason").inner_text()
    page.get_by_test_id("not-charged").get_by_text("1 credit went back").wait_for()

    # The gallery: three tiles, the failed one looks failed.
    page.goto(f"{base}/gallery/")
    tiles = page.get_by_test_id("tile")
    assert tiles.count() == 3
    failed_tile = page.locator(f'[data-testid=tile][data-job="{failed_id}"]')
    assert "not charged" in failed_tile.locator(".badge").inner_text()
    assert "grayscale" in failed_tile.locator("img").evaluate("i => getComputedStyle(i).filter")
    capture(page, "gallery")

    # Credits: 10 received, 2 edits kept, the failed one given back.
    page.goto(f"{base}/credits/")
    assert page.get_by_test_id("balance").inner_text().endswith("8 credits")

    # The emails: one per edit on the worker's console, the failed one says it was not charged; never twice.
    def mails() -> list[str]:
        return re.findall(r"Subject: \[Fashion AI Studio\] (Your edit [^\n]+)", worker.log())

    for _ in range(100):
        if len(mails()) >= 3:
            break
        page.wait_for_timeout(200)
    assert sorted(mails()) == sorted(["Your edit is ready", "Your edit is ready", "Your edit could not be made"])
    log = worker.log()
    assert "You were not charged: 1 credit went back to your balance." in log
    assert f"/edits/{failed_id}/" in log
    page.wait_for_timeout(2500)  # a few more sweeps: still one email per edit
    assert len(mails()) == 3
    assert not errors, errors
