"""Staff accounts are not all alike: each staff page and admin action checks its own permission, credits move only
with `editor.grant_credits`, nobody raises their own privileges, a staff form posted twice moves credits once, and
admin photo deletes go through the photo service (files included). Django test client over PostgreSQL and the real
storage (SeaweedFS S3 under scripts/testenv.py)."""
from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from editor.models import CreditEntry, EditJob, Photo
from editor.selectors.credits import credits_balance
from editor.services.credits import credits_grant
from tests.web.helpers import make_job, make_photo

pytestmark = pytest.mark.django_db
USERS_URL = "/admin/auth/user/"
JOBS_URL = "/admin/editor/editjob/"
PHOTOS_URL = "/admin/editor/photo/"


@pytest.fixture(autouse=True)
def _no_starter_credits(settings: Any) -> None:
    settings.STARTER_CREDITS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def staff_with(make_user: Callable[..., Any], *perms: str) -> Any:
    """A staff account (not superuser) holding exactly these permissions ("app_label.codename")."""
    user = make_user(is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _action(client: Client, url: str, action: str, pks: list[Any], **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
    if "apply" not in extra:
        data["index"] = "0"
    return client.post(url, data)


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in response.wsgi_request._messages)


# --- Item 4: staff pages check permissions per view ----------------------------------------------------


@pytest.fixture
def files(make_user: Callable[..., Any]) -> dict[str, str]:
    owner = make_user()
    photo = make_photo(owner)
    job = make_job(owner, photo=photo)
    return {
        "photo": reverse("staff_file", args=["photo", photo.pk, "image"]),
        "job": reverse("staff_file", args=["job", job.pk, "result_image"]),
        "usage": reverse("staff_user_usage", args=[owner.pk]),
    }


STAFF_PAGES = [
    # (which url, the permission that opens it)
    ("photo", "editor.view_photo"),
    ("job", "editor.view_editjob"),
    ("dashboard", "dashboard.view_usage"),
    ("export", "dashboard.view_usage"),
    ("usage", "dashboard.view_usage"),
]


def _url(files: dict[str, str], which: str) -> str:
    return {"dashboard": reverse("staff_dashboard"), "export": reverse("staff_dashboard_export"), **files}[which]


def _opened(response: Any) -> bool:
    # Locally the file streams (200); on S3 the view redirects to a presigned URL of the bucket.
    if response.status_code == 302:
        return not response["Location"].startswith(("/admin/login/", "/accounts/login/"))
    return response.status_code == 200


@pytest.mark.parametrize(("which", "permission"), STAFF_PAGES)
def test_a_staff_page_needs_its_permission(
    make_user: Callable[..., Any], files: dict[str, str], which: str, permission: str
) -> None:
    url = _url(files, which)
    # A staff account without model permissions (the attack): 403.
    assert signed_in(staff_with(make_user)).get(url).status_code == 403, url
    # Nor does holding the other staff pages' permissions open this one.
    others = {p for _, p in STAFF_PAGES if p != permission}
    assert signed_in(staff_with(make_user, *others)).get(url).status_code == 403, url
    # Staff with just this permission: the page (or the file) opens.
    assert _opened(signed_in(staff_with(make_user, permission)).get(url)), url


# --- Item 5: credits have their own permission; privileges are the superuser's alone --------------------


def _user_form(user: Any, **overrides: Any) -> dict[str, Any]:
    """What the admin's change form posts for `user`, with some fields changed."""
    data: dict[str, Any] = {
        "username": user.username, "email": user.email, "first_name": "", "last_name": "",
        "is_active": "on", "date_joined_0": f"{user.date_joined:%Y-%m-%d}",
        "date_joined_1": f"{user.date_joined:%H:%M:%S}", "initial-date_joined_0": f"{user.date_joined:%Y-%m-%d}",
        "initial-date_joined_1": f"{user.date_joined:%H:%M:%S}", "last_login_0": "", "last_login_1": "",
        "groups": [], "user_permissions": [],
    }
    if user.is_staff:
        data["is_staff"] = "on"
    if user.is_superuser:
        data["is_superuser"] = "on"
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_staff_who_may_change_users_cannot_make_themselves_superuser(make_user: Callable[..., Any]) -> None:
    staff = staff_with(make_user, "auth.view_user", "auth.change_user")
    client = signed_in(staff)
    every_perm = str(Permission.objects.get(codename="delete_user").pk)
    response = client.post(f"{USERS_URL}{staff.pk}/change/",
                           _user_form(staff, is_superuser="on", user_permissions=[every_perm], email="new@example.com"))
    assert response.status_code == 302
    staff.refresh_from_db()
    assert (staff.is_superuser, staff.user_permissions.filter(codename="delete_user").exists()) == (False, False)
    assert staff.email == "new@example.com"  # the rest of the form still saves

    # Nor can they give another account staff rights...
    other = make_user()
    client.post(f"{USERS_URL}{other.pk}/change/", _user_form(other, is_staff="on", is_superuser="on"))
    other.refresh_from_db()
    assert (other.is_staff, other.is_superuser) == (False, False)
    # ...or take over a superuser by changing its email or password.
    boss = make_user(is_staff=True, is_superuser=True)
    assert client.get(f"{USERS_URL}{boss.pk}/change/").status_code in (200, 403)
    client.post(f"{USERS_URL}{boss.pk}/change/", _user_form(boss, email="attacker@example.com"))
    password = client.post(f"{USERS_URL}{boss.pk}/password/",
                           {"password1": "Taken-over-pass-77", "password2": "Taken-over-pass-77"})
    assert password.status_code == 403
    boss.refresh_from_db()
    assert boss.email != "attacker@example.com" and boss.check_password(boss.raw_password)


def test_a_superuser_grants_privileges_to_others_but_not_to_themselves(make_user: Callable[..., Any]) -> None:
    boss = make_user(is_staff=True, is_superuser=True)
    client = signed_in(boss)
    other = make_user()
    client.post(f"{USERS_URL}{other.pk}/change/", _user_form(other, is_staff="on"))
    other.refresh_from_db()
    assert other.is_staff
    # Nobody edits their own privileges, not even a superuser (no accidental self-demotion either).
    client.post(f"{USERS_URL}{boss.pk}/change/", _user_form(boss, is_staff=None, is_superuser=None))
    boss.refresh_from_db()
    assert (boss.is_staff, boss.is_superuser) == (True, True)


def test_credit_actions_need_the_grant_credits_permission(make_user: Callable[..., Any]) -> None:
    target = make_user()
    # "change user" alone no longer moves credits.
    changer = signed_in(staff_with(make_user, "auth.view_user", "auth.change_user"))
    _action(changer, USERS_URL, "grant_credits", [target.pk], apply="1", amount="50", reason="sneaky",
            nonce=str(uuid.uuid4()))
    assert credits_balance(user=target) == 0 and not CreditEntry.objects.exists()

    granter = staff_with(make_user, "auth.view_user", "editor.grant_credits")
    response = _action(signed_in(granter), USERS_URL, "grant_credits", [target.pk], apply="1", amount="5",
                       reason="goodwill", nonce=str(uuid.uuid4()))
    assert response.status_code == 302
    entry = CreditEntry.objects.get(user=target)
    assert (entry.amount, entry.created_by_id) == (5, granter.pk)
    # The permission moves credits only: it does not open the privilege fields.
    signed_in(granter).post(f"{USERS_URL}{granter.pk}/change/", _user_form(granter, is_superuser="on"))
    granter.refresh_from_db()
    assert not granter.is_superuser


def test_groups_are_changed_by_superusers_only(make_user: Callable[..., Any]) -> None:
    client = signed_in(staff_with(make_user, "auth.view_group", "auth.add_group", "auth.change_group"))
    response = client.post("/admin/auth/group/add/", {
        "name": "everything", "permissions": [str(p.pk) for p in Permission.objects.all()[:5]]})
    assert response.status_code == 403
    from django.contrib.auth.models import Group

    assert not Group.objects.exists()


# --- Item 16: the grant form posted twice grants once -----------------------------------------------


def test_the_grant_form_posted_twice_grants_once(make_user: Callable[..., Any]) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    client = signed_in(staff)
    users = [make_user(), make_user()]
    form = _action(client, USERS_URL, "grant_credits", [u.pk for u in users])
    nonce = form.context["form"]["nonce"].value()
    assert f'name="nonce" value="{nonce}"' in form.content.decode()
    for _ in range(2):  # a double click, or the browser's "resubmit the form?"
        _action(client, USERS_URL, "grant_credits", [u.pk for u in users], apply="1", amount="15",
                reason="goodwill", nonce=str(nonce))
    for user in users:
        assert list(CreditEntry.objects.filter(user=user).values_list("amount", flat=True)) == [15]
        assert credits_balance(user=user) == 15
    # A freshly shown form is a new grant.
    fresh = _action(client, USERS_URL, "grant_credits", [users[0].pk]).context["form"]["nonce"].value()
    assert fresh != nonce
    _action(client, USERS_URL, "adjust_credits", [users[0].pk], apply="1", amount="-3", reason="fix", nonce=str(fresh))
    _action(client, USERS_URL, "adjust_credits", [users[0].pk], apply="1", amount="-3", reason="fix", nonce=str(fresh))
    assert credits_balance(user=users[0]) == 12


# --- Item 17: CSV formula injection; refunds of delivered edits -----------------------------------------


@pytest.mark.parametrize("lead", ["\t", "\r", "=", "+", "-", "@"])
def test_csv_export_quotes_cells_that_a_spreadsheet_would_run(make_user: Callable[..., Any], lead: str) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    owner = make_user()
    job = make_job(owner, prompt=f"{lead}=HYPERLINK(\"http://evil.example/\",\"x\") red shirt")
    response = _action(signed_in(staff), JOBS_URL, "export_as_csv", [job.pk])
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["prompt"].startswith("'" + lead)


def test_staff_refund_only_failed_or_expired_edits_and_record_who(make_user: Callable[..., Any]) -> None:
    staff = staff_with(make_user, "editor.view_editjob", "editor.grant_credits")
    client = signed_in(staff)
    owner = make_user()
    credits_grant(user=owner, amount=5, reason="test")
    delivered = make_job(owner, state=EditJob.State.SUCCEEDED)
    failed = make_job(owner, state=EditJob.State.FAILED, with_result=False)
    for job in (delivered, failed):
        CreditEntry.objects.create(user=owner, kind="charge", amount=-1, balance_after=4, job=job)

    refused = _action(client, JOBS_URL, "refund_jobs", [delivered.pk])
    assert "Only failed or expired edits are refunded" in _messages(refused)
    assert not CreditEntry.objects.filter(kind="refund").exists()

    _action(client, JOBS_URL, "refund_jobs", [failed.pk])
    refund = CreditEntry.objects.get(kind="refund")
    assert (refund.job_id, refund.amount, refund.created_by_id) == (failed.pk, 1, staff.pk)


def test_refunds_need_the_grant_credits_permission(make_user: Callable[..., Any]) -> None:
    client = signed_in(staff_with(make_user, "editor.view_editjob", "editor.change_editjob"))
    owner = make_user()
    failed = make_job(owner, state=EditJob.State.FAILED, with_result=False)
    CreditEntry.objects.create(user=owner, kind="grant", amount=1, balance_after=1)
    CreditEntry.objects.create(user=owner, kind="charge", amount=-1, balance_after=0, job=failed)
    _action(client, JOBS_URL, "refund_jobs", [failed.pk])
    assert not CreditEntry.objects.filter(kind="refund").exists()


# --- Issue 12: photos are deleted through the photo service, files included ---------------------------


def test_admin_photo_delete_goes_through_the_service_and_removes_the_files(
    make_user: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    client = signed_in(staff_with(make_user, "editor.view_photo", "editor.delete_photo"))
    owner = make_user()
    unused = make_photo(owner)
    used = make_job(owner).photo
    names = [unused.image.name, unused.thumbnail.name]
    assert all(default_storage.exists(name) for name in names)

    # Django's own delete (which would leave the files in the bucket) is not offered.
    assert client.get(f"{PHOTOS_URL}{unused.pk}/delete/").status_code == 403
    assert "delete_selected" not in client.get(PHOTOS_URL).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(client, PHOTOS_URL, "delete_photos", [unused.pk, used.pk])
    assert not Photo.objects.filter(pk=unused.pk).exists()
    assert not any(default_storage.exists(name) for name in names)
    # The service refuses a photo an edit uses, and says so.
    assert Photo.objects.filter(pk=used.pk).exists()
    assert "used by an edit" in _messages(response)
