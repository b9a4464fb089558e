"""A person's data: "download my data" (a ZIP made by a task) and "delete my account" (a task that deletes every
file and personal row, keeps the ledger entries accounting needs anonymised, and survives being killed half way).

Both are rows (DataExport, AccountDeletion) a task works on under a lease: a worker that dies lets the lease lapse
and the beat sweep (`account_tasks_sweep`) starts the work again. Every step is safe to repeat: files are listed
from storage each time and deleting a missing one is a no-op, rows are deleted by owner, the last step marks done.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import time
import zipfile
from collections.abc import Iterable
from datetime import timedelta
from importlib import import_module
from typing import TYPE_CHECKING, Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from editor import storage
from editor.errors import Refused
from editor.models import (
    AccountDeletion,
    CreditAccount,
    CreditEntry,
    DataExport,
    DirectUpload,
    EditJob,
    Photo,
    Purchase,
)
from editor.services.job_state import edit_jobs_cancel_for_deleted_account, edit_jobs_remove_for_deleted_account

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

# Ledger lines accounting keeps after the account is gone (money that moved), anonymised.
ACCOUNTING_KINDS = (CreditEntry.Kind.PURCHASE, CreditEntry.Kind.CLAWBACK)


EXPORT_MIN_INTERVAL_SECONDS = 15 * 60


class AccountDataRefused(Refused):
    pass


def _claim(model: type[DataExport] | type[AccountDeletion], pk: int, pending: str) -> bool:
    """Take the row for one lease if it is pending and nobody holds a live lease on it."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.ACCOUNT_TASK_LEASE_SECONDS)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    rows = model.objects.filter(free, pk=pk, state=pending)
    return rows.update(lease_until=lease, attempts=F("attempts") + 1) == 1


# ------------------------------------------------------------------------------------------------ export


def data_export_request(*, user: AbstractBaseUser, requested_by: AbstractBaseUser | None = None) -> DataExport:
    """Queue a ZIP of everything of the user's; the link is emailed when it is ready. One at a time."""
    if DataExport.objects.filter(user_id=user.pk, state=DataExport.State.PENDING).exists():
        raise AccountDataRefused("Your data is already being prepared: the link comes by email.")
    recent = timezone.now() - timedelta(seconds=EXPORT_MIN_INTERVAL_SECONDS)
    if requested_by is None and DataExport.objects.filter(user_id=user.pk, created_at__gte=recent).exists():
        # Each export reads every file of the account: one every few minutes is plenty.
        raise AccountDataRefused("You asked for a copy of your data a few minutes ago: use that one, or try later.")
    export = DataExport.objects.create(user_id=user.pk, requested_by_id=requested_by.pk if requested_by else None)
    return export


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            # A cell starting with = + - @ would run as a formula in a spreadsheet.
            writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v)
                             for k, v in row.items()})
    return out.getvalue()


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def export_contents(*, user_id: int) -> tuple[list[tuple[str, str]], dict[str, list[dict[str, Any]]]]:
    """(stored file -> name in the ZIP, tables). Files are listed from storage, so nothing of the user's is
    missed, and only under the user's own prefix, so nothing of anyone else's is in it."""
    prefix = storage.user_content_prefix(user_id) + "/"
    files = sorted((name, "files/" + name[len(prefix):]) for name, _ in storage.stored_files(prefix))
    in_zip = {name: path for name, path in files}
    jobs = [
        {
            "id": str(job.pk), "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
            "prompt": job.prompt, "clothing": job.clothing, "state": job.state, "cost_credits": job.cost_credits,
            "error": job.error_detail, "photo": in_zip.get(str(job.photo.image.name), ""),
            "result": in_zip.get(str(job.result_image.name), "") if job.result_image else "",
            "result_thumbnail": in_zip.get(str(job.result_thumbnail.name), "") if job.result_thumbnail else "",
        }
        for job in EditJob.objects.filter(owner_id=user_id).select_related("photo").order_by("created_at")
    ]
    photos = [
        {"id": str(p.pk), "created_at": _iso(p.created_at), "original_name": p.original_name,
         "image": in_zip.get(str(p.image.name), ""), "thumbnail": in_zip.get(str(p.thumbnail.name), "")}
        for p in Photo.objects.filter(owner_id=user_id).order_by("created_at")
    ]
    ledger = [
        {"created_at": _iso(e.created_at), "kind": e.kind, "amount": e.amount, "balance_after": e.balance_after,
         "reason": e.reason, "edit": str(e.job_id or "")}
        for e in CreditEntry.objects.filter(user_id=user_id).order_by("created_at", "id")
    ]
    purchases = [
        {"created_at": _iso(p.created_at), "paid_at": _iso(p.paid_at), "pack": p.pack_name, "credits": p.credits,
         "amount": p.amount_display, "currency": p.currency, "status": p.status,
         "amount_reversed": p.amount_reversed_display, "credits_reversed": p.credits_reversed,
         "checkout_session": p.checkout_session_id or ""}
        for p in Purchase.objects.filter(user_id=user_id).order_by("created_at")
    ]
    user = get_user_model().objects.get(pk=user_id)
    account = [{"email": getattr(user, "email", ""), "date_joined": _iso(getattr(user, "date_joined", None)),
                "credits": CreditAccount.objects.filter(user_id=user_id).values_list("balance", flat=True).first()}]
    return files, {"account": account, "history": jobs, "photos": photos, "ledger": ledger, "purchases": purchases}


