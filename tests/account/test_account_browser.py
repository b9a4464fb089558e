"""A person's data in a real browser: share a result (the public page in a signed-out browser, then revoked),
download my data (made by the real worker), delete my account (password and confirm, then signed out for good)."""
from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page: Any, base: str, user: Any) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.raw_password)
    page.get_by_role("button", name=re.compile("^Log in$", re.I)).click()
    page.wait_for_url(f"{base}/")


def test_sharing_a_result_in_the_browser(page: Any, browser: Any, live_server: Any, user_with_data: Any) -> None:
    data = user_with_data(photos=1)
    base = live_server.url
    log_in(page, base, data.user)
    page.goto(f"{base}/edits/{data.jobs[0].pk}/")
    page.get_by_test_id("share-expiry").select_option("30")
    page.get_by_test_id("share-create").click()
    url = page.get_by_test_id("share-url").first.input_value()
    assert re.fullmatch(rf"{re.escape(base)}/s/[\w-]+/", url)

    visitor = browser.new_context()
    public = visitor.new_page()
    response = public.goto(url)
    assert response.status == 200 and "noindex" in response.headers["x-robots-tag"]
    assert data.user.email not in public.content()
    for image in ("shared-before", "shared-after"):
        public.wait_for_function(
            "id => document.querySelector(`[data-testid=${id}]`).naturalWidth > 0", arg=image)
    page.reload()
    assert "1 view" in page.get_by_test_id("share-link").first.inner_text()

    page.get_by_test_id("share-revoke").first.click()
    page.get_by_text("The link was revoked").wait_for()
    assert public.goto(url).status == 404  # the same browser that opened it: nothing was cached
    visitor.close()


def test_download_my_data_then_delete_my_account_in_the_browser(
    page: Any, live_server: Any, user_with_data: Any, celery_worker_factory: Any
) -> None:
    from editor.models import AccountDeletion
    from tests.account.conftest import personal_data_left, stored_names

    data = user_with_data(photos=2)
    worker = celery_worker_factory(fashionai=None, env={"ACCOUNT_SWEEP_INTERVAL_SECONDS": "1"})
    base = live_server.url
    log_in(page, base, data.user)
    page.goto(f"{base}/profile/")
    page.get_by_test_id("export-request").click()
    assert "preparing a ZIP" in page.content()
    for _ in range(120):
        page.goto(f"{base}/profile/")
        if page.get_by_test_id("export-download").count():
            break
        page.wait_for_timeout(500)
    else:
        raise AssertionError(f"the export never became ready\n{worker.log()[-3000:]}")
    href = page.get_by_test_id("export-download").get_attribute("href")
    archive = zipfile.ZipFile(io.BytesIO(page.context.request.get(f"{base}{href}").body()))
    assert len([n for n in archive.namelist() if n.startswith("files/")]) == 2 * 4
    assert "history.csv" in archive.namelist()

    page.get_by_test_id("delete-account-link").click()
    page.get_by_test_id("delete-password").fill("not my password")
    page.get_by_test_id("delete-confirm").check()
    page.get_by_test_id("delete-account").click()
    assert "That password is not right" in page.get_by_test_id("delete-error").inner_text()
    page.get_by_test_id("delete-password").fill(data.user.raw_password)
    page.get_by_test_id("delete-confirm").check()
    page.get_by_test_id("delete-account").click()
    page.wait_for_url(f"{base}/account-deleted/")
    assert page.get_by_test_id("account-deleted").is_visible()

    for _ in range(120):
        if AccountDeletion.objects.filter(user_id=data.user.pk, state="done").exists():
            break
        page.wait_for_timeout(500)
    else:
        raise AssertionError(f"the deletion never finished\n{worker.log()[-3000:]}")
    assert stored_names(data.user.pk) == set() and personal_data_left(data) == []
    log_in_again = page.goto(f"{base}/accounts/login/")
    assert log_in_again is not None
    page.get_by_label("Email").fill(data.user.email)
    page.get_by_label("Password").fill(data.user.raw_password)
    page.get_by_role("button", name=re.compile("^Log in$", re.I)).click()
    page.wait_for_timeout(500)
    assert "/accounts/login/" in page.url
