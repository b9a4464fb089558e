"""Buying credits: start a Checkout, the page Stripe sends the buyer back to, and Stripe's webhook."""
from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from editor.errors import Refused
from editor.models import Purchase
from editor.selectors.payments import purchase_for_owner
from editor.services.payments import WebhookRejected, checkout_start, webhook_receive
from editor.types import AuthedRequest

log = logging.getLogger(__name__)


@login_required
@require_POST
def buy(request: AuthedRequest) -> HttpResponse:
    done = request.build_absolute_uri(reverse("editor:purchase_done"))
    try:
        url = checkout_start(
            user=request.user, pack_id=request.POST.get("pack"),
            # Stripe fills in the session id; the page only uses it to find the buyer's own purchase.
            success_url=f"{done}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=request.build_absolute_uri(reverse("editor:credits")) + "?cancelled=1",
        )
    except Refused as exc:
        messages.error(request, exc.message)
        return redirect("editor:credits")
    return redirect(url)


def _purchase_or_404(request: AuthedRequest, session_id: str | None) -> Purchase:
    purchase = purchase_for_owner(user=request.user, session_id=session_id or "")
    if purchase is None:
        raise Http404("No such purchase")
    return purchase


@login_required
@require_GET
def purchase_done(request: AuthedRequest) -> HttpResponse:
    """Where Checkout sends the buyer back. Arriving here proves nothing: the status shown is the one the signed
    webhook wrote, and until it lands the page says the credits are on the way (and asks again)."""
    purchase = _purchase_or_404(request, request.GET.get("session_id"))
    return render(request, "editor/purchase_done.html", {"purchase": purchase})


@login_required
@require_GET
def purchase_status(request: AuthedRequest) -> HttpResponse:
    purchase = _purchase_or_404(request, request.GET.get("session_id"))
    response = render(request, "editor/_purchase_status.html", {"purchase": purchase})
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt  # Stripe cannot send our CSRF token: the signature is the proof instead
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        outcome = webhook_receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except WebhookRejected as exc:
        log.warning("stripe webhook refused: %s", exc)
        return HttpResponse("bad signature", status=400, content_type="text/plain")
    return HttpResponse(outcome, content_type="text/plain")