def data_export_build(*, export_id: int) -> bool:
    """Build, store and email one export. Returns False when there was nothing to do (done, or someone else's
    lease). A rerun after a crash builds it again from scratch under the same name."""
    if not _claim(DataExport, export_id, DataExport.State.PENDING):
        return False
    export = DataExport.objects.select_related("user").get(pk=export_id)
    files, tables = export_contents(user_id=export.user_id)
    with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
        with zipfile.ZipFile(handle, "w") as archive:
            for name, path in files:
                try:
                    archive.writestr(path, storage.read(name), compress_type=zipfile.ZIP_STORED)
                except FileNotFoundError:
                    continue  # deleted between listing and reading (an edit deleted meanwhile)
            for table, rows in tables.items():
                archive.writestr(f"{table}.json", json.dumps(rows, indent=2, ensure_ascii=False),
                                 compress_type=zipfile.ZIP_DEFLATED)
                archive.writestr(f"{table}.csv", _csv(rows), compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr("README.txt", render_to_string("editor/email/export_readme.txt", {}))
        handle.flush()
        name = storage.store_file_at(storage.export_key(export.user_id, export.token), handle.name)
        size = storage.size(name)
    now = timezone.now()
    expires = now + timedelta(seconds=settings.DATA_EXPORT_EXPIRE_SECONDS)
    ready = DataExport.objects.filter(pk=export_id, state=DataExport.State.PENDING).update(
        state=DataExport.State.READY, file_name=name, size_bytes=size, finished_at=now, expires_at=expires,
        lease_until=None,
    ) == 1
    if ready and export.user.email:
        link = f"{settings.SITE_URL}{reverse('editor:data_export_download', args=[export.token])}"
        send_mail(
            subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}Your data is ready to download",
            message=render_to_string("editor/email/export_ready.txt", {"link": link, "expires": expires}),
            from_email=None, recipient_list=[export.user.email],
        )
    return ready


def data_export_for_download(*, user: AbstractBaseUser, token: str) -> DataExport | None:
    return DataExport.objects.filter(
        user_id=user.pk, token=token, state=DataExport.State.READY, expires_at__gt=timezone.now()
    ).first()


def data_exports_remove_expired(*, now: Any = None) -> int:
    now = now or timezone.now()
    expired = list(DataExport.objects.filter(expires_at__lt=now).values_list("pk", "file_name"))
    with transaction.atomic():
        DataExport.objects.filter(pk__in=[pk for pk, _ in expired]).delete()
        storage.delete_after_commit([name for _, name in expired])
    return len(expired)


# ------------------------------------------------------------------------------------------------ deletion


