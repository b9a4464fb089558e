"""'This result is wrong': a person reports a finished edit; it is refunded once, within a monthly allowance.

The report and the refund are one transaction under the owner's ledger lock (credits.py locks the balance row),
so concurrent clicks are serialised: the first records the report (one per edit: a one-to-one in the database)
and refunds; the others find the report and change nothing. The ledger's own constraint (one refund per job) is
the second line: an edit that was refunded already is never refunded again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from editor.errors import Refused
from editor.models import CreditEntry, EditJob, WrongResultReport
from editor.selectors.reports import wrong_refunds_left
from editor.services.credits import credits_lock_account, credits_refund_for_job
from editor.services.edit_commands import NOT_FOUND

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

REFUND_REASON = "Result reported as wrong: refunded"


class WrongResultRefused(Refused):
    """The report cannot be taken (not the person's edit, not finished); the message is fit to show."""


@dataclass(frozen=True)
class WrongResultOutcome:
    report: WrongResultReport
    refunded_credits: int  # 0: recorded without a refund (allowance used, or never charged)
    created: bool  # False: this edit was reported before, nothing changed
    allowance_left: int


def edit_job_report_wrong(
    *, user: AbstractBaseUser, job: EditJob, reason: str, detail: str = ""
) -> WrongResultOutcome:
    """Record that the user's finished edit is wrong and refund it if the month's allowance allows."""
    if job.owner_id != user.pk:
        raise WrongResultRefused(NOT_FOUND)
    if job.state != EditJob.State.SUCCEEDED:
        raise WrongResultRefused("Only a finished edit can be reported as wrong; a failed one was not charged.")
    if reason not in WrongResultReport.Reason.values:
        raise WrongResultRefused("Please say what is wrong with the result.", field="reason")
    detail = " ".join(detail.split())[:500]
    try:
        with transaction.atomic():
            credits_lock_account(user_id=job.owner_id)  # serialises this user's reports and ledger writes
            if not EditJob.objects.filter(pk=job.pk, owner_id=job.owner_id, state=EditJob.State.SUCCEEDED).exists():
                raise WrongResultRefused(NOT_FOUND)  # deleted meanwhile
            existing = WrongResultReport.objects.filter(job_id=job.pk).first()
            if existing is not None:
                return WrongResultOutcome(existing, 0, False, wrong_refunds_left(user_id=job.owner_id))
            left = wrong_refunds_left(user_id=job.owner_id)
            refund: CreditEntry | None = None
            if left > 0:
                refund = credits_refund_for_job(job=job, reason=REFUND_REASON)
            report = WrongResultReport.objects.create(
                job=job, user_id=job.owner_id, reason=reason, detail=detail, prompt=job.prompt,
                clothing=job.clothing, refunded=refund is not None,
            )
            return WrongResultOutcome(
                report, refund.amount if refund else 0, True, left - (1 if refund else 0)
            )
    except IntegrityError:
        # A racing report won (its one-to-one row exists): this click changes nothing.
        existing = WrongResultReport.objects.get(job_id=job.pk)
        return WrongResultOutcome(existing, 0, False, wrong_refunds_left(user_id=job.owner_id))
