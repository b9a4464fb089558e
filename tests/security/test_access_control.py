"""Access-control sweep: EVERY URL pattern of the project, as an anonymous visitor and as a signed-in stranger,
with ids that belong to another user (the victim). Nothing of the victim's may leak: no 200 with their data, no
redirect to a presigned URL of their files, no change to their objects.

The sweep walks `get_resolver()` recursively. Each pattern must be known to RULES (or be an admin page of a model in
ADMIN_MODELS); a new URL pattern makes `test_every_url_pattern_is_covered` fail until someone says here how to
fill it and who may see it. That keeps the sweep complete as the site grows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from editor.models import CreditEntry, EditJob, Photo
from editor.services.credits import credits_grant
from tests.web.helpers import make_job, make_photo

# Who may reach a pattern:
#   owner  - signed in AND owner of the object in the path: anonymous -> login redirect, stranger -> 404
#   login  - any signed-in user, about themselves only: anonymous -> login redirect; stranger sees only their own
#   staff  - staff only: anonymous and non-staff -> redirect to a login page (or 403/404)
#   public - anyone (home, health, sign-in pages): must not show or change the victim's data
OWNER, LOGIN, STAFF, PUBLIC = "owner", "login", "staff", "public"


@dataclass
class Victim:
    user: Any
    job: EditJob
    failed_job: EditJob
    photo: Photo
    secrets: list[str]  # strings that must appear in no response an outsider gets
    files: list[str]


Filler = Callable[[Victim], dict[str, str]]

# pattern (as walked) -> (who may see it, path parameters, POST data)
RULES: dict[str, tuple[str, Filler, Filler]] = {}


def rule(pattern: str, kind: str, params: Filler | None = None, post: Filler | None = None) -> None:
    RULES[pattern] = (kind, params or (lambda v: {}), post or (lambda v: {}))


def _job(v: Victim) -> dict[str, str]:
    return {"pk": str(v.job.pk)}


def _photo(v: Victim) -> dict[str, str]:
    return {"pk": str(v.photo.pk)}


rule("health/", PUBLIC)
rule("health/live/", PUBLIC)
rule("health/ready/", PUBLIC)
rule("staff/dashboard/", STAFF)
rule("staff/dashboard/export.csv", STAFF)
rule("staff/users/<int:user_id>/", STAFF, lambda v: {"user_id": str(v.user.pk)})
rule("", PUBLIC)
rule("profile/", LOGIN)
rule(
    "edit/new/", LOGIN,
    post=lambda v: {"prompt": "a red shirt", "clothing": "topwear", "photo": str(v.photo.pk)},
)
rule("edit/upload/start/", LOGIN)
# A stranger naming the victim's stored file as "their" direct upload: must not adopt or delete it.
rule("edit/upload/finish/", LOGIN, post=lambda v: {"key": str(v.photo.image.name), "name": "x.jpg"})
rule("edits/<uuid:pk>/", OWNER, _job)
rule("edits/<uuid:pk>/status/", OWNER, _job)
rule("edits/<uuid:pk>/delete/", OWNER, _job)
rule("edits/<uuid:pk>/result/", OWNER, _job)
rule("edits/<uuid:pk>/download/", OWNER, _job)
rule("edits/<uuid:pk>/thumb/", OWNER, _job)
rule("photos/<uuid:pk>/", OWNER, _photo)
rule("photos/<uuid:pk>/thumb/", OWNER, _photo)
rule("gallery/", LOGIN)
rule("credits/", LOGIN)
for _account_page in (
    "login/", "logout/", "inactive/", "signup/", "reauthenticate/", "email/", "confirm-email/", "password/change/",
    "password/set/", "password/reset/", "login/code/confirm/", "password/reset/key/done/", "password/reset/done/",
):
    rule(f"accounts/{_account_page}", PUBLIC)
rule("accounts/^confirm-email/(?P<key>[-:\\w]+)/$", PUBLIC, lambda v: {"key": "Mg:1tBogus:forged-key"})
rule(
    "accounts/^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$", PUBLIC,
    lambda v: {"uidb36": _base36(v.user.pk), "key": "forged-reset-key"},
)
# The admin: its fixed pages, and per registered model the generated ones.
rule("admin/login/", PUBLIC)
rule("admin/logout/", PUBLIC)  # signs out whoever asks; nothing to protect
for _admin_page in (
    "", "password_change/", "password_change/done/", "autocomplete/", "jsi18n/",
):
    rule(f"admin/{_admin_page}", STAFF)
rule("admin/r/<path:content_type_id>/<path:object_id>/", STAFF, lambda v: {
    "content_type_id": str(_content_type_id(EditJob)), "object_id": str(v.job.pk)})
rule("admin/auth/user/<id>/password/", STAFF, lambda v: {"id": str(v.user.pk)})
rule("admin/(?P<url>.*)$", STAFF, lambda v: {"url": f"editor/editjob/{v.job.pk}/"})

# Admin models whose generated pages the sweep knows, and whose object to name in them.
ADMIN_MODELS: dict[str, Callable[[Victim], str]] = {
    "auth/group": lambda v: "1",
    "sites/site": lambda v: "1",
    "account/emailaddress": lambda v: str(v.user.emailaddress_set.get().pk),
    "auth/user": lambda v: str(v.user.pk),
    "editor/creditentry": lambda v: str(CreditEntry.objects.filter(user=v.user).first().pk),  # type: ignore[union-attr]
    "editor/photo": lambda v: str(v.photo.pk),
    "editor/editjob": lambda v: str(v.job.pk),
    "editor/providererror": lambda v: "1",
    "editor/operatoralert": lambda v: "1",
    "dashboard/dailyusage": lambda v: "1",
}
_ADMIN_MODEL_PAGE = re.compile(
    r"^admin/(?P<model>\w+/\w+)/(?P<page>|add/|<path:object_id>/(history/|delete/|change/)?)$"
)
_ADMIN_APP_LIST = re.compile(r"^admin/\^\(\?P<app_label>[\w|]+\)/\$$")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _content_type_id(model: type) -> int:
    from django.contrib.contenttypes.models import ContentType

    return int(ContentType.objects.get_for_model(model).pk)


def walk(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def classify(pattern: str) -> tuple[str, Filler, Filler] | None:
    if pattern in RULES:
        return RULES[pattern]
    match = _ADMIN_MODEL_PAGE.match(pattern)
    if match and match["model"] in ADMIN_MODELS:
        model = match["model"]
        return STAFF, (lambda v: {"object_id": ADMIN_MODELS[model](v)}), (lambda v: {"post": "yes"})
    if _ADMIN_APP_LIST.match(pattern):
        return STAFF, (lambda v: {"app_label": "editor"}), (lambda v: {})
    return None


_PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def build_url(pattern: str, params: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in params:
            raise AssertionError(f"no value for {name!r} in {pattern!r}")
        return params[name]

    path = _PARAM.sub(fill, pattern)
    path = path.replace("^", "").replace("$", "")
    return "/" + path


@pytest.fixture
def victim(make_user: Callable[..., Any]) -> Victim:
    token = f"victim-secret-{uuid.uuid4().hex[:10]}"
    user = make_user(email=f"{token}@example.com")
    credits_grant(user=user, amount=7, reason=f"grant {token}")
    photo = make_photo(user)
    job = make_job(user, photo=photo, prompt=f"a {token} jacket")
    failed = make_job(user, photo=photo, state=EditJob.State.FAILED, prompt=f"{token} failed", refunded=True,
                      error=f"provider said {token}")
    files = [str(f.name) for f in (photo.image, photo.thumbnail, job.result_image, job.result_thumbnail) if f]
    # Storage keys, and the bare file names (what a presigned URL or Content-Disposition would carry).
    secrets = [token, *files, *[name.rsplit("/", 1)[1] for name in files]]
    return Victim(user=user, job=job, failed_job=failed, photo=photo, secrets=secrets, files=files)


def test_every_url_pattern_is_covered() -> None:
    unknown = [pattern for pattern, _ in walk() if classify(pattern) is None]
    assert not unknown, (
        f"URL patterns the access-control sweep does not know: {unknown}. Add them to RULES (or ADMIN_MODELS) in "
        "tests/security/test_access_control.py with who may see them and how to fill their parameters."
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
        response = client.get(build_url(pattern, params(victim)))
        assert response.status_code in (200, 302), (pattern, response.status_code)
    response = client.post(build_url("edits/<uuid:pk>/delete/", _job(victim)))
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
