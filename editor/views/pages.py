"""Simple pages. Views stay thin: they read through selectors and write through services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from editor.selectors.credits import credits_balance
from editor.selectors.payments import credit_account_for, data_exports_for
from editor.services.credits import credits_set_empty_email
from editor.types import AuthedRequest, HttpRequest


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "editor/home.html")


@login_required
@require_GET
def profile(request: AuthedRequest) -> HttpResponse:
    account = credit_account_for(user=request.user)
    return render(request, "editor/profile.html", {
        "balance": credits_balance(user=request.user),
        "email_when_empty": account.email_when_empty if account else True,
        "exports": data_exports_for(user=request.user),
    })


@login_required
@require_POST
def profile_credit_email(request: AuthedRequest) -> HttpResponse:
    enabled = request.POST.get("email_when_empty") == "on"
    credits_set_empty_email(user=request.user, enabled=enabled)
    messages.success(request, "We will email you when your credits run out." if enabled
                     else "We will not email you when your credits run out.")
    return redirect("editor:profile")
