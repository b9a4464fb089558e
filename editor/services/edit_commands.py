"""Commands on edits, called by views and the admin: start (and submit), retry (staff) or try again (owner), delete.

The flow runs one way: view -> command -> (on commit) task -> step -> state writer. A command checks who may do
what (ownership is checked here and nowhere else), validates, writes through the state writer
(editor/services/job_state.py) and the credits service in one transaction, and enqueues the first worker step on
commit through editor/dispatch.py. Every refusal is an `editor.errors.Refused` with a message fit to show.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from editor import storage
from editor.dispatch import enqueue, enqueue_provider_cancel, enqueue_task
from editor.errors import Refused
from editor.models import Clothing, CreditAccount, EditJob, Photo, ShareLink
from editor.progress import ERROR_CONTENT_BLOCKED
from editor.selectors.sharing import sharing_enabled
from editor.services.credits import credits_charge_for_job
from editor.services.job_state import edit_job_create, edit_job_mark_cancelled, edit_job_remove_finished
from editor.services.notifications import preferences_for
from editor.services.photos import (
    CropSquare,
    PhotoRejected,
    photo_create_from_job_result,
    photo_create_from_upload,
    photo_delete,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

State = EditJob.State
PROMPT_MIN, PROMPT_MAX = 3, 500
# Someone else's photo or edit looks exactly like a missing one.
NOT_FOUND = "That photo or edit was not found."
# What a person is told about the prompt and the part, here and by the form (the same words either way).
PROMPT_MISSING = "Describe the new clothing, e.g. “a person wearing a red hoodie”."
PROMPT_TOO_SHORT = f"Describe the clothing in at least {PROMPT_MIN} characters."
PROMPT_TOO_LONG = f"Keep the description under {PROMPT_MAX} characters."
CLOTHING_MISSING = "Choose the top or the bottom."


class EditJobRefused(Refused):
    """The edit cannot be started or changed; the message is fit to show to the person."""


class TooManyInFlight(EditJobRefused):
    """The per-user in-flight cap (the API answers 429)."""


class NotEnoughCredits(EditJobRefused):
    """The balance is below an edit's cost (the API answers 402)."""


class EditJobNotFound(EditJobRefused):
    """The photo or edit is missing or someone else's (the API answers 404, pages show the message)."""


def normalise_prompt(prompt: str | None) -> str:
    """The one normalisation of a prompt: whitespace runs collapse to one space."""
    return " ".join((prompt or "").split())


def prompt_problem(prompt: str | None) -> str:
    """What is wrong with a prompt, in words for the person ("" when nothing is)."""
    normalised = normalise_prompt(prompt)
    if not normalised:
        return PROMPT_MISSING
    if len(normalised) < PROMPT_MIN:
        return PROMPT_TOO_SHORT
    if len(normalised) > PROMPT_MAX:
        return PROMPT_TOO_LONG
    return ""


def edit_photo_keep_for_form(
    *, user: AbstractBaseUser, uploaded_file: Any, crop: CropSquare | None = None
) -> Photo | None:
    """A form came back with errors about the prompt or the part, but with a good photo: store the photo now, so the
    corrected form sends its id instead of the file again. None (nothing stored) when the person could not start an
    edit anyway (short of credits), so bad forms are no way to fill the storage. An unused photo is deleted by the
    unused-photo sweep. Raises PhotoRejected for a photo we refuse."""
    balance = CreditAccount.objects.filter(user_id=user.pk).values_list("balance", flat=True).first() or 0
    if balance < settings.EDIT_COST_CREDITS:
        return None
    return photo_create_from_upload(user=user, uploaded_file=uploaded_file, crop=crop)


def _require_owner(user: AbstractBaseUser, *objects: Photo | EditJob | None) -> None:
    if any(obj is not None and obj.owner_id != user.pk for obj in objects):
        raise EditJobNotFound(NOT_FOUND)


def edit_start(
    *,
    user: AbstractBaseUser,
    prompt: str,
    clothing: str,
    uploaded_file: Any = None,
    crop: CropSquare | None = None,
    photo: Photo | None = None,
    source_job: EditJob | None = None,
    notify_by_email: bool | None = None,
) -> EditJob:
    """Make (or reuse) the input photo and submit the edit. Raises Refused; a photo made here is deleted again
    when the submit is refused, so a refusal stores nothing."""
    _require_owner(user, photo, source_job)
    created = False
    if photo is None:
        if source_job is not None:
            photo = photo_create_from_job_result(user=user, job=source_job)
        elif uploaded_file is not None:
            photo = photo_create_from_upload(user=user, uploaded_file=uploaded_file, crop=crop)
        else:
            raise PhotoRejected("Please choose a photo.")
        created = True
    try:
        return _submit(user=user, photo=photo, prompt=prompt, clothing=clothing, source_job=source_job,
                       notify_by_email=notify_by_email)
    except Exception:
        if created:
            photo_delete(photo=photo)
        raise


