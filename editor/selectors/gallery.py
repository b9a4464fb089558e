"""Reads for the website pages: the gallery, one job, one photo, the credits ledger.

Every query is scoped to the acting user, so another user's id simply is not found (404 in views).
Pages cost a constant number of queries whatever their size: rows come with select_related/only, and
file URLs are computed without touching the database (S3 URLs are signed locally, no network either).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet, Sum
from django.urls import reverse

from editor import storage
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


def edit_job_retried_as(*, job: EditJob) -> EditJob | None:
    """The edit that tried this failed one again (by its owner or staff), if any."""
    return EditJob.objects.filter(retry_of_id=job.pk, owner_id=job.owner_id).only("pk", "owner_id").first()


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
    # With S3, one cache round trip for the whole page instead of one per tile (None: local files).
    urls = storage.media_urls(name for name, _, _ in files.values())
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
    """The credits page's totals, each a positive number (one aggregate query). A refunded charge is charged and
    given back, so edits cost `net_spent` = charged - refunded; the totals add up to the balance:
    received + bought - net_spent - taken_off - clawed_back == balance."""
    K = CreditEntry.Kind
    sums = CreditEntry.objects.filter(user_id=user.pk).aggregate(
        received=Sum("amount", filter=Q(kind=K.GRANT) | Q(kind=K.ADJUST, amount__gt=0)),
        taken_off=Sum("amount", filter=Q(kind=K.ADJUST, amount__lt=0)),
        charged=Sum("amount", filter=Q(kind=K.CHARGE)),
        edits_charged=Count("id", filter=Q(kind=K.CHARGE)),
        refunded=Sum("amount", filter=Q(kind=K.REFUND)),
        edits_refunded=Count("id", filter=Q(kind=K.REFUND)),
        bought=Sum("amount", filter=Q(kind=K.PURCHASE)),
        clawed_back=Sum("amount", filter=Q(kind=K.CLAWBACK)),
    )
    summary = {name: abs(value or 0) for name, value in sums.items()}
    summary["net_spent"] = summary["charged"] - summary["refunded"]
    return summary


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def credits_summary_sentence(summary: dict[str, int], *, balance: int) -> str:
    """The totals as one plain sentence that adds up to the balance (refunded charges are not "spent")."""
    parts = [f"You received {_count(summary['received'], 'credit')}."]
    if summary.get("bought"):
        parts.append(f"You bought {_count(summary['bought'], 'credit')}.")
    edits, charged, refunded = summary["edits_charged"], summary["charged"], summary["refunded"]
    if not edits:
        parts.append("No edits yet.")
    elif not refunded:
        parts.append(f"{_count(edits, 'edit')} {'was' if edits == 1 else 'were'} charged "
                     f"{_count(charged, 'credit')}, so edits cost you {_count(charged, 'credit')}.")
    else:
        failed = summary["edits_refunded"]
        parts.append(f"{_count(edits, 'edit')} {'was' if edits == 1 else 'were'} charged "
                     f"{_count(charged, 'credit')}; {failed} of them failed or timed out and gave "
                     f"{'its' if failed == 1 else 'their'} {_count(refunded, 'credit')} back, so edits cost you "
                     f"{_count(summary['net_spent'], 'credit')}.")
    if summary["taken_off"]:
        parts.append(f"Staff took off {_count(summary['taken_off'], 'credit')}.")
    if summary.get("clawed_back"):
        parts.append(f"Refunded or disputed payments took back {_count(summary['clawed_back'], 'credit')}.")
    parts.append(f"That leaves {_count(balance, 'credit')}.")
    return " ".join(parts)


# --- File URLs: presigned S3 URLs (signed locally), or permission-checked views for local files -------

def _file_url(name: str | None, *, view_name: str, pk: Any, urls: dict[str, str] | None = None) -> str:
    """The URL a page shows for a stored file; `urls` holds presigned URLs already fetched for a whole page."""
    if not name:
        return ""
    if urls is None:
        urls = storage.media_urls([name])
    if urls is None:  # local files: the permission-checked view streams it
        return reverse(view_name, kwargs={"pk": pk})
    return urls.get(name, "")


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


def photo_original_url(*, photo: Photo) -> str:
    return _file_url(photo.original.name, view_name="editor:photo_original", pk=photo.pk)


def job_full_result_url(*, job: EditJob) -> str:
    return _file_url(job.full_result.name, view_name="editor:job_full_result", pk=job.pk)


def job_download_filename(*, job: EditJob, square: bool = False) -> str:
    """The full-resolution JPEG's name, or (`square`) the 512 square's as the model made it."""
    if job.full_result and not square:
        return f"fashion-ai-{job.clothing}-{str(job.pk)[:8]}.jpg"
    suffix = PurePosixPath(job.result_image.name or "").suffix.lower() or ".png"
    return f"fashion-ai-{job.clothing}-{str(job.pk)[:8]}-512{suffix}"
