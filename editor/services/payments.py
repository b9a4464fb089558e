"""Buying credits: start a Stripe Checkout, and believe only Stripe's signed webhook about what happened.

Exactly once, whatever Stripe delivers (duplicates, any order, concurrently):
- a Purchase row is made before the Checkout Session; `checkout.session.completed` moves it PENDING -> PAID under
  its row lock and books one PURCHASE ledger entry keyed by the session id (a unique constraint backs it);
- `charge.refunded` (full refunds) and `charge.dispute.created` record one PaymentReversal per charge (unique); it
  is applied once its purchase is PAID: PAID -> REFUNDED/DISPUTED and one CLAWBACK entry keyed by the charge id.
  A reversal that arrives before its payment's event waits and is applied when the payment lands.
A clawback never takes the balance below zero: what was already spent is owed, the account is held (no new edits)
and staff are alerted (editor/services/credits.py).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from editor.errors import Refused
from editor.integrations import stripe_checkout
from editor.models import CreditPack, OperatorAlert, PaymentReversal, Purchase
from editor.services.credits import credits_claw_back, credits_grant_purchase

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

Status = Purchase.Status


class BuyingRefused(Refused):
    pass


class WebhookRejected(Exception):
    """Not a genuine Stripe event (bad or missing signature): answered 400, nothing changes."""


def buying_enabled() -> bool:
    return stripe_checkout.enabled()


def checkout_start(*, user: AbstractBaseUser, pack_id: Any, success_url: str, cancel_url: str) -> str:
    """The Checkout page's URL for one active pack. `success_url` may contain {CHECKOUT_SESSION_ID}."""
    if not buying_enabled():
        raise BuyingRefused("Buying credits is turned off on this site.")
    try:
        pack = CreditPack.objects.filter(pk=int(pack_id), active=True).first()
    except (TypeError, ValueError):
        pack = None
    if pack is None:
        raise BuyingRefused("That pack is not on sale any more.")
    amount = stripe_checkout.minor_units(pack.price, pack.currency)
    purchase = Purchase.objects.create(
        user_id=user.pk, pack=pack, pack_name=pack.name, credits=pack.credits, amount_minor=amount,
        currency=pack.currency,
    )
    try:
        session = stripe_checkout.checkout_session_create(
            purchase_id=str(purchase.pk), user_ref=str(user.pk),
            name=f"{pack.name}: {pack.credits} credits", amount_minor=amount, currency=pack.currency,
            success_url=success_url, cancel_url=cancel_url,
        )
    except stripe_checkout.StripeUnavailable as exc:
        log.warning("checkout for purchase %s failed: %s", purchase.pk, exc)
        purchase.delete()
        raise BuyingRefused("The payment page could not be opened just now. Please try again in a minute.") from exc
    Purchase.objects.filter(pk=purchase.pk).update(checkout_session_id=session.id)
    return session.url


# ------------------------------------------------------------------------------------------------ the webhook


def webhook_receive(*, payload: bytes, signature: str) -> str:
    """Verify and apply one event; returns what was done (for the log). WebhookRejected for a bad signature.
    Anything else that goes wrong raises, the endpoint answers 500 and Stripe delivers the event again."""
    if not buying_enabled():
        raise WebhookRejected("buying is off")
    try:
        event = stripe_checkout.webhook_event(payload=payload, signature=signature)
    except stripe_checkout.BadSignature as exc:
        raise WebhookRejected(str(exc)) from exc
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return "ignored: no object"
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        outcome = _session_paid(obj)
    elif kind == "charge.refunded":
        outcome = _charge_refunded(obj)
    elif kind == "charge.dispute.created":
        outcome = _reversal(charge_id=str(obj.get("charge") or ""), payment_intent=str(obj.get("payment_intent") or ""),
                            kind=PaymentReversal.Kind.DISPUTE)
    else:
        return f"ignored: {kind}"
    payments_reconcile()
    log.info("stripe event %s (%s): %s", event.get("id"), kind, outcome)
    return outcome


def _alert(kind: str, message: str) -> None:
    OperatorAlert.objects.create(kind=kind, message=message[:500])


