"""Reads about "this result is wrong" reports: one edit's report, a user's allowance left this month."""
from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from editor.models import EditJob, WrongResultReport


def month_start(now: datetime) -> datetime:
    """The first moment of the current calendar month in UTC: the allowance's window."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def wrong_refunds_this_month(*, user_id: int, now: datetime | None = None) -> int:
    start = month_start(now or timezone.now())
    return WrongResultReport.objects.filter(user_id=user_id, refunded=True, created_at__gte=start).count()


def wrong_refunds_left(*, user_id: int, now: datetime | None = None) -> int:
    return max(0, settings.WRONG_RESULT_REFUNDS_PER_MONTH - wrong_refunds_this_month(user_id=user_id, now=now))


def wrong_report_for_job(*, job: EditJob) -> WrongResultReport | None:
    return WrongResultReport.objects.filter(job_id=job.pk, user_id=job.owner_id).first()
