from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from editor.selectors.credits import credits_balance


def credits(request: HttpRequest) -> dict[str, Any]:
    """The site's name (titles, header), the prices every page may quote (home, sign-up), and the signed-in
    user's balance for the header, read lazily (only pages that show it pay the query)."""
    prices: dict[str, Any] = {"starter_credits": settings.STARTER_CREDITS, "edit_cost": settings.EDIT_COST_CREDITS,
                              "site_name": settings.SITE_NAME}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return prices
    return {**prices, "credit_balance": lambda: credits_balance(user=user)}
