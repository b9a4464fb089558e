"""Reads for the website pages: the gallery, one job, one photo, the credits ledger.

Every query is scoped to the acting user, so another user's id simply is not found (404 in views).
Pages cost a constant number of queries whatever their size: rows come with select_related/only, and
file URLs are computed without touching the database (S3 URLs are signed locally, no network either).
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet, Sum
from django.urls import reverse

from editor.models import Clothing, CreditEntry, EditJob, Photo

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

# Filter values shown to people, mapped to the job states behind them.
STATUS_FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "done": ("Done", (EditJob.State.SUCCEEDED,)),
    "running": ("In progress", (EditJob.State.CREATED, EditJob.State.SUBMITTED)),
    "failed": ("Failed", (EditJob.State.FAILED, EditJob.State.EXPIRED)),
}
GALLERY_PAGE_SIZES = (12, 24, 48, 96)
GALLERY_PAGE_SIZE = 24
LEDGER_PAGE_SIZE = 50


@dataclass(frozen=True)
class GalleryFilters:
    status: str = ""
    clothing: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, params: Any) -> GalleryFilters:
        status = params.get("status", "")
        clothing = params.get("clothing", "")
        return cls(
            status=status if status in STATUS_FILTERS else "",
            clothing=clothing if clothing in Clothing.values else "",
            q=(params.get("q", "") or "").strip()[:100],
        )

    @property
    def active(self) -> bool:
        return bool(self.status or self.clothing or self.q)


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def edit_job_for_owner(*, user: AbstractBaseUser, job_id: Any) -> EditJob | None:
    parsed = parse_uuid(job_id)
    if parsed is None:
        return None
    return EditJob.objects.select_related("photo").filter(owner_id=user.pk, pk=parsed).first()


def photo_for_owner(*, user: AbstractBaseUser, photo_id: Any) -> Photo | None:
    parsed = parse_uuid(photo_id)
    if parsed is None:
        return None
    return Photo.objects.filter(owner_id=user.pk, pk=parsed).first()


def gallery_queryset(*, user: AbstractBaseUser, filters: GalleryFilters) -> QuerySet[EditJob]:
    qs = (
        EditJob.objects.filter(owner_id=user.pk)
        .select_related("photo")
        .only(
            "id", "owner_id", "prompt", "clothing", "state", "created_at", "finished_at",
            "result_thumbnail", "error_detail", "photo__id", "photo__thumbnail", "photo__image",
            # ImageField reads its width/height fields when a row loads: deferring them costs 2 queries a row.
            "photo__width", "photo__height",
        )
        .order_by("-created_at", "-id")
    )
    if filters.status:
        qs = qs.filter(state__in=STATUS_FILTERS[filters.status][1])
    if filters.clothing:
        qs = qs.filter(clothing=filters.clothing)
    if filters.q:
        qs = qs.filter(prompt__icontains=filters.q)
    return qs


@dataclass(frozen=True)
class GalleryTile:
    job: EditJob
    thumb_url: str


@dataclass(frozen=True)
class GalleryPage:
    page: Page[EditJob]
    tiles: list[GalleryTile]


def gallery_page(
    *, user: AbstractBaseUser, filters: GalleryFilters, page_number: Any = 1, per_page: int = GALLERY_PAGE_SIZE
) -> GalleryPage:
    """One page of the user's edits, newest first: a COUNT and one SELECT (with the photo joined)."""
    if per_page not in GALLERY_PAGE_SIZES:
        per_page = GALLERY_PAGE_SIZE
    paginator = Paginator(gallery_queryset(user=user, filters=filters), per_page)
    page = paginator.get_page(page_number)
    jobs = list(page.object_list)  # evaluated once: the template iterates these same cached rows
    files = {job.pk: _job_thumbnail_file(job) for job in jobs}
    # With S3, one cache round trip for the whole page instead of one per tile.
    urls = media_urls(name for name, _, _ in files.values()) if settings.USE_S3 else None
    tiles: list[GalleryTile] = []
    for job in jobs:
        name, view_name, pk = files[job.pk]
        tiles.append(GalleryTile(job=job, thumb_url=_file_url(name, view_name=view_name, pk=pk, urls=urls)))
    return GalleryPage(page=page, tiles=tiles)


