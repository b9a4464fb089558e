"""The dashboard in headless Chromium as staff: charts drawn from the page's data, no CSP or script errors,
usable at phone width. Set DASHBOARD_SCREENSHOT_DIR=docs/screenshots to refresh the docs' screenshots."""
from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from editor.dashboard.services import usage_rollup_build_range
from tests.dashboard.history import History, expected_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page: Any, live_server: Any, user: Any) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                               "url": live_server.url}])


def test_dashboard_in_a_browser(page: Any, browser: Any, live_server: Any, history: History, tmp_path: Path) -> None:
    h = history
    usage_rollup_build_range(start=h.today - timedelta(days=29), end=h.today - timedelta(days=1))
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOT_DIR") or tmp_path)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    _login(page, live_server, h.staff)

    page.goto(f"{live_server.url}/staff/dashboard/?period=30d")
    page.wait_for_function("window.dashboardCharts && Object.keys(window.dashboardCharts).length === 6")
    exp = expected_for(h, h.days(h.today - timedelta(days=29), h.today))
    assert page.get_by_test_id("kpi-jobs").inner_text() == f"{len(exp.jobs):,}"
    assert page.get_by_test_id("kpi-active-users").inner_text() == str(exp.active_users)
    drawn = page.evaluate("window.dashboardCharts['chart-outcomes'].data.datasets.map(d => d.data)")
    days = sorted(exp.per_day)
    assert drawn[0] == [exp.per_day[d]["succeeded"] for d in days]
    assert drawn[1] == [exp.per_day[d]["failed"] for d in days]
    assert drawn[2] == [exp.per_day[d]["refused"] for d in days]
    assert page.get_by_test_id("kpi-refused").inner_text() == str(exp.refused)
    assert page.evaluate("window.dashboardCharts['chart-errors'].data.labels") == list(exp.errors)
    assert page.get_by_role("alert").get_by_text(re.compile("out of credits")).is_visible()
    page.screenshot(path=str(shots / "dashboard-desktop.png"), full_page=True)

    # A custom period through the form, then a top user's usage page.
    page.fill("#id_start", (h.today - timedelta(days=8)).isoformat())
    page.fill("#id_end", (h.today - timedelta(days=3)).isoformat())
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile("period=custom"))
    page.wait_for_function("window.dashboardCharts && Object.keys(window.dashboardCharts).length === 6")
    assert page.evaluate("window.dashboardCharts['chart-outcomes'].data.labels.length") == 6
    top_email = page.get_by_test_id("top-edits").get_by_role("link").first.inner_text()
    page.get_by_test_id("top-edits").get_by_role("link").first.click()
    page.wait_for_url(re.compile("/staff/users/\\d+/"))
    assert top_email in page.get_by_role("heading", level=1).inner_text()

    # Phone width: nothing wider than the screen.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    phone.add_cookies(page.context.cookies())
    small = phone.new_page()
    small.goto(f"{live_server.url}/staff/dashboard/?period=7d")
    small.wait_for_function("window.dashboardCharts && Object.keys(window.dashboardCharts).length === 6")
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    small.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
    phone.close()
    assert problems == []
