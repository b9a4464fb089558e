"""Edit jobs: submit (credits + job in one transaction), the provider round trip, and every state change.

A job's life: CREATED -> SUBMITTED -> SUCCEEDED | FAILED | EXPIRED. Every state change is ONE conditional
UPDATE (`... WHERE state IN (allowed)`), so two workers can never both move a job, and running any step twice
changes nothing the second time. FAILED and EXPIRED refund the charge in the same transaction (the credits
service makes a second refund impossible).

Who may work on a job at a given moment is decided by a compare-and-swap on `next_poll_at`: a task claims the
job only if `next_poll_at` still holds the value it read and is due, and pushes it one lease ahead. A duplicate
message (a sweeper re-enqueue, a redelivery) finds the value changed and does nothing, so poll chains never
multiply. A worker killed while holding a claim leaves `next_poll_at` overdue once the lease ends, and the
sweeper hands the job to another worker.

The `edit_job_run_*` functions do one step each and return the `NextStep` the Celery task must enqueue; they
never sleep and never import Celery (the tasks stay thin).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from editor import images
from editor.integrations import fashion_ai
from editor.integrations.fashion_ai import Outcome, ProviderAnswer
from editor.models import (
    Clothing,
    CreditAccount,
    EditJob,
    OperatorAlert,
    Photo,
    ProviderError,
)
from editor.polling import PollPolicy, backoff_delay, next_poll_delay
from editor.services.credits import InsufficientCredits, credits_charge_for_job, credits_refund_for_job

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

State = EditJob.State
PROMPT_MIN, PROMPT_MAX = 3, 500


class EditJobRefused(Exception):
    """The edit cannot be started or changed; the message is fit to show to the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class NextStep:
    """What the task layer must enqueue next (None: nothing, the job is final or someone else owns it)."""

    task: Literal["submit", "poll", "finish"] | None = None
    countdown: float = 0.0


DONE = NextStep()


def poll_policy() -> PollPolicy:
    return PollPolicy(
        min_interval=settings.POLL_MIN_INTERVAL_SECONDS,
        max_interval=settings.POLL_MAX_INTERVAL_SECONDS,
        approach_fraction=settings.POLL_APPROACH_FRACTION,
        backoff_max=settings.POLL_BACKOFF_MAX_SECONDS,
    )


# ================================================================================================ submit


def edit_job_submit(
    *,
    user: AbstractBaseUser,
    photo: Photo,
    prompt: str,
    clothing: str,
    source_job: EditJob | None = None,
) -> EditJob:
    """Validate, reserve the credits and create the job in one transaction; the submit task is queued on commit.

    Raises EditJobRefused (with a message for the person) for bad input, short credits or too many edits running.
    """
    prompt = " ".join((prompt or "").split())
    if len(prompt) < PROMPT_MIN:
        raise EditJobRefused(f"Describe the clothing in at least {PROMPT_MIN} characters.")
    if len(prompt) > PROMPT_MAX:
        raise EditJobRefused(f"Keep the description under {PROMPT_MAX} characters.")
    if clothing not in Clothing.values:
        raise EditJobRefused("Choose topwear or bottomwear.")
    if photo.owner_id != user.pk:
        raise EditJobRefused("That photo does not belong to you.")
    if source_job is not None and source_job.owner_id != user.pk:
        raise EditJobRefused("That edit does not belong to you.")
    cost = settings.EDIT_COST_CREDITS
    limit = settings.MAX_JOBS_IN_FLIGHT_PER_USER
    with transaction.atomic():
        # Lock the balance row first: it serialises this user's submits, so neither the in-flight count below nor
        # the balance can be read stale by a concurrent submit.
        CreditAccount.objects.get_or_create(user_id=user.pk)
        account = CreditAccount.objects.select_for_update().get(user_id=user.pk)
        in_flight = EditJob.objects.filter(owner_id=user.pk, state__in=EditJob.IN_FLIGHT_STATES).count()
        if in_flight >= limit:
            raise EditJobRefused(
                f"You already have {in_flight} edits running (at most {limit}). Wait for one to finish."
            )
        if account.balance < cost:
            raise EditJobRefused(f"Not enough credits: an edit costs {cost} and your balance is {account.balance}.")
        job = EditJob.objects.create(
            owner_id=user.pk,
            photo=photo,
            prompt=prompt,
            clothing=clothing,
            cost_credits=cost,
            source_job=source_job,
            # Due now: if the queued message is lost, the sweeper submits it after the grace period.
            next_poll_at=timezone.now(),
        )
        try:
            credits_charge_for_job(job=job)
        except InsufficientCredits as exc:  # pragma: no cover - the locked check above makes this unreachable
            raise EditJobRefused(str(exc)) from exc
        job_id = str(job.id)
        transaction.on_commit(lambda: _enqueue("submit", job_id))
    return job


