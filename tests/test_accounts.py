"""Accounts over the real allauth views: sign-up, email verification, login, logout, reset, credits."""
from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from editor.models import CreditAccount, CreditEntry
from editor.services.credits import credits_ledger_sum

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def _link_in_last_mail() -> str:
    match = re.search(r"https?://[^/\s]+(/\S+)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


@pytest.fixture(autouse=True)
def _clear_rate_limits() -> None:
    cache.clear()


def test_signup_verify_login_logout_reset(client: Client) -> None:
    email, password = "newcomer@example.com", "Plenty-of-entropy-91"
    response = client.post(
        reverse("account_signup"), {"email": email, "password1": password, "password2": password}
    )
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and email in mail.outbox[0].to
    # Mandatory verification: not logged in yet.
    assert client.get(reverse("editor:profile")).status_code == 302

    confirm_path = _link_in_last_mail()
    assert client.get(confirm_path).status_code == 200
    response = client.post(confirm_path)
    assert response.status_code == 302

    profile = client.get(reverse("editor:profile"))
    assert profile.status_code == 200
    assert email in profile.content.decode()
    # Starter credits arrive as a ledger entry, and the balance equals the ledger.
    user = profile.context["user"]
    assert CreditAccount.objects.get(user=user).balance == settings.STARTER_CREDITS
    assert credits_ledger_sum(user_id=user.pk) == settings.STARTER_CREDITS
    assert CreditEntry.objects.filter(user=user, kind=CreditEntry.Kind.GRANT).count() == 1
    assert f"{settings.STARTER_CREDITS} credits" in profile.content.decode()

    client.post(reverse("account_logout"))
    assert client.get(reverse("editor:profile")).status_code == 302

    client.post(reverse("account_reset_password"), {"email": email})
    reset_path = _link_in_last_mail()
    response = client.get(reset_path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else reset_path
    response = client.post(form_path, {"password1": "Another-good-pass-77", "password2": "Another-good-pass-77"})
    assert response.status_code == 302
    assert client.login(username=user.username, password="Another-good-pass-77")


def test_wrong_password_is_refused_with_a_message(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    response = client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    response = client.post(reverse("account_login"), {"login": user.email, "password": user.raw_password})
    assert response.status_code == 302


def test_failed_logins_are_rate_limited(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    pages = [
        client.post(reverse("account_login"), {"login": user.email, "password": f"wrong-{i}"}).content.decode()
        for i in range(6)
    ]
    # The per-account budget is 5 failures per 5 minutes: the sixth attempt is refused unchecked...
    assert all("Too many failed login attempts" not in body for body in pages[:5])
    assert "Too many failed login attempts" in pages[5]
    # ...and so is the right password, until the window passes.
    response = client.post(reverse("account_login"), {"login": user.email, "password": user.raw_password})
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()


def test_profile_needs_login(client: Client) -> None:
    response = client.get(reverse("editor:profile"))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_demo_user_command_prints_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    from django.core.management import call_command

    call_command("create_demo_user")
    out = capsys.readouterr().out
    assert "demo@example.com" in out and "password" in out
    client = Client()
    assert client.post(
        reverse("account_login"), {"login": "demo@example.com", "password": "demo-password-123"}
    ).status_code == 302


def test_failures_from_one_address_do_not_lock_the_owner_out_elsewhere(make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    pages = [
        attacker.post(reverse("account_login"), {"login": user.email, "password": f"wrong-{i}"}).content.decode()
        for i in range(8)
    ]
    # The attacker's own address is stopped after 5 failures for this account...
    assert "Too many failed login attempts" in pages[-1]
    # ...but the owner, signing in from home, is not locked out.
    owner = Client(REMOTE_ADDR="198.51.100.7")
    response = owner.post(reverse("account_login"), {"login": user.email, "password": user.raw_password})
    assert response.status_code == 302
    assert owner.get(reverse("editor:profile")).status_code == 200


def _sign_up(client: Client, email: str) -> int:
    password = "Plenty-of-entropy-91"
    response = client.post(reverse("account_signup"), {"email": email, "password1": password, "password2": password})
    return response.status_code


def test_starter_credits_arrive_on_email_confirmation_once(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert _sign_up(client, "farmer@example.com") == 302
    user = get_user_model().objects.get(email="farmer@example.com")
    # An account nobody confirmed has nothing to spend.
    assert CreditAccount.objects.get(user=user).balance == 0 and not CreditEntry.objects.filter(user=user).exists()
    confirm_path = _link_in_last_mail()
    client.post(confirm_path)
    assert CreditAccount.objects.get(user=user).balance == settings.STARTER_CREDITS
    # Confirming again (the same link, or a second address of the account) grants nothing more.
    from allauth.account.models import EmailAddress
    from allauth.account.signals import email_confirmed

    email_confirmed.send(sender=EmailAddress, request=None, email_address=EmailAddress.objects.get(user=user))
    assert credits_ledger_sum(user_id=user.pk) == settings.STARTER_CREDITS
    assert CreditEntry.objects.filter(user=user, kind=CreditEntry.Kind.GRANT).count() == 1


def test_signups_per_address_per_day_are_limited_and_shown_to_staff(settings, make_user) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Permission

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    farm = Client(REMOTE_ADDR="203.0.113.50")
    answers = [_sign_up(farm, f"farm{n}@example.com") for n in range(11)]
    # The day's budget per address (SIGNUP_RATE_LIMIT, 10 a day) is spent: the eleventh is refused.
    assert answers[:10] == [302] * 10 and answers[10] == 429
    # Someone else signs up as usual.
    assert _sign_up(Client(REMOTE_ADDR="198.51.100.20"), "honest@example.com") == 302

    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_usage"))
    viewer = Client()
    viewer.force_login(staff)
    page = viewer.get(reverse("staff_dashboard"), {"period": "today"})
    table = page.content.decode().split('data-testid="signup-farming"')[1].split("</table>")[0]
    assert "203.0.113.50" in table and ">10<" in table
    assert "198.51.100.20" not in table  # one sign-up is not farming
