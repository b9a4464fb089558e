"""Payment methods the bank confirms later (SEPA debit, ACH): Checkout completes with payment_status "unpaid", and
checkout.session.async_payment_succeeded or _failed follows, maybe days later. Credits come only with the first,
exactly once; a failure is said plainly on the buyer's page instead of "on the way" forever."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.payments.conftest import start_checkout
from tests.payments.test_payments_webhook import assert_books_balance, balance, ledger, purchase

pytestmark = pytest.mark.django_db(transaction=True)


def status_page(client: Any, session_id: str) -> str:
    page: str = client.get(f"/credits/buy/status/?session_id={session_id}").content.decode()
    return page


def test_a_delayed_payment_grants_once_when_the_bank_confirms_it(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    pack = make_pack(credits=20, price="4.99")
    session_id = start_checkout(client, buyer, pack)
    completed = stripe_standin.pay(session_id, delayed=True)
    assert stripe_standin.sessions[session_id]["payment_status"] == "unpaid"
    assert stripe_standin.deliveries[-1].status == 200
    assert balance(buyer) == 0 and ledger(buyer) == []
    assert purchase(session_id).status == "processing"
    done = client.get(f"/credits/buy/done/?session_id={session_id}").content.decode()
    assert 'data-status="processing"' in done and "Your payment is being processed" in done
    assert "on the way" not in done
    assert 'data-status="processing"' in client.get("/credits/").content.decode()

    succeeded = stripe_standin.settle(session_id)
    assert stripe_standin.deliveries[-1].status == 200
    assert balance(buyer) == 20 and ledger(buyer, "purchase") == [20]
    # The same event again, concurrently, and the late "completed (unpaid)" change nothing.
    threads = [threading.Thread(target=stripe_standin.deliver, args=(succeeded,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stripe_standin.deliver(succeeded) == 200
    assert stripe_standin.deliver(completed["event"]) == 200
    assert all(d.status == 200 for d in stripe_standin.deliveries)
    assert balance(buyer) == 20 and ledger(buyer, "purchase") == [20]
    assert purchase(session_id).status == "paid"
    assert "20 credits added" in status_page(client, session_id)
    assert_books_balance(buyer)

    # Out of order: the bank's answer before Checkout's own event. One grant, and it stays paid.
    second = start_checkout(client, buyer, pack)
    late = stripe_standin.pay(second, delayed=True, deliver=False)
    assert stripe_standin.deliver(stripe_standin.settle(second, deliver=False)) == 200
    assert stripe_standin.deliver(late["event"]) == 200
    assert purchase(second).status == "paid" and ledger(buyer, "purchase") == [20, 20]
    assert_books_balance(buyer)


def test_a_delayed_payment_that_fails_grants_nothing_and_the_page_says_so(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    session_id = start_checkout(client, buyer, make_pack(credits=20, price="4.99"))
    completed = stripe_standin.pay(session_id, delayed=True)
    assert purchase(session_id).status == "processing"

    failed = stripe_standin.settle(session_id, succeeded=False)
    assert stripe_standin.deliveries[-1].status == 200
    assert stripe_standin.deliver(failed) == 200
    assert stripe_standin.deliver(completed["event"]) == 200  # a late duplicate does not bring it back
    assert purchase(session_id).status == "failed"
    assert balance(buyer) == 0 and ledger(buyer) == []
    assert_books_balance(buyer)

    client.force_login(buyer)
    for page in (client.get(f"/credits/buy/done/?session_id={session_id}").content.decode(),
                 status_page(client, session_id)):
        assert 'data-status="failed"' in page and "The payment did not go through" in page
        assert "no credits were added" in page
        assert "on the way" not in page and "hx-get" not in page  # final: the page stops asking
    receipts = client.get("/credits/").content.decode()
    assert 'data-testid="receipt" data-status="failed"' in receipts and "Payment failed" in receipts


def test_the_failure_arriving_before_checkouts_own_event_still_fails_the_purchase(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    session_id = start_checkout(client, buyer, make_pack(credits=20, price="4.99"))
    completed = stripe_standin.pay(session_id, delayed=True, deliver=False)
    assert stripe_standin.deliver(stripe_standin.settle(session_id, succeeded=False, deliver=False)) == 200
    assert stripe_standin.deliver(completed["event"]) == 200
    assert purchase(session_id).status == "failed" and balance(buyer) == 0


def test_the_standin_hosted_page_takes_a_bank_debit_and_settles_it_on_request(
    client: Any, buyer: Any, make_pack: Any, stripe_standin: Any
) -> None:
    import urllib.error
    import urllib.request

    session_id = start_checkout(client, buyer, make_pack(credits=20, price="4.99"))
    form = urllib.request.Request(f"{stripe_standin.root_url}/pay/{session_id}", data=b"method=debit", method="POST")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as back:  # the 303 back to the site, not followed
        opener.open(form, timeout=10)
    assert back.value.code == 303 and session_id in back.value.headers["Location"]
    assert stripe_standin.sessions[session_id]["payment_status"] == "unpaid"
    settle = urllib.request.Request(f"{stripe_standin.root_url}/standin/settle/{session_id}?outcome=succeeded",
                                    data=b"", method="POST")
    with urllib.request.urlopen(settle, timeout=10) as response:  # noqa: S310 - the stand-in on loopback
        assert response.status == 200
    for _ in range(100):  # both events are posted in the background
        if len(stripe_standin.deliveries) == 2:
            break
        threading.Event().wait(0.05)
    assert sorted(d.type for d in stripe_standin.deliveries) == [
        "checkout.session.async_payment_succeeded", "checkout.session.completed"]
    assert balance(buyer) == 20
