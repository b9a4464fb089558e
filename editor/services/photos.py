"""Photos: store a normalised upload (editor/images.py checks and cleans it) and create its row, or refuse clearly;
delete photos nobody's edit uses; direct browser-to-S3 uploads (granted, accepted once, expired by the files sweep).
"""
from __future__ import annotations

import io
import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from editor import storage
from editor.images import (
    SIDE,
    CropSquare,
    NormalisedPhoto,
    PhotoRejected,
    check_upload_size,
    normalise_image,
    normalise_result_photo,
)
from editor.models import DirectUpload, EditJob, Photo

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

__all__ = [
    "CropSquare", "PhotoRejected", "UploadRateLimited", "direct_upload_enabled",
    "photo_create_from_job_result", "photo_create_from_upload", "photo_delete", "photo_direct_upload_finish",
    "photo_direct_upload_start", "photos_delete_unused",
]

logger = logging.getLogger(__name__)

_DIRECT_KEY_RE = re.compile(rf"^{storage.DIRECT_UPLOAD_PREFIX}/(?P<user>\d+)/[0-9a-f]{{32}}$")


class UploadRateLimited(PhotoRejected):
    """Too many direct uploads started in the last hour (the view answers 429)."""


def _store(
    *, user: AbstractBaseUser, normalised: NormalisedPhoto, original_name: str, source_job: EditJob | None = None,
) -> Photo:
    left, top, side = normalised.square
    photo = Photo(
        owner_id=user.pk, original_name=original_name[:255], source_job=source_job,
        square_left=left, square_top=top, square_side=side,
    )
    saved: list[str] = []
    try:
        saved.append(storage.store_new(photo.image, "photo.jpg", normalised.model_input))
        saved.append(storage.store_new(photo.thumbnail, "thumb.jpg", normalised.thumbnail))
        saved.append(storage.store_new(photo.original, "original.jpg", normalised.original))
        photo.width = photo.height = SIDE
        photo.original_width, photo.original_height = normalised.original_size
        photo.size_bytes = len(normalised.model_input)
        photo.save()
    except Exception:
        # A storage or database failure half-way: no row points at these, remove them now (no commit to wait for).
        storage.delete_now(saved)
        raise
    return photo


def photo_create_from_upload(
    *, user: AbstractBaseUser, uploaded_file: Any, crop: CropSquare | None = None
) -> Photo:
    """Validate and normalise an uploaded file (a Django UploadedFile or any file object with .size)."""
    check_upload_size(getattr(uploaded_file, "size", None))
    uploaded_file.seek(0)
    # Read at most one byte over the limit: a lying .size cannot make us buffer more.
    raw = uploaded_file.read(settings.UPLOAD_MAX_BYTES + 1)
    check_upload_size(len(raw))
    normalised = normalise_image(io.BytesIO(raw), crop=crop)
    return _store(user=user, normalised=normalised, original_name=str(getattr(uploaded_file, "name", "") or ""))


def photo_create_from_job_result(*, user: AbstractBaseUser, job: EditJob) -> Photo:
    """A new photo from a finished edit's result, so the next edit can change the other region.

    It starts from the full-resolution result when there is one: that becomes the new photo's original, and the
    next model input is its square at the same place as this edit's. Otherwise from the 512 square.
    The caller (editor/services/edit_commands.py) has checked the job is the user's."""
    if job.state != EditJob.State.SUCCEEDED or not job.result_image:
        raise PhotoRejected("Only a finished edit can be edited again.")
    if job.full_result:
        source = job.photo
        square = (source.square_left, source.square_top, source.square_side) if source.square_side else None
        normalised = normalise_result_photo(storage.read(str(job.full_result.name)), square=square)
    else:
        normalised = normalise_result_photo(storage.read(str(job.result_image.name)), square=None)
    return _store(user=user, normalised=normalised, original_name=f"edit-{job.pk}.jpg", source_job=job)


