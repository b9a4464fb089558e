"""Simple pages. Views stay thin: they read through selectors and write through services."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from editor.selectors.credits import credits_balance
from editor.types import AuthedRequest, HttpRequest


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "editor/home.html")


@login_required
@require_GET
def profile(request: AuthedRequest) -> HttpResponse:
    return render(request, "editor/profile.html", {"balance": credits_balance(user=request.user)})
