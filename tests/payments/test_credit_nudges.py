"""Running low: the new-edit page suggests buying more; running out sends one email (unless turned off)."""
from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(make_user: Any, settings: Any) -> Any:
    settings.STARTER_CREDITS = 0
    settings.LOW_CREDITS_THRESHOLD = 3
    return make_user()


def test_the_new_edit_page_nudges_when_credits_run_low(client: Any, person: Any, settings: Any) -> None:
    from editor.services.credits import credits_grant

    client.force_login(person)
    page = client.get("/edit/new/").content.decode()
    assert 'data-testid="low-credits"' not in page and 'data-testid="buy-nudge"' not in page  # buying is off
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_x", "whsec_x"
    assert 'data-testid="buy-nudge"' in client.get("/edit/new/").content.decode()
    credits_grant(user=person, amount=2, reason="test")
    page = client.get("/edit/new/").content.decode()
    assert 'data-testid="low-credits"' in page and 'href="/credits/#buy"' in page
    credits_grant(user=person, amount=8, reason="test")
    assert 'data-testid="low-credits"' not in client.get("/edit/new/").content.decode()


def test_running_out_sends_one_email_and_it_can_be_turned_off(
    client: Any, person: Any, make_photo: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from editor.services.account_emails import send_credits_empty
    from editor.services.credits import credits_grant
    from editor.services.edit_commands import edit_job_submit

    credits_grant(user=person, amount=2, reason="test")
    photo = make_photo(person)

    def submit() -> int:
        with django_capture_on_commit_callbacks() as callbacks:
            edit_job_submit(user=person, photo=photo, prompt="a person wearing a red coat", clothing="topwear")
        return len(callbacks)

    assert submit() == 1  # balance 1: only the job's own task
    assert submit() == 2  # balance 0: and the out-of-credits email
    assert send_credits_empty(user_id=person.pk) is True
    assert send_credits_empty(user_id=person.pk) is False  # a redelivered task: still one email
    [mail] = mailoutbox
    assert mail.to == [person.email] and "/credits/" in mail.body and "/profile/" in mail.body

    credits_grant(user=person, amount=1, reason="test")
    assert submit() == 2
    assert send_credits_empty(user_id=person.pk) is True and len(mailoutbox) == 2  # ran out again

    client.force_login(person)
    assert 'data-testid="email-when-empty"' in client.get("/profile/").content.decode()
    client.post("/profile/credit-email/", {})  # the box unticked
    credits_grant(user=person, amount=1, reason="test")
    submit()
    assert send_credits_empty(user_id=person.pk) is False and len(mailoutbox) == 2
    client.post("/profile/credit-email/", {"email_when_empty": "on"})
    assert 'name="email_when_empty" checked' in client.get("/profile/").content.decode()