def edit_job_submit(
    *,
    user: AbstractBaseUser,
    photo: Photo,
    prompt: str,
    clothing: str,
    source_job: EditJob | None = None,
    notify_by_email: bool | None = None,
) -> EditJob:
    """Submit an edit of a stored photo (see `_submit`); refused when the photo or source edit is not the user's."""
    _require_owner(user, photo, source_job)
    return _submit(user=user, photo=photo, prompt=prompt, clothing=clothing, source_job=source_job,
                   notify_by_email=notify_by_email)


def _submit(
    *,
    user: AbstractBaseUser,
    photo: Photo,
    prompt: str,
    clothing: str,
    source_job: EditJob | None,
    retry_of: EditJob | None = None,
    notify_by_email: bool | None = None,
) -> EditJob:
    """Validate, reserve the credits and create the job in one transaction; the submit task is queued on commit.
    `notify_by_email` None: the owner's profile default ("email me when it is ready").

    Raises EditJobRefused (with a message for the person) for bad input, short credits or too many edits running.
    The caller has checked ownership.
    """
    problem = prompt_problem(prompt)
    if problem:
        raise EditJobRefused(problem, field="prompt")
    prompt = normalise_prompt(prompt)
    if clothing not in Clothing.values:
        raise EditJobRefused(CLOTHING_MISSING, field="clothing")
    cost = settings.EDIT_COST_CREDITS
    limit = settings.MAX_JOBS_IN_FLIGHT_PER_USER
    if notify_by_email is None:
        notify_by_email = preferences_for(user_id=user.pk).email_when_ready
    with transaction.atomic():
        # Lock the balance row first: it serialises this user's submits, so neither the in-flight count below nor
        # the balance can be read stale by a concurrent submit.
        CreditAccount.objects.get_or_create(user_id=user.pk)
        account = CreditAccount.objects.select_for_update().get(user_id=user.pk)
        in_flight = EditJob.objects.filter(owner_id=user.pk, state__in=EditJob.IN_FLIGHT_STATES).count()
        if in_flight >= limit:
            raise TooManyInFlight(
                f"You already have {in_flight} edits running (at most {limit}). Wait for one to finish."
            )
        if account.held:
            raise EditJobRefused(
                f"Your account is on hold: a payment was refunded or disputed after its credits were spent, so "
                f"{account.owed} credit{'s' if account.owed != 1 else ''} are owed. Credits you buy pay that first."
            )
        if account.balance < cost:
            raise NotEnoughCredits(f"Not enough credits: an edit costs {cost} and your balance is {account.balance}.")
        job = edit_job_create(
            owner_id=user.pk,
            photo=photo,
            prompt=prompt,
            clothing=clothing,
            cost=cost,
            source_job=source_job,
            retry_of=retry_of,
            notify_by_email=notify_by_email,
        )
        # InsufficientCredits is a Refused too; the locked check above makes it unreachable here.
        charge = credits_charge_for_job(job=job)
        job_id = str(job.id)
        transaction.on_commit(lambda: enqueue("submit", job_id))
        if charge.balance_after == 0:
            user_id = str(user.pk)
            transaction.on_commit(lambda: enqueue_task("credits_empty_email", user_id))
    return job


def edit_job_retry(*, job: EditJob, staff_user: AbstractBaseUser) -> EditJob:
    """Staff: run a FAILED or EXPIRED edit again as a new job, charged normally. At most once per failed edit."""
    if not getattr(staff_user, "is_staff", False):
        raise EditJobRefused("Only staff can retry edits.")
    with transaction.atomic():
        source = _lock_retryable(job)
        if EditJob.objects.filter(retry_of=source).exists():
            raise EditJobRefused("This edit was already retried.")
        log.info("staff user %s retries job %s", staff_user.pk, source.id)
        return _submit_retry(source, prompt=source.prompt, clothing=source.clothing, source_job=source)


