"""Sign-up, login, logout and a wrong password in headless Chromium against a live server."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_signup_verify_login_logout(page: Any, live_server: Any) -> None:
    email, password = "browser-user@example.com", "Browser-pass-2026!"
    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password:?$")).fill(password)
    page.get_by_label(re.compile("Password \\(again\\)")).fill(password)
    page.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    page.wait_for_url(re.compile("/accounts/confirm-email/"))
    assert page.get_by_role("heading", name="Check your email").is_visible()

    link = re.search(r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body)
    assert link
    page.goto(link.group(0).replace("http://testserver", live_server.url).replace(
        "http://example.com", live_server.url))
    page.get_by_role("button", name=re.compile("^Confirm", re.I)).click()
    page.wait_for_url(f"{live_server.url}/")
    balance = page.get_by_test_id("balance")
    assert re.search(r"\d+ credits?", balance.inner_text())

    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    assert page.get_by_role("link", name="Log in").count() >= 1

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password:?$")).fill(password)
    page.get_by_role("button", name=re.compile("^Log in$", re.I)).click()
    page.wait_for_url(f"{live_server.url}/")
    assert page.get_by_test_id("balance").is_visible()


def test_wrong_password_shows_a_message(page: Any, live_server: Any, make_user: Any) -> None:
    user = make_user()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label(re.compile(r"^Password:?$")).fill("not-my-password")
    page.get_by_role("button", name=re.compile("^Log in$", re.I)).click()
    assert page.get_by_text(re.compile("not correct")).is_visible()
    assert "/accounts/login/" in page.url
