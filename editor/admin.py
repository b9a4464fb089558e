"""The Django admin for operators: users and their credits, photos, jobs, the ledger, provider errors, alerts.

Credits move only through editor.services.credits (grant/adjust/refund), each move is audited twice: the
ledger entry carries created_by and the reason, and a LogEntry records the admin action. The ledger,
provider errors and jobs are read-only here: history is never edited by hand.

Being staff opens the admin, nothing more: every page and action checks a model permission. Moving credits
needs `editor.grant_credits` (not "change user"); only superusers change privileges (staff and superuser
flags, groups, permissions) or superuser accounts, and nobody changes their own privileges.
"""
from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, TypeVar

from allauth.mfa.admin import AuthenticatorAdmin as BaseAuthenticatorAdmin
from allauth.mfa.models import Authenticator
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.models import User as AuthUser
from django.db import transaction
from django.db.models import F, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from editor.dashboard.models import DailyUsage
from editor.dashboard.selectors import job_timeline
from editor.dashboard.services import operator_alert_resolve
from editor.errors import Refused
from editor.models import (
    AccountDeletion,
    CreditEntry,
    CreditPack,
    DataExport,
    EditJob,
    OperatorAlert,
    PaymentReversal,
    Photo,
    ProviderError,
    Purchase,
    ShareLink,
    SiteSwitches,
    WrongResultReport,
)
from editor.services.account_commands import account_delete_start, data_export_start
from editor.services.credits import (
    AlreadyApplied,
    credits_adjust,
    credits_grant,
    credits_refund_by_staff,
)
from editor.services.edit_commands import edit_job_retry
from editor.services.photos import photo_delete

User = get_user_model()
_M = TypeVar("_M", bound=Model)
CsvColumns = list[tuple[str, Callable[[Any], Any]]]
GRANT_CREDITS_PERMISSION = "editor.grant_credits"
# What makes an account powerful: only a superuser sets these, and never on their own account.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


# --- Helpers ------------------------------------------------------------------------------------------


