"""Stripe over the official `stripe` SDK: create a Checkout Session, verify a webhook's signature.

Only these two calls. `STRIPE_API_BASE` points the SDK at another address (devservices/stripe.py, the local
stand-in tests and `make run` use); production leaves it empty and talks to Stripe. Knows nothing of purchases or
credits: it returns plain values.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings

from editor.models import ZERO_DECIMAL_CURRENCIES


class StripeUnavailable(Exception):
    """Stripe (or the stand-in) could not be reached or refused the call."""


class BadSignature(Exception):
    """A webhook whose Stripe-Signature does not verify (or is too old): not from Stripe."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def _client() -> stripe.StripeClient:
    # One client per call, configured from settings: no module-level state shared between tests or threads. The
    # base address is the per-client form of `stripe.api_base`.
    base = settings.STRIPE_API_BASE or None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
    )


def minor_units(amount: Any, currency: str) -> int:
    """4.99 EUR -> 499; 500 JPY -> 500."""
    factor = 1 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 100
    return int((amount * factor).to_integral_value())


def checkout_session_create(
    *,
    purchase_id: str,
    user_ref: str,
    name: str,
    amount_minor: int,
    currency: str,
    success_url: str,
    cancel_url: str,
) -> CheckoutSession:
    """A hosted Checkout page for one pack. The purchase id is the idempotency key, so a retried call (the SDK
    retries network errors) makes one session, never two."""
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{
            "quantity": 1,
            "price_data": {"currency": currency, "unit_amount": amount_minor, "product_data": {"name": name}},
        }],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": user_ref,
        "metadata": {"purchase_id": purchase_id},
        "payment_intent_data": {"metadata": {"purchase_id": purchase_id}},
    }
    try:
        session = _client().v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]  # the SDK's TypedDicts; the values above are Stripe's documented ones
            options={"idempotency_key": f"checkout-{purchase_id}"},
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable(type(exc).__name__) from exc
    if not session.id or not session.url:
        raise StripeUnavailable("the Checkout Session has no id or url")
    return CheckoutSession(id=str(session.id), url=str(session.url))


def webhook_event(*, payload: bytes, signature: str) -> dict[str, Any]:
    """The event as plain JSON values, once its signature verified against STRIPE_WEBHOOK_SECRET."""
    try:
        stripe.Webhook.construct_event(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise BadSignature(str(exc)[:200]) from exc
    event = json.loads(payload)
    if not isinstance(event, dict):
        raise BadSignature("the payload is not an event")
    return event
