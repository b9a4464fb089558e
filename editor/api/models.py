"""The developer API's tables: personal API keys, remembered Idempotency-Keys, users' webhook endpoints and the
delivery log. Rows are written only by editor/services/api_keys.py, idempotency.py and webhooks.py."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from editor.models import EditJob


class ApiScope(models.TextChoices):
    EDITS_READ = "edits:read", "Read edits and credits"
    EDITS_WRITE = "edits:write", "Create and delete edits"


class ApiKey(models.Model):
    """A personal API key. Only a SHA-256 of the whole key is kept; `prefix` (unique, shown in lists) finds the row,
    so checking a key is one indexed lookup and a constant-time compare. The key itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["user", "-created_at"], name="apikey_user_recent")]

    def __str__(self) -> str:
        return f"{self.name} (fai_{self.prefix}_…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """An Idempotency-Key a user sent with POST /api/v1/edits, the fingerprint of that request and the edit it
    made. The unique constraint is what makes concurrent duplicates one edit: the second INSERT waits for the
    first transaction and then fails, and that request answers with the first one's edit."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    job = models.ForeignKey(EditJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_one_per_user_key")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key}"


class WebhookEvent(models.TextChoices):
    EDIT_SUCCEEDED = "edit.succeeded", "An edit succeeded"
    EDIT_FAILED = "edit.failed", "An edit failed (refunded)"
    EDIT_EXPIRED = "edit.expired", "An edit expired (refunded)"
    CREDITS_LOW = "credits.low", "Credits ran low"


class WebhookEndpoint(models.Model):
    """A user's receiver. `secret` signs (Standard Webhooks, `whsec_` + base64); after a rotation the previous
    secret also signs until `previous_secret_until`, so a receiver can switch without dropping messages."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "is_active"], name="webhook_user_active")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One message to one endpoint and how its delivery went. `message_id` is the `webhook-id` header, the same on
    every attempt (receivers de-duplicate on it); `next_attempt_at` is when the sweeper tries again (None: done)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Gave up"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=64, default="", editable=False)
    event_type = models.CharField(max_length=32)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_response = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The event's own key (an edit's id and state): one message per endpoint and event, however often the
    # final transition's hook runs.
    dedupe_key = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "dedupe_key"], condition=~Q(dedupe_key=""), name="webhook_one_per_event"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="webhook_due"),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_endpoint_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.endpoint_id} ({self.state})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.message_id:
            self.message_id = f"msg_{uuid.uuid4().hex}"
        super().save(*args, **kwargs)
