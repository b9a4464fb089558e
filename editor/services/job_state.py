"""The state writer: the only code that writes EditJob rows.

A job's life: CREATED -> SUBMITTED -> SUCCEEDED | FAILED | EXPIRED. Every change to an existing job is ONE
conditional UPDATE (`... WHERE state IN (allowed)`), so two workers can never both move a job, and running any
step twice changes nothing the second time. FAILED and EXPIRED refund the charge in the same transaction (the
credits service makes a second refund impossible).

Who may work on a job at a given moment is decided by a compare-and-swap on `next_poll_at` (`edit_job_claim`):
a task claims the job only if `next_poll_at` still holds the value it read and is due, and pushes it one lease
ahead. A duplicate message (a sweeper re-enqueue, a redelivery) finds the value changed and does nothing, so
poll chains never multiply. A worker killed while holding a claim leaves `next_poll_at` overdue once the lease
ends, and the sweeper hands the job to another worker.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from editor import events, storage
from editor.models import EditJob, Photo
from editor.progress import ProviderStatus
from editor.services.credits import credits_refund_for_job

State = EditJob.State
Compose = EditJob.Compose
# A job's primary key, as a UUID or the string a task carries.
JobId = uuid.UUID | str


def edit_job_create(
    *,
    owner_id: int,
    photo: Photo,
    prompt: str,
    clothing: str,
    cost: int,
    source_job: EditJob | None,
    retry_of: EditJob | None = None,
    notify_by_email: bool = False,
) -> EditJob:
    return EditJob.objects.create(
        owner_id=owner_id,
        photo=photo,
        prompt=prompt,
        clothing=clothing,
        cost_credits=cost,
        source_job=source_job,
        retry_of=retry_of,
        notify_by_email=notify_by_email,
        # Due now: if the queued message is lost, the sweeper submits it after the grace period.
        next_poll_at=timezone.now(),
    )


def edit_job_remove_finished(*, job_id: JobId, owner_id: int) -> bool:
    """Delete the owner's job row, only once it is final (a running job keeps its row)."""
    deleted, _ = EditJob.objects.filter(pk=job_id, owner_id=owner_id, state__in=EditJob.FINAL_STATES).delete()
    return deleted > 0


def _transition(*, job_id: JobId, from_states: tuple[str, ...], to_state: str | None = None, **fields: Any) -> bool:
    """The one way a job changes: a conditional UPDATE that only matches in an allowed state."""
    now = timezone.now()
    values: dict[str, Any] = {"updated_at": now, **fields}
    if to_state is not None:
        values["state"] = to_state
        if to_state in EditJob.FINAL_STATES:
            values.setdefault("finished_at", now)
            values.setdefault("next_poll_at", None)
    return EditJob.objects.filter(pk=job_id, state__in=from_states).update(**values) == 1


def edit_job_claim(job: EditJob, *, states: tuple[str, ...], now: datetime, **fields: Any) -> bool:
    """Compare-and-swap on next_poll_at: take the job for one lease if it is due and nobody changed it.

    `fields` are written in the same UPDATE (the submit step counts its attempt this way)."""
    tolerance = timedelta(seconds=min(0.5, settings.POLL_MIN_INTERVAL_SECONDS / 4))
    if job.next_poll_at is not None and job.next_poll_at > now + tolerance:
        return False  # a duplicate message: the job is scheduled later by someone else
    lease = now + timedelta(seconds=settings.JOB_TASK_LEASE_SECONDS)
    return (
        EditJob.objects.filter(pk=job.pk, state__in=states, next_poll_at=job.next_poll_at).update(
            next_poll_at=lease, updated_at=now, **fields
        )
        == 1
    )


def edit_job_record_submit_retry(*, job_id: JobId, errors: int, retry_in: float, detail: str) -> bool:
    """A CREATED job could not be sent yet: count the error and say when to try again."""
    return _transition(
        job_id=job_id,
        from_states=(State.CREATED,),
        poll_errors=errors,
        next_poll_at=timezone.now() + timedelta(seconds=retry_in),
        error_detail=detail[:2000],
    )


def edit_job_mark_submitted(
    *, job_id: JobId, request_id: str, status_url: str, response_url: str, first_poll_in: float
) -> bool:
    now = timezone.now()
    return _transition(
        job_id=job_id,
        from_states=(State.CREATED,),
        to_state=State.SUBMITTED,
        request_id=request_id,
        status_url=status_url,
        response_url=response_url,
        provider_status=ProviderStatus.QUEUED,
        submitted_at=now,
        next_poll_at=now + timedelta(seconds=first_poll_in),
        poll_errors=0,
        error_code="",
        error_detail="",
    )


