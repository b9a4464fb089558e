"""Issue 14 item 13: the account pages and the error pages speak the site's layout and voice; the verification
email can be sent again (without telling anyone whether an address has an account)."""
from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

SITE_LAYOUT = 'class="site-header"'
# allauth's stock pages: Title Case headings and buttons.
STOCK_WORDS = ("Sign In", "Sign Up", "Verify Your Email Address", "Password Reset", "Reset My Password",
               "Remember Me", "Confirm Email Address", "Change Password")


@pytest.fixture(autouse=True)
def _clear_rate_limits() -> None:
    cache.clear()


def _sign_up(client: Client, email: str) -> None:
    password = "Plenty-of-entropy-91"
    response = client.post(reverse("account_signup"), {"email": email, "password1": password, "password2": password})
    assert response.status_code == 302


@pytest.mark.parametrize("name", ["account_login", "account_signup", "account_reset_password",
                                  "account_email_verification_sent", "account_reset_password_done",
                                  "account_resend_verification"])
def test_account_pages_use_the_site_layout_and_voice(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert SITE_LAYOUT in html and "Fashion AI Studio" in html
    assert 'class="card narrow auth-card"' in html
    for words in STOCK_WORDS:
        assert words not in html, f"{name} still says {words!r}"


def test_a_bad_confirmation_link_and_a_bad_reset_link_say_what_to_do(client: Client) -> None:
    html = client.get(reverse("account_confirm_email", args=["not-a-key"])).content.decode()
    assert SITE_LAYOUT in html and "has expired or was already used" in html
    assert 'action="/accounts/verification/resend/"' in html
    html = client.get("/accounts/password/reset/key/1-bad/", follow=True).content.decode()
    assert SITE_LAYOUT in html and "This link no longer works" in html


def test_signup_page_quotes_the_free_credits(client: Client, settings: object) -> None:
    html = client.get(reverse("account_signup")).content.decode()
    assert "10 credits once you confirm" in html


def test_verification_email_can_be_sent_again(client: Client) -> None:
    email = "waiting@example.com"
    _sign_up(client, email)
    assert len(mail.outbox) == 1
    first_link = re.search(r"/accounts/confirm-email/\S+", mail.outbox[0].body)
    cache.clear()  # past allauth's per-address cooldown
    sent_page = client.get(reverse("account_email_verification_sent")).content.decode()
    assert "Resend the verification email" in sent_page

    response = Client().post(reverse("account_resend_verification"), {"email": email.upper()})
    assert response.status_code == 200
    assert "a new link is on its way" in response.content.decode()
    assert len(mail.outbox) == 2 and mail.outbox[1].to == [email]
    link = re.search(r"/accounts/confirm-email/\S+", mail.outbox[1].body)
    assert link and first_link
    # The new link confirms the address.
    assert Client().post(link.group(0)).status_code == 302
    assert EmailAddress.objects.get(email=email).verified


def test_resend_sends_once_per_cooldown_and_never_reveals_accounts(client: Client, make_user: object) -> None:
    email = "twice@example.com"
    _sign_up(client, email)
    cache.clear()
    client.post(reverse("account_resend_verification"), {"email": email})
    client.post(reverse("account_resend_verification"), {"email": email})
    assert len(mail.outbox) == 2  # the sign-up's and one resend: the second is inside the cooldown
    verified = make_user()  # type: ignore[operator]
    answers = set()
    for address in (email, "nobody@example.com", verified.email):
        html = client.post(reverse("account_resend_verification"), {"email": address}).content.decode()
        answers.add(html.replace(address, "ADDRESS"))
    assert len(answers) == 1, "the answer differs by address: it tells whether an account exists"
    assert len(mail.outbox) == 2


def test_custom_404_page(client: Client, settings: object) -> None:
    settings.DEBUG = False  # type: ignore[attr-defined]
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert SITE_LAYOUT in html and "We could not find that page" in html


def test_custom_500_page(rf: RequestFactory) -> None:
    response = server_error(rf.get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html and SITE_LAYOUT in html and "css/app.css" in html
