"""The files sweep (beat): removes what the one deletion rule (editor/storage.py) leaves for later.

- Raw direct uploads under `incoming/` older than their upload policy: never finished (a closed tab) or posted
  again after finish with a reused policy. They still carry the original EXIF/GPS, so they must not stay.
- Orphans under `users/`: files no row refers to any more (a delete that failed on a storage hiccup, a save
  interrupted between the PUT and the row), once they are older than a grace period (a file is stored a moment
  before the row that names it commits).
- DirectUpload rows once they no longer count for the hourly grant limit and their policy is long dead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from editor import storage
from editor.models import DirectUpload, EditJob, Photo

log = logging.getLogger(__name__)

_CHUNK = 500
# A grant counts for the hourly limit for an hour; a day later its row serves nothing.
_DIRECT_UPLOAD_ROWS_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class SweepResult:
    incoming: int
    orphans: int


def _referenced(names: list[str]) -> set[str]:
    found: set[str] = set()
    for row in Photo.objects.filter(
        Q(image__in=names) | Q(thumbnail__in=names) | Q(original__in=names)
    ).values_list("image", "thumbnail", "original"):
        found.update(row)
    for row in EditJob.objects.filter(
        Q(result_image__in=names) | Q(result_thumbnail__in=names) | Q(full_result__in=names)
    ).values_list("result_image", "result_thumbnail", "full_result"):
        found.update(row)
    return found


def files_sweep_incoming(*, now: datetime | None = None, prefix: str = storage.DIRECT_UPLOAD_PREFIX) -> int:
    """Delete raw direct uploads whose policy has expired (a browser can no longer be finishing them)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DIRECT_UPLOAD_EXPIRE_SECONDS + 60)
    expired = [name for name, modified in storage.stored_files(prefix) if modified < cutoff]
    failed = storage.delete_now(expired)
    DirectUpload.objects.filter(created_at__lt=now - _DIRECT_UPLOAD_ROWS_KEPT).delete()
    return len(expired) - len(failed)


def files_sweep_orphans(*, now: datetime | None = None, prefix: str = storage.USERS_PREFIX) -> int:
    """Delete stored files under `prefix` that no row refers to and that are older than the grace period."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.FILES_ORPHAN_GRACE_SECONDS)
    deleted = 0
    chunk: list[str] = []

    def flush() -> int:
        referenced = _referenced(chunk)
        orphans = [name for name in chunk if name not in referenced]
        failed = storage.delete_now(orphans)
        chunk.clear()
        return len(orphans) - len(failed)

    for name, modified in storage.stored_files(prefix):
        if modified < cutoff:
            chunk.append(name)
            if len(chunk) >= _CHUNK:
                deleted += flush()
    if chunk:
        deleted += flush()
    if deleted:
        log.info("files sweep removed %d orphan files under %s", deleted, prefix)
    return deleted


def files_sweep(*, now: datetime | None = None, user_id: int | None = None) -> SweepResult:
    """Both sweeps; `user_id` limits them to one user's files (tests share one bucket)."""
    incoming_prefix = storage.DIRECT_UPLOAD_PREFIX + (f"/{user_id}" if user_id is not None else "")
    users_prefix = storage.USERS_PREFIX + (f"/{user_id}" if user_id is not None else "")
    return SweepResult(
        incoming=files_sweep_incoming(now=now, prefix=incoming_prefix),
        orphans=files_sweep_orphans(now=now, prefix=users_prefix),
    )
