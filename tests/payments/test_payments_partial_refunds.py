"""Partial refunds through the stand-in and the signed webhook: each `charge.refunded` carries the charge's running
total (`amount_refunded`), and the credits taken back for a charge are always floor(credits * refunded / paid) of
that total: never more, never twice, whatever order or how often Stripe delivers the events."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.payments.conftest import start_checkout
from tests.payments.test_payments_webhook import assert_books_balance, balance, ledger, purchase

pytestmark = pytest.mark.django_db(transaction=True)

# A 20-credit pack at 4.99 EUR, refunded 1.30, then 1.70 more (3.00 in all), then the rest: floor(20 * 130 / 499) = 5,
# floor(20 * 300 / 499) = 12, 20. Both partial shares round down (5.21, 12.02): in the customer's favour.
PACK = {"credits": 20, "price": "4.99"}
STEPS = [130, 170, None]
SHARES = {"e1": 5, "e2": 12, "e3": 20}


def clawed(user: Any) -> int:
    return -sum(ledger(user, "clawback"))


def reversal_of(charge_id: str) -> Any:
    from editor.models import PaymentReversal

    return PaymentReversal.objects.get(charge_id=charge_id)


def test_two_partial_refunds_then_a_full_one_take_back_share_share_rest(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    from editor.models import CreditAccount, PaymentReversal

    session_id = start_checkout(client, buyer, make_pack(**PACK))
    paid = stripe_standin.pay(session_id)
    assert balance(buyer) == 20

    stripe_standin.refund(paid["charge"], amount=130)
    assert ledger(buyer, "clawback") == [-5] and balance(buyer) == 15
    bought = purchase(session_id)
    assert (bought.status, bought.credits_reversed, bought.amount_reversed_minor) == ("partly_refunded", 5, 130)
    assert_books_balance(buyer)
    client.force_login(buyer)
    status = client.get(f"/credits/buy/status/?session_id={session_id}").content.decode()
    assert 'data-status="partly_refunded"' in status and "5 of its 20 credits were taken back" in status
    receipts = client.get("/credits/").content.decode()
    assert 'data-testid="receipt" data-status="partly_refunded"' in receipts and "Partly refunded" in receipts

    stripe_standin.refund(paid["charge"], amount=170)
    assert ledger(buyer, "clawback") == [-5, -7] and balance(buyer) == 8
    assert purchase(session_id).status == "partly_refunded"

    stripe_standin.refund(paid["charge"])  # the rest: exactly what is left of the pack
    assert ledger(buyer, "clawback") == [-5, -7, -8] and balance(buyer) == 0
    bought = purchase(session_id)
    assert (bought.status, bought.credits_reversed, bought.amount_reversed_minor) == ("refunded", 20, 499)
    assert all(d.status == 200 for d in stripe_standin.deliveries)
    assert PaymentReversal.objects.count() == 1
    reversal = reversal_of(paid["charge"])
    assert (reversal.amount_refunded, reversal.credits_taken, reversal.credits_owed) == (499, 20, 0)
    account = CreditAccount.objects.get(user=buyer)
    assert (account.balance, account.owed) == (0, 0)
    assert_books_balance(buyer)


# Each step: the events delivered (names below; "pay" is checkout.session.completed), then the credits clawed back
# in all. A delivery that is older than one already seen, or seen before, changes nothing.
ORDERS = {
    "in order, each twice": [(["pay", "e1", "e1"], 5), (["e2", "e1", "e2"], 12), (["e3", "e3", "e2", "e1"], 20)],
    "newest first": [(["pay", "e2", "e1", "e2", "e1"], 12), (["e3", "e1", "e2", "e3"], 20)],
    "the full refund first": [(["pay", "e3", "e2", "e1", "e3", "e1"], 20)],
    "refunds before the payment": [(["e2", "e1", "e2"], 0), (["pay", "e1", "pay"], 12), (["e3", "pay", "e2"], 20)],
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_duplicate_and_out_of_order_refund_events_take_back_the_share_of_the_newest_total(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any, order: str
) -> None:
    session_id = start_checkout(client, buyer, make_pack(**PACK))
    paid = stripe_standin.pay(session_id, deliver=False)
    events = {"pay": paid["event"]}
    for name, amount in zip(("e1", "e2", "e3"), STEPS, strict=True):
        events[name] = stripe_standin.refund(paid["charge"], amount=amount, deliver=False)
    seen_payment = False
    for names, expected in ORDERS[order]:
        for name in names:
            assert stripe_standin.deliver(events[name]) == 200
            seen_payment = seen_payment or name == "pay"
        assert clawed(buyer) == expected, (names, ledger(buyer))
        assert ledger(buyer, "purchase") == ([20] if seen_payment else [])
        assert_books_balance(buyer)
    assert balance(buyer) == 0 and purchase(session_id).status == "refunded"
    assert purchase(session_id).credits_reversed == 20
    reversal = reversal_of(paid["charge"])
    assert (reversal.amount_refunded, reversal.credits_taken + reversal.credits_owed) == (499, 20)


def test_concurrent_partial_refund_events_take_back_each_share_once(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run through scripts/testenv.py)")
    session_id = start_checkout(client, buyer, make_pack(**PACK))
    paid = stripe_standin.pay(session_id)
    events = [stripe_standin.refund(paid["charge"], amount=amount, deliver=False) for amount in STEPS]

    def at_once(event_ids: list[str]) -> None:
        threads = [threading.Thread(target=stripe_standin.deliver, args=(e,)) for e in event_ids for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    at_once(events[:2])
    assert clawed(buyer) == 12 and balance(buyer) == 8
    at_once(events)
    assert clawed(buyer) == 20 and balance(buyer) == 0
    assert all(d.status == 200 for d in stripe_standin.deliveries)
    assert purchase(session_id).credits_reversed == 20
    assert_books_balance(buyer)


def test_a_partial_refund_after_the_credits_were_spent_holds_the_account(
    client: Any, buyer: Any, make_pack: Any, make_photo: Any, stripe_standin: Any
) -> None:
    from editor.errors import Refused
    from editor.models import CreditAccount, OperatorAlert
    from editor.services.edit_commands import edit_job_submit

    session_id = start_checkout(client, buyer, make_pack(credits=4, price="4.00"))
    paid = stripe_standin.pay(session_id)
    photo = make_photo(buyer)
    for _ in range(3):
        edit_job_submit(user=buyer, photo=photo, prompt="a person wearing blue jeans", clothing="bottomwear")
    assert balance(buyer) == 1

    stripe_standin.refund(paid["charge"], amount=300)  # 3 of the 4 credits; only 1 is left to take
    account = CreditAccount.objects.get(user=buyer)
    assert (account.balance, account.owed, account.held) == (0, 2, True)
    assert ledger(buyer, "clawback") == [-1]
    alert = OperatorAlert.objects.get(kind="account_held")
    assert f"User {buyer.pk}" in alert.message and "2 were already spent" in alert.message
    with pytest.raises(Refused, match="on hold"):
        edit_job_submit(user=buyer, photo=photo, prompt="a person wearing blue jeans", clothing="bottomwear")
    client.force_login(buyer)
    assert 'data-testid="account-held"' in client.get("/credits/").content.decode()

    stripe_standin.refund(paid["charge"])  # the last credit, already spent too: owed as well
    account.refresh_from_db()
    assert (account.balance, account.owed) == (0, 3)
    assert OperatorAlert.objects.filter(kind="account_held").count() == 2
    assert purchase(session_id).credits_reversed == 4
    assert_books_balance(buyer)


def test_the_dashboard_counts_a_partial_refund_by_its_amount(
    client: Any, admin_client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    pack = make_pack(**PACK)
    first, second, third = (start_checkout(client, buyer, pack) for _ in range(3))
    stripe_standin.pay(first)
    partly = stripe_standin.pay(second)
    stripe_standin.refund(partly["charge"], amount=130)
    refunded = stripe_standin.pay(third)
    stripe_standin.refund(refunded["charge"])
    page = admin_client.get("/staff/dashboard/?period=today").content.decode()
    assert 'data-testid="purchases-paid">3<' in page and 'data-testid="purchases-refunded">1<' in page
    assert 'data-testid="purchases-partly-refunded">1<' in page
    # 3 x 4.99 = 14.97 gross; net of 4.99 and 1.30 refunded = 8.68; 20 + 5 credits taken back.
    assert 'data-testid="gross">14.97<' in page and 'data-testid="net">8.68<' in page
    assert 'data-testid="credits-reversed">25<' in page


def test_reversals_made_before_partial_refunds_keep_what_they_took_back(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    """Migration 0009 on rows the old code wrote (a full refund: the whole pack taken back, no running totals
    kept): later events for that charge take nothing more."""
    import importlib

    from django.apps import apps

    from editor.models import PaymentReversal, Purchase

    session_id = start_checkout(client, buyer, make_pack(**PACK))
    paid = stripe_standin.pay(session_id)
    refund_event = stripe_standin.refund(paid["charge"])
    assert ledger(buyer, "clawback") == [-20]
    # As the old code left them: the new columns at their defaults.
    Purchase.objects.filter(checkout_session_id=session_id).update(credits_reversed=0, amount_reversed_minor=0)
    PaymentReversal.objects.update(amount=0, amount_refunded=0, refunded_in_full=False)

    migration = importlib.import_module("editor.migrations.0009_partial_refunds_delayed_payments")
    migration.reversals_so_far(apps, None)
    bought = purchase(session_id)
    assert (bought.status, bought.credits_reversed, bought.amount_reversed_minor) == ("refunded", 20, 499)
    assert reversal_of(paid["charge"]).refunded_in_full

    assert stripe_standin.deliver(refund_event) == 200
    stripe_standin.dispute(paid["charge"])
    assert ledger(buyer, "clawback") == [-20] and balance(buyer) == 0
    assert purchase(session_id).status == "disputed"
    assert_books_balance(buyer)
