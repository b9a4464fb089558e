"""Issue 14 item 14 in Chromium: the finished edit's result is large with a full view, Download is the prominent
action, Delete stands apart and asks first. (The failed-edit page keeps Delete apart too.)"""
from __future__ import annotations

from typing import Any

import pytest

from editor.models import EditJob
from tests.web.helpers import make_job
from tests.web.test_web_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.smoke, pytest.mark.django_db(transaction=True)]


def test_result_large_with_full_view_download_prominent_delete_apart(
    page: Any, live_server: Any, make_user: Any
) -> None:
    user = make_user()
    job = make_job(user)
    log_in(page, live_server.url, user)
    page.goto(f"{live_server.url}/edits/{job.pk}/")
    page.locator(".compare-after").evaluate("img => img.decode()")

    compare = page.get_by_test_id("compare").bounding_box()
    assert compare["width"] >= 700, f"the result is shown {compare['width']:.0f} px wide on a 1280 px screen"
    download = page.get_by_test_id("download")
    delete = page.get_by_test_id("delete")
    assert "big" in (download.get_attribute("class") or "")
    assert "danger" not in (delete.get_attribute("class") or "").split()  # no longer a solid red button
    # Download is the first action, beside the result; Delete is below, in its own zone, not next to it.
    side = page.locator(".result-side")
    assert side.locator("a, button").first.get_attribute("data-testid") == "download"
    assert page.get_by_test_id("danger-zone").locator("[data-testid=download]").count() == 0
    d, x = download.bounding_box(), delete.bounding_box()
    assert x["y"] - (d["y"] + d["height"]) >= 100, "Delete sits right next to Download"

    # The full view: a dialog with the whole result, a click shows it pixel for pixel, Close closes it.
    page.get_by_test_id("zoom").click()
    dialog = page.get_by_test_id("zoom-dialog")
    assert dialog.evaluate("d => d.open")
    image = page.get_by_test_id("zoom-image")
    image.evaluate("img => img.decode()")
    assert image.bounding_box()["height"] > compare["height"]
    image.click()
    assert "actual" in (image.get_attribute("class") or "")
    page.get_by_test_id("zoom-close").click()
    assert not dialog.evaluate("d => d.open")

    # Delete asks first: dismissing keeps the edit, accepting deletes it.
    page.once("dialog", lambda d: d.dismiss())
    delete.click()
    page.wait_for_timeout(300)
    assert EditJob.objects.filter(pk=job.pk).exists()
    page.once("dialog", lambda d: d.accept())
    delete.click()
    page.wait_for_url(f"{live_server.url}/gallery/")
    assert not EditJob.objects.filter(pk=job.pk).exists()


def test_on_a_phone_the_result_fills_the_width_and_download_comes_first(
    page: Any, live_server: Any, make_user: Any
) -> None:
    user = make_user()
    job = make_job(user)
    log_in(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/edits/{job.pk}/")
    compare = page.get_by_test_id("compare").bounding_box()
    assert compare["width"] >= 320
    download = page.get_by_test_id("download").bounding_box()
    assert download["y"] > compare["y"] + compare["height"] - 1  # below the result, not squeezed beside it
    assert page.get_by_test_id("delete").bounding_box()["y"] > download["y"] + 100
