"""'Email me when it is ready': one email per edit when it ends (done, failed or timed out).

The worker's task layer asks `edit_job_email_wanted` after a step that ended a job and queues the send task; the
sweep (`edit_jobs_email_due`, every sweep interval) catches the rest (a job expired by the sweeper, a lost
message). Sending takes the edit's EditJobEmail row first: it is one-to-one with the job, so however many tasks
race, one email goes out. A send that raises gives the row back, so the retry may try again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from editor.models import CreditEntry, EditJob, EditJobEmail, UserPreferences

log = logging.getLogger(__name__)

# A job that ended longer ago than this is not emailed about by the sweep any more (old news; also bounds the
# sweep's query when the mail server stays down).
EMAIL_DUE_WINDOW = timedelta(hours=6)

SUBJECTS: dict[str, str] = {
    EditJob.State.SUCCEEDED: "Your edit is ready",
    EditJob.State.FAILED: "Your edit could not be made",
    EditJob.State.EXPIRED: "Your edit took too long and was stopped",
}


def preferences_for(*, user_id: int) -> UserPreferences:
    """The user's preferences (defaults when never saved; nothing is written)."""
    return UserPreferences.objects.filter(user_id=user_id).first() or UserPreferences(user_id=user_id)


def preferences_set_email_when_ready(*, user_id: int, enabled: bool) -> UserPreferences:
    preferences, _ = UserPreferences.objects.update_or_create(
        user_id=user_id, defaults={"email_when_ready": enabled}
    )
    return preferences


def _wanted() -> QuerySet[EditJob]:
    return EditJob.objects.filter(
        notify_by_email=True, state__in=EditJob.FINAL_STATES, finished_email__isnull=True
    )


def edit_job_email_wanted(*, job_id: str) -> bool:
    """The job ended, its owner asked for an email and none was sent: one narrow query."""
    return bool(_wanted().filter(pk=job_id).exists())


def edit_jobs_email_due(*, limit: int = 500) -> list[str]:
    since = timezone.now() - EMAIL_DUE_WINDOW
    return [str(pk) for pk in _wanted().filter(finished_at__gte=since).values_list("pk", flat=True)[:limit]]


def edit_job_email_send(*, job_id: str) -> bool:
    """Send the edit's one email. False when nothing was due (not wanted, not ended, sent already, deleted)."""
    job = (
        EditJob.objects.select_related("owner")
        .filter(pk=job_id, notify_by_email=True, state__in=EditJob.FINAL_STATES)
        .first()
    )
    if job is None or not job.owner.email:
        return False
    try:
        with transaction.atomic():
            claim = EditJobEmail.objects.create(job=job, kind=job.state, to=job.owner.email)
    except IntegrityError:
        return False  # sent (or being sent) by another task: never twice
    refunded = 0
    if job.state != EditJob.State.SUCCEEDED:
        refund = CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).first()
        refunded = refund.amount if refund else 0
    context = {
        "job": job,
        "link": f"{settings.SITE_URL}{reverse('editor:job_detail', kwargs={'pk': job.pk})}",
        "refunded": refunded,
        "reason": job.error_detail,
        "site_url": settings.SITE_URL,
    }
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + SUBJECTS[job.state]
    body = render_to_string("editor/email/edit_finished.txt", context)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [claim.to])
    except Exception:
        claim.delete()  # nothing went out: a retry may send it
        raise
    EditJobEmail.objects.filter(pk=claim.pk).update(sent_at=timezone.now())
    log.info("job %s: %s email sent", job.pk, job.state)
    return True
