"""Buying credits in a real browser: the credits page, the stand-in's hosted checkout page, back to the site
where the page says the credits are on the way until the signed webhook lands, then shows them, and the receipt."""
from __future__ import annotations

import copy
import re
from typing import Any

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page: Any, base: str, user: Any) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.raw_password)
    page.get_by_role("button", name=re.compile("^Log in$", re.I)).click()
    page.wait_for_url(f"{base}/")


def test_buying_credits_in_the_browser(
    page: Any, live_server: Any, buyer: Any, make_pack: Any, stripe_standin: Any, settings: Any
) -> None:
    from editor.models import Purchase

    # The buy form redirects to the hosted page: the policy allows that origin, as it does Stripe's in production.
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = [*policy["DIRECTIVES"]["form-action"], stripe_standin.root_url]
    settings.CONTENT_SECURITY_POLICY = policy
    stripe_standin.webhook_delay = 2.0  # Stripe's event comes a moment after the buyer is back
    pack = make_pack(credits=20, price="4.99")
    log_in(page, live_server.url, buyer)

    page.goto(f"{live_server.url}/edit/new/")
    assert page.get_by_test_id("buy-nudge").is_visible()  # 0 credits: the page offers to buy
    page.goto(f"{live_server.url}/credits/")
    page.get_by_test_id(f"buy-{pack.pk}").click()
    page.wait_for_url(re.compile(r"/pay/cs_test_"))
    assert page.get_by_test_id("standin-amount").inner_text() == "4.99 EUR"
    page.get_by_role("button", name=re.compile("^Pay")).click()

    page.wait_for_url(re.compile(r"/credits/buy/done/\?session_id=cs_test_"))
    status = page.get_by_test_id("purchase-status")
    assert "Your credits are on the way" in status.inner_text()
    assert Purchase.objects.get(user=buyer).status == "pending"
    page.wait_for_selector('[data-testid="purchase-status"][data-status="paid"]', timeout=20_000)
    assert "20 credits added" in page.get_by_test_id("purchase-status").inner_text()

    page.goto(f"{live_server.url}/credits/")
    assert page.get_by_test_id("credits-balance").inner_text() == "20"
    receipt = page.get_by_test_id("receipt")
    assert receipt.get_attribute("data-status") == "paid" and "4.99 EUR" in receipt.inner_text()

    # Cancelling on the hosted page comes back saying nothing was charged.
    page.get_by_test_id(f"buy-{pack.pk}").click()
    page.wait_for_url(re.compile(r"/pay/cs_test_"))
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(re.compile(r"/credits/\?cancelled=1"))
    assert page.get_by_test_id("buy-cancelled").is_visible()
    assert page.get_by_test_id("credits-balance").inner_text() == "20"


def test_a_bank_debit_that_fails_says_so_in_the_browser(
    page: Any, live_server: Any, buyer: Any, make_pack: Any, stripe_standin: Any, settings: Any
) -> None:
    from editor.models import Purchase

    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = [*policy["DIRECTIVES"]["form-action"], stripe_standin.root_url]
    settings.CONTENT_SECURITY_POLICY = policy
    pack = make_pack(credits=20, price="4.99")
    log_in(page, live_server.url, buyer)
    page.goto(f"{live_server.url}/credits/")
    page.get_by_test_id(f"buy-{pack.pk}").click()
    page.wait_for_url(re.compile(r"/pay/cs_test_"))
    page.get_by_role("button", name="Bank debit (confirmed later)").click()

    page.wait_for_url(re.compile(r"/credits/buy/done/\?session_id=cs_test_"))
    page.wait_for_selector('[data-testid="purchase-status"][data-status="processing"]', timeout=20_000)
    assert "Your payment is being processed" in page.get_by_test_id("purchase-status").inner_text()
    purchase = Purchase.objects.get(user=buyer)
    stripe_standin.settle(purchase.checkout_session_id, succeeded=False)
    page.reload()
    status = page.get_by_test_id("purchase-status")
    assert status.get_attribute("data-status") == "failed"
    assert "The payment did not go through" in status.inner_text() and "on the way" not in status.inner_text()
    page.goto(f"{live_server.url}/credits/")
    assert page.get_by_test_id("credits-balance").inner_text() == "0"
    assert page.get_by_test_id("receipt").get_attribute("data-status") == "failed"
