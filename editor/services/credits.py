"""The credits ledger: append-only entries plus a balance row kept equal to their sum.

Every change locks the user's balance row (SELECT ... FOR UPDATE) and appends one entry in the same
transaction, so concurrent submits can never overspend and the balance never drifts from the ledger.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Sum

from editor import events
from editor.errors import Refused
from editor.models import CreditAccount, CreditEntry, EditJob

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class CreditsError(Refused):
    """A credits operation that cannot be done; the message is fit to show to a person."""


class InsufficientCredits(CreditsError):
    pass


class AlreadyApplied(CreditsError):
    """The one-time token was used already: the same form posted twice moves credits once."""


# The sign-up bonus's one-time token is derived from the user, so it is granted once per account however
# many addresses the account confirms.
_STARTER_NAMESPACE = uuid.UUID("5b0c1d7e-3f0a-4c38-9d55-6c2e1a7f0b11")


def _locked_account(*, user_id: int) -> CreditAccount:
    CreditAccount.objects.get_or_create(user_id=user_id)
    return CreditAccount.objects.select_for_update().get(user_id=user_id)


def credits_lock_account(*, user_id: int) -> CreditAccount:
    """Lock the user's balance row until the surrounding transaction ends: every ledger write of this user waits,
    so a command that checks and then writes (a monthly allowance) cannot race itself."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_lock_account must run inside a transaction")
    return _locked_account(user_id=user_id)


def _append(
    *,
    account: CreditAccount,
    kind: str,
    amount: int,
    reason: str,
    job: EditJob | None = None,
    created_by_id: int | None = None,
    idempotency_key: uuid.UUID | None = None,
    external_id: str = "",
) -> CreditEntry:
    if idempotency_key is not None and CreditEntry.objects.filter(
        user_id=account.user_id, idempotency_key=idempotency_key
    ).exists():
        # Checked under the account lock, so two posts of one form cannot both pass; the unique constraint backs it.
        raise AlreadyApplied("This form was applied already: nothing was changed.")
    new_balance = account.balance + amount
    if new_balance < 0:
        raise InsufficientCredits(
            f"Not enough credits: this needs {-amount} and the balance is {account.balance}."
        )
    # A held account (credits owed from a reversed payment) pays its debt from whatever comes in first; the
    # balance and the debt change in one UPDATE, so the "held accounts have no balance" constraint always holds.
    settled = min(account.owed, new_balance) if amount > 0 else 0
    account.balance = new_balance - settled
    account.owed -= settled
    fields = ["balance", "owed", "updated_at"]
    if amount > 0 and account.balance > 0 and account.empty_notice_sent:
        account.empty_notice_sent = False  # the next time it runs out, tell them again
        fields.append("empty_notice_sent")
    account.save(update_fields=fields)
    entry = CreditEntry.objects.create(
        user_id=account.user_id,
        kind=kind,
        amount=amount,
        balance_after=new_balance,
        job=job,
        reason=reason[:255],
        created_by_id=created_by_id,
        idempotency_key=idempotency_key,
        external_id=external_id,
    )
    if settled:
        CreditEntry.objects.create(
            user_id=account.user_id,
            kind=CreditEntry.Kind.CLAWBACK,
            amount=-settled,
            balance_after=account.balance,
            reason=f"Pays {settled} credits owed from a reversed payment",
        )
    return entry


def credit_account_ensure(*, user: AbstractBaseUser) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(user_id=user.pk)
    return account


@transaction.atomic
def credits_grant(
    *,
    user: AbstractBaseUser,
    amount: int,
    reason: str,
    created_by: AbstractBaseUser | None = None,
    idempotency_key: uuid.UUID | None = None,
) -> CreditEntry:
    """Add credits (sign-up bonus, a staff grant). A reason is required for the audit trail; a given
    idempotency key grants at most once per user (AlreadyApplied)."""
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
        idempotency_key=idempotency_key,
    )


@transaction.atomic
def credits_adjust(
    *,
    user: AbstractBaseUser,
    amount: int,
    reason: str,
    created_by: AbstractBaseUser,
    idempotency_key: uuid.UUID | None = None,
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
        idempotency_key=idempotency_key,
    )


