"""Account pages beside allauth's: resend the verification email."""
from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from editor.services.accounts import verification_email_resend
from editor.types import HttpRequest


@require_http_methods(["GET", "POST"])
def resend_verification(request: HttpRequest) -> HttpResponse:
    email = (request.POST.get("email") or request.GET.get("email") or "")[:254]
    sent = False
    if request.method == "POST" and email.strip():
        verification_email_resend(request=request, email=email)
        sent = True  # the same answer whether or not an email went out: the page never reveals an account
    return render(request, "account/resend_verification.html", {"sent": sent, "resend_email": email})
