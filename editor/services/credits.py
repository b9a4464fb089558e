"""The credits ledger: append-only entries plus a balance row kept equal to their sum.

Every change locks the user's balance row (SELECT ... FOR UPDATE) and appends one entry in the same
transaction, so concurrent submits can never overspend and the balance never drifts from the ledger.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Sum

from editor.errors import Refused
from editor.models import CreditAccount, CreditEntry, EditJob

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class CreditsError(Refused):
    """A credits operation that cannot be done; the message is fit to show to a person."""


class InsufficientCredits(CreditsError):
    pass


def _locked_account(*, user_id: int) -> CreditAccount:
    CreditAccount.objects.get_or_create(user_id=user_id)
    return CreditAccount.objects.select_for_update().get(user_id=user_id)


def _append(
    *,
    account: CreditAccount,
    kind: str,
    amount: int,
    reason: str,
    job: EditJob | None = None,
    created_by_id: int | None = None,
) -> CreditEntry:
    new_balance = account.balance + amount
    if new_balance < 0:
        raise InsufficientCredits(
            f"Not enough credits: this needs {-amount} and the balance is {account.balance}."
        )
    account.balance = new_balance
    account.save(update_fields=["balance", "updated_at"])
    return CreditEntry.objects.create(
        user_id=account.user_id,
        kind=kind,
        amount=amount,
        balance_after=new_balance,
        job=job,
        reason=reason[:255],
        created_by_id=created_by_id,
    )


def credit_account_ensure(*, user: AbstractBaseUser) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(user_id=user.pk)
    return account


@transaction.atomic
def credits_grant(
    *, user: AbstractBaseUser, amount: int, reason: str, created_by: AbstractBaseUser | None = None
) -> CreditEntry:
    """Add credits (sign-up bonus, a staff grant). A reason is required for the audit trail."""
    if amount <= 0:
        raise CreditsError("A grant must add a positive number of credits.")
    if not reason.strip():
        raise CreditsError("A grant needs a reason.")
    account = _locked_account(user_id=user.pk)
    return _append(
        account=account,
        kind=CreditEntry.Kind.GRANT,
        amount=amount,
        reason=reason,
        created_by_id=created_by.pk if created_by else None,
    )


@transaction.atomic
def credits_adjust(
    *, user: AbstractBaseUser, amount: int, reason: str, created_by: AbstractBaseUser
) -> CreditEntry:
    """A staff correction of either sign; it may not take the balance below zero."""
    if amount == 0:
        raise CreditsError("An adjustment must change the balance.")
    if not reason.strip():
        raise CreditsError("An adjustment needs a reason.")
    account = _locked_account(user_id=user.pk)
    return _append(
        account=account,
        kind=CreditEntry.Kind.ADJUST,
        amount=amount,
        reason=reason,
        created_by_id=created_by.pk,
    )


def credits_charge_for_job(*, job: EditJob) -> CreditEntry:
    """Reserve the job's cost. Must run inside the transaction that creates the job."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_charge_for_job must run inside the job's creation transaction")
    account = _locked_account(user_id=job.owner_id)
    return _append(
        account=account,
        kind=CreditEntry.Kind.CHARGE,
        amount=-job.cost_credits,
        reason=f"Edit: {job.prompt[:200]}",
        job=job,
    )


@transaction.atomic
def credits_refund_for_job(*, job: EditJob, reason: str) -> CreditEntry | None:
    """Give a failed or expired job's charge back, exactly once. Returns None if already refunded
    or never charged, so callers may run it any number of times."""
    account = _locked_account(user_id=job.owner_id)
    # The account lock serialises this user's ledger writes, so the check below cannot race.
    charge = CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.CHARGE).first()
    if charge is None or CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).exists():
        return None
    try:
        with transaction.atomic():
            return _append(
                account=account, kind=CreditEntry.Kind.REFUND, amount=-charge.amount, reason=reason, job=job
            )
    except IntegrityError:  # the unique constraint is the last line of defence
        account.refresh_from_db()
        return None


def credits_ledger_sum(*, user_id: int) -> int:
    return CreditEntry.objects.filter(user_id=user_id).aggregate(total=Sum("amount"))["total"] or 0


def credits_grant_starter(*, user: AbstractBaseUser, amount: int) -> CreditEntry | None:
    """The sign-up bonus; creates the balance row even when the bonus is zero."""
    credit_account_ensure(user=user)
    if amount <= 0:
        return None
    return credits_grant(user=user, amount=amount, reason="Welcome credits")


