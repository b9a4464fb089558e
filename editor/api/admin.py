"""Staff views of the developer API: API keys (list, revoke), webhook endpoints and deliveries (read-only).

Every page and action checks a model permission: listing needs `view_apikey`, revoking `change_apikey`. Nobody
adds or edits keys here (a key is made by its owner and shown once); only the hash is stored, and it is not shown.
Endpoints' secrets are never shown.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from editor.api.models import ApiKey, WebhookDelivery, WebhookEndpoint
from editor.services.api_keys import api_keys_revoke_by_staff


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(_ReadOnly, admin.ModelAdmin[ApiKey]):
    list_display = ("name", "user", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__email")
    fields = ("name", "user", "prefix", "scopes", "created_at", "last_used_at", "revoked_at", "revoked_by")
    readonly_fields = fields
    list_select_related = ("user",)
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The change form is read-only; "change" is the right to revoke (the action below).
        return obj is None and super().has_change_permission(request, None)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = api_keys_revoke_by_staff(key_ids=list(queryset.values_list("pk", flat=True)),
                                         staff_user=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_ReadOnly, admin.ModelAdmin[WebhookEndpoint]):
    list_display = ("url", "user", "events", "is_active", "created_at")
    search_fields = ("url", "user__email")
    fields = ("url", "user", "description", "events", "is_active", "created_at", "previous_secret_until")
    readonly_fields = fields
    list_select_related = ("user",)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly, admin.ModelAdmin[WebhookDelivery]):
    list_display = ("message_id", "event_type", "endpoint", "state", "attempts", "last_status", "created_at")
    list_filter = ("state", "event_type")
    search_fields = ("message_id", "endpoint__url")
    fields = ("message_id", "endpoint", "event_type", "state", "attempts", "next_attempt_at", "last_status",
              "last_error", "last_response", "created_at", "delivered_at", "payload")
    readonly_fields = fields
    list_select_related = ("endpoint",)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
