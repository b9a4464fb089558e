"""The admin's login: it goes through allauth's rate-limited login (no brute force on /admin/login/), and staff
need TOTP two-factor (allauth.mfa) where STAFF_MFA_REQUIRED says so (on in production settings). Django test client
over PostgreSQL; TOTP codes computed with pyotp, independently of allauth."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_limits(settings: Any) -> None:
    cache.clear()  # allauth's rate-limit counters live in the cache
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STARTER_CREDITS = 0


@pytest.fixture
def superuser(make_user: Callable[..., Any]) -> Any:
    return make_user(email="boss@example.com", is_staff=True, is_superuser=True)


def _in_admin(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_sixty_wrong_admin_passwords_then_the_right_one_do_not_get_in(superuser: Any) -> None:
    client = Client(REMOTE_ADDR="203.0.113.66")
    for i in range(60):
        client.post("/admin/login/?next=/admin/", {"username": superuser.username, "password": f"guess-{i}"})
        # The same guesses at allauth's login, where /admin/login/ now sends everyone.
        client.post(reverse("account_login") + "?next=/admin/", {"login": superuser.email, "password": f"guess-{i}"})
    client.post("/admin/login/?next=/admin/", {"username": superuser.username, "password": superuser.raw_password})
    response = client.post(reverse("account_login") + "?next=/admin/",
                           {"login": superuser.email, "password": superuser.raw_password})
    # Refused unchecked: allauth's login budget (429) or its failed-login budget (the message).
    assert response.status_code == 429 or "Too many failed login attempts" in response.content.decode()
    assert not _in_admin(client)


def test_the_admin_login_hands_over_to_allauth_and_back(superuser: Any, make_user: Callable[..., Any]) -> None:
    client = Client()
    to_admin_login = client.get("/admin/")
    assert to_admin_login.status_code == 302 and to_admin_login["Location"].startswith("/admin/login/")
    to_allauth = client.get(to_admin_login["Location"])
    assert to_allauth.status_code == 302 and to_allauth["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    # An outside `next` is not carried over.
    assert "evil" not in client.get("/admin/login/?next=https://evil.example/")["Location"].split("next=")[1][:3]
    # A password posted to the admin's own form is never checked there.
    posted = client.post("/admin/login/", {"username": superuser.username, "password": superuser.raw_password})
    assert posted.status_code == 302 and posted["Location"].startswith("/accounts/login/")
    assert not _in_admin(client)

    signed = client.post(to_allauth["Location"], {"login": superuser.email, "password": superuser.raw_password})
    assert signed.status_code == 302 and signed["Location"] == "/admin/"
    assert _in_admin(client)
    # Signed in but not staff: a plain refusal, not a login loop.
    user = make_user()
    other = Client()
    other.force_login(user)
    assert other.get("/admin/login/?next=/admin/").status_code == 403


def _code(secret: str) -> str:
    # Never compute a code in the last 2 s of its 30 s window (it could expire on the way).
    if time.time() % 30 > 28:
        time.sleep(30 - time.time() % 30 + 0.1)
    return pyotp.TOTP(secret).now()


def _login(client: Client, user: Any) -> Any:
    return client.post(reverse("account_login") + "?next=/admin/", {"login": user.email, "password": user.raw_password})


def test_staff_must_set_up_totp_and_then_sign_in_with_it(superuser: Any, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = True
    client = Client()
    assert _login(client, superuser).status_code == 302
    # Signed in with the password alone: sent to set up an authenticator before any admin or staff page.
    for url in ("/admin/", "/admin/auth/user/", reverse("staff_dashboard")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp"), url

    # Adding an authenticator asks for the password again (allauth's reauthentication).
    ask = client.get(reverse("mfa_activate_totp"))
    assert ask.status_code == 302 and ask["Location"].startswith(reverse("account_reauthenticate"))
    assert client.post(ask["Location"], {"password": superuser.raw_password}).status_code == 302
    setup = client.get(reverse("mfa_activate_totp"))
    assert setup.status_code == 200
    secret = setup.context["form"].secret
    assert client.post(reverse("mfa_activate_totp"), {"code": "000000" if _code(secret) != "000000" else "111111"}
                       ).status_code == 200  # a wrong code activates nothing
    assert client.get("/admin/").status_code == 302
    assert client.post(reverse("mfa_activate_totp"), {"code": _code(secret)}).status_code == 302
    assert _in_admin(client)

    # Next sign-in: the password is not enough.
    client.post(reverse("account_logout"))
    fresh = Client()
    step = _login(fresh, superuser)
    assert step.status_code == 302 and step["Location"].startswith(reverse("mfa_authenticate"))
    assert not _in_admin(fresh)
    wrong = fresh.post(reverse("mfa_authenticate"), {"code": "123456" if _code(secret) != "123456" else "654321"})
    assert wrong.status_code == 200 and not _in_admin(fresh)
    assert fresh.post(reverse("mfa_authenticate"), {"code": _code(secret)}).status_code == 302
    assert _in_admin(fresh)


def test_without_the_requirement_staff_without_totp_still_get_in(superuser: Any, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = False
    client = Client()
    _login(client, superuser)
    assert _in_admin(client)


def test_production_settings_require_staff_two_factor() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STAFF_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "fashionsite.settings_production", "DJANGO_SECRET_KEY": "p" * 60,
                "DJANGO_ALLOWED_HOSTS": "studio.example.com", "FAI_IGNORE_DOTENV": "1", "PYTHONPATH": str(repo)})
    code = "import django; django.setup(); from django.conf import settings; print(settings.STAFF_MFA_REQUIRED)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo,
                            timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]