def account_deletion_request(
    *, user: AbstractBaseUser, password: str | None, confirmed: bool, by_staff: AbstractBaseUser | None = None
) -> AccountDeletion:
    """Start deleting an account. The person re-enters their password and confirms; staff (who may delete
    accounts) only confirm. The account is switched off at once, so nothing new starts; the task does the rest."""
    if by_staff is None and (not password or not user.check_password(password)):
        raise AccountDataRefused("That password is not right.", field="password")
    if not confirmed:
        raise AccountDataRefused("Tick the box to confirm that everything is deleted for good.", field="confirm")
    if getattr(user, "is_superuser", False):
        raise AccountDataRefused("A superuser account is deleted by another superuser, in the admin.")
    with transaction.atomic():
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        deletion, _ = AccountDeletion.objects.get_or_create(
            user_id=user.pk, defaults={"by_staff": by_staff is not None}
        )
    log.info("account deletion of user %s requested%s", user.pk, " by staff" if by_staff else "")
    return deletion


def _delete_files(*, user_id: int, deletion_id: int) -> int:
    deleted = 0
    throttle = settings.ACCOUNT_DELETION_THROTTLE_SECONDS
    for prefix in storage.user_prefixes(user_id):
        names = [name for name, _ in storage.stored_files(prefix)]
        for name in names:
            if not storage.delete_now([name]):
                deleted += 1
                # Counting also renews the lease: a long deletion is not handed to a second worker meanwhile.
                AccountDeletion.objects.filter(pk=deletion_id).update(
                    files_deleted=F("files_deleted") + 1,
                    lease_until=timezone.now() + timedelta(seconds=settings.ACCOUNT_TASK_LEASE_SECONDS),
                )
            if throttle:
                time.sleep(throttle)  # spreads the deletes of a big account; also lets fault tests kill mid-way
    return deleted


def _user_sessions(user_id: int) -> Iterable[Session]:
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=500):
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            yield session


def _delete_rows(*, user_id: int) -> None:
    with transaction.atomic():
        # Money that moved stays in the books, with nothing that says whose it was.
        CreditEntry.objects.filter(user_id=user_id, kind__in=ACCOUNTING_KINDS).update(
            user=None, reason="", created_by=None, job=None
        )
        CreditEntry.objects.filter(user_id=user_id).delete()
        Purchase.objects.filter(user_id=user_id).update(user=None)
        edit_jobs_remove_for_deleted_account(owner_id=user_id)
        Photo.objects.filter(owner_id=user_id).delete()
        DirectUpload.objects.filter(owner_id=user_id).delete()
        EmailAddress.objects.filter(user_id=user_id).delete()
        user_type = ContentType.objects.get_for_model(get_user_model())
        LogEntry.objects.filter(content_type=user_type, object_id=str(user_id)).delete()
        get_user_model().objects.filter(pk=user_id).delete()  # cascades: balance row, exports, sign-up record...
    session_store = import_module(settings.SESSION_ENGINE).SessionStore
    for session in _user_sessions(user_id):
        session_store(session_key=session.session_key).delete()


def account_deletion_run(*, deletion_id: int) -> bool:
    """Do (or finish) one deletion. Each step can be repeated; a crash anywhere is resumed by the sweep."""
    if not _claim(AccountDeletion, deletion_id, AccountDeletion.State.PENDING):
        return False
    user_id = int(AccountDeletion.objects.values_list("user_id", flat=True).get(pk=deletion_id))
    edit_jobs_cancel_for_deleted_account(owner_id=user_id)  # refunded; the rows go below
    _delete_files(user_id=user_id, deletion_id=deletion_id)
    _delete_rows(user_id=user_id)
    # Anything a racing worker stored meanwhile (a result saved just before its job was cancelled).
    _delete_files(user_id=user_id, deletion_id=deletion_id)
    AccountDeletion.objects.filter(pk=deletion_id).update(
        state=AccountDeletion.State.DONE, finished_at=timezone.now(), lease_until=None
    )
    log.info("account of user %s deleted", user_id)
    return True


def account_tasks_due() -> tuple[list[int], list[int]]:
    """(exports, deletions) that are pending and not being worked on (never started, or their worker died)."""
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now())
    exports = list(DataExport.objects.filter(free, state=DataExport.State.PENDING).values_list("pk", flat=True))
    deletions = list(
        AccountDeletion.objects.filter(free, state=AccountDeletion.State.PENDING).values_list("pk", flat=True)
    )
    return exports, deletions
