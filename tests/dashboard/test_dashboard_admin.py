"""The operators' admin: credit actions go through the ledger and are audited; history is read-only;
and nobody but staff reaches any dashboard or admin URL."""
from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from editor.models import CreditEntry, EditJob, OperatorAlert, Photo, ProviderError
from editor.selectors.credits import credits_balance
from editor.services.credits import credits_charge_for_job, credits_grant, credits_ledger_sum

pytestmark = pytest.mark.django_db
USERS_URL = "/admin/auth/user/"
JOBS_URL = "/admin/editor/editjob/"


@pytest.fixture
def staff(make_user: Callable[..., Any], settings: Any) -> Any:
    settings.STARTER_CREDITS = 0
    return make_user(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client: Client, staff: Any) -> Client:
    client.force_login(staff)
    return client


def _png(color: tuple[int, int, int] = (20, 160, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, "PNG")
    return out.getvalue()


def charged_job(user: Any, *, state: str = "failed", prompt: str = "a person wearing a red shirt") -> EditJob:
    """A job charged the way the site charges it (inside the creating transaction)."""
    photo = Photo.objects.create(owner=user, image=f"users/{user.pk}/photos/p.jpg", width=512, height=512)
    with transaction.atomic():
        job = EditJob.objects.create(
            owner=user, photo=photo, prompt=prompt, cost_credits=1, state=state,
            finished_at=timezone.now() if state in ("succeeded", "failed", "expired") else None,
        )
        credits_charge_for_job(job=job)
    return job


def _ledger_matches(user: Any) -> bool:
    return credits_balance(user=user) == credits_ledger_sum(user_id=user.pk)


def _action(client: Client, url: str, action: str, pks: list[Any], **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
    if "apply" not in extra:
        data["index"] = "0"
    else:
        data.setdefault("nonce", str(uuid.uuid4()))  # the one-time token of a freshly shown form
    return client.post(url, data)


@pytest.mark.smoke
def test_grant_credits_goes_through_an_intermediate_form_and_is_audited(
    staff_client: Client, staff: Any, make_user: Callable[..., Any]
) -> None:
    users = [make_user(), make_user()]
    form = _action(staff_client, USERS_URL, "grant_credits", [u.pk for u in users])
    assert form.status_code == 200 and b'name="reason"' in form.content
    assert not CreditEntry.objects.exists()  # showing the form moves nothing

    # An invalid form (no reason, zero credits) moves nothing either.
    again = _action(staff_client, USERS_URL, "grant_credits", [u.pk for u in users], apply="1", amount="0", reason=" ")
    assert again.status_code == 200 and not CreditEntry.objects.exists()

    done = _action(staff_client, USERS_URL, "grant_credits", [u.pk for u in users], apply="1", amount="15",
                   reason="goodwill for the outage")
    assert done.status_code == 302
    for user in users:
        entry = CreditEntry.objects.get(user=user)
        assert (entry.kind, entry.amount, entry.reason, entry.created_by_id) == (
            "grant", 15, "goodwill for the outage", staff.pk)
        assert credits_balance(user=user) == 15 and _ledger_matches(user)
        log = LogEntry.objects.get(object_id=str(user.pk), user=staff)
        assert "grant +15" in log.get_change_message() and "goodwill" in log.get_change_message()


def test_adjust_credits_never_takes_a_balance_below_zero(
    staff_client: Client, staff: Any, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    credits_grant(user=user, amount=3, reason="test")
    response = _action(staff_client, USERS_URL, "adjust_credits", [user.pk], apply="1", amount="-5", reason="oops")
    assert response.status_code == 302
    assert CreditEntry.objects.filter(kind="adjust").count() == 0 and credits_balance(user=user) == 3
    assert "Not enough credits" in " ".join(str(m) for m in response.wsgi_request._messages)  # type: ignore[attr-defined]

    _action(staff_client, USERS_URL, "adjust_credits", [user.pk], apply="1", amount="-2", reason="double grant")
    entry = CreditEntry.objects.get(kind="adjust")
    assert (entry.amount, entry.created_by_id, entry.reason) == (-2, staff.pk, "double grant")
    assert credits_balance(user=user) == 1 and _ledger_matches(user)
    assert LogEntry.objects.filter(object_id=str(user.pk), change_message__contains="adjust -2").exists()


def test_refund_action_refunds_a_job_once(staff_client: Client, staff: Any, make_user: Callable[..., Any]) -> None:
    user = make_user()
    credits_grant(user=user, amount=5, reason="test")
    job = charged_job(user, state="failed")
    running = charged_job(user, state="submitted")
    assert credits_balance(user=user) == 3

    _action(staff_client, JOBS_URL, "refund_jobs", [job.pk, running.pk])
    _action(staff_client, JOBS_URL, "refund_jobs", [job.pk])
    refunds = CreditEntry.objects.filter(kind="refund")
    assert [(r.job_id, r.amount, r.created_by_id) for r in refunds] == [(job.pk, 1, staff.pk)]  # once, never running
    assert credits_balance(user=user) == 4 and _ledger_matches(user)
    assert LogEntry.objects.filter(object_id=str(job.pk), change_message__contains="refunded").count() == 1
    assert not LogEntry.objects.filter(object_id=str(running.pk)).exists()


def test_retry_action_uses_the_jobs_service(staff_client: Client, staff: Any, make_user: Callable[..., Any]) -> None:
    user = make_user()
    credits_grant(user=user, amount=5, reason="test")
    failed = charged_job(user, state="failed")
    succeeded = charged_job(user, state="succeeded")
    _action(staff_client, JOBS_URL, "retry_jobs", [failed.pk, succeeded.pk])
    retried = EditJob.objects.get(source_job=failed)
    assert (retried.state, retried.owner_id, retried.prompt) == ("created", user.pk, failed.prompt)
    assert not EditJob.objects.filter(source_job=succeeded).exists()  # only failed/expired jobs are retried
    assert CreditEntry.objects.filter(job=retried, kind="charge", amount=-1).count() == 1
    assert credits_balance(user=user) == 2 and _ledger_matches(user)
    assert LogEntry.objects.filter(object_id=str(failed.pk), change_message__contains=str(retried.pk)).exists()


def test_the_ledger_is_append_only_in_the_admin(staff_client: Client, make_user: Callable[..., Any]) -> None:
    user = make_user()
    entry = credits_grant(user=user, amount=4, reason="test")
    base = "/admin/editor/creditentry/"
    assert staff_client.get(f"{base}add/").status_code == 403
    assert staff_client.post(f"{base}{entry.pk}/change/", {"amount": "400"}).status_code == 403
    assert staff_client.get(f"{base}{entry.pk}/delete/").status_code == 403
    assert staff_client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    view = staff_client.get(f"{base}{entry.pk}/change/")
    assert view.status_code == 200 and b'name="_save"' not in view.content
    changelist = staff_client.get(base)
    assert b"delete_selected" not in changelist.content
    entry.refresh_from_db()
    assert entry.amount == 4 and CreditEntry.objects.count() == 1


def test_resolve_alert_action(staff_client: Client, staff: Any) -> None:
    alert = OperatorAlert.objects.create(kind="provider_no_credits", message="406")
    _action(staff_client, "/admin/editor/operatoralert/", "resolve", [alert.pk])
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolved_by_id == staff.pk
    listing = staff_client.get("/admin/editor/operatoralert/?open=yes")
    assert listing.context["cl"].result_count == 0


def test_job_admin_search_filters_timeline_and_presigned_thumbnail(
    staff_client: Client, make_user: Callable[..., Any], settings: Any
) -> None:
    alice, bob = make_user(email="alice@example.com"), make_user(email="bob@example.com")
    credits_grant(user=alice, amount=5, reason="test")
    credits_grant(user=bob, amount=5, reason="test")
    red = charged_job(alice, state="succeeded", prompt="a person wearing a red shirt")
    blue = charged_job(bob, state="failed", prompt="a person wearing blue jeans")
    red.result_thumbnail.save("t.png", ContentFile(_png()), save=True)
    EditJob.objects.filter(pk=red.pk).update(request_id="req-red-42", inference_time=12.5)
    ProviderError.objects.create(kind="429", job=blue, detail="rate limited")

    def found(query: str) -> set[Any]:
        response = staff_client.get(JOBS_URL, {"q": query} if "=" not in query else dict([query.split("=")]))
        return {job.pk for job in response.context["cl"].result_list}

    assert found("red shirt") == {red.pk}
    assert found("req-red-42") == {red.pk}
    assert found("bob@example.com") == {blue.pk}
    assert found("state__exact=failed") == {blue.pk}
    assert found("clothing__exact=bottomwear") == set()

    # Thumbnails go through the staff-only file view: a presigned redirect on S3, the bytes locally.
    listing = staff_client.get(JOBS_URL).content.decode()
    url = reverse("staff_file", args=["job", red.pk, "result_thumbnail"])
    assert f'src="{url}"' in listing
    served = staff_client.get(url)
    if settings.USE_S3:
        assert served.status_code == 302
        assert "X-Amz-Signature=" in served["Location"] and "X-Amz-Expires=" in served["Location"]
    else:
        assert served.status_code == 200 and b"".join(served.streaming_content) == _png()
    assert staff_client.get(reverse("staff_file", args=["job", blue.pk, "result_image"])).status_code == 404
    assert staff_client.get(reverse("staff_file", args=["job", red.pk, "status_url"])).status_code == 404

    page = staff_client.get(f"{JOBS_URL}{blue.pk}/change/").content.decode()
    assert "ledger charge -1" in page and "provider error 429" in page and "finished: failed" in page
    assert 'name="_save"' not in page  # read-only: no Save button that would do nothing
    # Provider fields are read-only: a POST cannot rewrite them.
    staff_client.post(f"{JOBS_URL}{blue.pk}/change/", {"state": "succeeded", "request_id": "forged"})
    blue.refresh_from_db()
    assert (blue.state, blue.request_id) == ("failed", "")


def test_csv_export_actions(staff_client: Client, make_user: Callable[..., Any]) -> None:
    user = make_user()
    credits_grant(user=user, amount=5, reason="test")
    job = charged_job(user, state="failed", prompt="=HYPERLINK('x') a person in red")
    other = charged_job(user, state="succeeded")
    response = _action(staff_client, JOBS_URL, "export_as_csv", [job.pk])
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["id"] for r in rows] == [str(job.pk)] and str(other.pk) not in response.content.decode()
    assert rows[0]["prompt"].startswith("'=")  # no formula injection into the operator's spreadsheet
    assert rows[0]["owner_email"] == user.email and rows[0]["state"] == "failed"

    ledger = _action(staff_client, "/admin/editor/creditentry/", "export_as_csv",
                     list(CreditEntry.objects.filter(user=user).values_list("pk", flat=True)))
    ledger_rows = list(csv.DictReader(io.StringIO(ledger.content.decode())))
    assert sorted(int(r["amount"]) for r in ledger_rows) == [-1, -1, 5]


def test_user_admin_shows_balance_and_usage_link(staff_client: Client, make_user: Callable[..., Any]) -> None:
    user = make_user()
    credits_grant(user=user, amount=7, reason="test")
    html = staff_client.get(USERS_URL, {"q": user.email}).content.decode()
    assert reverse("staff_user_usage", args=[user.pk]) in html
    assert '<td class="field-balance">7</td>' in html


# --- Nobody but staff --------------------------------------------------------------------------------


def _all_urls(make_user: Callable[..., Any]) -> list[str]:
    owner = make_user()
    credits_grant(user=owner, amount=2, reason="test")
    job = charged_job(owner)
    objects: dict[str, Any] = {
        "user": owner, "editjob": job, "photo": job.photo, "creditentry": CreditEntry.objects.first(),
        "providererror": ProviderError.objects.create(kind="5xx", job=job),
        "operatoralert": OperatorAlert.objects.create(kind="provider_key_rejected", message="401"),
    }
    from editor.dashboard.services import usage_rollup_build_day

    objects["dailyusage"] = usage_rollup_build_day(day=timezone.localdate())
    job.result_image.save("r.png", ContentFile(_png()), save=True)
    urls = ["/staff/dashboard/", "/staff/dashboard/?period=30d", "/staff/dashboard/export.csv",
            f"/staff/users/{owner.pk}/", reverse("staff_file", args=["job", job.pk, "result_image"]), "/admin/"]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        urls.append(reverse("admin:{}_{}_add".format(*info)))
        obj = objects.get(model._meta.model_name)
        if obj is not None:
            for view in ("change", "delete", "history"):
                urls.append(reverse(f"admin:{info[0]}_{info[1]}_{view}", args=[obj.pk]))
    return urls


@pytest.mark.smoke
@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_non_staff_get_redirected_or_forbidden_everywhere(
    client: Client, make_user: Callable[..., Any], who: str, settings: Any
) -> None:
    settings.STARTER_CREDITS = 0
    urls = _all_urls(make_user)
    assert len(urls) > 30
    if who == "user":
        client.force_login(make_user())
    for url in urls:
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert response["Location"].startswith(("/admin/login/", "/accounts/login/")), url
    # Actions posted by a non-staff user do nothing.
    target = make_user()
    before = CreditEntry.objects.count()
    _action(client, USERS_URL, "grant_credits", [target.pk], apply="1", amount="50", reason="sneaky")
    assert CreditEntry.objects.count() == before and credits_balance(user=target) == 0