def edit_job_record_progress(
    *, job_id: JobId, provider_status: str, next_poll_in: float, errors: int = 0, polled: bool = True
) -> bool:
    """Poll bookkeeping for a SUBMITTED job: the provider's status and when to ask next."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "provider_status": provider_status,
        "next_poll_at": now + timedelta(seconds=next_poll_in),
        "poll_errors": errors,
    }
    if polled:
        fields["poll_count"] = F("poll_count") + 1
        fields["last_polled_at"] = now
    if provider_status == ProviderStatus.PROCESSING:
        fields["processing_at"] = Coalesce(F("processing_at"), now)
    if provider_status == ProviderStatus.COMPLETED:
        fields["provider_completed_at"] = Coalesce(F("provider_completed_at"), now)
        fields["processing_at"] = Coalesce(F("processing_at"), now)
    return _transition(job_id=job_id, from_states=(State.SUBMITTED,), **fields)


def edit_job_record_poll(*, job_id: JobId) -> bool:
    """Count a status call whose answer ends the job (the final transition follows)."""
    return _transition(
        job_id=job_id, from_states=(State.SUBMITTED,), poll_count=F("poll_count") + 1, last_polled_at=timezone.now()
    )


def edit_job_mark_succeeded(
    *,
    job_id: JobId,
    result_name: str,
    thumbnail_name: str,
    metrics: dict[str, Any],
    inference_time: float | None,
    compose: bool = False,
) -> bool:
    """The provider's 512 square is stored: the job is done (and paid for). With `compose` the full-resolution
    result is composed afterwards, without holding the job back."""
    moved = _transition(
        job_id=job_id,
        from_states=(State.SUBMITTED,),
        to_state=State.SUCCEEDED,
        result_image=result_name,
        result_thumbnail=thumbnail_name,
        compose_state=Compose.PENDING if compose else Compose.NONE,
        compose_attempts=0,
        compose_detail="",
        provider_metrics=metrics,
        inference_time=inference_time,
        provider_status=ProviderStatus.COMPLETED,
        provider_completed_at=Coalesce(F("provider_completed_at"), timezone.now()),
    )
    if moved:
        events.edit_finished(job_id=job_id)  # waiting API requests and the owner's webhooks, on commit
    return moved


# ------------------------------------------------------------------------------------------------ full resolution
# A SUCCEEDED job's full-resolution result. The job's state never changes here: a compose that fails leaves the
# paid 512 result in place (compose_state FAILED), it is never refunded nor lost.


def _compose_transition(*, job_id: JobId, **fields: Any) -> bool:
    return (
        EditJob.objects.filter(pk=job_id, state=State.SUCCEEDED, compose_state=Compose.PENDING).update(
            updated_at=timezone.now(), **fields
        )
        == 1
    )


def edit_job_claim_compose(*, job_id: JobId, max_attempts: int) -> bool:
    """Count one compose attempt, if attempts are left (a redelivered or re-swept message counts too)."""
    return (
        EditJob.objects.filter(
            pk=job_id, state=State.SUCCEEDED, compose_state=Compose.PENDING, compose_attempts__lt=max_attempts
        ).update(compose_attempts=F("compose_attempts") + 1, updated_at=timezone.now())
        == 1
    )


def edit_job_record_compose_retry(*, job_id: JobId, detail: str) -> bool:
    return _compose_transition(job_id=job_id, compose_detail=detail[:255])


def edit_job_mark_composed(*, job_id: JobId, full_result_name: str, thumbnail_name: str) -> bool:
    """The whole photo with the edit in it is stored; its thumbnail replaces the square's."""
    return _compose_transition(
        job_id=job_id,
        full_result=full_result_name,
        result_thumbnail=thumbnail_name,
        compose_state=Compose.DONE,
        compose_detail="",
    )


def edit_job_mark_compose_failed(*, job_id: JobId, detail: str) -> bool:
    """Give up on the full-resolution result; the job keeps its 512 result (still SUCCEEDED, still charged)."""
    return _compose_transition(job_id=job_id, compose_state=Compose.FAILED, compose_detail=detail[:255])


def edit_job_mark_failed(*, job_id: JobId, error_code: str, error_detail: str) -> bool:
    return _finish_with_refund(job_id=job_id, to_state=State.FAILED, error_code=error_code, error_detail=error_detail)


def edit_job_mark_expired(*, job_id: JobId, error_detail: str, error_code: str = "expired") -> bool:
    return _finish_with_refund(job_id=job_id, to_state=State.EXPIRED, error_code=error_code, error_detail=error_detail)


def edit_job_mark_cancelled(*, job_id: JobId, error_detail: str) -> bool:
    """The person stopped a running edit (deleting it): FAILED with code `cancelled`, refunded."""
    return _finish_with_refund(job_id=job_id, to_state=State.FAILED, error_code="cancelled", error_detail=error_detail)


def _finish_with_refund(*, job_id: JobId, to_state: str, error_code: str, error_detail: str) -> bool:
    with transaction.atomic():
        moved = _transition(
            job_id=job_id,
            from_states=EditJob.IN_FLIGHT_STATES,
            to_state=to_state,
            error_code=error_code[:64],
            error_detail=error_detail[:2000],
        )
        job = EditJob.objects.filter(pk=job_id).first()
        if job is not None and job.state == to_state:
            # Also when `moved` is False: heals a job whose earlier refund never happened. The credits service
            # refunds at most once per job, so this is safe to repeat.
            reason = "Edit failed: not charged" if to_state == State.FAILED else "Edit expired: not charged"
            credits_refund_for_job(job=job, reason=reason)
            if moved and job.provider_completed_at is not None:
                # It ended after the provider finished: a save may have been interrupted half way. Deleting a
                # missing key is a no-op on S3 and on local storage.
                storage.delete_after_commit(storage.job_file_keys(job.owner_id, job.pk))
        if moved:
            events.edit_finished(job_id=job_id)
    return moved


def edit_jobs_cancel_for_deleted_account(*, owner_id: int) -> int:
    """Fail (and so refund) every edit still running for an account being deleted. Safe to repeat."""
    cancelled = 0
    for job_id in EditJob.objects.filter(owner_id=owner_id, state__in=EditJob.IN_FLIGHT_STATES).values_list(
        "pk", flat=True
    ):
        if edit_job_mark_failed(job_id=job_id, error_code="cancelled", error_detail="The account was deleted."):
            cancelled += 1
    return cancelled


def edit_jobs_remove_for_deleted_account(*, owner_id: int) -> int:
    """Delete every job row of an account being deleted (their files are deleted by the caller)."""
    deleted, _ = EditJob.objects.filter(owner_id=owner_id).delete()
    return deleted
