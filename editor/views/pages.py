"""Simple pages. Views stay thin: they read through selectors and write through services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from editor.home_examples import BEFORE, EXAMPLES, FOLDER
from editor.selectors.credits import credits_balance
from editor.selectors.payments import credit_account_for, data_exports_for
from editor.services.credits import credits_set_empty_email
from editor.services.notifications import preferences_for, preferences_set_email_when_ready
from editor.types import AuthedRequest, HttpRequest


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "editor/home.html", {
        "before_image": f"{FOLDER}/{BEFORE}",
        "examples": [{"image": f"{FOLDER}/{e.file}", "prompt": e.prompt, "clothing": e.clothing} for e in EXAMPLES],
    })


@login_required
@require_GET
def profile(request: AuthedRequest) -> HttpResponse:
    account = credit_account_for(user=request.user)
    return render(request, "editor/profile.html", {
        "balance": credits_balance(user=request.user),
        "email_when_empty": account.email_when_empty if account else True,
        "exports": data_exports_for(user=request.user),
        "preferences": preferences_for(user_id=request.user.pk),
    })


@login_required
@require_POST
def profile_credit_email(request: AuthedRequest) -> HttpResponse:
    enabled = request.POST.get("email_when_empty") == "on"
    credits_set_empty_email(user=request.user, enabled=enabled)
    messages.success(request, "We will email you when your credits run out." if enabled
                     else "We will not email you when your credits run out.")
    return redirect("editor:profile")


@login_required
@require_POST
def profile_ready_email(request: AuthedRequest) -> HttpResponse:
    """The default of a new edit's "email me when it is ready"."""
    enabled = request.POST.get("email_when_ready") == "on"
    preferences_set_email_when_ready(user_id=request.user.pk, enabled=enabled)
    messages.success(request, "Saved: new edits will " + ("" if enabled else "not ") + "email you when ready.")
    return redirect("editor:profile")
