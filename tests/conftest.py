"""Shared fixtures. Services (Redis, S3, PostgreSQL) come from scripts/testenv.py via the environment."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# pytest-django's live_server runs in a thread beside Playwright's event loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.support.fixtures"]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    raise RuntimeError("Debian's chromium is not installed: run `make test`, which installs it")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    yield
    # The API's database threads keep their connections (editor/api/waiting.py); in-process API calls leave them
    # open, and the test database cannot be dropped under them.
    from editor.api.waiting import close_database_threads

    close_database_threads()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def make_user(db: None) -> Any:
    """Create a user with a verified email address, ready to log in."""
    from allauth.account.models import EmailAddress
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from editor.services.credits import credits_grant_starter

    counter = {"n": 0}

    def make(email: str | None = None, password: str = "a-Strong-pass-42", **extra: Any) -> Any:
        counter["n"] += 1
        email = email or f"user{counter['n']}-{os.urandom(3).hex()}@example.com"
        user = get_user_model().objects.create_user(
            username=email.split("@")[0], email=email, password=password, **extra
        )
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        # A confirmed address is what earns the welcome credits (editor/signals.py).
        credits_grant_starter(user=user, amount=settings.STARTER_CREDITS)
        user.raw_password = password
        return user

    return make
