"""Buying credits: the real `stripe` SDK against the local stand-in (devservices/stripe_standin.py), whose events,
signed with Stripe's scheme, reach the site's real webhook endpoint on pytest-django's live server."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from devservices.stripe_standin import StripeStandin, run_stripe_standin

WEBHOOK_SECRET = "whsec_test_standin_secret"
WEBHOOK_PATH = "/payments/stripe/webhook/"


@pytest.fixture
def stripe_standin(live_server: Any, settings: Any) -> Iterator[StripeStandin]:
    with run_stripe_standin(webhook_url=f"{live_server.url}{WEBHOOK_PATH}", secret=WEBHOOK_SECRET) as standin:
        settings.STRIPE_SECRET_KEY = "sk_test_standin"
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = standin.base_url
        yield standin


@pytest.fixture
def make_pack(db: None) -> Callable[..., Any]:
    from editor.models import CreditPack

    def make(credits: int = 20, price: str = "4.99", currency: str = "eur", active: bool = True) -> Any:
        return CreditPack.objects.create(name=f"{credits} pack", credits=credits, price=Decimal(price),
                                         currency=currency, active=active)

    return make


@pytest.fixture
def buyer(make_user: Callable[..., Any], settings: Any) -> Any:
    settings.STARTER_CREDITS = 0
    settings.MAX_JOBS_IN_FLIGHT_PER_USER = 1000
    return make_user()


def start_checkout(client: Any, user: Any, pack: Any) -> str:
    """Press Buy as `user`: returns the Checkout Session id the stand-in made (its hosted page is the redirect)."""
    client.force_login(user)
    response = client.post("/credits/buy/", {"pack": pack.pk})
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert "/pay/cs_test_" in location, location
    return location.rsplit("/", 1)[1]
