"""Failed edits refused for the person's photo or prompt get their own count, out of `jobs_failed`.

Stored days are split in place: edits the content filter refused (`content_blocked`) or the engine refused
(`edit_refused`) move from failed to refused. Engine refusals recorded before this release carry
`provider_failed` and cannot be told apart, so those days stay as they were.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.db import migrations, models
from django.db.models import Count
from django.utils import timezone

REFUSED_CODES = ["content_blocked", "edit_refused"]


def split_refused(apps: Any, schema_editor: Any) -> None:
    DailyUsage = apps.get_model("dashboard", "DailyUsage")
    DailyUserUsage = apps.get_model("dashboard", "DailyUserUsage")
    EditJob = apps.get_model("editor", "EditJob")
    for usage in DailyUsage.objects.all().iterator():
        start = timezone.make_aware(datetime.combine(usage.day, time.min))
        end = timezone.make_aware(datetime.combine(usage.day + timedelta(days=1), time.min))
        refused = (
            EditJob.objects.filter(created_at__gte=start, created_at__lt=end, state="failed",
                                   error_code__in=REFUSED_CODES)
            .order_by().values("owner_id").annotate(n=Count("id"))
        )
        by_user = {row["owner_id"]: row["n"] for row in refused}
        # Idempotent: the day's failures (failed + refused so far) are split afresh each time.
        failures = usage.jobs_failed + usage.jobs_refused
        total = min(sum(by_user.values()), failures)
        DailyUsage.objects.filter(pk=usage.pk).update(jobs_refused=total, jobs_failed=failures - total)
        for row in DailyUserUsage.objects.filter(day=usage.day):
            user_failures = row.jobs_failed + row.jobs_refused
            moved = min(by_user.get(row.user_id, 0), user_failures)
            DailyUserUsage.objects.filter(pk=row.pk).update(jobs_refused=moved, jobs_failed=user_failures - moved)


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0002_usage_permission_signup_record"),
        ("editor", "0008_full_resolution"),
    ]

    operations = [
        migrations.AddField(
            model_name="dailyusage",
            name="jobs_refused",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="dailyuserusage",
            name="jobs_refused",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(split_refused, migrations.RunPython.noop),
    ]
