"""Site hardening: security headers under production settings, CSRF on every state-changing URL, brute-force login
throttling per IP (and not bypassed by a forged X-Forwarded-For)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse

from editor.models import EditJob
from tests.security.urlsweep import KEY, PUBLIC, Victim, build_url, classify, make_victim, walk

REPO = Path(__file__).resolve().parents[2]
HOST = "studio.example.com"


# --- Security headers (production settings) ------------------------------------------------------


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "fashionsite.settings_production",
            "DJANGO_SECRET_KEY": "probe-" + "k" * 60,
            "DJANGO_ALLOWED_HOSTS": HOST,
            "DATABASE_URL": f"sqlite:///{folder}/probe.sqlite3",
            "FAI_IGNORE_DOTENV": "1",
            "PYTHONPATH": str(REPO),
            "LOG_LEVEL": "ERROR",
        })
        result = subprocess.run(
            [sys.executable, str(REPO / "tests/security/prod_probe.py")],
            capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_production_pages_carry_the_security_headers(production: dict[str, Any]) -> None:
    # Pages, the health probe and the size guard's 413 alike (the last two are answered before most middleware).
    for page, status in (("home_https", 200), ("login_https", 200), ("health_https", 200), ("too_big_https", 413)):
        answer = production[page]
        assert answer["status"] == status, page
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        policy = dict(rule.split("=", 1) for rule in headers["permissions-policy"].split(", "))
        assert all(policy[f] == "()" for f in ("camera", "microphone", "geolocation", "payment", "usb")), page
        assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        csp = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
        assert csp["default-src"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["object-src"] == ["'none'"]
        assert csp["base-uri"] == ["'self'"]
        for directive in ("script-src", "style-src"):
            assert "'unsafe-inline'" not in csp[directive] and "'unsafe-eval'" not in csp[directive]


def test_production_admin_login_is_rate_limited_and_asks_for_two_factor(production: dict[str, Any]) -> None:
    # Issue 13 item 2 under production settings: the admin's own form checks no password (it hands over to the
    # rate-limited allauth login), and a password alone does not open the admin.
    admin = production["admin_login"]
    assert admin["posted_status"] == 302 and admin["posted_location"].startswith("/accounts/login/")
    assert admin["attacker_admin_status"] == 302
    assert admin["password_only_status"] == 302
    assert admin["password_only_location"] == "/accounts/2fa/totp/activate/"


def test_production_cookies_are_secure(production: dict[str, Any]) -> None:
    csrf = production["login_https"]["cookies"]["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    # Any session cookie set on the way must be Secure and HttpOnly.
    for answer in production.values():
        session = answer.get("cookies", {}).get("sessionid")
        if session:
            assert session["secure"] and session["httponly"]


def test_production_redirects_http_and_refuses_unknown_hosts(production: dict[str, Any]) -> None:
    assert production["home_http"]["status"] == 301
    assert production["home_http"]["headers"]["Location"] == f"https://{HOST}/"
    # Health probes come over plain HTTP from inside the network: answered, not redirected.
    assert production["health_http"]["status"] == 200
    assert production["other_host"]["status"] == 400


def test_production_csrf_checks_the_origin(production: dict[str, Any]) -> None:
    assert production["post_foreign_origin"]["status"] == 403
    assert production["post_foreign_referer"]["status"] == 403
    assert production["post_same_origin"]["status"] == 200  # past CSRF; the wrong password is the form's error


def test_production_login_throttle_follows_the_client_behind_the_proxy(production: dict[str, Any]) -> None:
    lockout = production["proxied_login_lockout"]
    assert lockout["attacker_throttled"]
    assert not lockout["other_client_throttled"], "one client's failed logins locked everyone out"


# --- CSRF on every state-changing URL --------------------------------------------------------------


def _own_victim(make_user: Callable[..., Any]) -> Victim:
    victim = make_victim(make_user)
    victim.user.is_staff = victim.user.is_superuser = True  # so admin and dashboard views are reached too
    victim.user.save()
    return victim


@pytest.mark.django_db
def test_every_url_refuses_a_post_without_csrf_token(make_user: Callable[..., Any]) -> None:
    """As the owner and staff (so every view would act), a POST without a token is 403 everywhere."""
    victim = _own_victim(make_user)
    client = Client(enforce_csrf_checks=True)
    checked = 0
    for pattern, _ in walk():
        classified = classify(pattern)
        assert classified is not None, f"unknown URL pattern {pattern!r}: add it to tests/security/urlsweep.py"
        kind, params, post = classified
        if pattern.startswith("health/"):
            continue  # answered by HealthCheckMiddleware before CSRF; GET-only, changes nothing (checked below)
        if pattern in ("provider/webhook/", "payments/stripe/webhook/"):
            # CSRF-exempt by design: server-to-server calls proven by their signature, not a cookie; unsigned,
            # they are refused (404 where that webhook is not set up) and change nothing.
            response = client.post(build_url(pattern, params(victim)), post(victim))
            assert response.status_code in (400, 401, 403, 404), f"unsigned POST {pattern}: {response.status_code}"
            checked += 1
            continue
        client.force_login(victim.user)
        url = build_url(pattern, params(victim))
        response = client.post(url, post(victim))
        if kind == KEY or pattern.startswith("api/v1/"):
            # The developer API reads no cookies, so CSRF cannot apply: the session alone is refused (401), and
            # its public document and reference page take no POST (405, or the CSRF check's 403).
            assert response.status_code in (401, 403, 405), f"POST {url} ({pattern}): {response.status_code}"
            checked += 1
            continue
        assert response.status_code == 403, f"POST {url} ({pattern}) without a CSRF token: {response.status_code}"
        checked += 1
    assert checked > 90
    # Nothing changed: the edit still exists, the user is still signed in with the same password.
    assert EditJob.objects.filter(pk=victim.job.pk).exists()
    assert client.get(reverse("editor:profile")).status_code == 200


@pytest.mark.django_db
def test_health_urls_change_nothing_on_post(make_user: Callable[..., Any]) -> None:
    for pattern, _ in walk():
        if pattern.startswith("health/"):
            classified = classify(pattern)
            assert classified is not None and classified[0] == PUBLIC
            response = Client(enforce_csrf_checks=True).post("/" + pattern)
            assert response.status_code in (403, 405), (pattern, response.status_code)


@pytest.mark.django_db
def test_a_csrf_token_from_another_session_is_refused(make_user: Callable[..., Any]) -> None:
    victim = _own_victim(make_user)
    attacker = Client(enforce_csrf_checks=True)
    page = attacker.get(reverse("account_login")).content.decode()
    stolen = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert stolen
    client = Client(enforce_csrf_checks=True)
    client.force_login(victim.user)
    delete_url = reverse("editor:job_delete", kwargs={"pk": victim.job.pk})
    assert client.post(delete_url, {"csrfmiddlewaretoken": stolen[1]}).status_code == 403
    assert EditJob.objects.filter(pk=victim.job.pk).exists()
    # The owner's own token works: the 403 above was the CSRF check.
    own = client.get(reverse("editor:job_detail", kwargs={"pk": victim.job.pk})).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', own)
    assert token
    assert client.post(delete_url, {"csrfmiddlewaretoken": token[1]}).status_code == 302
    assert not EditJob.objects.filter(pk=victim.job.pk).exists()


# --- Brute-force login, per IP ---------------------------------------------------------------------

TOO_MANY = "Too many failed login attempts"


@pytest.fixture
def clean_rate_limits(settings: Any) -> None:
    cache.clear()
    # Dozens of logins: a fast hasher keeps this about the throttle, not about PBKDF2's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _fail_login(client: Client, email: str, ip: str, **headers: Any) -> str:
    response = client.post(reverse("account_login"), {"login": email, "password": "not-the-password"},
                           REMOTE_ADDR=ip, **headers)
    return response.content.decode()


@pytest.mark.django_db
def test_failed_logins_are_limited_per_ip_across_accounts(make_user: Callable[..., Any],
                                                          clean_rate_limits: None) -> None:
    """One IP spraying many accounts (under each account's own budget) is stopped after 10 failures a minute."""
    users = [make_user() for _ in range(11)]
    client = Client()
    pages = [_fail_login(client, user.email, "203.0.113.7") for user in users]
    assert all(TOO_MANY not in page for page in pages[:10])
    assert TOO_MANY in pages[10]
    # The right password from that IP is refused too, until the window passes...
    blocked = client.post(reverse("account_login"), {"login": users[0].email, "password": users[0].raw_password},
                          REMOTE_ADDR="203.0.113.7")
    assert blocked.status_code == 200 and TOO_MANY in blocked.content.decode()
    # ...while another IP signs in normally.
    other = Client().post(reverse("account_login"), {"login": users[0].email, "password": users[0].raw_password},
                          REMOTE_ADDR="198.51.100.20")
    assert other.status_code == 302


@pytest.mark.django_db
def test_forged_forwarded_for_does_not_reset_the_ip_budget(make_user: Callable[..., Any],
                                                          clean_rate_limits: None) -> None:
    users = [make_user() for _ in range(11)]
    client = Client()
    pages = [
        _fail_login(client, user.email, "203.0.113.8", HTTP_X_FORWARDED_FOR=f"10.9.8.{i}")
        for i, user in enumerate(users)
    ]
    assert TOO_MANY in pages[10]


@pytest.mark.django_db
@override_settings(ALLAUTH_TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_limit_follows_the_client_the_proxy_saw(make_user: Callable[..., Any],
                                                                     clean_rate_limits: None) -> None:
    """Behind a proxy every request has the proxy's REMOTE_ADDR; with ALLAUTH_TRUSTED_PROXY_COUNT=1 the budget is
    per real client, and a client prepending its own X-Forwarded-For entries still can't pick its identity."""
    users = [make_user() for _ in range(11)]
    client = Client()
    proxy = "10.0.0.2"
    pages = [
        _fail_login(client, user.email, proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.{i}, 203.0.113.9")
        for i, user in enumerate(users)
    ]
    assert TOO_MANY in pages[10]
    # Another client behind the same proxy is not locked out by the first one.
    ok = Client().post(reverse("account_login"), {"login": users[0].email, "password": users[0].raw_password},
                       REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.30")
    assert ok.status_code == 302