def edit_job_try_again(*, user: AbstractBaseUser, job: EditJob, prompt: str, clothing: str) -> EditJob:
    """The owner tries a FAILED or EXPIRED edit again in one step: the same photo, a prompt and part they may have
    changed, charged normally (the failed edit was refunded). Once per failed edit: posting the form again (a
    double click, a reload) returns the new edit made the first time and charges nothing more."""
    _require_owner(user, job)
    problem = prompt_problem(prompt)
    if problem:
        raise EditJobRefused(problem, field="prompt")
    with transaction.atomic():
        source = _lock_retryable(job)
        _require_owner(user, source)
        earlier = EditJob.objects.filter(retry_of=source).first()
        if earlier is not None:
            return earlier
        return _submit_retry(source, prompt=prompt, clothing=clothing, source_job=None)


def _lock_retryable(job: EditJob) -> EditJob:
    """Lock the failed job's row: concurrent retries of it queue here, and each after the first sees the retry."""
    source = (
        EditJob.objects.select_for_update(of=("self",))
        .select_related("owner", "photo")
        .filter(pk=job.pk)
        .first()
    )
    if source is None:
        raise EditJobRefused(NOT_FOUND)
    if source.state not in (State.FAILED, State.EXPIRED):
        raise EditJobRefused("Only failed or expired edits can be tried again.")
    if source.error_code == ERROR_CONTENT_BLOCKED:
        raise EditJobRefused("The content filter refused this photo; it would refuse it again.")
    return source


def _submit_retry(source: EditJob, *, prompt: str, clothing: str, source_job: EditJob | None) -> EditJob:
    try:
        with transaction.atomic():
            return _submit(
                user=source.owner,
                photo=source.photo,
                prompt=prompt,
                clothing=clothing,
                source_job=source_job,
                retry_of=source,
                notify_by_email=source.notify_by_email,
            )
    except IntegrityError as exc:  # the one-to-one link: where row locks are not enforced (SQLite)
        raise EditJobRefused("This edit was already retried.") from exc


def edit_job_delete(*, user: AbstractBaseUser, job: EditJob) -> None:
    """Delete an edit and its files; the photo too when no other edit uses it. A running edit is stopped first:
    refunded, and cancelled at the provider when the provider can cancel (our service).

    Another user's job is refused as not found (views answer 404 before this, never "forbidden")."""
    _require_owner(user, job)
    with transaction.atomic():
        locked = EditJob.objects.select_for_update().filter(pk=job.pk, owner_id=user.pk).first()
        if locked is None:
            return
        if locked.state in EditJob.IN_FLIGHT_STATES:
            edit_job_mark_cancelled(job_id=locked.pk, error_detail="Deleted while it ran: not charged.")
            if locked.request_id and settings.FASHION_AI_EXTENSIONS:
                handle = {"request_id": locked.request_id, "status_url": locked.status_url}
                transaction.on_commit(lambda: enqueue_provider_cancel(**handle))
        names = [locked.result_image.name, locked.result_thumbnail.name, locked.full_result.name]
        photo = locked.photo
        edit_job_remove_finished(job_id=locked.pk, owner_id=user.pk)
        if not EditJob.objects.filter(photo_id=photo.pk).exists():
            names += [photo.image.name, photo.thumbnail.name, photo.original.name]
            photo.delete()
        storage.delete_after_commit([str(n) for n in names if n])


def edit_share_create(*, user: AbstractBaseUser, job: EditJob, expires_in_days: int | None) -> ShareLink:
    """A public before/after link to a finished edit of the user's; `expires_in_days` None: until revoked."""
    _require_owner(user, job)
    if not sharing_enabled():
        raise EditJobRefused("Sharing is turned off on this site.")
    if job.state != State.SUCCEEDED or not job.result_image:
        raise EditJobRefused("Only a finished edit can be shared.")
    if expires_in_days is not None and not 1 <= expires_in_days <= 365:
        raise EditJobRefused("A link expires after 1 to 365 days, or never.", field="expires_in_days")
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    return ShareLink.objects.create(job=job, expires_at=expires_at)


def edit_share_revoke(*, user: AbstractBaseUser, link_id: int) -> bool:
    """Revoke one of the user's links (at once: the public page is 404 from now on)."""
    return ShareLink.objects.filter(
        pk=link_id, job__owner_id=user.pk, revoked_at__isnull=True
    ).update(revoked_at=timezone.now()) == 1
