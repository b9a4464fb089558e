"""The project's URL patterns, walked and filled with another user's ids: shared by the access-control and CSRF
sweeps. Every pattern must be known here (RULES, or an admin page of a model in ADMIN_MODELS); a new one makes the
sweeps fail until someone says how to fill it and who may see it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from editor.models import CreditEntry, EditJob, Photo

# Who may reach a pattern:
#   owner  - signed in AND owner of the object in the path: anonymous -> login redirect, stranger -> 404
#   login  - any signed-in user, about themselves only: anonymous -> login redirect; stranger sees only their own
#   staff  - staff only: anonymous and non-staff -> redirect to a login page (or 403/404)
#   public - anyone (home, health, sign-in pages): must not show or change the victim's data
#   key    - the developer API: an API key only, a session is never enough (401 to every browser client)
OWNER, LOGIN, STAFF, PUBLIC, KEY = "owner", "login", "staff", "public", "key"


@dataclass
class Victim:
    user: Any
    job: EditJob
    failed_job: EditJob
    photo: Photo
    secrets: list[str]  # strings that must appear in no response an outsider gets
    files: list[str]
    api_key_id: int = 0
    webhook_id: int = 0
    delivery_id: int = 0


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
rule("staff/", STAFF)
rule("staff/dashboard/", STAFF)
rule("staff/dashboard/export.csv", STAFF)
rule("staff/users/<int:user_id>/", STAFF, lambda v: {"user_id": str(v.user.pk)})
rule("staff/files/<str:kind>/<uuid:pk>/<str:field>/", STAFF,
     lambda v: {"kind": "job", "pk": str(v.job.pk), "field": "result_image"})
rule("", PUBLIC)
# The provider's completion webhook: no session, the Standard Webhooks signature is the authentication (an unsigned
# POST is 401 and changes nothing: tests/jobs/test_provider_webhooks.py).
rule("provider/webhook/", PUBLIC, post=lambda v: {"data": f'{{"request_id": "{v.job.request_id}"}}'})
rule("profile/", LOGIN)
rule(
    "edit/new/", LOGIN,
    post=lambda v: {"prompt": "a red shirt", "clothing": "topwear", "photo": str(v.photo.pk)},
)
rule("edit/upload/start/", LOGIN)
rule("edit/preview/", LOGIN)  # the free region preview: the caller's own square, nothing stored
# A stranger naming the victim's stored file as "their" direct upload: must not adopt or delete it.
rule("edit/upload/finish/", LOGIN, post=lambda v: {"key": str(v.photo.image.name), "name": "x.jpg"})
rule("edits/<uuid:pk>/", OWNER, _job)
rule("edits/<uuid:pk>/status/", OWNER, _job)
rule("edits/<uuid:pk>/delete/", OWNER, _job)
rule("edits/<uuid:pk>/retry/", OWNER, lambda v: {"pk": str(v.failed_job.pk)},
     post=lambda v: {"prompt": "a red shirt", "clothing": "topwear"})
rule("edits/<uuid:pk>/wrong/", OWNER, _job, post=lambda v: {"reason": "broken"})
rule("edits/<uuid:pk>/result/", OWNER, _job)
rule("edits/<uuid:pk>/download/", OWNER, _job)
rule("edits/<uuid:pk>/full/", OWNER, _job)
rule("edits/<uuid:pk>/thumb/", OWNER, _job)
rule("photos/<uuid:pk>/", OWNER, _photo)
rule("photos/<uuid:pk>/thumb/", OWNER, _photo)
rule("photos/<uuid:pk>/original/", OWNER, _photo)
rule("gallery/", LOGIN)
# The gallery's live poll: the victim's ids asked for by a stranger are simply left out of the answer.
rule("gallery/states/", LOGIN, lambda v: {})
rule("profile/ready-email/", LOGIN)
rule("credits/", LOGIN)
rule("credits/buy/", LOGIN, post=lambda v: {"pack": "1"})
rule("credits/buy/done/", LOGIN)
rule("credits/buy/status/", LOGIN)
# Stripe's webhook: anyone can post, only a valid signature changes anything (tests/payments).
rule("payments/stripe/webhook/", PUBLIC)
rule("profile/credit-email/", LOGIN)
rule("profile/data/export/", LOGIN)
rule("profile/data/export/<str:token>/", LOGIN, lambda v: {"token": "not-a-token"})
# A stranger posting here can only delete their own account, and only with their password (none is sent).
rule("profile/delete/", LOGIN)
rule("account-deleted/", PUBLIC)
rule("edits/<uuid:pk>/share/", OWNER, _job)
rule("edits/<uuid:pk>/share/<int:link_id>/revoke/", OWNER, lambda v: {"pk": str(v.job.pk), "link_id": "1"})
# Public share pages: only a live link's token opens one (tests/account/test_account_sharing.py).
rule("s/<str:token>/", PUBLIC, lambda v: {"token": "not-a-token"})
rule("s/<str:token>/<str:which>.jpg", PUBLIC, lambda v: {"token": "not-a-token", "which": "after"})
# The profile's developer pages: the signed-in user's own keys and webhooks (another user's ids are 404).
rule("profile/api-keys/", LOGIN, post=lambda v: {"name": "stolen", "scopes": ["edits:read"]})
rule("profile/api-keys/<int:pk>/revoke/", LOGIN, lambda v: {"pk": str(v.api_key_id)})
rule("profile/webhooks/", LOGIN)
rule("profile/webhooks/<int:pk>/<str:action>/", LOGIN, lambda v: {"pk": str(v.webhook_id), "action": "test"})
rule("profile/webhook-deliveries/<int:pk>/redeliver/", LOGIN, lambda v: {"pk": str(v.delivery_id)})
# The developer API (docs/api.md): keys only; its document and reference page are public.
rule("api/v1/", PUBLIC)  # django-ninja's empty root: 404
rule("api/v1/openapi.json", PUBLIC)
rule("api/v1/docs", PUBLIC)
rule("api/v1/edits", KEY, post=lambda v: {"prompt": "a red shirt", "clothing": "topwear", "photo_id": str(v.photo.pk)})
rule("api/v1/edits/<edit_id>", KEY, lambda v: {"edit_id": str(v.job.pk)})
rule("api/v1/edits/<edit_id>/result", KEY, lambda v: {"edit_id": str(v.job.pk)})
rule("api/v1/edits/<edit_id>/thumbnail", KEY, lambda v: {"edit_id": str(v.job.pk)})
rule("api/v1/credits", KEY)
for _account_page in (
    "login/", "logout/", "inactive/", "signup/", "reauthenticate/", "email/", "confirm-email/", "password/change/",
    "password/set/", "password/reset/", "login/code/confirm/", "password/reset/key/done/", "password/reset/done/",
):
    rule(f"accounts/{_account_page}", PUBLIC)
# Sends a new confirmation link to an unverified address; answers the same whatever the address.
rule("accounts/verification/resend/", PUBLIC, post=lambda v: {"email": "not-the-victim@example.com"})
# Two-factor (allauth.mfa): the sign-in step is public; the rest manages the signed-in user's own devices.
rule("accounts/2fa/authenticate/", PUBLIC)
for _mfa_page in (
    "", "reauthenticate/", "totp/activate/", "totp/deactivate/", "recovery-codes/", "recovery-codes/generate/",
    "recovery-codes/download/",
):
    rule(f"accounts/2fa/{_mfa_page}", LOGIN)
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
    "editor/creditpack": lambda v: "1",
    "editor/purchase": lambda v: "00000000-0000-0000-0000-000000000000",
    "editor/paymentreversal": lambda v: "1",
    "editor/sharelink": lambda v: "1",
    "editor/siteswitches": lambda v: "1",
    "editor/dataexport": lambda v: "1",
    "editor/accountdeletion": lambda v: "1",
    "editor/wrongresultreport": lambda v: "1",
    "dashboard/dailyusage": lambda v: "1",
    "mfa/authenticator": lambda v: "1",
    "developer_api/apikey": lambda v: str(v.api_key_id),
    "developer_api/webhookendpoint": lambda v: str(v.webhook_id),
    "developer_api/webhookdelivery": lambda v: str(v.delivery_id),
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


def make_victim(make_user: Callable[..., Any]) -> Victim:
    """A user with a photo, a finished edit with result files, a failed refunded edit and credits."""
    from editor.services.credits import credits_grant
    from tests.web.helpers import make_job, make_photo

    token = f"victim-secret-{uuid.uuid4().hex[:10]}"
    user = make_user(email=f"{token}@example.com")
    credits_grant(user=user, amount=7, reason=f"grant {token}")
    photo = make_photo(user)
    job = make_job(user, photo=photo, prompt=f"a {token} jacket")
    failed = make_job(user, photo=photo, state=EditJob.State.FAILED, prompt=f"{token} failed", refunded=True,
                      error=f"provider said {token}")
    files = [str(f.name) for f in (photo.image, photo.thumbnail, job.result_image, job.result_thumbnail) if f]
    # The victim's API key, webhook endpoint (its secret) and a logged delivery.
    from editor.services.api_keys import api_key_create
    from editor.services.webhooks import webhook_endpoint_create, webhook_send_test

    key = api_key_create(user=user, name=f"key {token}", scopes=["edits:read", "edits:write"])
    endpoint, webhook_secret = webhook_endpoint_create(user=user, url=f"https://{token}.example.com/hook",
                                                       events=["edit.succeeded"])
    delivery_id = webhook_send_test(user=user, endpoint_id=endpoint.pk)
    # Storage keys, and the bare file names (what a presigned URL or Content-Disposition would carry).
    secrets = [token, *files, *[name.rsplit("/", 1)[1] for name in files], key.plaintext, webhook_secret]
    return Victim(user=user, job=job, failed_job=failed, photo=photo, secrets=secrets, files=files,
                  api_key_id=key.key.pk, webhook_id=endpoint.pk, delivery_id=delivery_id)
