"""API keys in the profile (shown once, stored hashed, revoked), staff listing and revoking them in the admin (each
by its permission), and the per-key rate limit. In-process (Django's test client)."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

# transaction=True: the API checks keys on a thread pool (editor/api/waiting.py run_sync), another connection.
pytestmark = pytest.mark.django_db(transaction=True)


def test_profile_creates_a_key_shown_once_and_revokes_it(make_user: Callable[..., Any]) -> None:
    from editor.api.models import ApiKey
    from editor.services.api_keys import hash_key

    user = make_user()
    client = Client()
    client.force_login(user)
    page = client.post("/profile/api-keys/", {"name": "shop backend", "scopes": ["edits:read"]})
    assert page.status_code == 200
    assert "no-store" in page.headers.get("Cache-Control", "") or "max-age=0" in page.headers["Cache-Control"]
    shown = re.search(r'data-testid="new-key">(fai_[0-9a-f]{8}_[\w-]+)<', page.content.decode())
    assert shown
    plaintext = shown[1]
    row = ApiKey.objects.get(user=user)
    assert row.key_hash == hash_key(plaintext) and plaintext not in row.key_hash
    assert row.prefix == plaintext.split("_")[1] and row.scopes == ["edits:read"]
    listing = client.get("/profile/api-keys/").content.decode()
    assert plaintext not in listing and f"fai_{row.prefix}_" in listing

    assert Client().get("/api/v1/credits", HTTP_AUTHORIZATION=f"Bearer {plaintext}",
                        HTTP_HOST="127.0.0.1").status_code == 200
    other = Client()
    other.force_login(make_user())
    assert other.post(f"/profile/api-keys/{row.pk}/revoke/").status_code == 404
    assert client.post(f"/profile/api-keys/{row.pk}/revoke/").status_code == 302
    assert Client().get("/api/v1/credits", HTTP_AUTHORIZATION=f"Bearer {plaintext}",
                        HTTP_HOST="127.0.0.1").status_code == 401
    refused = client.post("/profile/api-keys/", {"name": "", "scopes": []})
    assert refused.status_code == 400


def test_staff_list_and_revoke_keys_by_permission(make_user: Callable[..., Any]) -> None:
    from editor.api.models import ApiKey
    from editor.services.api_keys import api_key_create

    owner = make_user()
    key = api_key_create(user=owner, name="ci", scopes=["edits:write"]).key
    staff = make_user(is_staff=True)
    client = Client()
    client.force_login(staff)
    changelist = "/admin/developer_api/apikey/"
    assert client.get(changelist).status_code == 403, "staff alone sees nothing"

    staff.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    listed = client.get(changelist)
    assert listed.status_code == 200 and key.prefix in listed.content.decode()
    assert key.key_hash not in listed.content.decode()
    revoke = {"action": "revoke", "_selected_action": [key.pk]}
    client.post(changelist, revoke)
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None, "viewing is not revoking"

    staff.user_permissions.add(Permission.objects.get(codename="change_apikey"))
    client.post(changelist, revoke)
    revoked = ApiKey.objects.get(pk=key.pk)
    assert revoked.revoked_at is not None and revoked.revoked_by_id == staff.pk
    assert client.get(f"/admin/developer_api/apikey/{key.pk}/change/").status_code in (200, 403)
    assert client.get("/admin/developer_api/apikey/add/").status_code == 403


def test_rate_limit_headers_and_429(make_user: Callable[..., Any], settings: Any) -> None:
    from editor.services.api_keys import api_key_create

    settings.API_RATE_LIMIT_PER_MINUTE = 3
    key = api_key_create(user=make_user(), name="busy", scopes=["edits:read"]).plaintext
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    answers = [client.get("/api/v1/credits") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    limited = answers[3]
    assert limited.status_code == 429 and limited.headers["Content-Type"] == "application/problem+json"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Limit"] == "3" and limited.headers["RateLimit-Policy"] == "3;w=60"
    assert limited.json()["code"] == "rate-limited"