def _session_paid(session: dict[str, Any]) -> str:
    session_id = str(session.get("id") or "")
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return "not paid yet"  # an asynchronous method: async_payment_succeeded follows
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().filter(checkout_session_id=session_id).first()
        if purchase is None:
            return "unknown session"
        if purchase.status != Status.PENDING:
            return "duplicate"
        total, currency = session.get("amount_total"), str(session.get("currency") or "").lower()
        if total != purchase.amount_minor or currency != purchase.currency:
            _alert(OperatorAlert.Kind.PAYMENT_MISMATCH,
                   f"Checkout Session {session_id} paid {total} {currency.upper()}, but purchase {purchase.pk} "
                   f"expected {purchase.amount_minor} {purchase.currency.upper()}: no credits were given.")
            return "mismatch"
        purchase.status = Status.PAID
        purchase.paid_at = timezone.now()
        purchase.payment_intent_id = str(session.get("payment_intent") or "")
        purchase.save(update_fields=["status", "paid_at", "payment_intent_id"])
        if purchase.user_id is None:
            _alert(OperatorAlert.Kind.PAYMENT_MISMATCH,
                   f"Checkout Session {session_id} was paid after its account was deleted: refund it in Stripe.")
            return "paid, account gone"
        credits_grant_purchase(
            user_id=purchase.user_id, credits=purchase.credits, external_id=session_id,
            reason=f"Bought {purchase.pack_name}",
        )
    return "granted"


def _charge_refunded(charge: dict[str, Any]) -> str:
    charge_id = str(charge.get("id") or "")
    if not charge.get("refunded"):
        # A partial refund: which credits it stands for is a person's decision.
        _alert(OperatorAlert.Kind.PAYMENT_REVERSED,
               f"Charge {charge_id} was partly refunded ({charge.get('amount_refunded')} of {charge.get('amount')}); "
               "no credits were taken back: adjust the balance by hand if some should be.")
        return "partial refund: staff alerted"
    return _reversal(charge_id=charge_id, payment_intent=str(charge.get("payment_intent") or ""),
                     kind=PaymentReversal.Kind.REFUND)


def _reversal(*, charge_id: str, payment_intent: str, kind: str) -> str:
    if not charge_id:
        return "ignored: no charge"
    try:
        with transaction.atomic():
            PaymentReversal.objects.create(charge_id=charge_id, payment_intent_id=payment_intent, kind=kind)
    except IntegrityError:
        return "duplicate reversal"  # this charge was refunded or disputed already: one clawback per charge
    return "reversal recorded"


def payments_reconcile() -> int:
    """Apply every recorded reversal whose purchase is now paid. Safe to run any time, any number of times (each
    webhook call and the beat run it): a reversal that raced its payment's event is applied here."""
    applied = 0
    pending = PaymentReversal.objects.filter(applied_at__isnull=True).exclude(payment_intent_id="")
    for reversal_id in pending.values_list("pk", flat=True)[:200]:
        if _apply_reversal(reversal_id):
            applied += 1
    return applied


def _apply_reversal(reversal_id: int) -> bool:
    with transaction.atomic():
        reversal = PaymentReversal.objects.select_for_update().filter(pk=reversal_id, applied_at__isnull=True).first()
        if reversal is None:
            return False
        purchase = (
            Purchase.objects.select_for_update()
            .filter(payment_intent_id=reversal.payment_intent_id, status=Status.PAID).first()
        )
        if purchase is None:
            return False  # its payment has not landed yet
        disputed = reversal.kind == PaymentReversal.Kind.DISPUTE
        purchase.status = Status.DISPUTED if disputed else Status.REFUNDED
        purchase.reversed_at = timezone.now()
        purchase.save(update_fields=["status", "reversed_at"])
        reversal.purchase = purchase
        reversal.applied_at = purchase.reversed_at
        if purchase.user_id is not None:
            taken = credits_claw_back(
                user_id=purchase.user_id, credits=purchase.credits, external_id=reversal.charge_id,
                reason=f"{'Disputed' if disputed else 'Refunded'}: {purchase.pack_name}",
            )
            reversal.credits_taken, reversal.credits_owed = taken.taken, taken.owed
            if taken.owed:
                _alert(OperatorAlert.Kind.ACCOUNT_HELD,
                       f"User {purchase.user_id}: a {reversal.kind} of {purchase.pack_name} took back "
                       f"{taken.taken} credits; {taken.owed} were already spent, so new edits are held until "
                       "they are paid.")
        if disputed:
            _alert(OperatorAlert.Kind.PAYMENT_REVERSED,
                   f"Charge {reversal.charge_id} ({purchase.pack_name}, user {purchase.user_id}) is disputed: "
                   "answer the dispute in Stripe.")
        reversal.save(update_fields=["purchase", "applied_at", "credits_taken", "credits_owed"])
    return True
