"""Where an edit job's files live and how they are written, sent to the provider and deleted.

Kept in one place so the storage rules (S3 or local files, one key per job, deletion after commit with failures
logged) are not spread over the job modules.
"""

from __future__ import annotations

import base64
import logging

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from storages.backends.s3 import S3Storage

from editor import images
from editor.models import EditJob, Photo

log = logging.getLogger(__name__)

RESULT_EXTENSIONS = (".png", ".jpg")


def job_result_key(job: EditJob, extension: str) -> str:
    # One fixed key per job (the job id is a random UUID, so keys stay unguessable): a retry after a partial
    # save overwrites its own earlier copy instead of leaving an orphan in the bucket.
    return f"users/{job.owner_id}/results/{job.pk}{extension}"


def job_thumbnail_key(job: EditJob) -> str:
    return f"users/{job.owner_id}/thumbs/{job.pk}.webp"


def store_at(name: str, data: bytes) -> str:
    """Store `data` at exactly `name`, replacing an earlier partial copy."""
    if storage_is_s3():
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


def delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # storage hiccup: an orphan file is better than a failed delete for the user
            log.warning("could not delete stored file %s", name, exc_info=True)


def delete_partial_result_files(job: EditJob) -> None:
    """A job that ends without a result may still have a copy from an interrupted save: remove it."""
    names = [job_result_key(job, ext) for ext in RESULT_EXTENSIONS] + [job_thumbnail_key(job)]
    # Deleting a missing key is a no-op on S3 and on local storage; failures are logged, never raised.
    transaction.on_commit(lambda: delete_files(names))


def provider_image_for(*, photo: Photo) -> str:
    """A presigned GET URL the provider can fetch (S3), else the image inline as a data: URI."""
    name = str(photo.image.name)
    if storage_is_s3() and not settings.FASHION_AI_SEND_DATA_URI:
        return str(default_storage.url(name, expire=settings.PROVIDER_INPUT_URL_EXPIRE_SECONDS))  # type: ignore[call-arg]
    with default_storage.open(name, "rb") as handle:
        data = handle.read()
    return f"data:{images.image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def storage_is_s3() -> bool:
    return isinstance(default_storage._wrapped if hasattr(default_storage, "_wrapped") else default_storage, S3Storage)
