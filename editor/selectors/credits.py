"""Reads. Every function takes the acting user and scopes its query to them."""
from __future__ import annotations

from typing import TYPE_CHECKING

from editor.models import CreditAccount

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def credits_balance(*, user: AbstractBaseUser) -> int:
    account = CreditAccount.objects.filter(user_id=user.pk).only("balance").first()
    return account.balance if account else 0
