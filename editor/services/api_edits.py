"""The developer API's edit commands: the same commands as the site (editor/services/edit_commands.py: ownership,
validation, credits, the in-flight cap, refunds), plus where the image comes from and `Idempotency-Key`.

Idempotency as Stripe has it: the first request with a key makes the edit; the same key with the same request
answers with that edit (never a second one, never a second charge); the same key with another request is a
conflict; a key is remembered for API_IDEMPOTENCY_SECONDS. The key's row is inserted in the same transaction that
creates the edit and charges for it, so the database decides between concurrent duplicates: the second INSERT
waits on the unique index until the first commits, then fails, and that request answers with the first's edit.
A refused request (bad input, no credits) rolls its key back with it, so the key can be used again once the
problem is fixed.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from editor.api.models import IdempotencyRecord
from editor.errors import Refused
from editor.integrations.outbound import fetch_image_url
from editor.models import EditJob, Photo
from editor.services.edit_commands import NOT_FOUND, EditJobNotFound, edit_start

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class IdempotencyConflict(Refused):
    """The key was used for a different request (409)."""


class IdempotencyGone(Refused):
    """The edit this key made was deleted since."""


@dataclass(frozen=True)
class ImageSource:
    upload: Any = None  # a Django UploadedFile
    url: str = ""
    photo_id: Any = None


@dataclass(frozen=True)
class Created:
    job: EditJob
    replayed: bool  # True: an earlier request with this Idempotency-Key made it


def _one_source(source: ImageSource) -> None:
    given = [bool(source.upload), bool(source.url), source.photo_id is not None]
    if sum(given) != 1:
        raise Refused("Send exactly one of image (a file), image_url or photo_id.", field="image")


def _fingerprint(*, prompt: str, clothing: str, source: ImageSource, upload_bytes: bytes | None) -> str:
    """What makes two requests "the same request" for an Idempotency-Key: every parameter, the file by content."""
    body = {
        "prompt": prompt, "clothing": clothing, "image_url": source.url,
        "photo_id": str(source.photo_id) if source.photo_id is not None else "",
        "image_sha256": hashlib.sha256(upload_bytes).hexdigest() if upload_bytes is not None else "",
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def api_edit_create(
    *, user: AbstractBaseUser, prompt: str, clothing: str, source: ImageSource, idempotency_key: str | None = None
) -> Created:
    _one_source(source)
    upload_bytes: bytes | None = None
    if source.upload:
        source.upload.seek(0)
        upload_bytes = source.upload.read(settings.UPLOAD_MAX_BYTES + 1)
        source.upload.seek(0)
    fingerprint = _fingerprint(prompt=prompt, clothing=clothing, source=source, upload_bytes=upload_bytes)

    def start() -> EditJob:
        if source.photo_id is not None:
            # Someone else's photo id is refused by edit_start's ownership check exactly like a missing one.
            photo = Photo.objects.filter(pk=source.photo_id).first()
            if photo is None:
                raise EditJobNotFound(NOT_FOUND)
            return edit_start(user=user, prompt=prompt, clothing=clothing, photo=photo)
        upload = source.upload
        if source.url:
            # Fetched before any transaction opens (it may take seconds); a duplicate fetches too, then waits.
            upload = SimpleUploadedFile("image-url", fetched)
        return edit_start(user=user, prompt=prompt, clothing=clothing, uploaded_file=upload)

    fetched = fetch_image_url(source.url) if source.url else b""
    if idempotency_key is None:
        return Created(job=start(), replayed=False)
    return _idempotent(user=user, key=idempotency_key, fingerprint=fingerprint, start=start)


def validate_idempotency_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > 255 or not key.isprintable():
        raise Refused("Idempotency-Key must be 1 to 255 printable characters.", field="Idempotency-Key")
    return key


def _idempotent(*, user: AbstractBaseUser, key: str, fingerprint: str, start: Callable[[], EditJob]) -> Created:
    key = validate_idempotency_key(key)
    cutoff = timezone.now() - timedelta(seconds=settings.API_IDEMPOTENCY_SECONDS)
    IdempotencyRecord.objects.filter(user_id=user.pk, key=key, created_at__lt=cutoff).delete()
    for _ in range(3):
        inserted = False
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(user_id=user.pk, key=key, request_hash=fingerprint)
                inserted = True
                job = start()
                IdempotencyRecord.objects.filter(pk=record.pk).update(job=job)
                return Created(job=job, replayed=False)
        except IntegrityError:
            if inserted:
                raise  # not the key's constraint: something inside the edit's own transaction
            existing = IdempotencyRecord.objects.filter(user_id=user.pk, key=key).select_related("job").first()
            if existing is None:
                continue  # the first request was rolled back (refused) meanwhile: this one may run
            if existing.request_hash != fingerprint:
                raise IdempotencyConflict(
                    "This Idempotency-Key was already used with a different request.", field="Idempotency-Key"
                ) from None
            if existing.job is None:
                raise IdempotencyGone("The edit made with this Idempotency-Key was deleted.") from None
            return Created(job=existing.job, replayed=True)
    raise IdempotencyConflict("This Idempotency-Key is in use by another request; retry.", field="Idempotency-Key")


def idempotency_records_expire() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.API_IDEMPOTENCY_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