def _csv_response(filename: str, columns: CsvColumns, rows: Iterable[Any]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([header for header, _ in columns])
    for row in rows:
        writer.writerow([_csv_safe(getter(row)) for _, getter in columns])
    return response


def _csv_safe(value: Any) -> Any:
    # A cell starting with = + - @ runs as a formula in spreadsheets, and so does one after a leading TAB or CR
    # (which some spreadsheets strip): quote it (user text such as prompts).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@admin.action(description="Export selected rows as CSV")
def export_as_csv(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse:
    model = queryset.model._meta.model_name
    return _csv_response(f"{model}-{timezone.now():%Y%m%d-%H%M%S}.csv", modeladmin.csv_columns, queryset)


def _staff(request: HttpRequest) -> AbstractBaseUser:
    # The admin only lets active staff in, so the acting user is a real account.
    user = request.user
    assert isinstance(user, AbstractBaseUser)
    return user


def _image(obj: Photo | EditJob, field: str, size: int = 64) -> str:
    """A thumbnail through the staff-only file view (which redirects to a presigned URL on S3)."""
    if not getattr(obj, field):
        return "–"
    kind = "photo" if isinstance(obj, Photo) else "job"
    url = reverse("staff_file", args=[kind, obj.pk, field])
    return format_html(
        '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="" width="{}" height="{}" loading="lazy"></a>',
        url, url, size, size,
    )


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """Rows written only by the application: staff may look and export, never add, edit or delete."""

    actions = [export_as_csv]
    csv_columns: CsvColumns = []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Users and credits ----------------------------------------------------------------------------


class CreditsForm(forms.Form):
    amount = forms.IntegerField(help_text="Credits to add (a grant) or add/remove (an adjustment, may be negative).")
    reason = forms.CharField(max_length=255, help_text="Shown in the user's ledger and kept for the audit.")
    # A one-time token made when the form is shown and stored on each ledger entry it writes: posting the same
    # form again (a double click, the browser's resubmit) moves nothing.
    nonce = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        if not self.is_bound:
            self.initial["nonce"] = uuid.uuid4()

    def clean_amount(self) -> int:
        amount: int = self.cleaned_data["amount"]
        if self.kind == "grant" and amount <= 0:
            raise forms.ValidationError("A grant must be a positive number of credits.")
        if amount == 0:
            raise forms.ValidationError("The amount cannot be zero.")
        return amount

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give a reason.")
        return reason


admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(BaseAuthenticatorAdmin):  # type: ignore[misc]  # allauth ships no type hints
    """Two-factor devices: the TOTP secret and recovery codes are never shown; a superuser may delete a lost
    device (the owner then sets up a new one), nobody adds or edits one here."""

    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin):
    """Groups carry permissions: only superusers make or change them (staff could otherwise grant themselves
    anything through a group they belong to)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(User)
class UserAdmin(BaseUserAdmin[AuthUser]):
    list_display = ("username", "email", "balance", "usage_link", "is_staff", "is_active", "date_joined")
    actions = ["grant_credits", "adjust_credits", "export_user_data", "delete_user_data", export_as_csv]
    csv_columns: CsvColumns = [
        ("id", lambda u: u.pk),
        ("email", lambda u: u.email),
        ("balance", lambda u: u.balance),
        ("is_staff", lambda u: u.is_staff),
        ("date_joined", lambda u: u.date_joined.isoformat()),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuthUser]:
        return super().get_queryset(request).annotate(balance=F("credit_account__balance"))

    @admin.display(description="Balance", ordering="balance")
    def balance(self, obj: Any) -> int:
        return obj.balance or 0

    @admin.display(description="Usage")
    def usage_link(self, obj: Any) -> str:
        return format_html('<a href="{}">usage</a>', reverse("staff_user_usage", args=[obj.pk]))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A superuser account (its email, its password) is changed only by a superuser: a staff member who
        # may change users would otherwise take one over by resetting its password.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str] | tuple[Any, ...]:
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser or (obj is not None and obj.pk == request.user.pk):
            readonly += [name for name in PRIVILEGE_FIELDS if name not in readonly]
        return readonly

    def has_grant_credits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(GRANT_CREDITS_PERMISSION)

    @admin.action(description="Grant credits to the selected users…", permissions=["grant_credits"])
    def grant_credits(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self._credits_action(request, queryset, kind="grant")

    @admin.action(description="Adjust credits of the selected users…", permissions=["grant_credits"])
    def adjust_credits(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self._credits_action(request, queryset, kind="adjust")

    def has_export_data_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("auth.view_user") and request.user.has_perm("editor.view_photo")

    @admin.action(description="Send the selected users a ZIP of their data (on their request)",
                  permissions=["export_data"])
    def export_user_data(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user in queryset:
            try:
                data_export_start(user=user, requested_by=_staff(request))
            except Refused as exc:
                self.message_user(request, f"{user.email or user.username}: {exc}", messages.WARNING)
                continue
            self.log_change(request, user, "data export requested by staff")
        self.message_user(request, "The exports are being prepared; each user gets the link by email.")

    @admin.action(description="Delete the selected accounts and all their data (on their request)",
                  permissions=["delete"])
    def delete_user_data(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user in queryset:
            try:
                account_delete_start(user=user, password=None, confirmed=True, by_staff=_staff(request))
            except Refused as exc:
                self.message_user(request, f"{user.email or user.username}: {exc}", messages.ERROR)
                continue
        self.message_user(request, "The accounts are switched off and being deleted (see Account deletions).")

    def _credits_action(self, request: HttpRequest, queryset: QuerySet[Any], *, kind: str) -> HttpResponse | None:
        # An intermediate page: the first POST (from the changelist) shows the form, the second applies it.
        form = CreditsForm(request.POST if "apply" in request.POST else None, kind=kind)
        if "apply" in request.POST and form.is_valid():
            amount, reason = form.cleaned_data["amount"], form.cleaned_data["reason"]
            nonce = form.cleaned_data["nonce"]
            done = 0
            for user in queryset:
                move = credits_grant if kind == "grant" else credits_adjust
                try:
                    entry = move(user=user, amount=amount, reason=reason, created_by=_staff(request),
                                 idempotency_key=nonce)
                except AlreadyApplied as exc:
                    self.message_user(request, f"{user.email or user.username}: {exc}", messages.WARNING)
                    continue
                except Refused as exc:
                    self.message_user(request, f"{user.email or user.username}: {exc}", messages.ERROR)
                    continue
                self.log_change(request, user, f"{kind} {entry.amount:+d} credits (ledger entry {entry.pk}): {reason}")
                done += 1
            if done:
                self.message_user(
                    request, f"{kind.capitalize()}: {amount:+d} credits for {done} user(s).", messages.SUCCESS
                )
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant credits" if kind == "grant" else "Adjust credits",
            "form": form,
            "users": queryset,
            "action": f"{kind}_credits",
            "opts": self.model._meta,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "dashboard/admin_credits_form.html", context)


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin[CreditEntry]):
    """The append-only ledger: nothing here can be added, changed or deleted."""

    list_display = ("created_at", "user", "kind", "amount", "balance_after", "job_link", "reason", "created_by")
    list_filter = ("kind", "created_at")
    search_fields = ("user__email", "reason", "job__request_id")
    list_select_related = ("user", "created_by", "job")
    date_hierarchy = "created_at"
    csv_columns: CsvColumns = [
        ("id", lambda e: e.pk),
        ("created_at", lambda e: e.created_at.isoformat()),
        ("user_email", lambda e: e.user.email if e.user else ""),
        ("kind", lambda e: e.kind),
        ("amount", lambda e: e.amount),
        ("balance_after", lambda e: e.balance_after),
        ("job", lambda e: e.job_id),
        ("reason", lambda e: e.reason),
        ("created_by", lambda e: e.created_by.email if e.created_by else ""),
    ]

    @admin.display(description="Job")
    def job_link(self, obj: CreditEntry) -> str:
        if not obj.job_id:
            return "–"
        return format_html('<a href="{}">{}</a>', reverse("admin:editor_editjob_change", args=[obj.job_id]),
                           str(obj.job_id)[:8])


@admin.register(CreditPack)
class CreditPackAdmin(admin.ModelAdmin[CreditPack]):
    """What is on sale. Changing a pack never changes purchases made before (they copy credits and price)."""

    list_display = ("name", "credits", "price", "currency", "active", "sort_order")
    list_editable = ("active", "sort_order")
    list_filter = ("active", "currency")


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin[Purchase]):
    """Checkout Sessions and what Stripe said about them; written only by the webhook."""

    list_display = ("created_at", "user", "pack_name", "credits", "amount", "status", "credits_reversed",
                    "checkout_session_id")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("user__email", "checkout_session_id", "payment_intent_id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    csv_columns: CsvColumns = [
        ("id", lambda p: p.pk),
        ("created_at", lambda p: p.created_at.isoformat()),
        ("paid_at", lambda p: p.paid_at.isoformat() if p.paid_at else ""),
        ("user_id", lambda p: p.user_id or ""),
        ("pack", lambda p: p.pack_name),
        ("credits", lambda p: p.credits),
        ("amount", lambda p: p.amount_display),
        ("currency", lambda p: p.currency),
        ("status", lambda p: p.status),
        ("amount_reversed", lambda p: p.amount_reversed_display),
        ("credits_reversed", lambda p: p.credits_reversed),
        ("checkout_session_id", lambda p: p.checkout_session_id),
        ("payment_intent_id", lambda p: p.payment_intent_id),
    ]

    @admin.display(description="Amount")
    def amount(self, obj: Purchase) -> str:
        return f"{obj.amount_display} {obj.currency.upper()}"


@admin.register(PaymentReversal)
class PaymentReversalAdmin(ReadOnlyAdmin[PaymentReversal]):
    list_display = ("created_at", "kind", "charge_id", "purchase", "amount_refunded", "refunded_in_full",
                    "credits_taken", "credits_owed", "applied_at")
    list_filter = ("kind",)
    search_fields = ("charge_id", "payment_intent_id")


@admin.register(SiteSwitches)
class SiteSwitchesAdmin(admin.ModelAdmin[SiteSwitches]):
    list_display = ("__str__", "sharing_enabled", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SiteSwitches.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: SiteSwitches, form: Any, change: bool) -> None:
        obj.pk = 1  # one row
        super().save_model(request, obj, form, change)


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin[ShareLink]):
    list_display = ("created_at", "job", "view_count", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    actions = ["revoke", export_as_csv]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("editor.change_sharelink")

    @admin.action(description="Revoke the selected links", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} link(s).")


@admin.register(DataExport)
class DataExportAdmin(ReadOnlyAdmin[DataExport]):
    list_display = ("created_at", "user", "requested_by", "state", "size_bytes", "expires_at")
    list_filter = ("state",)


@admin.register(AccountDeletion)
class AccountDeletionAdmin(ReadOnlyAdmin[AccountDeletion]):
    list_display = ("requested_at", "user_id", "by_staff", "state", "files_deleted", "attempts", "finished_at")
    list_filter = ("state", "by_staff")


# --- Photos and jobs ----------------------------------------------------------------------------


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin[Photo]):
    list_display = ("short_id", "owner", "thumb", "width", "height", "size_bytes", "created_at")
    list_filter = ("created_at",)
    search_fields = ("owner__email", "original_name", "id")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "owner", "preview", "width", "height", "size_bytes", "original_name", "source_job",
                       "created_at")
    fields = readonly_fields
    actions = ["delete_photos", export_as_csv]
    csv_columns: CsvColumns = [
        ("id", lambda p: p.pk),
        ("owner_email", lambda p: p.owner.email),
        ("width", lambda p: p.width),
        ("height", lambda p: p.height),
        ("size_bytes", lambda p: p.size_bytes),
        ("created_at", lambda p: p.created_at.isoformat()),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # photos come through the site's upload checks only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's delete would leave the files in the bucket: photos go only through the photo service
        # (the action below), which also refuses a photo that an edit uses.
        return False

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("editor.delete_photo")

    @admin.action(description="Delete the selected photos and their files (unused photos only)",
                  permissions=["remove"])
    def delete_photos(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        deleted = 0
        for photo in queryset:
            try:
                with transaction.atomic():  # the log entry goes with the delete, or not at all
                    self.log_deletions(request, Photo.objects.filter(pk=photo.pk))
                    photo_delete(photo=photo)
            except Refused as exc:
                self.message_user(request, f"Photo {str(photo.pk)[:8]}: {exc}", messages.ERROR)
                continue
            deleted += 1
        if deleted:
            self.message_user(request, f"Deleted {deleted} photo(s) and their files.", messages.SUCCESS)

    @admin.display(description="Photo")
    def short_id(self, obj: Photo) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="Thumbnail")
    def thumb(self, obj: Photo) -> str:
        return _image(obj, "thumbnail" if obj.thumbnail else "image")

    @admin.display(description="Image")
    def preview(self, obj: Photo) -> str:
        return _image(obj, "image", 256)


class OpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(EditJob)
class EditJobAdmin(admin.ModelAdmin[EditJob]):
    list_display = ("short_id", "owner", "clothing", "state", "cost_credits", "inference_time", "created_at",
                    "result")
    list_filter = ("state", "clothing", "created_at", "error_code")
    search_fields = ("prompt", "request_id", "owner__email", "=id")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    # Jobs change only through the jobs service (guarded transitions): every field here is read-only.
    readonly_fields = (
        "id", "owner", "photo_link", "prompt", "clothing", "state", "cost_credits", "timeline", "result_preview",
        "request_id", "status_url", "response_url", "provider_status", "provider_metrics", "inference_time",
        "error_code", "error_detail", "submit_attempts", "poll_count", "next_poll_at", "last_polled_at",
        "created_at", "submitted_at", "processing_at", "provider_completed_at", "finished_at", "updated_at",
        "source_job",
    )
    fieldsets = (
        (None, {"fields": ("id", "owner", "photo_link", "prompt", "clothing", "state", "cost_credits")}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Result", {"fields": ("result_preview",)}),
        ("Provider", {"fields": ("request_id", "status_url", "response_url", "provider_status", "provider_metrics",
                                 "inference_time", "error_code", "error_detail", "submit_attempts", "poll_count",
                                 "next_poll_at", "last_polled_at")}),
        ("Times", {"fields": ("created_at", "submitted_at", "processing_at", "provider_completed_at",
                              "finished_at", "updated_at", "source_job")}),
    )
    actions = ["retry_jobs", "refund_jobs", export_as_csv]
    csv_columns: CsvColumns = [
        ("id", lambda j: j.pk),
        ("owner_email", lambda j: j.owner.email),
        ("state", lambda j: j.state),
        ("clothing", lambda j: j.clothing),
        ("prompt", lambda j: j.prompt),
        ("cost_credits", lambda j: j.cost_credits),
        ("request_id", lambda j: j.request_id),
        ("inference_time", lambda j: j.inference_time),
        ("error_code", lambda j: j.error_code),
        ("created_at", lambda j: j.created_at.isoformat()),
        ("finished_at", lambda j: j.finished_at.isoformat() if j.finished_at else ""),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # edits start from the site, where the upload is checked and credits reserved

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Every field is read-only: offer no Save buttons that would do nothing.
        context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                   "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, context)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history and the ledger's job links stay

    @admin.display(description="Job")
    def short_id(self, obj: EditJob) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="Result")
    def result(self, obj: EditJob) -> str:
        return _image(obj, "result_thumbnail" if obj.result_thumbnail else "result_image", 48)

    @admin.display(description="Result")
    def result_preview(self, obj: EditJob) -> str:
        return _image(obj, "result_image", 256)

    @admin.display(description="Photo")
    def photo_link(self, obj: EditJob) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:editor_photo_change", args=[obj.photo_id]),
                           str(obj.photo_id)[:8])

    @admin.display(description="Timeline")
    def timeline(self, obj: EditJob) -> str:
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f"{e.at:%Y-%m-%d %H:%M:%S}", e.what, e.detail) for e in job_timeline(job=obj)),
        )
        return format_html('<table class="job-timeline"><tbody>{}</tbody></table>', rows)

    @admin.action(description="Retry the selected failed/expired jobs (as new jobs, charged normally)",
                  permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[EditJob]) -> None:
        for job in queryset.select_related("owner", "photo"):
            try:
                new_job = edit_job_retry(job=job, staff_user=_staff(request))
            except Refused as exc:
                self.message_user(request, f"Job {str(job.pk)[:8]}: {exc}", messages.ERROR)
                continue
            self.log_change(request, job, f"retried as job {new_job.pk}")
            self.message_user(request, f"Job {str(job.pk)[:8]} retried as {str(new_job.pk)[:8]}.", messages.SUCCESS)

    def has_grant_credits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(GRANT_CREDITS_PERMISSION)

    @admin.action(description="Refund the selected failed/expired jobs (once per job)",
                  permissions=["grant_credits"])
    def refund_jobs(self, request: HttpRequest, queryset: QuerySet[EditJob]) -> None:
        for job in queryset:
            try:
                entry = credits_refund_by_staff(job=job, staff_user=_staff(request))
            except Refused as exc:
                self.message_user(request, f"Job {str(job.pk)[:8]}: {exc}", messages.ERROR)
                continue
            if entry is None:
                self.message_user(request, f"Job {str(job.pk)[:8]} was already refunded (or never charged).",
                                  messages.WARNING)
                continue
            self.log_change(request, job, f"refunded {entry.amount:+d} credits (ledger entry {entry.pk})")
            self.message_user(request, f"Job {str(job.pk)[:8]}: refunded {entry.amount} credit(s).", messages.SUCCESS)


# --- Provider errors, alerts, the rollup -------------------------------------------------------------


@admin.register(ProviderError)
class ProviderErrorAdmin(ReadOnlyAdmin[ProviderError]):
    list_display = ("created_at", "kind", "http_status", "job", "detail")
    list_filter = ("kind", "created_at")
    list_select_related = ("job",)
    search_fields = ("detail", "job__request_id")
    date_hierarchy = "created_at"
    csv_columns: CsvColumns = [
        ("created_at", lambda e: e.created_at.isoformat()),
        ("kind", lambda e: e.kind),
        ("http_status", lambda e: e.http_status),
        ("job", lambda e: e.job_id),
        ("detail", lambda e: e.detail),
    ]


@admin.register(WrongResultReport)
class WrongResultReportAdmin(ReadOnlyAdmin[WrongResultReport]):
    """What people said was wrong with finished edits (the dashboard's "Results reported wrong" counts them)."""

    list_display = ("created_at", "user_email", "reason", "clothing", "prompt", "refunded", "job")
    list_filter = ("reason", "clothing", "refunded", "created_at")
    list_select_related = ("user", "job")
    search_fields = ("prompt", "detail", "user__email")
    date_hierarchy = "created_at"
    csv_columns: CsvColumns = [
        ("created_at", lambda r: r.created_at.isoformat()),
        ("user", lambda r: r.user_id),
        ("reason", lambda r: r.reason),
        ("detail", lambda r: r.detail),
        ("clothing", lambda r: r.clothing),
        ("prompt", lambda r: r.prompt),
        ("refunded", lambda r: r.refunded),
        ("job", lambda r: r.job_id),
    ]

    @admin.display(description="user", ordering="user__email")
    def user_email(self, report: WrongResultReport) -> str:
        return str(report.user.email)


@admin.register(OperatorAlert)
class OperatorAlertAdmin(admin.ModelAdmin[OperatorAlert]):
    list_display = ("created_at", "kind", "message", "resolved_at", "resolved_by")
    list_filter = (OpenFilter, "kind")
    list_select_related = ("resolved_by",)
    readonly_fields = ("kind", "message", "job", "created_at", "resolved_at", "resolved_by")
    actions = ["resolve", export_as_csv]
    csv_columns: CsvColumns = [
        ("created_at", lambda a: a.created_at.isoformat()),
        ("kind", lambda a: a.kind),
        ("message", lambda a: a.message),
        ("resolved_at", lambda a: a.resolved_at.isoformat() if a.resolved_at else ""),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Resolve the selected alerts", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[OperatorAlert]) -> None:
        resolved = 0
        for alert in queryset:
            if operator_alert_resolve(alert=alert, staff_user=_staff(request)):
                self.log_change(request, alert, "resolved")
                resolved += 1
        self.message_user(request, f"Resolved {resolved} alert(s).", messages.SUCCESS)


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin[DailyUsage]):
    list_display = ("day", "jobs_total", "jobs_succeeded", "jobs_failed", "jobs_expired", "active_users",
                    "credits_charged", "credits_refunded", "built_at")
    date_hierarchy = "day"
    csv_columns: CsvColumns = [
        (name, attrgetter(name))
        for name in ("day", "jobs_total", "jobs_succeeded", "jobs_failed", "jobs_expired", "jobs_in_flight",
                     "active_users", "inference_p50", "inference_p95", "e2e_p50", "e2e_p95",
                     "credits_charged", "credits_refunded", "credits_granted", "credits_adjusted")
    ]
