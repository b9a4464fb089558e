"""The daily usage rollup: one row per day plus one row per (day, user) who did anything that day.

The dashboard reads these few hundred rows instead of scanning every job. A day's rows are rebuilt from
the raw tables (jobs, ledger, provider errors) by `editor.dashboard.services.usage_rollup_build_day`,
which is idempotent: running it twice gives the same rows.

Days are calendar days in settings.TIME_ZONE. Jobs count on the day they were created; ledger entries
and provider errors on the day they were written.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class DailyUsage(models.Model):
    day = models.DateField(unique=True)

    # Jobs created that day, by the state they were in when the row was built. A failed job counts either as
    # refused (the person's photo or prompt caused it: editor.progress.USER_CAUSED_ERRORS) or as failed (the
    # provider or the site did), never both: the success rate leaves refusals out.
    jobs_total = models.PositiveIntegerField(default=0)
    jobs_succeeded = models.PositiveIntegerField(default=0)
    jobs_failed = models.PositiveIntegerField(default=0)
    jobs_refused = models.PositiveIntegerField(default=0)
    jobs_expired = models.PositiveIntegerField(default=0)
    jobs_in_flight = models.PositiveIntegerField(default=0)

    # Provider time (inference_time) and end-to-end time (created -> finished) of that day's succeeded jobs:
    # exact median and p95 for the day, plus a sparse log-bucket histogram ({bucket: count}) so several
    # days merge into a period percentile within one bucket's width (about 2 %).
    inference_count = models.PositiveIntegerField(default=0)
    inference_sum = models.FloatField(default=0)
    inference_p50 = models.FloatField(null=True, blank=True)
    inference_p95 = models.FloatField(null=True, blank=True)
    inference_hist = models.JSONField(default=dict, blank=True)
    e2e_count = models.PositiveIntegerField(default=0)
    e2e_sum = models.FloatField(default=0)
    e2e_p50 = models.FloatField(null=True, blank=True)
    e2e_p95 = models.FloatField(null=True, blank=True)
    e2e_hist = models.JSONField(default=dict, blank=True)

    # Ledger movements written that day (all positive numbers; adjusted is the net of staff adjustments).
    credits_charged = models.PositiveIntegerField(default=0)
    credits_refunded = models.PositiveIntegerField(default=0)
    credits_granted = models.PositiveIntegerField(default=0)
    credits_adjusted = models.IntegerField(default=0)

    # Users who created at least one job that day.
    active_users = models.PositiveIntegerField(default=0)
    # Provider errors recorded that day, {kind: count}.
    provider_errors = models.JSONField(default=dict, blank=True)

    built_at = models.DateTimeField()

    class Meta:
        ordering = ["day"]
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        # The dashboard, its CSV and the per-user usage pages: not every staff account may read them.
        permissions = [("view_usage", "Can view the usage dashboard and its exports")]

    def __str__(self) -> str:
        return f"Usage on {self.day:%Y-%m-%d}"


class DailyUserUsage(models.Model):
    """One user's figures for one day: the period's active users and top users sum these."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    jobs_total = models.PositiveIntegerField(default=0)
    jobs_succeeded = models.PositiveIntegerField(default=0)
    jobs_failed = models.PositiveIntegerField(default=0)
    jobs_refused = models.PositiveIntegerField(default=0)
    jobs_expired = models.PositiveIntegerField(default=0)
    credits_charged = models.PositiveIntegerField(default=0)
    credits_refunded = models.PositiveIntegerField(default=0)

    class Meta:
        # The unique index on (day, user) also serves the dashboard's range scans.
        constraints = [models.UniqueConstraint(fields=["day", "user"], name="daily_user_usage_one_per_day")]

    def __str__(self) -> str:
        return f"Usage of user {self.user_id} on {self.day:%Y-%m-%d}"


class SignupRecord(models.Model):
    """Where an account was created from (the client address allauth's rate limits also use): the dashboard
    shows addresses with many sign-ups a day as suspected credit farming."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ip = models.GenericIPAddressField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["created_at", "ip"], name="signup_created_ip")]

    def __str__(self) -> str:
        return f"Sign-up of user {self.user_id} from {self.ip}"
