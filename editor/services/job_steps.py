"""Worker steps for edit jobs: submit, poll, finish, and the sweeper. Called only by editor/tasks.py.

Each step does one round trip with the provider, records the outcome through the state writer
(editor/services/job_state.py) and returns the `NextStep` the task must enqueue. Steps never sleep, never import
Celery and never import the commands or the tasks: the flow runs one way (command -> task -> step -> state writer).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from editor import images, provenance, storage
from editor.integrations import fashion_ai
from editor.integrations.fashion_ai import Outcome, ProviderAnswer
from editor.models import EditJob, OperatorAlert, ProviderError
from editor.polling import PollPolicy, backoff_delay, next_poll_delay, webhook_fallback_delay
from editor.progress import CONTENT_BLOCKED_MESSAGE, ERROR_CONTENT_BLOCKED, ERROR_REFUSED, ProviderStatus
from editor.provider_time import expected_provider_seconds, poll_policy
from editor.services.job_state import (
    JobId,
    edit_job_claim,
    edit_job_mark_expired,
    edit_job_mark_failed,
    edit_job_mark_submitted,
    edit_job_mark_succeeded,
    edit_job_record_poll,
    edit_job_record_progress,
    edit_job_record_submit_retry,
)

log = logging.getLogger(__name__)

State = EditJob.State


@dataclass(frozen=True)
class NextStep:
    """What the task layer must enqueue next (None: nothing, the job is final or someone else owns it)."""

    task: Literal["submit", "poll", "finish", "compose"] | None = None
    countdown: float = 0.0
    # A provider request to cancel (request_id, status_url): the job ended here while the provider may still run it.
    cancel: tuple[str, str] | None = None


DONE = NextStep()


def _past(moment: datetime | None, seconds: float, now: datetime) -> bool:
    return moment is not None and now >= moment + timedelta(seconds=seconds)


# ================================================================================================ submit


def edit_job_run_submit(*, job_id: str) -> NextStep:
    """Send a CREATED job to the provider and store its handle before anything else."""
    now = timezone.now()
    job = EditJob.objects.select_related("photo").filter(pk=job_id).first()
    if job is None or job.state != State.CREATED:
        return DONE
    if _past(job.created_at, settings.FASHION_AI_JOB_DEADLINE_SECONDS, now):
        edit_job_mark_expired(job_id=job.pk, error_detail="The provider could not be reached in time.")
        return DONE
    if not edit_job_claim(job, states=(State.CREATED,), now=now, submit_attempts=F("submit_attempts") + 1):
        return DONE
    try:
        # Reading the photo (or checking it is in the bucket the provider fetches it from) needs our storage:
        # while it is unreachable the edit must wait, not fail for good (the provider would answer 400).
        photo_stored = storage.exists(str(job.photo.image.name))
        image = storage.provider_image_for(str(job.photo.image.name)) if photo_stored else ""
    except Exception as exc:
        log.warning("job %s: storage unreachable before submit (%s); retrying", job.pk, type(exc).__name__)
        return _retry_submit(job, detail="Waiting for storage to come back.", retry_after=None)
    if not photo_stored:
        edit_job_mark_failed(
            job_id=job.pk, error_code="photo_unreadable", error_detail="The photo is missing from storage."
        )
        return DONE
    ensure_webhook_registered()
    answer = fashion_ai.submit(
        image=image,
        prompt=job.prompt,
        clothing=job.clothing,
        idempotency_key=provider_idempotency_key(job.pk),
        # We give up on it this long after the provider took it: it should not start later than that.
        start_within=float(settings.FASHION_AI_JOB_DEADLINE_SECONDS),
    )
    if answer.ok:
        first = _next_poll_in(age=0.0, eta=None)
        if edit_job_mark_submitted(
            job_id=job.pk,
            request_id=str(answer.body["request_id"]),
            status_url=str(answer.body["status_url"]),
            response_url=str(answer.body["response_url"]),
            first_poll_in=first,
        ):
            return NextStep("poll", first)
        log.warning("job %s left CREATED while being submitted (request %s)", job.pk, answer.body["request_id"])
        # Deleted or expired meanwhile: nobody will collect this request, so the provider need not run it.
        return NextStep(cancel=(str(answer.body["request_id"]), str(answer.body["status_url"])))
    _record_error(answer, job_id=job.pk, call="submit")
    if answer.outcome is Outcome.RETRY or (answer.outcome is Outcome.AMBIGUOUS and settings.FASHION_AI_EXTENSIONS):
        # Unanswered submits are safe to send again only with the idempotency key: the provider returns the job
        # it may already have made.
        return _retry_submit(job, detail=f"Waiting for the provider: {answer.detail}", retry_after=answer.retry_after)
    _fail_for(answer, job_id=job.pk, call="submit")
    return DONE


def provider_idempotency_key(job_id: JobId) -> str:
    """The job's one key at the provider (our extension; empty for Segmind's cloud, which has none)."""
    return f"fashion-studio-edit-{job_id}" if settings.FASHION_AI_EXTENSIONS else ""


def _retry_submit(job: EditJob, *, detail: str, retry_after: float | None) -> NextStep:
    errors = job.poll_errors + 1
    delay = backoff_delay(errors=errors, policy=poll_policy(), retry_after=retry_after)
    edit_job_record_submit_retry(job_id=job.pk, errors=errors, retry_in=delay, detail=detail)
    return NextStep("submit", delay)


# ================================================================================================ poll


def edit_job_run_poll(*, job_id: str) -> NextStep:
    """One status call, then say when to ask again (never sleeps).

    Once the provider says COMPLETED the finish step follows at once, on its own queue (image work is CPU-bound;
    this step runs on the I/O workers' thread pool), so it does not wait behind the polls."""
    now = timezone.now()
    job = EditJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.SUBMITTED:
        return DONE
    if job.provider_status == ProviderStatus.COMPLETED:
        return NextStep("finish")
    if _past(job.submitted_at, settings.FASHION_AI_JOB_DEADLINE_SECONDS, now):
        edit_job_mark_expired(job_id=job.pk, error_detail="The provider did not finish the edit in time.")
        return _cancel_at_provider(job)
    if not edit_job_claim(job, states=(State.SUBMITTED,), now=now):
        return DONE
    answer = fashion_ai.status(**_handle(job))
    policy = poll_policy()
    if answer.ok:
        provider_status = str(answer.body.get("status"))
        if provider_status == ProviderStatus.COMPLETED:
            edit_job_record_progress(job_id=job.pk, provider_status=ProviderStatus.COMPLETED, next_poll_in=0.0)
            return NextStep("finish")
        age = (timezone.now() - (job.submitted_at or job.created_at)).total_seconds()
        delay = _next_poll_in(age=age, eta=_provider_eta(answer))
        edit_job_record_progress(job_id=job.pk, provider_status=provider_status, next_poll_in=delay)
        return NextStep("poll", delay)
    _record_error(answer, job_id=job.pk, call="status")
    if answer.outcome in (Outcome.RETRY, Outcome.UNAUTHORIZED, Outcome.NO_CREDITS):
        # The job itself may be fine at the provider: keep it alive and ask again later (401 alerts an operator).
        if answer.outcome is Outcome.UNAUTHORIZED:
            _alert(OperatorAlert.Kind.PROVIDER_KEY_REJECTED, "The provider rejected our API key (401).", job.pk)
        errors = job.poll_errors + 1
        delay = backoff_delay(errors=errors, policy=policy, retry_after=answer.retry_after)
        edit_job_record_progress(job_id=job.pk, provider_status=job.provider_status, next_poll_in=delay, errors=errors)
        return NextStep("poll", delay)
    edit_job_record_poll(job_id=job.pk)
    _fail_for(answer, job_id=job.pk, call="status")
    return DONE


# ================================================================================================ finish


def edit_job_run_finish(*, job_id: str) -> NextStep:
    """The provider says COMPLETED: fetch the result, store image and thumbnail, then mark SUCCEEDED.

    The job is done (and paid for) with the 512 square stored; when the photo's original is kept, the next step
    composes the full-resolution result on its own queue (editor/services/full_results.py)."""
    now = timezone.now()
    job = EditJob.objects.select_related("photo").filter(pk=job_id).first()
    if job is None or job.state != State.SUBMITTED:
        return DONE
    if job.provider_status != ProviderStatus.COMPLETED:
        return NextStep("poll", 0.0)
    if _past(job.provider_completed_at, settings.FASHION_AI_RETENTION_SECONDS, now):
        edit_job_mark_expired(job_id=job.pk, error_detail="The result was not saved before the provider deleted it.")
        return DONE
    if not edit_job_claim(job, states=(State.SUBMITTED,), now=now):
        return DONE
    policy = poll_policy()
    answer = fashion_ai.result(**_handle(job))
    if not answer.ok:
        _record_error(answer, job_id=job.pk, call="result")
        if answer.outcome is Outcome.RETRY:
            return _retry_finish(job, answer.retry_after, policy)
        _fail_for(answer, job_id=job.pk, call="result")
        return DONE
    output = answer.body.get("output")
    if answer.body.get("status") != ProviderStatus.COMPLETED or not isinstance(output, str):
        edit_job_mark_failed(
            job_id=job.pk, error_code="provider_bad_output", error_detail="The provider returned no image."
        )
        return DONE
    try:
        downloaded = fashion_ai.download_output(output)
    except fashion_ai.DownloadError as exc:
        ProviderError.objects.create(
            kind="network" if exc.retryable else "other", job_id=job.pk, detail=f"download: {exc}"[:500]
        )
        if exc.gone:
            edit_job_mark_expired(
                job_id=job.pk, error_detail="The provider deleted the result before we could save it."
            )
            return DONE
        if exc.retryable:
            return _retry_finish(job, None, policy)
        edit_job_mark_failed(job_id=job.pk, error_code="provider_bad_output", error_detail=str(exc))
        return DONE
    data, extension = images.clean_result(downloaded.image, ai_mark=settings.RESULT_AI_MARK)
    try:
        # Signed after the re-encode, on the bytes exactly as stored (editor/provenance.py says why).
        data = _with_provenance(job, answer.body, data, extension)
        result_name = storage.store_at(storage.job_result_key(job.owner_id, job.pk, extension), data)
        thumb_name = storage.store_at(
            storage.job_thumbnail_key(job.owner_id, job.pk), images.make_thumbnail(downloaded.image)
        )
    except Exception as exc:  # storage down (or signing failed): the provider still holds the result, back off
        log.warning("job %s: could not sign or store the result (%s); retrying", job.pk, type(exc).__name__)
        return _retry_finish(job, None, policy)
    metrics = answer.body.get("metrics") if isinstance(answer.body.get("metrics"), dict) else {}
    inference = metrics.get("inference_time") if metrics else None
    compose = bool(job.photo.original) and job.photo.square_side > 0
    if edit_job_mark_succeeded(
        job_id=job.pk,
        result_name=result_name,
        thumbnail_name=thumb_name,
        metrics=metrics or {},
        inference_time=float(inference) if isinstance(inference, int | float) else None,
        compose=compose,
    ):
        return NextStep("compose") if compose else DONE
    # Someone else moved the job meanwhile. The keys are the job's own, so a SUCCEEDED job already points at
    # these very files; anything else (expired, failed) must not keep them.
    if not EditJob.objects.filter(pk=job.pk, state=State.SUCCEEDED).exists():
        storage.delete_after_commit([result_name, thumb_name])
    return DONE


def _with_provenance(job: EditJob, body: dict[str, Any], data: bytes, extension: str) -> bytes:
    """The result with its signed C2PA manifest (the person's photo as its parent), or as it is when signing is
    off."""
    if not provenance.signing_enabled():
        return data
    photo_name = str(job.photo.image.name)
    parent = storage.read(photo_name)
    edit = body.get("edit") if isinstance(body.get("edit"), dict) else {}
    facts = provenance.EditFacts(
        provider=provenance.provider_label(),
        model=settings.FASHION_AI_MODEL,
        engine=str((edit or {}).get("engine") or settings.FASHION_AI_MODEL),
        clothing=job.clothing,
        when=timezone.now(),
        visible_mark=settings.RESULT_AI_MARK,
    )
    return provenance.sign_result(
        data, extension=extension, parent=parent, parent_mime=images.image_mime(parent), facts=facts
    )


def _retry_finish(job: EditJob, retry_after: float | None, policy: PollPolicy) -> NextStep:
    errors = job.poll_errors + 1
    delay = backoff_delay(errors=errors, policy=policy, retry_after=retry_after)
    edit_job_record_progress(
        job_id=job.pk, provider_status=ProviderStatus.COMPLETED, next_poll_in=delay, errors=errors, polled=False
    )
    return NextStep("finish", delay)


# ================================================================================================ sweeper


def edit_jobs_sweep() -> list[tuple[str, NextStep]]:
    """Beat: expire what can no longer be saved, and return the overdue jobs to enqueue again.

    Overdue means `next_poll_at` passed more than the grace period ago: its message was lost (killed worker,
    Redis restart) or a task died holding the job."""
    now = timezone.now()
    deadline = now - timedelta(seconds=settings.FASHION_AI_JOB_DEADLINE_SECONDS)
    retention = now - timedelta(seconds=settings.FASHION_AI_RETENTION_SECONDS)
    stale_created = EditJob.objects.filter(state=State.CREATED, created_at__lt=deadline)
    for pk in stale_created.values_list("pk", flat=True)[:1000]:
        edit_job_mark_expired(job_id=pk, error_detail="The provider could not be reached in time.")
    stale_running = EditJob.objects.filter(state=State.SUBMITTED, submitted_at__lt=deadline).exclude(
        provider_status=ProviderStatus.COMPLETED
    )
    steps: list[tuple[str, NextStep]] = []
    for pk, request_id, status_url in stale_running.values_list("pk", "request_id", "status_url")[:1000]:
        if edit_job_mark_expired(job_id=pk, error_detail="The provider did not finish the edit in time.") and (
            settings.FASHION_AI_EXTENSIONS
        ):
            steps.append((str(pk), NextStep(cancel=(request_id, status_url))))
    unsaved = EditJob.objects.filter(
        state=State.SUBMITTED, provider_status=ProviderStatus.COMPLETED, provider_completed_at__lt=retention
    )
    for pk in unsaved.values_list("pk", flat=True)[:1000]:
        edit_job_mark_expired(job_id=pk, error_detail="The result was not saved before the provider deleted it.")

    overdue_before = now - timedelta(seconds=settings.SWEEP_OVERDUE_GRACE_SECONDS)
    overdue = (
        EditJob.objects.filter(state__in=EditJob.IN_FLIGHT_STATES)
        .filter(Q(next_poll_at__lt=overdue_before) | Q(next_poll_at__isnull=True, updated_at__lt=overdue_before))
        .order_by("next_poll_at")
        .values_list("pk", "state", "provider_status")[:2000]
    )
    for pk, state, provider_status in overdue:
        if state == State.CREATED:
            steps.append((str(pk), NextStep("submit")))
        elif provider_status == ProviderStatus.COMPLETED:
            steps.append((str(pk), NextStep("finish")))
        else:
            steps.append((str(pk), NextStep("poll")))
    # A compose whose message was lost (or whose worker died) is due again once it has not moved for two leases.
    stale_compose = EditJob.objects.filter(
        state=State.SUCCEEDED, compose_state=EditJob.Compose.PENDING,
        updated_at__lt=now - timedelta(seconds=2 * settings.JOB_TASK_LEASE_SECONDS),
    ).values_list("pk", flat=True)[:500]
    steps += [(str(pk), NextStep("compose")) for pk in stale_compose]
    if steps:
        log.info("sweeper re-enqueues %d overdue edit jobs", len(steps))
    return steps


# ================================================================================================ webhooks

_webhook_registered_at: float | None = None
WEBHOOK_REREGISTER_SECONDS = 300.0  # a provider that restarted without its registrations hears from us again soon


def ensure_webhook_registered() -> None:
    """Ours: (re-)register the site's webhook endpoint with the provider, at most every few minutes per process.
    A failure only costs latency: polling finishes the job anyway."""
    global _webhook_registered_at
    if not settings.FASHION_AI_WEBHOOKS:
        return
    now = time.monotonic()
    if _webhook_registered_at is not None and now - _webhook_registered_at < WEBHOOK_REREGISTER_SECONDS:
        return
    answer = fashion_ai.register_webhook(url=settings.FASHION_AI_WEBHOOK_URL, secret=settings.FASHION_AI_WEBHOOK_SECRET)
    if answer.ok:
        _webhook_registered_at = now
    else:
        log.warning("webhook registration failed (%s %s); polling only", answer.outcome, answer.detail)


def _next_poll_in(*, age: float, eta: float | None) -> float:
    """When to ask next. With webhooks a poll only covers a lost delivery: it comes the fallback interval after the
    job should have been done, so a delivered job costs no status call (editor/polling.py)."""
    if settings.FASHION_AI_WEBHOOKS:
        return webhook_fallback_delay(
            age=age, expected=expected_provider_seconds(), policy=poll_policy(),
            fallback=settings.FASHION_AI_WEBHOOK_FALLBACK_POLL_SECONDS, eta=eta,
        )
    return next_poll_delay(age=age, expected=expected_provider_seconds(), policy=poll_policy(), eta=eta)


def _provider_eta(answer: ProviderAnswer) -> float | None:
    """Seconds until the provider expects the job done: our service's `eta_seconds`, else a Retry-After on the
    in-progress status; None from a provider that says neither (Segmind's cloud)."""
    eta = answer.body.get("eta_seconds")
    if isinstance(eta, int | float) and not isinstance(eta, bool) and eta >= 0:
        return float(eta)
    return answer.retry_after


# ================================================================================================ cancel


def _cancel_at_provider(job: EditJob) -> NextStep:
    """The job ended here before the provider finished it: ask the provider (ours only) to stop it."""
    if not settings.FASHION_AI_EXTENSIONS or not job.request_id:
        return DONE
    return NextStep(cancel=(job.request_id, job.status_url))


def provider_request_cancel(*, request_id: str, status_url: str, attempt: int) -> NextStep:
    """One cancel call (our service only); another later while the provider cannot be reached (a few times)."""
    answer = fashion_ai.cancel(request_id=request_id, status_url=status_url)
    if answer.outcome is Outcome.RETRY and attempt < CANCEL_ATTEMPTS:
        delay = backoff_delay(errors=attempt, policy=poll_policy(), retry_after=answer.retry_after)
        return NextStep(cancel=(request_id, status_url), countdown=delay)
    if not answer.ok:
        log.info("provider request %s not cancelled: %s %s", request_id, answer.outcome, answer.detail)
    return DONE


CANCEL_ATTEMPTS = 5


# ================================================================================================ provider failures


def _handle(job: EditJob) -> dict[str, str]:
    return {"request_id": job.request_id, "status_url": job.status_url, "response_url": job.response_url}


def _record_error(answer: ProviderAnswer, *, job_id: JobId, call: str) -> None:
    if answer.outcome in (Outcome.BLOCKED, Outcome.REFUSED):
        # The provider worked; the person's photo or prompt was refused. Provider errors measure its health.
        log.info("job %s: refused by the provider for this photo or prompt (%s, %s)", job_id, answer.outcome, call)
        return
    ProviderError.objects.create(
        kind=answer.error_kind, http_status=answer.http_status, job_id=job_id, detail=f"{call}: {answer.detail}"[:500]
    )


def _alert(kind: str, message: str, job_id: JobId) -> None:
    # One open alert per kind is enough: a storm of 401s must not bury the dashboard.
    if not OperatorAlert.objects.filter(kind=kind, resolved_at__isnull=True).exists():
        OperatorAlert.objects.create(kind=kind, message=message, job_id=job_id)


USER_MESSAGES = {
    Outcome.NO_CREDITS: "The edit service is temporarily unavailable. You were not charged.",
    Outcome.UNAUTHORIZED: "The edit service is temporarily unavailable. You were not charged.",
    Outcome.AMBIGUOUS: "We could not confirm the edit service received your photo. You were not charged.",
}


def _fail_for(answer: ProviderAnswer, *, job_id: JobId, call: str) -> None:
    """A final provider answer for this job: fail (or expire on 404) it with a refund."""
    if answer.outcome is Outcome.NO_CREDITS:
        _alert(OperatorAlert.Kind.PROVIDER_NO_CREDITS, "The provider account is out of credits (406).", job_id)
    if answer.outcome is Outcome.UNAUTHORIZED:
        _alert(OperatorAlert.Kind.PROVIDER_KEY_REJECTED, "The provider rejected our API key (401).", job_id)
    if answer.outcome is Outcome.NOT_FOUND and call != "submit":
        edit_job_mark_expired(job_id=job_id, error_detail="The provider no longer knows this edit (expired).")
        return
    if answer.outcome is Outcome.BLOCKED:
        detail, code = CONTENT_BLOCKED_MESSAGE, ERROR_CONTENT_BLOCKED
    elif answer.outcome is Outcome.REFUSED:
        detail, code = answer.detail or "This photo or prompt cannot be edited.", ERROR_REFUSED
    elif answer.outcome is Outcome.FAILED:
        detail = answer.detail or "The provider could not make this edit."
        code = "provider_failed"
    else:
        detail = USER_MESSAGES.get(answer.outcome, f"The edit service refused the request: {answer.detail}")
        code = f"provider_{answer.outcome.value}"
        if answer.http_status:
            code = f"provider_{answer.http_status}"
    edit_job_mark_failed(job_id=job_id, error_code=code, error_detail=detail)
