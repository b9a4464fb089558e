"""What a first-time user tripped over (issue 14), through Django's test client: the credits page's words, the
staff entry point, form errors that keep the photo, refusals that say why, retrying a failed edit."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from editor.models import CreditEntry, EditJob
from editor.services.credits import credits_adjust, credits_charge_for_job, credits_grant, credits_refund_for_job
from tests.web.helpers import make_job

pytestmark = [pytest.mark.django_db]


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(html: str) -> str:
    """The page's words without tags, whitespace runs collapsed: what a person reads."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _charged_job(user: Any, *, failed: bool) -> EditJob:
    from django.db import transaction

    job = make_job(user, state=EditJob.State.FAILED if failed else EditJob.State.SUCCEEDED, with_result=False)
    with transaction.atomic():
        credits_charge_for_job(job=job)
    if failed:
        credits_refund_for_job(job=job, reason="Edit failed: not charged")
    return job


@pytest.mark.smoke
def test_credits_page_says_charged_refunded_and_net(make_user: Any) -> None:
    """10 welcome credits, 16 edits charged of which 8 failed and came back: the page must not say "Spent 16"."""
    user = make_user()  # 10 welcome credits
    credits_grant(user=user, amount=10, reason="A present")
    for i in range(16):
        _charged_job(user, failed=i % 2 == 0)
    staff = make_user(is_staff=True)
    credits_adjust(user=user, amount=-1, reason="Correction", created_by=staff)
    user.credit_account.refresh_from_db()
    assert user.credit_account.balance == 20 - 8 - 1
    words = text_of(client_for(user).get(reverse("editor:credits")).content.decode())
    assert "Spent on edits 16" not in words
    assert "Charged for edits 16" in words
    assert "Given back for failed edits 8" in words
    assert "Edits cost you 8" in words
    assert "Received 20" in words and "Taken off by staff 1" in words
    # One sentence that adds up to the balance.
    assert ("You received 20 credits. 16 edits were charged 16 credits; 8 of them failed or timed out and gave "
            "their 8 credits back, so edits cost you 8 credits. Staff took off 1 credit. That leaves 11 credits."
            ) in words


def test_credits_page_of_a_new_account_reads_right(make_user: Any) -> None:
    user = make_user()
    words = text_of(client_for(user).get(reverse("editor:credits")).content.decode())
    assert "You received 10 credits. No edits yet. That leaves 10 credits." in words
    assert CreditEntry.objects.filter(user=user).count() == 1


@pytest.mark.smoke
def test_staff_root_redirects_to_the_dashboard(make_user: Any) -> None:
    anonymous = Client().get("/staff/")  # nobody gets a 404 for the obvious address
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    response = client_for(make_user(is_staff=True)).get("/staff/")
    assert response.status_code == 302 and response["Location"] == reverse("staff_dashboard")


def test_createsuperuser_account_signs_in_without_a_verification_email(
    monkeypatch: Any, settings: Any
) -> None:
    """The operator path: `manage.py createsuperuser`, then sign in at once (no console email to dig out)."""
    from django.core import mail
    from django.core.cache import cache
    from django.core.management import call_command

    cache.clear()  # allauth's login rate limits
    assert settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory"
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Operator-pass-2026!")
    call_command("createsuperuser", interactive=False, username="operator", email="ops@studio.test",
                 verbosity=0)
    client = Client()
    response = client.post(reverse("account_login"), {"login": "ops@studio.test", "password": "Operator-pass-2026!"})
    assert response.status_code == 302 and "confirm-email" not in response["Location"], response["Location"]
    assert mail.outbox == []
    assert client.get(reverse("editor:profile")).status_code == 200


