"""Reads about edit jobs: live progress for the site and in-flight counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.db import connections
from django.db.models import Field
from django.utils import timezone

from editor.models import CreditEntry, EditJob
from editor.progress import (
    FAILED_PHASES,
    FRACTION_SAVING,
    Phase,
    late_reason,
    phase_of,
    wait_fraction,
)
from editor.provider_time import expected_wait_seconds
from editor.selectors.gallery import parse_uuid

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

State = EditJob.State


def edit_jobs_in_flight_count(*, user: AbstractBaseUser) -> int:
    return EditJob.objects.filter(owner_id=user.pk, state__in=EditJob.IN_FLIGHT_STATES).count()


def edit_jobs_in_flight_total() -> int:
    """Staff/bench: all jobs not yet final."""
    return EditJob.objects.filter(state__in=EditJob.IN_FLIGHT_STATES).count()


def edit_job_phase_for_owner(*, owner_id: int, job_id: Any) -> Phase | None:
    """The job's phase from one narrow query (no photo, no ledger), or None when `owner_id` does not own it.
    The live panel's poll asks this every second and renders the panel only when the phase changed. Plain SQL:
    building and compiling the ORM query cost five times the round trip (bench/bench_load.py's CPU figures)."""
    parsed = parse_uuid(job_id)
    if parsed is None:
        return None
    connection = connections[EditJob.objects.db]
    # The key as the backend stores it (SQLite keeps a UUID as 32 hex characters, PostgreSQL as uuid).
    key = cast("Field[Any, Any]", EditJob._meta.pk).get_db_prep_value(parsed, connection)
    with connection.cursor() as cursor:
        cursor.execute(_PHASE_SQL, [key, owner_id])
        row = cursor.fetchone()
    return phase_of(state=row[0], provider_status=row[1]) if row else None


def _phase_sql() -> str:
    meta = EditJob._meta
    names = ("id", "owner", "state", "provider_status")
    column = {name: cast("Field[Any, Any]", meta.get_field(name)).column for name in names}
    return (f'SELECT "{column["state"]}", "{column["provider_status"]}" FROM "{meta.db_table}" '  # noqa: S608
            f'WHERE "{column["id"]}" = %s AND "{column["owner"]}" = %s')


_PHASE_SQL = _phase_sql()  # names from the model, values always parameters


def edit_job_composing_for_owner(*, user: AbstractBaseUser, job_id: Any) -> bool:
    """Is the viewer's finished edit still being composed at full resolution (one narrow query)?"""
    parsed = parse_uuid(job_id)
    if parsed is None:
        return False
    return EditJob.objects.filter(
        owner_id=user.pk, pk=parsed, state=EditJob.State.SUCCEEDED, compose_state=EditJob.Compose.PENDING
    ).exists()


def edit_job_progress(*, job: EditJob) -> dict[str, Any]:
    """Live status for the page: phase (queued/processing/saving/done/failed/expired), an honest time estimate and
    whether the person was charged. The caller has already checked the job belongs to the viewer.

    The estimate is the whole wait (submit to stored) of our own recent edits with this provider
    (provider_time.expected_wait_seconds), so queueing, submit, polling and saving count. Once it has passed, the
    page says so plainly, with the reason when we know it (edits ahead in the queue, the provider slow or not
    answering)."""
    now = timezone.now()
    phase = phase_of(state=job.state, provider_status=job.provider_status)
    expected = expected_wait_seconds()
    end = job.finished_at or now
    elapsed = max(0.0, (end - job.created_at).total_seconds())
    running_for = max(0.0, (end - (job.submitted_at or job.created_at)).total_seconds())
    running = phase in (Phase.QUEUED, Phase.PROCESSING)
    if phase == Phase.DONE:
        fraction = 1.0
    elif phase in FAILED_PHASES:
        fraction = 0.0
    elif phase == Phase.SAVING:
        fraction = max(FRACTION_SAVING, wait_fraction(elapsed_seconds=elapsed, expected_seconds=expected))
    else:
        # static/js/job.js advances the bar between polls with this same estimate (the poll answers 204 while the
        # phase is unchanged).
        fraction = wait_fraction(elapsed_seconds=elapsed, expected_seconds=expected)
    reason = ""
    if running:
        # Asked when the panel is rendered (a phase change), so the note is ready when job.js shows it.
        ahead = 0
        if phase == Phase.QUEUED:
            ahead = EditJob.objects.filter(
                state__in=EditJob.IN_FLIGHT_STATES, created_at__lt=job.created_at
            ).exclude(pk=job.pk).count()
        errors = job.poll_errors or (job.submit_attempts > 1 and job.state == State.CREATED)
        reason = late_reason(phase=phase, edits_ahead=ahead, provider_errors=int(errors))
    not_charged = (
        phase in FAILED_PHASES
        and CreditEntry.objects.filter(job_id=job.pk, kind=CreditEntry.Kind.REFUND).exists()
    )
    return {
        "id": str(job.id),
        "state": job.state,
        "phase": phase,
        "final": job.is_final,
        "expected_seconds": round(expected, 1),
        # What the page says: whole seconds, never "about 0 s".
        "expected_display": max(1, round(expected)),
        "elapsed_seconds": round(elapsed, 1),
        "running_seconds": round(running_for, 1),
        # The bar follows the whole wait (job.js keeps it moving); saving holds still.
        "estimating": running and expected > 0,
        "late": running and elapsed > expected,
        "late_reason": reason,
        "remaining_seconds": round(max(0.0, expected - elapsed), 1) if not job.is_final else 0.0,
        "fraction": round(fraction, 3),
        "not_charged": not_charged,
        "error": job.error_detail if phase in FAILED_PHASES else "",
    }
