"""Access-control sweep: EVERY URL pattern of the project, as an anonymous visitor and as a signed-in stranger,
with ids that belong to another user (the victim). Nothing of the victim's may leak: no 200 with their data, no
redirect to a presigned URL of their files, no change to their objects.

The sweep walks `get_resolver()` recursively. Each pattern must be known to RULES (or be an admin page of a model in
ADMIN_MODELS in tests/security/urlsweep.py); a new URL pattern makes `test_every_url_pattern_is_covered` fail
until someone says there how to fill it and who may see it. That keeps the sweep complete as the site grows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.test import Client

from editor.models import EditJob, Photo
from editor.services.credits import credits_grant
from tests.security.urlsweep import KEY, OWNER, PUBLIC, STAFF, Victim, build_url, classify, make_victim, walk
from tests.web.helpers import make_job


@pytest.fixture
def victim(make_user: Callable[..., Any]) -> Victim:
    return make_victim(make_user)


def test_every_url_pattern_is_covered() -> None:
    unknown = [pattern for pattern, _ in walk() if classify(pattern) is None]
    assert not unknown, (
        f"URL patterns the access-control sweep does not know: {unknown}. Add them to RULES (or ADMIN_MODELS) in "
        "tests/security/urlsweep.py with who may see them and how to fill their parameters."
    )


def _login_redirect(response: Any) -> bool:
    location = response.headers.get("Location", "")
    return response.status_code == 302 and (
        location.startswith("/accounts/login/") or location.startswith("/admin/login/")
    )


def _check_no_leak(response: Any, victim: Victim, where: str) -> None:
    body = b"" if getattr(response, "streaming", False) else response.content
    if getattr(response, "streaming", False):
        body = b"".join(response.streaming_content)
    text = body.decode("utf-8", errors="replace") + "\n" + response.headers.get("Location", "")
    for secret in victim.secrets:
        assert secret not in text, f"{where}: the victim's {secret!r} leaked ({response.status_code})"
    # A file served to an outsider would carry image bytes; a presigned redirect would name the bucket key.
    assert not body.startswith((b"\x89PNG", b"\xff\xd8\xff")), f"{where}: an image was served"


def _sweep(client: Client, victim: Victim, who: str, user: Any = None) -> list[str]:
    seen = []
    owner_404: set[str] = set()
    for pattern, _entry in walk():
        classified = classify(pattern)
        assert classified is not None, pattern
        kind, params, post = classified
        url = build_url(pattern, params(victim))
        for method in ("get", "post"):
            data = post(victim) if method == "post" else {}
            if method == "get" and pattern == "edit/new/":
                url_for = f"{url}?from={victim.job.pk}"  # "edit again" from the victim's result
            else:
                url_for = url
            if user is not None:
                client.force_login(user)  # the sweep's own logout POSTs must not turn the stranger anonymous
            response = getattr(client, method)(url_for, data)
            where = f"{who} {method.upper()} {url_for} ({pattern})"
            status = response.status_code
            assert status < 500, where
            _check_no_leak(response, victim, where)
            if kind == PUBLIC:
                continue
            if kind == KEY:
                # A browser's session never opens the API: only an API key does (405: no such method there).
                assert status in (401, 405), f"{where}: {status}"
                continue
            if who == "anonymous":
                assert _login_redirect(response) or status in (403, 404, 405), f"{where}: {status}"
            elif kind == STAFF:
                assert _login_redirect(response) or status in (403, 404, 405), f"{where}: {status}"
            elif kind == OWNER:
                # Other users' ids are 404 (a view may say 405 to the method it does not take, as for any id).
                assert status in (404, 405), f"{where}: {status}"
                if status == 404:
                    owner_404.add(pattern)
            seen.append(where)
    if who != "anonymous":
        owner_patterns = {p for p, _ in walk() if classify(p)[0] == OWNER}  # type: ignore[index]
        assert owner_404 == owner_patterns, owner_patterns - owner_404
    return seen


def _victim_untouched(victim: Victim, balance: int) -> None:
    from editor.selectors.credits import credits_balance

    assert EditJob.objects.filter(pk=victim.job.pk, owner=victim.user).exists()
    assert EditJob.objects.filter(pk=victim.failed_job.pk, owner=victim.user).exists()
    assert Photo.objects.filter(pk=victim.photo.pk, owner=victim.user).exists()
    for name in victim.files:
        assert default_storage.exists(name), f"the victim's file {name} is gone"
    assert credits_balance(user=victim.user) == balance
    assert get_user_model().objects.get(pk=victim.user.pk).check_password(victim.user.raw_password)


@pytest.mark.django_db
def test_anonymous_visitor_reaches_nothing_private(victim: Victim) -> None:
    from editor.selectors.credits import credits_balance

    balance = credits_balance(user=victim.user)
    jobs_before = EditJob.objects.count()
    seen = _sweep(Client(), victim, "anonymous")
    assert len(seen) > 100  # every pattern, both methods
    assert EditJob.objects.count() == jobs_before
    _victim_untouched(victim, balance)


@pytest.mark.django_db
def test_signed_in_stranger_reaches_nothing_of_the_victim(victim: Victim, make_user: Callable[..., Any]) -> None:
    from editor.selectors.credits import credits_balance

    stranger = make_user()
    credits_grant(user=stranger, amount=5, reason="stranger credits")
    balance = credits_balance(user=victim.user)
    seen = _sweep(Client(), victim, "stranger", user=stranger)
    assert len(seen) > 100
    # The stranger's "edit" of the victim's photo was refused: no job exists on that photo but the victim's.
    assert not EditJob.objects.filter(owner=stranger).exists()
    assert set(EditJob.objects.filter(photo=victim.photo).values_list("owner", flat=True)) == {victim.user.pk}
    _victim_untouched(victim, balance)


@pytest.mark.django_db
def test_the_owner_does_reach_what_the_sweep_refuses_to_strangers(victim: Victim) -> None:
    """The sweep's 404s are the ownership check, not broken URLs: the same URLs work for their owner."""
    client = Client()
    client.force_login(victim.user)
    for pattern, _ in walk():
        classified = classify(pattern)
        assert classified is not None
        kind, params, _post = classified
        if kind != OWNER or pattern.endswith("delete/"):
            continue
        if pattern.endswith(("share/", "revoke/")):  # POST only: the owner's post redirects back to the edit
            response = client.post(build_url(pattern, params(victim)))
            assert response.status_code == 302, (pattern, response.status_code)
            continue
        if pattern.endswith("wrong/"):  # POST only: the owner's report is taken and redirects back to the edit
            response = client.post(build_url(pattern, params(victim)), _post(victim))
            assert response.status_code == 302, (pattern, response.status_code)
            continue
        if pattern.endswith("retry/"):  # POST only: the owner's try again makes a new edit
            response = client.post(build_url(pattern, params(victim)), _post(victim))
        else:
            response = client.get(build_url(pattern, params(victim)))
        assert response.status_code in (200, 302), (pattern, response.status_code)
    response = client.post(build_url("edits/<uuid:pk>/delete/", {"pk": str(victim.job.pk)}))
    assert response.status_code == 302
    assert not EditJob.objects.filter(pk=victim.job.pk).exists()


@pytest.mark.django_db
def test_a_presigned_url_opens_only_the_object_it_was_signed_for(victim: Victim, make_user: Callable[..., Any]) -> None:
    """Swapping the key in the owner's own presigned URL for the victim's key must be refused by the bucket."""
    import requests
    from django.conf import settings

    assert settings.USE_S3, "run through scripts/testenv.py (S3)"
    owner = make_user()
    own_job = make_job(owner)
    client = Client()
    client.force_login(owner)
    redirect = client.get(f"/edits/{own_job.pk}/result/")
    assert redirect.status_code == 302
    own_url = redirect.headers["Location"]
    assert requests.get(own_url, timeout=10).status_code == 200
    own_key, victim_key = str(own_job.result_image.name), str(victim.job.result_image.name)
    forged = own_url.replace(own_key, victim_key)
    assert forged != own_url
    assert requests.get(forged, timeout=10).status_code == 403
    # And the bucket is private: the victim's object without any signature is refused too.
    bare = own_url.split("?", 1)[0].replace(own_key, victim_key)
    assert requests.get(bare, timeout=10).status_code == 403
