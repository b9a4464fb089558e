"""Reads for buying credits: what is on sale, a user's purchases (receipts)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from editor.models import CreditAccount, CreditPack, DataExport, Purchase

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import QuerySet


def credit_packs_on_sale() -> list[CreditPack]:
    return list(CreditPack.objects.filter(active=True))


def purchase_for_owner(*, user: AbstractBaseUser, session_id: str) -> Purchase | None:
    if not session_id:
        return None
    return Purchase.objects.filter(user_id=user.pk, checkout_session_id=session_id).first()


def receipts(*, user: AbstractBaseUser) -> QuerySet[Purchase]:
    """Every purchase past Checkout, newest first: paid (also those refunded or disputed later), and those paid by a
    method the bank confirms later, while it is processing and when it failed (so the buyer sees it)."""
    return Purchase.objects.filter(user_id=user.pk).exclude(status=Purchase.Status.PENDING)


def credit_account_for(*, user: AbstractBaseUser) -> CreditAccount | None:
    return CreditAccount.objects.filter(user_id=user.pk).first()


def data_exports_for(*, user: AbstractBaseUser) -> list[DataExport]:
    return list(DataExport.objects.filter(user_id=user.pk)[:5])