def test_verify_email_command_lets_an_existing_account_sign_in(make_user: Any) -> None:
    """An account made before (or by hand): `manage.py verify_email ADDRESS` marks its address verified."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command

    cache.clear()
    user = get_user_model().objects.create_user(username="old-admin", email="old@studio.test",
                                                password="Old-admin-pass-77")
    client = Client()
    response = client.post(reverse("account_login"), {"login": "old@studio.test", "password": "Old-admin-pass-77"})
    assert "confirm-email" in response["Location"]  # what an operator hit before
    call_command("verify_email", "old@studio.test", verbosity=0)
    assert EmailAddress.objects.get(user=user, email="old@studio.test").verified
    response = client.post(reverse("account_login"), {"login": "old@studio.test", "password": "Old-admin-pass-77"})
    assert response.status_code == 302 and "confirm-email" not in response["Location"]


@pytest.mark.smoke
def test_server_states_the_real_refusal_reason(make_user: Any, settings: Any) -> None:
    """Issue 14 item 6: an empty file, a GIF and an over-limit file, submitted anyway, each get their own reason
    (beside the photo field), never "Please choose a photo."."""
    from tests.web.helpers import image_bytes, upload

    user = make_user()
    client = client_for(user)
    settings.UPLOAD_MAX_BYTES = 50_000
    cases = [
        (upload(b"", "empty.jpg"), "This file is empty"),
        (upload(image_bytes("GIF", (300, 300), "P", 1), "moving.gif", "image/gif"), "not a picture we can read"),
        (upload(b"\xff" * 60_000, "huge.jpg"), "This file is too big"),
    ]
    for file, reason in cases:
        response = client.post(reverse("editor:edit_new"), {"image": file, "prompt": "a red top",
                                                            "clothing": "topwear"})
        html = response.content.decode()
        assert response.status_code == 400
        errors = re.search(r'id="image-errors"[^>]*>(.*?)</div>', html, re.S)
        assert errors and reason in errors.group(1), (reason, errors and errors.group(1))
        assert "Please choose a photo" not in html, reason


@pytest.mark.smoke
def test_form_errors_keep_the_photo_and_say_what_to_fix(
    make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Issue 14 item 5: a prompt too short threw the chosen photo away and showed Django's generic message."""
    from editor.models import Photo
    from tests.web.helpers import image_bytes, upload

    user = make_user()
    client = client_for(user)
    response = client.post(reverse("editor:edit_new"), {
        "image": upload(image_bytes("PNG", (800, 600)), "me.png", "image/png"), "prompt": "ab",
        "clothing": "topwear", "crop_left": "0.1", "crop_top": "0", "crop_side": "0.9",
    })
    html = response.content.decode()
    assert response.status_code == 400
    assert "Ensure this value" not in html and "This field is required" not in html
    prompt_error = re.search(r'id="prompt-errors"[^>]*>(.*?)</div>', html, re.S)
    assert prompt_error and "at least 3 characters" in prompt_error.group(1)
    photo = Photo.objects.get(owner=user)  # stored once, and handed back to the form
    assert re.search(rf'name="photo" value="{photo.pk}"', html)
    assert 'data-testid="kept-photo"' in html
    # Fixing the prompt is all it takes: no second upload.
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("editor:edit_new"), {"photo": str(photo.pk), "prompt": "a red hoodie",
                                                            "clothing": "topwear"})
    assert response.status_code == 302
    assert EditJob.objects.get(owner=user).photo_id == photo.pk and Photo.objects.count() == 1

    # An empty prompt and no part chosen: words for each, beside each field.
    response = client.post(reverse("editor:edit_new"), {"photo": str(photo.pk), "prompt": "   "})
    html = response.content.decode()
    assert "Describe the new clothing" in re.search(r'id="prompt-errors"[^>]*>(.*?)</div>', html, re.S).group(1)
    assert "Choose the top or the bottom" in re.search(r'id="clothing-errors"[^>]*>(.*?)</div>', html,
                                                       re.S).group(1)
    assert re.search(rf'name="photo" value="{photo.pk}"', html)


def test_a_user_without_credits_stores_nothing_on_a_form_error(make_user: Any) -> None:
    """Keeping a photo for a corrected form is for people who can start an edit: an account without credits cannot
    fill the storage with photos by posting bad forms."""
    from editor.models import CreditAccount, Photo
    from tests.web.helpers import image_bytes, upload

    user = make_user()
    CreditEntry.objects.filter(user=user).delete()
    CreditAccount.objects.filter(user=user).update(balance=0)
    response = client_for(user).post(reverse("editor:edit_new"), {
        "image": upload(image_bytes()), "prompt": "ab", "clothing": "topwear"})
    assert response.status_code == 400 and "at least 3 characters" in response.content.decode()
    assert Photo.objects.count() == 0


@pytest.mark.smoke
def test_try_another_edit_keeps_the_failed_edits_photo(make_user: Any) -> None:
    """Issue 14 item 7: "Try another edit" after a failure opened an empty form; the photo must come along."""
    user = make_user()
    failed = make_job(user, state=EditJob.State.FAILED, refunded=True, error="No person found in the photo.")
    client = client_for(user)
    panel = client.get(reverse("editor:job_detail", kwargs={"pk": failed.pk})).content.decode()
    link = re.search(r'href="([^"]+)"[^>]*data-testid="try-another"', panel)
    assert link, panel
    page = client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert re.search(rf'name="photo" value="{failed.photo_id}"', page)
    assert 'data-testid="kept-photo"' in page and failed.prompt in page
    # Someone else's failed edit gives nothing away.
    stranger_page = client_for(make_user()).get(link.group(1).replace("&amp;", "&")).content.decode()
    assert str(failed.photo_id) not in stranger_page and 'data-testid="kept-photo"' not in stranger_page


