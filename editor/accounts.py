"""The allauth adapter: how accounts behave beyond allauth's settings."""
from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth ships no type hints
    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys the per-account failed-login budget on the address alone, so anyone who knows an email
        # could lock its owner out, again and again. Keyed on the address and the client IP (as the rate limits
        # see it, behind the proxy too), failures from one place spend only that place's budget; the per-IP
        # limit still stops one client spraying many accounts.
        account_key = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{account_key}:{self.get_client_ip(request)}"
