"""Celery tasks. Thin: each runs one worker step and enqueues what the step says comes next.

Arguments are strings only (JSON serializer; the SDK's AsyncJob does not pickle). Tasks never sleep: waiting is a
countdown on the next message, so two worker processes can keep hundreds of jobs in flight.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from editor.services import account_data, account_emails, files, full_results, job_steps, notifications, payments
from editor.services.job_steps import NextStep
from editor.services.photos import photos_delete_unused


def dispatch_step(job_id: str, step: NextStep, *, attempt: int = 0) -> None:
    if step.cancel is not None:
        request_id, status_url = step.cancel
        cancel_provider_request.apply_async(args=(request_id, status_url, attempt + 1), countdown=step.countdown)
    if step.task is None:
        # The job may have just ended: its owner may want an email (one narrow query; the sweep is the safety net).
        if notifications.edit_job_email_wanted(job_id=str(job_id)):
            email_edit_finished.delay(str(job_id))
        return
    task = {
        "submit": submit_edit_job, "poll": poll_edit_job, "finish": finish_edit_job, "compose": compose_edit_job,
    }[step.task]
    task.apply_async(args=(str(job_id),), countdown=max(0.0, step.countdown))


@shared_task(name="editor.tasks.submit_edit_job", ignore_result=True)
def submit_edit_job(job_id: str) -> None:
    dispatch_step(job_id, job_steps.edit_job_run_submit(job_id=job_id))


@shared_task(name="editor.tasks.poll_edit_job", ignore_result=True)
def poll_edit_job(job_id: str) -> None:
    dispatch_step(job_id, job_steps.edit_job_run_poll(job_id=job_id))


@shared_task(name="editor.tasks.finish_edit_job", ignore_result=True)
def finish_edit_job(job_id: str) -> None:
    dispatch_step(job_id, job_steps.edit_job_run_finish(job_id=job_id))


@shared_task(name="editor.tasks.cancel_provider_request", ignore_result=True)
def cancel_provider_request(request_id: str, status_url: str, attempt: int = 1) -> None:
    step = job_steps.provider_request_cancel(request_id=request_id, status_url=status_url, attempt=attempt)
    dispatch_step("", step, attempt=attempt)


# Routed to its own queue (settings.CELERY_TASK_ROUTES): seconds of CPU that must not delay anyone's poll.
@shared_task(name="editor.tasks.compose_edit_job", ignore_result=True)
def compose_edit_job(job_id: str) -> None:
    dispatch_step(job_id, full_results.edit_job_run_compose(job_id=job_id))


@shared_task(name="editor.tasks.sweep_edit_jobs", ignore_result=True)
def sweep_edit_jobs() -> int:
    steps = job_steps.edit_jobs_sweep()
    for job_id, step in steps:
        dispatch_step(job_id, step)
    # Jobs that ended without their email being queued (expired here, a lost message): queue it now.
    for job_id in notifications.edit_jobs_email_due():
        email_edit_finished.delay(job_id)
    return len(steps)


# A mail server that is down is retried with backoff; the EditJobEmail row keeps it to one email per edit.
@shared_task(name="editor.tasks.email_edit_finished", ignore_result=True, autoretry_for=(Exception,),
             retry_backoff=5, retry_backoff_max=300, max_retries=6)
def email_edit_finished(job_id: str) -> None:
    notifications.edit_job_email_send(job_id=job_id)


@shared_task(name="editor.tasks.delete_unused_photos", ignore_result=True)
def delete_unused_photos() -> int:
    return photos_delete_unused(older_than_seconds=settings.UNUSED_PHOTO_GRACE_SECONDS)


@shared_task(name="editor.tasks.expire_direct_uploads", ignore_result=True)
def expire_direct_uploads() -> int:
    return files.files_sweep_incoming()


@shared_task(name="editor.tasks.sweep_orphan_files", ignore_result=True)
def sweep_orphan_files() -> int:
    return files.files_sweep_orphans()


@shared_task(name="editor.tasks.credits_empty_email", ignore_result=True)
def credits_empty_email(user_id: str) -> bool:
    return account_emails.send_credits_empty(user_id=int(user_id))


@shared_task(name="editor.tasks.reconcile_payments", ignore_result=True)
def reconcile_payments() -> int:
    return payments.payments_reconcile()


@shared_task(name="editor.tasks.data_export", ignore_result=True)
def data_export(export_id: str) -> bool:
    return account_data.data_export_build(export_id=int(export_id))


# A deletion of a big account may take a while (it is throttled); it resumes where it was if cut off.
@shared_task(name="editor.tasks.account_deletion", ignore_result=True, soft_time_limit=3000, time_limit=3300)
def account_deletion(deletion_id: str) -> bool:
    return account_data.account_deletion_run(deletion_id=int(deletion_id))


@shared_task(name="editor.tasks.sweep_account_tasks", ignore_result=True)
def sweep_account_tasks() -> int:
    """Start exports and deletions nobody works on (never started, or their worker was killed); drop expired
    exports."""
    exports, deletions = account_data.account_tasks_due()
    for export_id in exports:
        data_export.delay(str(export_id))
    for deletion_id in deletions:
        account_deletion.delay(str(deletion_id))
    account_data.data_exports_remove_expired()
    return len(exports) + len(deletions)


# What editor/dispatch.py's enqueue_task may start, by name.
ACCOUNT_TASKS: dict[str, Any] = {
    "credits_empty_email": credits_empty_email,
    "data_export": data_export,
    "account_deletion": account_deletion,
}