@pytest.mark.smoke
def test_a_failed_edit_is_tried_again_with_a_changed_prompt_in_one_step(
    make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Issue 14 item 7: one form on the failed edit's page: same photo, new prompt, charged once however often the
    form is posted; the failed edit stays refunded."""
    from editor.models import CreditAccount

    user = make_user()
    failed = _charged_job(user, failed=True)
    start = CreditAccount.objects.get(user=user).balance
    client = client_for(user)
    panel = client.get(reverse("editor:job_detail", kwargs={"pk": failed.pk})).content.decode()
    assert 'data-testid="retry-form"' in panel and reverse("editor:job_retry", kwargs={"pk": failed.pk}) in panel
    url = reverse("editor:job_retry", kwargs={"pk": failed.pk})
    with django_capture_on_commit_callbacks(execute=False):
        first = client.post(url, {"prompt": "  a person wearing a   blue shirt ", "clothing": "topwear"})
        again = client.post(url, {"prompt": "a person wearing a green shirt", "clothing": "topwear"})  # double click
    retry = EditJob.objects.get(retry_of=failed)
    assert first.status_code == 302 and first["Location"] == reverse("editor:job_detail", kwargs={"pk": retry.pk})
    assert again.status_code == 302 and again["Location"] == first["Location"]
    assert (retry.prompt, retry.photo_id, retry.owner_id) == ("a person wearing a blue shirt", failed.photo_id, user.pk)
    assert CreditEntry.objects.filter(job=retry, kind="charge").count() == 1
    assert CreditAccount.objects.get(user=user).balance == start - 1
    assert EditJob.objects.filter(owner=user).count() == 2
    # The failed page now points at the new try instead of offering the form again.
    panel = client.get(reverse("editor:job_detail", kwargs={"pk": failed.pk})).content.decode()
    assert 'data-testid="retry-form"' not in panel
    assert reverse("editor:job_detail", kwargs={"pk": retry.pk}) in panel


def test_try_again_refusals(make_user: Any, django_capture_on_commit_callbacks: Any) -> None:
    user = make_user()
    failed = _charged_job(user, failed=True)
    done = make_job(user)
    client = client_for(user)
    url = reverse("editor:job_retry", kwargs={"pk": failed.pk})
    response = client.post(url, {"prompt": "ab", "clothing": "topwear"})
    assert response.status_code == 400 and "at least 3 characters" in response.content.decode()
    assert client.post(reverse("editor:job_retry", kwargs={"pk": done.pk}),
                       {"prompt": "a red top", "clothing": "topwear"}).status_code == 400
    # Another user's failed edit: 404, nothing charged.
    assert client_for(make_user()).post(url, {"prompt": "a red top", "clothing": "topwear"}).status_code == 404
    assert not EditJob.objects.filter(retry_of__isnull=False).exists()


def test_edit_again_keeps_the_result_through_a_form_error(make_user: Any) -> None:
    """Issue 14 item 7: "Edit again" keeps its photo (the earlier result), also when the form comes back."""
    user = make_user()
    done = make_job(user)
    client = client_for(user)
    response = client.post(reverse("editor:edit_new"), {"source_job": str(done.pk), "prompt": "ab",
                                                        "clothing": "bottomwear"})
    html = response.content.decode()
    assert response.status_code == 400 and f'value="{done.pk}"' in html and "your earlier edit" in html


def test_emails_and_titles_carry_the_sites_own_name_not_example_com(client: Client, settings: Any) -> None:
    """Issue 14 item 4: verification and reset emails said "Hello from example.com!" (Django's default site)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sites.models import Site
    from django.core import mail
    from django.core.cache import cache

    cache.clear()
    assert (Site.objects.get_current().name, Site.objects.get_current().domain) == (
        settings.SITE_NAME, settings.SITE_DOMAIN)
    get_user_model().objects.create_user(username="named", email="named@studio.test", password="Named-pass-2026")
    client.post(reverse("account_reset_password"), {"email": "named@studio.test"})
    message = mail.outbox[-1]
    assert "example.com" not in message.body + message.subject
    assert f"Hello from {settings.SITE_NAME}" in message.body and message.subject.startswith(f"[{settings.SITE_NAME}]")
    assert f"<title>Log in · {settings.SITE_NAME}</title>" in client.get(reverse("account_login")).content.decode()


def test_site_name_and_domain_come_from_settings(client: Client, settings: Any) -> None:
    """SITE_NAME (fashionsite/env.py reads it) and SITE_URL's host: migrate writes them into the Site row, and every
    page and account email uses them."""
    from django.contrib.auth import get_user_model
    from django.contrib.sites.models import Site
    from django.core import mail
    from django.core.cache import cache
    from django.core.management import call_command

    cache.clear()
    settings.SITE_NAME, settings.SITE_DOMAIN = "Atelier Nord", "atelier-nord.test"
    call_command("migrate", verbosity=0)
    site = Site.objects.get_current()
    assert (site.name, site.domain) == ("Atelier Nord", "atelier-nord.test")
    get_user_model().objects.create_user(username="nord", email="nord@studio.test", password="Nord-pass-2026")
    client.post(reverse("account_reset_password"), {"email": "nord@studio.test"})
    assert "Hello from Atelier Nord" in mail.outbox[-1].body  # (the subject prefix is made from SITE_NAME at start-up)
    page = client.get(reverse("account_login")).content.decode()
    assert "· Atelier Nord</title>" in page and "Fashion AI Studio" not in page


def _finished_jobs_taking(user: Any, seconds: float, count: int = 5) -> None:
    """Recent successful edits of the configured provider that took `seconds` from submit to stored."""
    from datetime import timedelta

    from django.conf import settings as conf
    from django.utils import timezone

    origin = conf.FASHION_AI_BASE_URL.rsplit("/v1", 1)[0]
    for _ in range(count):
        job = make_job(user, with_result=False)
        end = timezone.now() - timedelta(minutes=1)
        EditJob.objects.filter(pk=job.pk).update(
            created_at=end - timedelta(seconds=seconds), finished_at=end, inference_time=0.2,
            provider_metrics={"total_time": 0.2}, status_url=f"{origin}/v2/requests/{job.pk}")


@pytest.mark.smoke
def test_progress_estimates_the_whole_wait_and_says_when_it_is_late(make_user: Any) -> None:
    """Issue 14 item 2: the estimate used the provider's compute time (0.2 s here), so the page said "about 0 s in
    all" and the bar sat at 95 %; it must be the whole wait of our own recent edits, and say plainly when late."""
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    cache.clear()
    user = make_user()
    _finished_jobs_taking(user, 12.0)
    client = client_for(user)
    job = make_job(user, state=EditJob.State.SUBMITTED, with_result=False)
    now = timezone.now()
    EditJob.objects.filter(pk=job.pk).update(provider_status="PROCESSING", created_at=now - timedelta(seconds=3),
                                             submitted_at=now - timedelta(seconds=2))
    html = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    words = text_of(html)
    assert "about 0 s" not in words and "usually about 12 s" in words
    percent = int(re.search(r"(\d+)%", words.split("usually about 12 s", 1)[1]).group(1))
    assert 15 <= percent <= 40, percent  # 3 s of about 12 s
    # Not late yet: the note is there for job.js to show once the usual time has passed, hidden until then.
    assert re.search(r'<p[^>]*data-testid="late-note" hidden', html)

    EditJob.objects.filter(pk=job.pk).update(created_at=now - timedelta(seconds=40))
    html = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    late = re.search(r'<p[^>]*data-testid="late-note"[^>]*>(.*?)</p>', html, re.S)
    assert late and "hidden" not in late.group(0)
    assert "Taking longer than usual" in late.group(1) and "slower than usual" in late.group(1)
    percent = int(re.search(r'<progress[^>]*value="(\d+)"', html).group(1))
    assert 90 <= percent < 97, percent  # creeping, not pinned at the cap

    # Waiting in the queue behind other edits: the note says how many.
    EditJob.objects.filter(pk=job.pk).update(provider_status="QUEUED")
    for _ in range(3):
        ahead = make_job(make_user(), state=EditJob.State.SUBMITTED, with_result=False)
        EditJob.objects.filter(pk=ahead.pk).update(created_at=now - timedelta(seconds=60))
    html = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    late = re.search(r'<p[^>]*data-testid="late-note"[^>]*>(.*?)</p>', html, re.S)
    assert late and "3 edits ahead of yours" in late.group(1)
