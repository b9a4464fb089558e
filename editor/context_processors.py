from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from editor.selectors.credits import credits_balance


def credits(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's balance for the header, read lazily (only pages that show it pay the query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"credit_balance": lambda: credits_balance(user=user)}
