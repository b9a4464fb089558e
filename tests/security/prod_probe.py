"""Production-settings probe, run as a subprocess by test_site_security.py (fashionsite.settings_production can't be
loaded into the test process next to the normal settings). Migrates a throwaway SQLite database, then asks the real
middleware stack a few questions through Django's test client and prints the answers as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

# No collectstatic in a test: static names unhashed. Headers do not depend on it.
settings.STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
HOST = settings.ALLOWED_HOSTS[0]


def answer(response: Any) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "cookies": {
            name: {"secure": bool(c["secure"]), "httponly": bool(c["httponly"]), "samesite": c["samesite"]}
            for name, c in response.cookies.items()
        },
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    client = Client(enforce_csrf_checks=True, HTTP_HOST=HOST)
    out: dict[str, Any] = {
        "home_https": answer(client.get("/", secure=True)),
        "home_http": answer(client.get("/")),
        "health_http": answer(client.get("/health/live/")),
        "health_https": answer(client.get("/health/live/", secure=True)),
        # The size guard's 413, answered before the body is read.
        "too_big_https": answer(client.generic(
            "POST", "/edit/new/", b"x", content_type="multipart/form-data; boundary=zz", secure=True,
            CONTENT_LENGTH=str(settings.UPLOAD_MAX_BYTES * 2))),
        "other_host": answer(Client(HTTP_HOST="evil.example").get("/", secure=True)),
    }
    login = client.get("/accounts/login/", secure=True)
    out["login_https"] = answer(login)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.content.decode())
    assert token, "no CSRF token on the login page"
    form = {"login": "nobody@example.com", "password": "wrong-password", "csrfmiddlewaretoken": token[1]}
    # Valid token and cookie, but posted from another site: HTTPS requests are checked against their Origin.
    out["post_foreign_origin"] = answer(client.post("/accounts/login/", form, secure=True,
                                                    HTTP_ORIGIN="https://evil.example"))
    out["post_foreign_referer"] = answer(client.post("/accounts/login/", form, secure=True,
                                                     HTTP_REFERER="https://evil.example/login"))
    out["post_same_origin"] = answer(client.post("/accounts/login/", form, secure=True,
                                                 HTTP_ORIGIN=f"https://{HOST}"))
    out["proxied_login_lockout"] = proxied_login_lockout()
    out["admin_login"] = admin_login()
    print(json.dumps(out))


def proxied_login_lockout() -> dict[str, bool]:
    """Behind the TLS proxy every request comes from the proxy's address. One client failing logins must not lock
    every other client out: the per-IP budget must follow the client the proxy saw (X-Forwarded-For)."""
    from django.contrib.auth.hashers import get_hashers

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_hashers.cache_clear()
    too_many = "Too many failed login attempts"

    def attempt(client_ip: str, n: int) -> bool:
        client = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client_ip)
        body = client.post("/accounts/login/", {"login": f"guess{n}@example.com", "password": "x"}, secure=True)
        return too_many in body.content.decode()

    attacker = [attempt("198.51.100.66", n) for n in range(12)]
    return {"attacker_throttled": attacker[-1], "other_client_throttled": attempt("203.0.113.5", 99)}


def admin_login() -> dict[str, Any]:
    """60 wrong passwords for the superuser at /admin/login/, then the right one; then the right password at the
    site's login: the admin asks for two-factor set-up first (STAFF_MFA_REQUIRED is on in production)."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    password = "Root-pass-9876-x"
    user = get_user_model().objects.create_superuser("root", "root@example.com", password)
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    attacker = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.77")
    for n in range(60):
        attacker.post("/admin/login/?next=/admin/", {"username": "root", "password": f"guess-{n}"}, secure=True)
    posted = attacker.post("/admin/login/?next=/admin/", {"username": "root", "password": password}, secure=True)
    staff = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.77")
    staff.post("/accounts/login/?next=/admin/", {"login": user.email, "password": password}, secure=True)
    admin = staff.get("/admin/", secure=True)
    return {
        "posted_status": posted.status_code, "posted_location": posted.get("Location", ""),
        "attacker_admin_status": attacker.get("/admin/", secure=True).status_code,
        "password_only_status": admin.status_code, "password_only_location": admin.get("Location", ""),
    }


if __name__ == "__main__":
    main()