def _enqueue(task: str, job_id: str, countdown: float = 0.0) -> None:
    # Imported here: services must not import Celery at module level (tasks import services).
    from editor.tasks import dispatch_step

    try:
        dispatch_step(job_id, NextStep(task, countdown))  # type: ignore[arg-type]
    except Exception:  # the broker is down: the job is due, so the sweeper enqueues it later
        log.warning("could not enqueue %s for job %s; the sweeper will retry", task, job_id, exc_info=True)


def edit_job_retry(*, job: EditJob, staff_user: AbstractBaseUser) -> EditJob:
    """Staff: run a FAILED or EXPIRED edit again as a new job, charged normally."""
    if not getattr(staff_user, "is_staff", False):
        raise EditJobRefused("Only staff can retry edits.")
    if job.state not in (State.FAILED, State.EXPIRED):
        raise EditJobRefused("Only failed or expired edits can be retried.")
    log.info("staff user %s retries job %s", staff_user.pk, job.id)
    return edit_job_submit(user=job.owner, photo=job.photo, prompt=job.prompt, clothing=job.clothing, source_job=job)


def edit_job_delete(*, user: AbstractBaseUser, job: EditJob) -> None:
    """Delete a finished edit and its files; the photo too when no other edit uses it.

    Another user's job raises EditJob.DoesNotExist (views answer 404, never "forbidden")."""
    if job.owner_id != user.pk:
        raise EditJob.DoesNotExist("No such edit.")
    with transaction.atomic():
        locked = EditJob.objects.select_for_update().filter(pk=job.pk, owner_id=user.pk).first()
        if locked is None:
            return
        if locked.state in EditJob.IN_FLIGHT_STATES:
            raise EditJobRefused("This edit is still running; delete it once it has finished.")
        names = [locked.result_image.name, locked.result_thumbnail.name]
        photo = locked.photo
        locked.delete()
        if not EditJob.objects.filter(photo_id=photo.pk).exists():
            names += [photo.image.name, photo.thumbnail.name]
            photo.delete()
        # Files go only once the rows are gone for good: a rollback must not leave rows without files.
        transaction.on_commit(lambda: _delete_files([n for n in names if n]))


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # storage hiccup: an orphan file is better than a failed delete for the user
            log.warning("could not delete stored file %s", name, exc_info=True)


# ================================================================================================ transitions


def _transition(*, job_id: Any, from_states: tuple[str, ...], to_state: str | None = None, **fields: Any) -> bool:
    """The one way a job changes: a conditional UPDATE that only matches in an allowed state."""
    now = timezone.now()
    values: dict[str, Any] = {"updated_at": now, **fields}
    if to_state is not None:
        values["state"] = to_state
        if to_state in EditJob.FINAL_STATES:
            values.setdefault("finished_at", now)
            values.setdefault("next_poll_at", None)
    return EditJob.objects.filter(pk=job_id, state__in=from_states).update(**values) == 1


def edit_job_mark_submitted(
    *, job_id: Any, request_id: str, status_url: str, response_url: str, first_poll_in: float
) -> bool:
    now = timezone.now()
    return _transition(
        job_id=job_id,
        from_states=(State.CREATED,),
        to_state=State.SUBMITTED,
        request_id=request_id,
        status_url=status_url,
        response_url=response_url,
        provider_status="QUEUED",
        submitted_at=now,
        next_poll_at=now + timedelta(seconds=first_poll_in),
        poll_errors=0,
        error_code="",
        error_detail="",
    )


