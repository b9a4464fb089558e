"""Buying credits end to end through the SDK, the stand-in and the signed webhook: exactly one grant whatever
Stripe delivers, clawbacks that never take the balance negative, and nothing believed without a signature."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from devservices.stripe_standin import stripe_signature
from tests.payments.conftest import WEBHOOK_PATH, WEBHOOK_SECRET, start_checkout

pytestmark = pytest.mark.django_db(transaction=True)


def balance(user: Any) -> int:
    from editor.models import CreditAccount

    return CreditAccount.objects.get(user=user).balance


def ledger(user: Any, kind: str | None = None) -> list[int]:
    from editor.models import CreditEntry

    entries = CreditEntry.objects.filter(user=user)
    if kind:
        entries = entries.filter(kind=kind)
    return list(entries.order_by("id").values_list("amount", flat=True))


def assert_books_balance(user: Any) -> None:
    from editor.models import CreditAccount
    from editor.services.credits import credits_ledger_sum

    assert CreditAccount.objects.get(user=user).balance == credits_ledger_sum(user_id=user.pk)


def purchase(session_id: str) -> Any:
    from editor.models import Purchase

    return Purchase.objects.get(checkout_session_id=session_id)


def test_buying_is_off_without_a_stripe_key(client: Any, buyer: Any, make_pack: Any, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    pack = make_pack()
    client.force_login(buyer)
    page = client.get("/credits/").content.decode()
    assert 'data-testid="buying-off"' in page and "Buying credits is turned off" in page
    assert f'data-testid="buy-{pack.pk}"' not in page
    response = client.post("/credits/buy/", {"pack": pack.pk}, follow=True)
    assert "Buying credits is turned off" in response.content.decode()
    assert client.post(WEBHOOK_PATH, b"{}", content_type="application/json").status_code == 400


def test_checkout_through_the_sdk_and_the_webhook_grants_once(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    pack = make_pack(credits=20, price="4.99")
    page = (client.force_login(buyer), client.get("/credits/"))[1].content.decode()
    assert f'data-testid="buy-{pack.pk}"' in page
    session_id = start_checkout(client, buyer, pack)
    session = stripe_standin.sessions[session_id]
    assert session["amount_total"] == 499 and session["currency"] == "eur"
    assert session["metadata"]["purchase_id"] == str(purchase(session_id).pk)

    # Coming back from Checkout proves nothing: the page waits for the webhook.
    done = client.get(f"/credits/buy/done/?session_id={session_id}").content.decode()
    assert "Your credits are on the way" in done and 'data-status="pending"' in done
    assert balance(buyer) == 0

    paid = stripe_standin.pay(session_id)
    assert stripe_standin.deliveries[-1].status == 200
    assert balance(buyer) == 20 and ledger(buyer, "purchase") == [20]
    assert "20 credits added" in client.get(f"/credits/buy/status/?session_id={session_id}").content.decode()

    # Stripe delivers at least once: the same event again, and again concurrently, grants nothing more.
    assert stripe_standin.deliver(paid["event"]) == 200
    threads = [threading.Thread(target=stripe_standin.deliver, args=(paid["event"],)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(d.status == 200 for d in stripe_standin.deliveries)
    assert balance(buyer) == 20 and ledger(buyer, "purchase") == [20]
    assert_books_balance(buyer)
    receipts = client.get("/credits/").content.decode()
    assert 'data-testid="receipt" data-status="paid"' in receipts and "4.99 EUR" in receipts


def test_a_refund_delivered_before_the_payment_grants_nothing_in_the_end(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    session_id = start_checkout(client, buyer, make_pack(credits=20))
    paid = stripe_standin.pay(session_id, deliver=False)
    refund_event = stripe_standin.refund(paid["charge"], deliver=False)

    assert stripe_standin.deliver(refund_event) == 200  # out of order: the refund first
    assert balance(buyer) == 0 and purchase(session_id).status == "pending"
    assert stripe_standin.deliver(paid["event"]) == 200  # then the payment: granted and taken back at once
    assert stripe_standin.deliver(paid["event"]) == 200
    assert stripe_standin.deliver(refund_event) == 200
    assert purchase(session_id).status == "refunded"
    assert ledger(buyer) == [20, -20] and balance(buyer) == 0
    assert_books_balance(buyer)


def test_a_refund_and_a_dispute_of_one_charge_claw_back_once(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    from editor.models import OperatorAlert

    session_id = start_checkout(client, buyer, make_pack(credits=20))
    paid = stripe_standin.pay(session_id)
    stripe_standin.dispute(paid["charge"])
    stripe_standin.refund(paid["charge"])
    assert ledger(buyer) == [20, -20] and balance(buyer) == 0
    assert purchase(session_id).status == "disputed"
    assert OperatorAlert.objects.filter(kind="payment_reversed").exists()


@pytest.mark.parametrize("tamper", ["wrong secret", "changed payload", "no header", "too old", "garbage"])
def test_a_bad_signature_is_400_and_changes_nothing(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any, tamper: str
) -> None:
    from editor.models import CreditEntry, PaymentReversal, Purchase

    session_id = start_checkout(client, buyer, make_pack(credits=20))
    paid = stripe_standin.pay(session_id, deliver=False)
    payload = stripe_standin.event_payload(paid["event"])
    signature = stripe_signature(payload, WEBHOOK_SECRET)
    if tamper == "wrong secret":
        signature = stripe_signature(payload, "whsec_someone_else")
    elif tamper == "changed payload":
        event = json.loads(payload)
        event["data"]["object"]["amount_total"] = 1
        payload = json.dumps(event).encode()
    elif tamper == "no header":
        signature = ""
    elif tamper == "too old":
        signature = stripe_signature(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600)
    else:
        signature = "t=1,v1=deadbeef"
    before = (list(Purchase.objects.values_list("status", flat=True)), CreditEntry.objects.count())
    assert stripe_standin.deliver(paid["event"], payload=payload, signature=signature) == 400
    assert (list(Purchase.objects.values_list("status", flat=True)), CreditEntry.objects.count()) == before
    assert not PaymentReversal.objects.exists() and balance(buyer) == 0
    # The genuine event still works afterwards.
    assert stripe_standin.deliver(paid["event"]) == 200 and balance(buyer) == 20


def test_a_refund_after_the_credits_were_spent_holds_the_account_until_paid(
    client: Any, buyer: Any, make_pack: Any, make_photo: Any, stripe_standin: Any
) -> None:
    from editor.errors import Refused
    from editor.models import CreditAccount, OperatorAlert
    from editor.services.edit_commands import edit_job_submit

    pack = make_pack(credits=3)
    session_id = start_checkout(client, buyer, pack)
    paid = stripe_standin.pay(session_id)
    photo = make_photo(buyer)
    for _ in range(2):
        edit_job_submit(user=buyer, photo=photo, prompt="a person wearing blue jeans", clothing="bottomwear")
    assert balance(buyer) == 1

    stripe_standin.refund(paid["charge"])
    account = CreditAccount.objects.get(user=buyer)
    assert (account.balance, account.owed, account.held) == (0, 2, True)
    assert ledger(buyer, "clawback") == [-1]
    alert = OperatorAlert.objects.get(kind="account_held")
    assert f"User {buyer.pk}" in alert.message and "2 were already spent" in alert.message
    with pytest.raises(Refused, match="on hold"):
        edit_job_submit(user=buyer, photo=photo, prompt="a person wearing blue jeans", clothing="bottomwear")
    page = (client.force_login(buyer), client.get("/credits/"))[1].content.decode()
    assert 'data-testid="account-held"' in page

    # The next purchase pays the debt first; what is left can be spent.
    second = start_checkout(client, buyer, pack)
    stripe_standin.pay(second)
    account.refresh_from_db()
    assert (account.balance, account.owed) == (1, 0)
    assert ledger(buyer, "clawback") == [-1, -2]
    assert_books_balance(buyer)
    edit_job_submit(user=buyer, photo=photo, prompt="a person wearing blue jeans", clothing="bottomwear")
    assert balance(buyer) == 0


def test_the_database_refuses_a_second_entry_for_one_payment_and_a_held_balance(buyer: Any) -> None:
    from editor.models import CreditAccount, CreditEntry

    CreditEntry.objects.create(user=buyer, kind="purchase", amount=5, balance_after=5, external_id="cs_test_x")
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditEntry.objects.create(user=buyer, kind="purchase", amount=5, balance_after=10, external_id="cs_test_x")
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.filter(user=buyer).update(balance=3, owed=2)


def test_the_success_page_is_the_buyers_own(
    client: Any, buyer: Any, make_user: Any, make_pack: Any, stripe_standin: Any
) -> None:
    session_id = start_checkout(client, buyer, make_pack())
    client.force_login(make_user())
    assert client.get(f"/credits/buy/done/?session_id={session_id}").status_code == 404
    assert client.get("/credits/buy/done/?session_id=").status_code == 404


def test_concurrent_purchases_and_submits_keep_the_balance_equal_to_the_ledger(
    client: Any, buyer: Any, make_pack: Any, make_photo: Any, stripe_standin: Any
) -> None:
    from django.db import connection

    from editor.errors import Refused
    from editor.models import CreditEntry
    from editor.services.edit_commands import edit_job_submit

    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run through scripts/testenv.py)")
    pack = make_pack(credits=2)
    sessions = [start_checkout(client, buyer, pack) for _ in range(12)]
    paid = [stripe_standin.pay(s, deliver=False) for s in sessions]
    photo = make_photo(buyer)
    refused: list[str] = []

    def submit() -> None:
        for _ in range(3):
            try:
                edit_job_submit(user=buyer, photo=photo, prompt="a person wearing a red coat", clothing="topwear")
            except Refused as exc:
                refused.append(exc.message)
        connection.close()

    threads = [threading.Thread(target=stripe_standin.deliver, args=(p["event"],)) for p in paid]
    threads += [threading.Thread(target=stripe_standin.deliver, args=(p["event"],)) for p in paid[:6]]
    threads += [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(d.status == 200 for d in stripe_standin.deliveries)
    assert CreditEntry.objects.filter(user=buyer, kind="purchase").count() == 12
    charges = CreditEntry.objects.filter(user=buyer, kind="charge").count()
    assert charges + len(refused) == 18 and charges <= 24
    assert balance(buyer) == 24 - charges >= 0
    assert_books_balance(buyer)


def test_the_dashboard_shows_purchases_and_revenue(
    client: Any, admin_client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    pack = make_pack(credits=20, price="4.99")
    first, second = start_checkout(client, buyer, pack), start_checkout(client, buyer, pack)
    stripe_standin.pay(first)
    refunded = stripe_standin.pay(second)
    stripe_standin.refund(refunded["charge"])
    start_checkout(client, buyer, pack)  # never paid
    page = admin_client.get("/staff/dashboard/?period=today").content.decode()
    assert 'data-testid="purchases-paid">2<' in page and 'data-testid="purchases-refunded">1<' in page
    assert '<tr data-currency="eur"><td>EUR</td><td class="num">2</td><td class="num">40</td>' in page
    assert 'data-testid="gross">9.98<' in page and 'data-testid="net">4.99<' in page
