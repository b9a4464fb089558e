"""Buying credits: start a Stripe Checkout, and believe only Stripe's signed webhook about what happened.

Exactly once, whatever Stripe delivers (duplicates, any order, concurrently):
- a Purchase row is made before the Checkout Session; `checkout.session.completed` (paid) or, for a method the bank
  confirms later, `checkout.session.async_payment_succeeded` moves it PENDING/PROCESSING -> PAID under its row lock
  and books one PURCHASE ledger entry keyed by the session id (a unique constraint backs it). A completed session
  that is still "unpaid" only marks it PROCESSING; `checkout.session.async_payment_failed` marks it FAILED.
- `charge.refunded` (full or partial: it carries the charge's running `amount_refunded`) and
  `charge.dispute.created` update the one PaymentReversal row of their charge (unique) under its row lock, keeping
  the newest facts. Applying it (once the purchase is paid) takes back what those facts call for beyond what the
  purchase gave back already: floor(credits * refunded / paid), rounded in the buyer's favour, or every credit once
  fully refunded or disputed. Each step books one CLAWBACK entry keyed "<charge id>:<credits taken back in all>", so
  a step is booked once (unique constraint), and the purchase row refuses to give back more than it had.
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
    elif kind == "checkout.session.async_payment_failed":
        outcome = _session_failed(obj)
    elif kind == "charge.refunded":
        outcome = _reversal(
            charge_id=str(obj.get("id") or ""), payment_intent=str(obj.get("payment_intent") or ""),
            amount=_minor(obj.get("amount")), amount_refunded=_minor(obj.get("amount_refunded")),
            in_full=bool(obj.get("refunded")), dispute=False,
        )
    elif kind == "charge.dispute.created":
        outcome = _reversal(charge_id=str(obj.get("charge") or ""), payment_intent=str(obj.get("payment_intent") or ""),
                            amount=0, amount_refunded=0, in_full=False, dispute=True)
    else:
        return f"ignored: {kind}"
    payments_reconcile()
    log.info("stripe event %s (%s): %s", event.get("id"), kind, outcome)
    return outcome


def _alert(kind: str, message: str) -> None:
    OperatorAlert.objects.create(kind=kind, message=message[:500])


def _minor(value: Any) -> int:
    """An amount from an event, in minor units; anything that is not a whole number >= 0 counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


PAID_STATUSES = Purchase.PAID_STATUSES


def _session_paid(session: dict[str, Any]) -> str:
    session_id = str(session.get("id") or "")
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return _session_processing(session)
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().filter(checkout_session_id=session_id).first()
        if purchase is None:
            return "unknown session"
        if purchase.status == Status.FAILED:
            # Stripe sends success or failure for a payment, never both: a person has to look at this one.
            _alert(OperatorAlert.Kind.PAYMENT_MISMATCH,
                   f"Checkout Session {session_id} was reported paid after its payment failed (purchase "
                   f"{purchase.pk}): no credits were given; check the payment in Stripe.")
            return "paid after failing: staff alerted"
        if purchase.status not in (Status.PENDING, Status.PROCESSING):
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


def _session_processing(session: dict[str, Any]) -> str:
    """Checkout completed, the bank has not confirmed yet (an asynchronous method): no credits, and the buyer's page
    says the payment is being processed. Only from PENDING: a late duplicate never undoes the bank's answer."""
    updated = Purchase.objects.filter(
        checkout_session_id=str(session.get("id") or ""), status=Status.PENDING
    ).update(status=Status.PROCESSING, payment_intent_id=str(session.get("payment_intent") or ""))
    return "processing: waiting for the bank" if updated else "not paid yet"


def _session_failed(session: dict[str, Any]) -> str:
    """The bank refused a delayed payment: nothing was credited, so nothing is taken back; the buyer sees it."""
    session_id = str(session.get("id") or "")
    updated = Purchase.objects.filter(
        checkout_session_id=session_id, status__in=[Status.PENDING, Status.PROCESSING]
    ).update(status=Status.FAILED)
    if updated:
        return "payment failed"
    if Purchase.objects.filter(checkout_session_id=session_id, status__in=PAID_STATUSES).exists():
        # Never sent after a success by Stripe: keep the credits (the money's fate is Stripe's to tell), tell staff.
        _alert(OperatorAlert.Kind.PAYMENT_MISMATCH,
               f"Checkout Session {session_id} was reported failed after it was paid: check it in Stripe.")
        return "failed after paid: staff alerted"
    return "duplicate"


