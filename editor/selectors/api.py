"""Reads for the developer API: one edit as the API shows it, cursor pages of edits and of the ledger.

Scoped to the acting user like every selector (another user's id is not found). Pages are keyset pages on
(created_at, id), newest first: stable under inserts, one indexed query each whatever the depth.
"""
from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q, QuerySet

from editor import storage
from editor.models import CreditEntry, EditJob
from editor.selectors.credits import credits_balance
from editor.selectors.gallery import GalleryFilters, gallery_queryset, parse_uuid
from editor.selectors.jobs import edit_job_progress

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

PAGE_LIMIT_DEFAULT = 20
PAGE_LIMIT_MAX = 100


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, pk: Any) -> str:
    raw = json.dumps([created_at.isoformat(), str(pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, pk = json.loads(raw)
        return datetime.fromisoformat(stamp), str(pk)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this API gave out") from exc


def _after(qs: QuerySet[Any], cursor: str | None, pk_parse: Any) -> QuerySet[Any]:
    if not cursor:
        return qs
    stamp, pk = decode_cursor(cursor)
    parsed = pk_parse(pk)
    if parsed is None:
        raise BadCursor("cursor is not one this API gave out")
    return qs.filter(Q(created_at__lt=stamp) | Q(created_at=stamp, pk__lt=parsed))


@dataclass(frozen=True)
class CursorPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _file_urls(job: EditJob) -> dict[str, str]:
    """Presigned S3 URLs (expiring), or the API's own key-checked file paths for local files."""
    names = {"result": str(job.result_image.name or ""), "thumbnail": str(job.result_thumbnail.name or "")}
    presigned = storage.media_urls(n for n in names.values() if n)
    out: dict[str, str] = {}
    for kind, name in names.items():
        if not name:
            continue
        out[kind] = presigned.get(name, "") if presigned is not None else f"/api/v1/edits/{job.pk}/{kind}"
    return out


def api_edit_representation(*, job: EditJob, charged: int, refunded: int) -> dict[str, Any]:
    progress = edit_job_progress(job=job)
    urls = _file_urls(job) if job.state == EditJob.State.SUCCEEDED else {}
    failed = job.state in (EditJob.State.FAILED, EditJob.State.EXPIRED)
    return {
        "id": str(job.pk),
        "state": job.state,
        "phase": str(progress["phase"]),
        "progress": progress["fraction"],
        "eta_seconds": None if job.is_final else progress["remaining_seconds"],
        "prompt": job.prompt,
        "clothing": job.clothing,
        "photo_id": str(job.photo_id),
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "result": (
            {"url": urls.get("result", ""), "thumbnail_url": urls.get("thumbnail", ""),
             "presigned": storage.is_s3(), "expires_in_seconds": _url_lifetime() if storage.is_s3() else None}
            if urls else None
        ),
        "credits": {"charged": charged, "refunded": refunded},
        "error": {"code": job.error_code or job.state, "message": job.error_detail} if failed else None,
    }


def _url_lifetime() -> int:
    return int(settings.MEDIA_URL_EXPIRE_SECONDS)


def _credits_by_job(job_ids: list[Any]) -> dict[Any, tuple[int, int]]:
    rows = CreditEntry.objects.filter(
        job_id__in=job_ids, kind__in=(CreditEntry.Kind.CHARGE, CreditEntry.Kind.REFUND)
    ).values_list("job_id", "kind", "amount")
    totals: dict[Any, list[int]] = {}
    for job_id, kind, amount in rows:
        pair = totals.setdefault(job_id, [0, 0])
        if kind == CreditEntry.Kind.CHARGE:
            pair[0] += -amount
        else:
            pair[1] += amount
    return {job_id: (c, r) for job_id, (c, r) in totals.items()}


def api_edit_for_owner(*, user: AbstractBaseUser, job_id: Any) -> dict[str, Any] | None:
    parsed = parse_uuid(job_id)
    if parsed is None:
        return None
    job = EditJob.objects.filter(owner_id=user.pk, pk=parsed).first()
    if job is None:
        return None
    charged, refunded = _credits_by_job([job.pk]).get(job.pk, (0, 0))
    return api_edit_representation(job=job, charged=charged, refunded=refunded)


def api_edit_is_final(*, user: AbstractBaseUser, job_id: uuid.UUID) -> bool:
    return EditJob.objects.filter(owner_id=user.pk, pk=job_id, state__in=EditJob.FINAL_STATES).exists()


def api_edit_page(
    *, user: AbstractBaseUser, filters: GalleryFilters, cursor: str | None, limit: int
) -> CursorPage:
    """The gallery's filters (status done/running/failed, clothing, q), newest first."""
    # The gallery's query and filters, with every column (the API shows more than a tile).
    qs = _after(gallery_queryset(user=user, filters=filters).defer(None), cursor, parse_uuid)
    jobs = list(qs[: limit + 1])
    more = len(jobs) > limit
    jobs = jobs[:limit]
    credits = _credits_by_job([j.pk for j in jobs])
    items = [api_edit_representation(job=j, charged=credits.get(j.pk, (0, 0))[0],
                                     refunded=credits.get(j.pk, (0, 0))[1]) for j in jobs]
    last = jobs[-1] if jobs else None
    return CursorPage(items=items, next_cursor=encode_cursor(last.created_at, last.pk) if more and last else None)


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def api_ledger_page(*, user: AbstractBaseUser, cursor: str | None, limit: int) -> tuple[int, CursorPage]:
    qs = CreditEntry.objects.filter(user_id=user.pk).order_by("-created_at", "-id")
    rows = list(_after(qs, cursor, _int_or_none)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {"id": e.pk, "kind": e.kind, "amount": e.amount, "balance_after": e.balance_after, "reason": e.reason,
         "edit_id": str(e.job_id) if e.job_id else None, "created_at": e.created_at}
        for e in rows
    ]
    last = rows[-1] if rows else None
    page = CursorPage(items=items, next_cursor=encode_cursor(last.created_at, last.pk) if more and last else None)
    return credits_balance(user=user), page
