"""The allauth adapter: how accounts behave beyond allauth's settings."""
from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import LoginForm, SignupForm
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth ships no type hints
    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys the per-account failed-login budget on the address alone, so anyone who knows an email
        # could lock its owner out, again and again. Keyed on the address and the client IP (as the rate limits
        # see it, behind the proxy too), failures from one place spend only that place's budget; the per-IP
        # limit still stops one client spraying many accounts.
        account_key = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{account_key}:{self.get_client_ip(request)}"


class SiteLoginForm(LoginForm):  # type: ignore[misc]
    """allauth's login form in the site's voice (sentence case, no "Remember Me")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "remember" in self.fields:
            self.fields["remember"].label = "Keep me logged in on this device"


class SiteSignupForm(SignupForm):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "password2" in self.fields:
            self.fields["password2"].label = "Password (again)"
