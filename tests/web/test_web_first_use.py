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