def credits_ledger_page(*, user: AbstractBaseUser, page_number: Any = 1) -> Page[CreditEntry]:
    qs = (
        CreditEntry.objects.filter(user_id=user.pk)
        .select_related("job")
        .only("id", "kind", "amount", "balance_after", "reason", "created_at", "job__id", "job__prompt",
              "job__clothing", "job__state")
        .order_by("-created_at", "-id")
    )
    return Paginator(qs, LEDGER_PAGE_SIZE).get_page(page_number)


def credits_summary(*, user: AbstractBaseUser) -> dict[str, int]:
    """Totals per kind for the credits page header (one aggregate query)."""
    rows = CreditEntry.objects.filter(user_id=user.pk).values("kind").annotate(total=Sum("amount"))
    totals = {row["kind"]: row["total"] or 0 for row in rows}
    K = CreditEntry.Kind
    return {
        "received": totals.get(K.GRANT, 0) + totals.get(K.ADJUST, 0),
        "spent": -totals.get(K.CHARGE, 0),
        "refunded": totals.get(K.REFUND, 0),
    }


# --- File URLs: presigned S3 URLs (signed locally), or permission-checked views for local files -------

def media_urls(names: Iterable[str]) -> dict[str, str]:
    """Presigned GET URLs for S3 keys, reused from the cache while at least half their lifetime is left.

    Reuse keeps an image's URL the same across page loads, so browsers cache thumbnails instead of fetching them
    again under a new signature, and a gallery page reads 24 URLs in one cache round trip instead of signing
    24 (about a third of its CPU, docs/performance.md "Load"). Every URL handed out is still valid for at least
    MEDIA_URL_EXPIRE_SECONDS / 2. A cache that is down only costs the signing."""
    wanted = {name: "media-url:" + hashlib.sha256(name.encode()).hexdigest() for name in names if name}
    try:
        cached: dict[str, Any] = cache.get_many(list(wanted.values())) if wanted else {}
    except Exception as exc:  # noqa: BLE001 - a cache outage must not break pages
        log.warning("media URL cache unavailable (%s); signing every URL", type(exc).__name__)
        cached = {}
    urls: dict[str, str] = {}
    fresh: dict[str, str] = {}
    for name, key in wanted.items():
        url = cached.get(key)
        if not isinstance(url, str):
            url = str(default_storage.url(name, expire=settings.MEDIA_URL_EXPIRE_SECONDS))  # type: ignore[call-arg]
            fresh[key] = url
        urls[name] = url
    if fresh:
        try:
            cache.set_many(fresh, timeout=max(1, settings.MEDIA_URL_EXPIRE_SECONDS // 2))
        except Exception as exc:  # noqa: BLE001
            log.warning("media URL cache unavailable (%s); URLs not kept", type(exc).__name__)
    return urls


def _file_url(name: str | None, *, view_name: str, pk: Any, urls: dict[str, str] | None = None) -> str:
    """The URL a page shows for a stored file; `urls` holds presigned URLs already fetched for a whole page."""
    if not name:
        return ""
    if settings.USE_S3:
        return (urls if urls is not None else media_urls([name])).get(name, "")
    return reverse(view_name, kwargs={"pk": pk})


def _job_thumbnail_file(job: EditJob) -> tuple[str, str, Any]:
    """(storage name, local file view, its pk) of the picture standing for a job: the result's thumbnail when
    there is one, else the input photo's (failed or running edits)."""
    if job.result_thumbnail:
        return str(job.result_thumbnail.name), "editor:job_thumb", job.pk
    photo = job.photo
    return str(photo.thumbnail.name or photo.image.name), "editor:photo_thumb", photo.pk


def photo_image_url(*, photo: Photo) -> str:
    return _file_url(photo.image.name, view_name="editor:photo_image", pk=photo.pk)


def job_result_url(*, job: EditJob) -> str:
    return _file_url(job.result_image.name, view_name="editor:job_result", pk=job.pk)


def job_download_filename(*, job: EditJob) -> str:
    suffix = PurePosixPath(job.result_image.name or "").suffix.lower() or ".png"
    return f"fashion-ai-{job.clothing}-{str(job.pk)[:8]}{suffix}"


def job_download_url(*, job: EditJob) -> str:
    """A presigned URL that makes the browser save the file (S3), for the download view to redirect to."""
    filename = job_download_filename(job=job)
    return default_storage.url(  # type: ignore[call-arg]
        job.result_image.name,
        parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'},
    )
