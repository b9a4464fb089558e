"""What a first-time user tripped over (issue 14), in headless Chromium against a live server: the header's balance
after a refund, the progress estimate, refusals the browser shows, form errors that keep the photo, retrying a
failed edit. The job is moved by the state writer, as a worker would, so no worker is needed here."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client

from editor.models import EditJob
from editor.services.credits import credits_charge_for_job
from editor.services.job_state import edit_job_mark_failed
from tests.web.helpers import make_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page: Any, base: str, user: Any) -> None:
    """A signed-in session handed to the browser (the sign-in pages have their own tests)."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def running_charged_job(user: Any, **fields: Any) -> EditJob:
    job = make_job(user, state=EditJob.State.SUBMITTED, with_result=False)
    with transaction.atomic():
        credits_charge_for_job(job=job)
    EditJob.objects.filter(pk=job.pk).update(provider_status="PROCESSING", **fields)
    return job


def test_header_balance_follows_the_refund_without_a_reload(page: Any, live_server: Any, make_user: Any) -> None:
    """Issue 14 item 1: the panel said "1 credit went back" while the header still showed the charged balance."""
    base = live_server.url
    user = make_user()
    job = running_charged_job(user)
    user.credit_account.refresh_from_db()
    charged_balance = user.credit_account.balance
    log_in(page, base, user)
    page.goto(f"{base}/edits/{job.pk}/")
    page.evaluate("window.__noReload = true")
    assert page.get_by_test_id("balance").inner_text().endswith(f"{charged_balance} credits")
    edit_job_mark_failed(job_id=job.pk, error_code="provider_failed", error_detail="No person found in the photo.")
    page.locator("[data-testid=job-panel][data-phase=failed]").wait_for(timeout=10_000)
    assert "1 credit went back" in page.get_by_test_id("not-charged").inner_text()
    assert page.get_by_test_id("balance").inner_text().endswith(f"{charged_balance + 1} credits")
    assert page.evaluate("window.__noReload") is True


def _file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


def test_browser_refusals_stay_the_real_reason_when_submitted_anyway(
    page: Any, live_server: Any, make_user: Any, settings: Any
) -> None:
    """Issue 14 item 6: the browser's refusal (empty, GIF, too big) must not turn into "Please choose a photo."
    when Start is pressed anyway, and the tiny-image message states the minimum size."""
    from tests.web.helpers import image_bytes

    base = live_server.url
    settings.UPLOAD_MAX_BYTES = 200_000  # the live server shares these settings; a small file is quick to hand over
    user = make_user()
    log_in(page, base, user)
    page.goto(f"{base}/edit/new/")
    page.get_by_label("What should the clothing become?").fill("a person wearing a red hoodie")
    errors = page.get_by_test_id("image-error")
    too_big = b"\xff\xd8" + b"\0" * (settings.UPLOAD_MAX_BYTES + 10)
    for file, reason in (
        (_file("empty.jpg", "image/jpeg", b""), "This file is empty"),
        (_file("moving.gif", "image/gif", image_bytes("GIF", (300, 300), "P", 1)), "not a picture we can read"),
        (_file("huge.jpg", "image/jpeg", too_big), "This file is too big"),
    ):
        page.locator("input[type=file]").set_input_files(files=[file])
        assert reason in errors.inner_text()
        page.get_by_role("button", name="Start the edit").click()
        page.wait_for_timeout(300)
        assert "/edit/new/" in page.url
        assert reason in page.get_by_test_id("image-error").inner_text(), file["name"]
        assert "Please choose a photo" not in page.content()
    assert EditJob.objects.count() == 0

    page.locator("input[type=file]").set_input_files(
        files=[_file("tiny.png", "image/png", image_bytes("PNG", (100, 90)))])
    page.get_by_text(re.compile("too small")).wait_for()
    assert f"at least {settings.UPLOAD_MIN_SIDE} pixels" in errors.inner_text()


def test_a_form_error_keeps_the_photo_and_says_what_to_fix(
    page: Any, live_server: Any, make_user: Any
) -> None:
    """Issue 14 item 5: after "prompt too short" the photo is still there; fixing the prompt is all it takes."""
    from editor.models import Photo
    from tests.web.helpers import image_bytes

    base = live_server.url
    user = make_user()
    log_in(page, base, user)
    page.goto(f"{base}/edit/new/")
    page.locator("input[type=file]").set_input_files(
        files=[_file("me.png", "image/png", image_bytes("PNG", (800, 600)))])
    page.locator("#crop:not([hidden])").wait_for()
    prompt = page.get_by_label("What should the clothing become?")
    prompt.fill("ab")
    page.get_by_role("button", name="Start the edit").click()
    page.wait_for_load_state()
    assert "at least 3 characters" in page.get_by_test_id("prompt-error").inner_text()
    kept = page.get_by_test_id("kept-photo")
    assert kept.is_visible()
    kept.locator("img").evaluate("img => img.decode()")  # the stored photo really loads
    assert prompt.input_value() == "ab"
    prompt.fill("a person wearing a red hoodie")
    page.get_by_role("button", name="Start the edit").click()
    page.wait_for_url(re.compile(r"/edits/[0-9a-f-]{36}/$"))
    photo = Photo.objects.get(owner=user)
    assert EditJob.objects.get(owner=user).photo_id == photo.pk


def test_the_page_says_it_is_late_without_a_reload(page: Any, live_server: Any, make_user: Any) -> None:
    """Issue 14 item 2: while the poll answers "unchanged", job.js shows the late note once the usual wait passed,
    and the bar creeps instead of sitting at 95 %."""
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from tests.web.test_web_first_use import _finished_jobs_taking

    cache.clear()
    base = live_server.url
    user = make_user()
    _finished_jobs_taking(user, 3.0)
    job = running_charged_job(user, created_at=timezone.now() - timedelta(seconds=1),
                              submitted_at=timezone.now() - timedelta(seconds=1))
    log_in(page, base, user)
    page.goto(f"{base}/edits/{job.pk}/")
    page.evaluate("window.__noReload = true")
    assert "usually about 3 s" in page.get_by_test_id("elapsed").inner_text()
    note = page.get_by_test_id("late-note")
    assert not note.is_visible()
    note.wait_for(state="visible", timeout=10_000)
    assert "slower than usual" in note.inner_text()
    assert 90 <= page.evaluate("document.querySelector('progress').value") < 96
    assert page.evaluate("window.__noReload") is True