def edit_job_record_progress(
    *, job_id: Any, provider_status: str, next_poll_in: float, errors: int = 0, polled: bool = True
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
    if provider_status == "PROCESSING":
        fields["processing_at"] = Coalesce(F("processing_at"), now)
    if provider_status == "COMPLETED":
        fields["provider_completed_at"] = Coalesce(F("provider_completed_at"), now)
        fields["processing_at"] = Coalesce(F("processing_at"), now)
    return _transition(job_id=job_id, from_states=(State.SUBMITTED,), **fields)


def edit_job_mark_succeeded(
    *, job_id: Any, result_name: str, thumbnail_name: str, metrics: dict[str, Any], inference_time: float | None
) -> bool:
    return _transition(
        job_id=job_id,
        from_states=(State.SUBMITTED,),
        to_state=State.SUCCEEDED,
        result_image=result_name,
        result_thumbnail=thumbnail_name,
        provider_metrics=metrics,
        inference_time=inference_time,
        provider_status="COMPLETED",
        provider_completed_at=Coalesce(F("provider_completed_at"), timezone.now()),
    )


def edit_job_mark_failed(*, job_id: Any, error_code: str, error_detail: str) -> bool:
    return _finish_with_refund(job_id=job_id, to_state=State.FAILED, error_code=error_code, error_detail=error_detail)


def edit_job_mark_expired(*, job_id: Any, error_detail: str, error_code: str = "expired") -> bool:
    return _finish_with_refund(job_id=job_id, to_state=State.EXPIRED, error_code=error_code, error_detail=error_detail)


def _finish_with_refund(*, job_id: Any, to_state: str, error_code: str, error_detail: str) -> bool:
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
                # It ended after the provider finished: a save may have been interrupted half way.
                _delete_partial_result_files(job)
    return moved


# ================================================================================================ task steps


def _claim(job: EditJob, *, states: tuple[str, ...], now: datetime) -> bool:
    """Compare-and-swap on next_poll_at: take the job for one lease if it is due and nobody changed it."""
    tolerance = timedelta(seconds=min(0.5, settings.POLL_MIN_INTERVAL_SECONDS / 4))
    if job.next_poll_at is not None and job.next_poll_at > now + tolerance:
        return False  # a duplicate message: the job is scheduled later by someone else
    lease = now + timedelta(seconds=settings.JOB_TASK_LEASE_SECONDS)
    return (
        EditJob.objects.filter(pk=job.pk, state__in=states, next_poll_at=job.next_poll_at).update(
            next_poll_at=lease, updated_at=now
        )
        == 1
    )


def _past(moment: datetime | None, seconds: float, now: datetime) -> bool:
    return moment is not None and now >= moment + timedelta(seconds=seconds)


def edit_job_run_submit(*, job_id: str) -> NextStep:
    """Send a CREATED job to the provider and store its handle before anything else."""
    now = timezone.now()
    job = EditJob.objects.select_related("photo").filter(pk=job_id).first()
    if job is None or job.state != State.CREATED:
        return DONE
    if _past(job.created_at, settings.FASHION_AI_JOB_DEADLINE_SECONDS, now):
        edit_job_mark_expired(job_id=job.pk, error_detail="The provider could not be reached in time.")
        return DONE
    if not _claim(job, states=(State.CREATED,), now=now):
        return DONE
    EditJob.objects.filter(pk=job.pk).update(submit_attempts=F("submit_attempts") + 1)
    try:
        # Reading the photo (or checking it is in the bucket the provider fetches it from) needs our storage:
        # while it is unreachable the edit must wait, not fail for good (the provider would answer 400).
        photo_stored = default_storage.exists(str(job.photo.image.name))
        image = provider_image_for(photo=job.photo) if photo_stored else ""
    except Exception as exc:
        log.warning("job %s: storage unreachable before submit (%s); retrying", job.pk, type(exc).__name__)
        return _retry_submit(job, detail="Waiting for storage to come back.", retry_after=None)
    if not photo_stored:
        edit_job_mark_failed(
            job_id=job.pk, error_code="photo_unreadable", error_detail="The photo is missing from storage."
        )
        return DONE
    answer = fashion_ai.submit(image=image, prompt=job.prompt, clothing=job.clothing)
    if answer.ok:
        first = next_poll_delay(age=0.0, expected=_expected_seconds(), policy=poll_policy())
        if edit_job_mark_submitted(
            job_id=job.pk,
            request_id=str(answer.body["request_id"]),
            status_url=str(answer.body["status_url"]),
            response_url=str(answer.body["response_url"]),
            first_poll_in=first,
        ):
            return NextStep("poll", first)
        log.warning("job %s left CREATED while being submitted (request %s)", job.pk, answer.body["request_id"])
        return DONE
    _record_error(answer, job_id=job.pk, call="submit")
    if answer.outcome is Outcome.RETRY:
        return _retry_submit(job, detail=f"Waiting for the provider: {answer.detail}", retry_after=answer.retry_after)
    _fail_for(answer, job_id=job.pk, call="submit")
    return DONE


def _retry_submit(job: EditJob, *, detail: str, retry_after: float | None) -> NextStep:
    errors = job.poll_errors + 1
    delay = backoff_delay(errors=errors, policy=poll_policy(), retry_after=retry_after)
    EditJob.objects.filter(pk=job.pk, state=State.CREATED).update(
        poll_errors=errors,
        next_poll_at=timezone.now() + timedelta(seconds=delay),
        error_detail=detail[:2000],
        updated_at=timezone.now(),
    )
    return NextStep("submit", delay)


def edit_job_run_poll(*, job_id: str) -> NextStep:
    """One status call, then say when to ask again (never sleeps)."""
    now = timezone.now()
    job = EditJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.SUBMITTED:
        return DONE
    if job.provider_status == "COMPLETED":
        return NextStep("finish", 0.0)
    if _past(job.submitted_at, settings.FASHION_AI_JOB_DEADLINE_SECONDS, now):
        edit_job_mark_expired(job_id=job.pk, error_detail="The provider did not finish the edit in time.")
        return DONE
    if not _claim(job, states=(State.SUBMITTED,), now=now):
        return DONE
    answer = fashion_ai.status(**_handle(job))
    policy = poll_policy()
    if answer.ok:
        provider_status = str(answer.body.get("status"))
        if provider_status == "COMPLETED":
            edit_job_record_progress(job_id=job.pk, provider_status="COMPLETED", next_poll_in=0.0)
            return NextStep("finish", 0.0)
        age = (timezone.now() - (job.submitted_at or job.created_at)).total_seconds()
        delay = next_poll_delay(age=age, expected=_expected_seconds(), policy=policy)
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
    EditJob.objects.filter(pk=job.pk).update(poll_count=F("poll_count") + 1, last_polled_at=timezone.now())
    _fail_for(answer, job_id=job.pk, call="status")
    return DONE


def edit_job_run_finish(*, job_id: str) -> NextStep:
    """The provider says COMPLETED: fetch the result, store image and thumbnail, then mark SUCCEEDED."""
    now = timezone.now()
    job = EditJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.SUBMITTED:
        return DONE
    if job.provider_status != "COMPLETED":
        return NextStep("poll", 0.0)
    if _past(job.provider_completed_at, settings.FASHION_AI_RETENTION_SECONDS, now):
        edit_job_mark_expired(job_id=job.pk, error_detail="The result was not saved before the provider deleted it.")
        return DONE
    if not _claim(job, states=(State.SUBMITTED,), now=now):
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
    if answer.body.get("status") != "COMPLETED" or not isinstance(output, str):
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
    data, extension = images.clean_result(downloaded.data, downloaded.image)
    try:
        result_name = _store_at(job_result_key(job, extension), data)
        thumb_name = _store_at(job_thumbnail_key(job), images.make_thumbnail(downloaded.image))
    except Exception as exc:  # storage down: the provider still holds the result, try again after a backoff
        log.warning("job %s: could not store the result (%s); retrying", job.pk, type(exc).__name__)
        return _retry_finish(job, None, policy)
    metrics = answer.body.get("metrics") if isinstance(answer.body.get("metrics"), dict) else {}
    inference = metrics.get("inference_time") if metrics else None
    if edit_job_mark_succeeded(
        job_id=job.pk,
        result_name=result_name,
        thumbnail_name=thumb_name,
        metrics=metrics or {},
        inference_time=float(inference) if isinstance(inference, int | float) else None,
    ):
        return DONE
    # Someone else moved the job meanwhile. The keys are the job's own, so a SUCCEEDED job already points at
    # these very files; anything else (expired, failed) must not keep them.
    if not EditJob.objects.filter(pk=job.pk, state=State.SUCCEEDED).exists():
        _delete_files([result_name, thumb_name])
    return DONE


RESULT_EXTENSIONS = (".png", ".jpg")


def job_result_key(job: EditJob, extension: str) -> str:
    # One fixed key per job (the job id is a random UUID, so keys stay unguessable): a retry after a partial
    # save overwrites its own earlier copy instead of leaving an orphan in the bucket.
    return f"users/{job.owner_id}/results/{job.pk}{extension}"


def job_thumbnail_key(job: EditJob) -> str:
    return f"users/{job.owner_id}/thumbs/{job.pk}.webp"


def _store_at(name: str, data: bytes) -> str:
    """Store `data` at exactly `name`, replacing an earlier partial copy."""
    if _storage_is_s3():
        # S3 is configured with file_overwrite (fashionsite/settings.py): one PUT replaces an earlier copy.
        stored = default_storage.save(name, ContentFile(data))
        if stored != name:  # pragma: no cover - only if file_overwrite were turned off
            raise RuntimeError(f"storage renamed {name} to {stored}")
        return stored
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(data))
    if stored != name:  # pragma: no cover - only if another writer raced us between delete and save
        default_storage.delete(stored)
        raise RuntimeError(f"storage renamed {name} to {stored}")
    return stored