def _reversal(*, charge_id: str, payment_intent: str, amount: int, amount_refunded: int, in_full: bool,
              dispute: bool) -> str:
    """Record what one refund or dispute event says about its charge. The row only ever learns more (a larger
    running refund total, full, disputed), so stale and repeated events change nothing; when it learns something it
    is marked unapplied and payments_reconcile applies it."""
    if not charge_id:
        return "ignored: no charge"
    kind = PaymentReversal.Kind.DISPUTE if dispute else PaymentReversal.Kind.REFUND
    try:
        with transaction.atomic():
            PaymentReversal.objects.create(
                charge_id=charge_id, payment_intent_id=payment_intent, kind=kind, amount=amount,
                amount_refunded=amount_refunded, refunded_in_full=in_full,
            )
        return "reversal recorded"
    except IntegrityError:
        pass  # this charge has its row already: update it below
    with transaction.atomic():
        reversal = PaymentReversal.objects.select_for_update().get(charge_id=charge_id)
        fields: list[str] = []
        if amount_refunded > reversal.amount_refunded:
            reversal.amount_refunded = amount_refunded
            fields.append("amount_refunded")
        if in_full and not reversal.refunded_in_full:
            reversal.refunded_in_full = True
            fields.append("refunded_in_full")
        if dispute and reversal.kind != kind:
            reversal.kind = kind
            fields.append("kind")
        if amount and not reversal.amount:
            reversal.amount = amount
            fields.append("amount")
        if payment_intent and not reversal.payment_intent_id:
            reversal.payment_intent_id = payment_intent
            fields.append("payment_intent_id")
        if not fields:
            return "duplicate reversal"
        reversal.applied_at = None
        reversal.save(update_fields=[*fields, "applied_at"])
    return "reversal updated"


def payments_reconcile() -> int:
    """Apply every recorded reversal whose purchase is now paid. Safe to run any time, any number of times (each
    webhook call and the beat run it): a reversal that raced its payment's event is applied here."""
    applied = 0
    pending = PaymentReversal.objects.filter(applied_at__isnull=True).exclude(payment_intent_id="")
    for reversal_id in pending.values_list("pk", flat=True)[:200]:
        if _apply_reversal(reversal_id):
            applied += 1
    return applied


def reversal_share(*, credits: int, paid_minor: int, refunded_minor: int, whole: bool) -> int:
    """The credits a refund of `refunded_minor` of `paid_minor` stands for: floor(credits * refunded / paid), so
    rounding favours the buyer; all of them when `whole` (fully refunded or disputed) or nothing was paid."""
    if whole or paid_minor <= 0 or refunded_minor >= paid_minor:
        return credits
    return credits * refunded_minor // paid_minor


def _apply_reversal(reversal_id: int) -> bool:
    # Lock order: the reversal, its purchase, then (in credits_claw_back) the balance; a payment's event locks the
    # purchase then the balance, so the two never wait on each other in a cycle.
    with transaction.atomic():
        reversal = PaymentReversal.objects.select_for_update().filter(pk=reversal_id, applied_at__isnull=True).first()
        if reversal is None:
            return False
        purchase = (
            Purchase.objects.select_for_update()
            .filter(payment_intent_id=reversal.payment_intent_id, status__in=PAID_STATUSES).first()
        )
        if purchase is None:
            return False  # its payment has not landed yet
        disputed = reversal.kind == PaymentReversal.Kind.DISPUTE
        paid = reversal.amount or purchase.amount_minor
        whole = disputed or reversal.refunded_in_full or reversal.amount_refunded >= paid
        share = reversal_share(credits=purchase.credits, paid_minor=paid, refunded_minor=reversal.amount_refunded,
                               whole=whole)
        # Credits only ever go back one way: a step takes what the newest facts call for beyond what is taken.
        step = max(share - purchase.credits_reversed, 0)
        money = purchase.amount_minor if whole else min(reversal.amount_refunded, purchase.amount_minor)
        newly_disputed = disputed and purchase.status != Status.DISPUTED
        status = Status.DISPUTED if disputed else Status.REFUNDED if whole else Status.PARTLY_REFUNDED
        if status == Status.PARTLY_REFUNDED and not reversal.amount_refunded:
            status = Status(purchase.status)  # an event that refunds nothing says nothing new
        what = "dispute" if disputed else "refund" if whole else "partial refund"
        now = timezone.now()
        if step or status != purchase.status or money > purchase.amount_reversed_minor:
            purchase.status = status
            purchase.credits_reversed += step
            purchase.amount_reversed_minor = max(purchase.amount_reversed_minor, money)
            purchase.reversed_at = now
            purchase.save(update_fields=["status", "credits_reversed", "amount_reversed_minor", "reversed_at"])
        reversal.purchase = purchase
        reversal.applied_at = now
        if step and purchase.user_id is not None:
            taken = credits_claw_back(
                user_id=purchase.user_id, credits=step,
                external_id=f"{reversal.charge_id}:{purchase.credits_reversed}",
                reason=f"{'Disputed' if disputed else 'Refunded' if whole else 'Partly refunded'}: "
                       f"{purchase.pack_name}",
            )
            reversal.credits_taken += taken.taken
            reversal.credits_owed += taken.owed
            if taken.owed:
                _alert(OperatorAlert.Kind.ACCOUNT_HELD,
                       f"User {purchase.user_id}: a {what} of {purchase.pack_name} took back "
                       f"{taken.taken} credits; {taken.owed} were already spent, so new edits are held until "
                       "they are paid.")
        if newly_disputed:
            _alert(OperatorAlert.Kind.PAYMENT_REVERSED,
                   f"Charge {reversal.charge_id} ({purchase.pack_name}, user {purchase.user_id}) is disputed: "
                   "answer the dispute in Stripe.")
        reversal.save(update_fields=["purchase", "applied_at", "credits_taken", "credits_owed"])
    return True