def photo_delete(*, photo: Photo) -> None:
    """Delete a photo nobody's edit uses (a refused submit's upload); its files go after commit (storage's rule)."""
    if photo.edit_jobs.exists():
        raise PhotoRejected("This photo is used by an edit.")
    names = [str(f.name) for f in (photo.image, photo.thumbnail, photo.original) if f and f.name]
    photo.delete()
    storage.delete_after_commit(names)


def photos_delete_unused(*, older_than_seconds: int) -> int:
    """Delete photos that no edit uses and that are older than the grace period (an abandoned direct upload,
    a page closed before submitting), with their files. Returns how many went."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    unused = Photo.objects.filter(created_at__lt=cutoff, edit_jobs__isnull=True).order_by("created_at")
    deleted = 0
    for photo in unused[:500]:
        with transaction.atomic():
            # Re-checked under the row lock: a submit may have picked the photo up since the query above.
            locked = Photo.objects.select_for_update().filter(pk=photo.pk).first()
            if locked is None or locked.edit_jobs.exists():
                continue
            photo_delete(photo=locked)
            deleted += 1
    return deleted


# --- Direct browser-to-S3 uploads ------------------------------------------------------------------

def direct_upload_enabled() -> bool:
    return storage.is_s3()


def photo_direct_upload_start(*, user: AbstractBaseUser) -> dict[str, Any]:
    """A presigned POST for one raw upload under the user's own prefix: S3 enforces the size and an image
    Content-Type; the key is recorded so it is accepted once, and grants per user per hour are limited."""
    if not direct_upload_enabled():
        raise PhotoRejected("Direct uploads need S3 storage.")
    now = timezone.now()
    limit = settings.DIRECT_UPLOAD_GRANTS_PER_HOUR
    with transaction.atomic():
        # The user's row lock serialises this user's grants, so a burst cannot all pass the count below.
        get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
        recent = DirectUpload.objects.filter(owner_id=user.pk, created_at__gte=now - timedelta(hours=1)).count()
        if recent >= limit:
            raise UploadRateLimited(
                f"You started {recent} uploads in the last hour (at most {limit}). Please wait a little."
            )
        key = storage.direct_upload_key(user.pk)
        expires_in = settings.DIRECT_UPLOAD_EXPIRE_SECONDS
        DirectUpload.objects.create(key=key, owner_id=user.pk, expires_at=now + timedelta(seconds=expires_in))
    post = storage.direct_upload_post(key=key, max_bytes=settings.UPLOAD_MAX_BYTES, expires_in=expires_in)
    return {**post, "key": key, "max_bytes": settings.UPLOAD_MAX_BYTES}


def photo_direct_upload_finish(
    *, user: AbstractBaseUser, key: str, original_name: str = "", crop: CropSquare | None = None
) -> Photo:
    """Validate and normalise a raw object the browser posted to S3, then delete the raw object.

    Each granted key is accepted once: a second finish (the policy can be used again until it expires) is
    refused, and whatever a reused policy leaves behind goes with the incoming/ sweep."""
    not_found = PhotoRejected("This upload was not found. Please upload the photo again.")
    match = _DIRECT_KEY_RE.match(key or "")
    if not direct_upload_enabled() or not match or int(match["user"]) != user.pk:
        raise not_found
    claimed = DirectUpload.objects.filter(key=key, owner_id=user.pk, finished_at__isnull=True).update(
        finished_at=timezone.now()
    )
    if claimed != 1:
        raise not_found
    try:
        size = storage.head_size(key)
        if size is None:
            raise not_found
        check_upload_size(size)
        raw = storage.read(key, limit=settings.UPLOAD_MAX_BYTES)
        check_upload_size(len(raw))
        return _store(user=user, normalised=normalise_image(io.BytesIO(raw), crop=crop), original_name=original_name)
    finally:
        # The raw bytes still carry the original metadata: never keep them, accepted or not.
        storage.delete_now([key])