def _delete_partial_result_files(job: EditJob) -> None:
    """A job that ends without a result may still have a copy from an interrupted save: remove it."""
    names = [job_result_key(job, ext) for ext in RESULT_EXTENSIONS] + [job_thumbnail_key(job)]
    # Deleting a missing key is a no-op on S3 and on local storage; failures are logged, never raised.
    transaction.on_commit(lambda: _delete_files(names))


def _retry_finish(job: EditJob, retry_after: float | None, policy: PollPolicy) -> NextStep:
    errors = job.poll_errors + 1
    delay = backoff_delay(errors=errors, policy=policy, retry_after=retry_after)
    edit_job_record_progress(
        job_id=job.pk, provider_status="COMPLETED", next_poll_in=delay, errors=errors, polled=False
    )
    return NextStep("finish", delay)


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
        provider_status="COMPLETED"
    )
    for pk in stale_running.values_list("pk", flat=True)[:1000]:
        edit_job_mark_expired(job_id=pk, error_detail="The provider did not finish the edit in time.")
    unsaved = EditJob.objects.filter(
        state=State.SUBMITTED, provider_status="COMPLETED", provider_completed_at__lt=retention
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
    steps: list[tuple[str, NextStep]] = []
    for pk, state, provider_status in overdue:
        if state == State.CREATED:
            steps.append((str(pk), NextStep("submit")))
        elif provider_status == "COMPLETED":
            steps.append((str(pk), NextStep("finish")))
        else:
            steps.append((str(pk), NextStep("poll")))
    if steps:
        log.info("sweeper re-enqueues %d overdue edit jobs", len(steps))
    return steps


# ================================================================================================ helpers


def provider_image_for(*, photo: Photo) -> str:
    """A presigned GET URL the provider can fetch (S3), else the image inline as a data: URI."""
    name = str(photo.image.name)
    if _storage_is_s3() and not settings.FASHION_AI_SEND_DATA_URI:
        return str(default_storage.url(name, expire=settings.PROVIDER_INPUT_URL_EXPIRE_SECONDS))  # type: ignore[call-arg]
    with default_storage.open(name, "rb") as handle:
        data = handle.read()
    return f"data:{images.image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def _storage_is_s3() -> bool:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # pragma: no cover - django-storages is a hard dependency
        return False
    return isinstance(default_storage._wrapped if hasattr(default_storage, "_wrapped") else default_storage, S3Storage)


def _handle(job: EditJob) -> dict[str, str]:
    return {"request_id": job.request_id, "status_url": job.status_url, "response_url": job.response_url}


def _expected_seconds() -> float:
    from editor.selectors.jobs import expected_provider_seconds

    return expected_provider_seconds()


def _record_error(answer: ProviderAnswer, *, job_id: Any, call: str) -> None:
    ProviderError.objects.create(
        kind=answer.error_kind, http_status=answer.http_status, job_id=job_id, detail=f"{call}: {answer.detail}"[:500]
    )


def _alert(kind: str, message: str, job_id: Any) -> None:
    # One open alert per kind is enough: a storm of 401s must not bury the dashboard.
    if not OperatorAlert.objects.filter(kind=kind, resolved_at__isnull=True).exists():
        OperatorAlert.objects.create(kind=kind, message=message, job_id=job_id)


USER_MESSAGES = {
    Outcome.NO_CREDITS: "The edit service is temporarily unavailable. You were not charged.",
    Outcome.UNAUTHORIZED: "The edit service is temporarily unavailable. You were not charged.",
    Outcome.AMBIGUOUS: "We could not confirm the edit service received your photo. You were not charged.",
}


def _fail_for(answer: ProviderAnswer, *, job_id: Any, call: str) -> None:
    """A final provider answer for this job: fail (or expire on 404) it with a refund."""
    if answer.outcome is Outcome.NO_CREDITS:
        _alert(OperatorAlert.Kind.PROVIDER_NO_CREDITS, "The provider account is out of credits (406).", job_id)
    if answer.outcome is Outcome.UNAUTHORIZED:
        _alert(OperatorAlert.Kind.PROVIDER_KEY_REJECTED, "The provider rejected our API key (401).", job_id)
    if answer.outcome is Outcome.NOT_FOUND and call != "submit":
        edit_job_mark_expired(job_id=job_id, error_detail="The provider no longer knows this edit (expired).")
        return
    if answer.outcome is Outcome.FAILED:
        detail = answer.detail or "The provider could not make this edit."
        code = "provider_failed"
    else:
        detail = USER_MESSAGES.get(answer.outcome, f"The edit service refused the request: {answer.detail}")
        code = f"provider_{answer.outcome.value}"
        if answer.http_status:
            code = f"provider_{answer.http_status}"
    edit_job_mark_failed(job_id=job_id, error_code=code, error_detail=detail)