def credits_charge_for_job(*, job: EditJob) -> CreditEntry:
    """Reserve the job's cost. Must run inside the transaction that creates the job."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_charge_for_job must run inside the job's creation transaction")
    account = _locked_account(user_id=job.owner_id)
    before = account.balance
    entry = _append(
        account=account,
        kind=CreditEntry.Kind.CHARGE,
        amount=-job.cost_credits,
        reason=f"Edit: {job.prompt[:200]}",
        job=job,
    )
    events.balance_lowered(user_id=job.owner_id, before=before, after=entry.balance_after)
    return entry


@transaction.atomic
def credits_refund_for_job(
    *, job: EditJob, reason: str, created_by: AbstractBaseUser | None = None
) -> CreditEntry | None:
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
                account=account, kind=CreditEntry.Kind.REFUND, amount=-charge.amount, reason=reason, job=job,
                created_by_id=created_by.pk if created_by else None,
            )
    except IntegrityError:  # the unique constraint is the last line of defence
        account.refresh_from_db()
        return None


def credits_ledger_sum(*, user_id: int) -> int:
    return CreditEntry.objects.filter(user_id=user_id).aggregate(total=Sum("amount"))["total"] or 0


# Staff refund only edits that gave the user nothing: a succeeded edit delivered its result.
STAFF_REFUNDABLE_STATES = (EditJob.State.FAILED, EditJob.State.EXPIRED)


def credits_refund_by_staff(*, job: EditJob, staff_user: AbstractBaseUser) -> CreditEntry | None:
    """A staff refund of a failed or expired edit, recorded with who gave it. None if already refunded or
    never charged; CreditsError for an edit that is still running or succeeded."""
    if job.state not in STAFF_REFUNDABLE_STATES:
        raise CreditsError(
            f"Only failed or expired edits are refunded; this one is {job.get_state_display().lower()}. "
            "To give credits for a delivered edit, grant them with a reason."
        )
    return credits_refund_for_job(
        job=job, reason=f"Refunded by staff ({staff_user.get_username()})", created_by=staff_user
    )


def credits_grant_starter(*, user: AbstractBaseUser, amount: int) -> CreditEntry | None:
    """The sign-up bonus, at most once per account (its fixed one-time token); None when the bonus is zero
    or was granted already. Creates the balance row either way."""
    credit_account_ensure(user=user)
    if amount <= 0:
        return None
    try:
        return credits_grant(
            user=user, amount=amount, reason="Welcome credits",
            idempotency_key=uuid.uuid5(_STARTER_NAMESPACE, str(user.pk)),
        )
    except AlreadyApplied:
        return None




@dataclass(frozen=True)
class Clawback:
    taken: int  # credits removed from the balance now
    owed: int  # credits already spent: the account owes them and is held until they are paid


def credits_claw_back(*, user_id: int, credits: int, external_id: str, reason: str) -> Clawback:
    """Take a reversed purchase's credits back: from the balance as far as it goes, the rest owed (the account is
    then held). One clawback per external payment: a second call for the same id takes nothing. Must run inside
    the transaction that records the reversal."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_claw_back must run inside the reversal's transaction")
    if credits <= 0:
        raise CreditsError("A clawback must take a positive number of credits.")
    account = _locked_account(user_id=user_id)
    if CreditEntry.objects.filter(external_id=external_id).exists():
        return Clawback(taken=0, owed=0)
    taken = min(account.balance, credits)
    short = credits - taken
    if short:
        # The owed part first, so the save below never has a positive balance beside a debt.
        account.owed += short
    if taken:
        account.balance -= taken
        CreditEntry.objects.create(
            user_id=user_id, kind=CreditEntry.Kind.CLAWBACK, amount=-taken, balance_after=account.balance,
            reason=reason[:255], external_id=external_id,
        )
    account.save(update_fields=["balance", "owed", "updated_at"])
    return Clawback(taken=taken, owed=short)


def credits_grant_purchase(*, user_id: int, credits: int, external_id: str, reason: str) -> CreditEntry | None:
    """Book a paid Checkout Session: one PURCHASE entry per session id (None when it was booked already). Runs
    inside the transaction that marks the purchase paid."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_grant_purchase must run inside the purchase's transaction")
    account = _locked_account(user_id=user_id)
    if CreditEntry.objects.filter(external_id=external_id).exists():
        return None
    return _append(
        account=account, kind=CreditEntry.Kind.PURCHASE, amount=credits, reason=reason, external_id=external_id
    )


def credits_take_empty_notice(*, user_id: int) -> bool:
    """True exactly once each time the balance reaches zero (and the user wants the email): the caller sends it."""
    return CreditAccount.objects.filter(
        user_id=user_id, balance=0, email_when_empty=True, empty_notice_sent=False
    ).update(empty_notice_sent=True) == 1


def credits_set_empty_email(*, user: AbstractBaseUser, enabled: bool) -> None:
    credit_account_ensure(user=user)
    CreditAccount.objects.filter(user_id=user.pk).update(email_when_empty=enabled)
