"""Issue 14 item 16: "email me when it is ready": opt-in in the profile and per edit; one email per edit on success,
failure and expiry (with "you were not charged" when refunded), a link to the edit, never twice."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core import mail
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.test import Client
from django.urls import reverse

from editor.models import EditJob, EditJobEmail
from editor.services.notifications import (
    edit_job_email_send,
    edit_job_email_wanted,
    edit_jobs_email_due,
    preferences_for,
)
from editor.tasks import sweep_edit_jobs
from tests.web.helpers import image_bytes, make_job, upload


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_profile_sets_the_default_and_each_edit_can_choose(
    make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user = make_user()
    client = client_for(user)
    assert 'name="notify_by_email"' in client.get(reverse("editor:edit_new")).content.decode()
    assert not preferences_for(user_id=user.pk).email_when_ready
    response = client.post(reverse("editor:profile_ready_email"), {"email_when_ready": "on"}, follow=True)
    assert "new edits will email you when ready" in response.content.decode()
    assert preferences_for(user_id=user.pk).email_when_ready
    assert 'id="email-when-ready" checked' in client.get(reverse("editor:profile")).content.decode()
    # The form starts ticked from the profile ...
    html = client.get(reverse("editor:edit_new")).content.decode()
    assert 'name="notify_by_email" id="id_notify_by_email" checked' in html
    # ... and each edit says for itself.
    for ticked in (True, False):
        data = {"image": upload(image_bytes("PNG", (600, 600)), "me.png", "image/png"),
                "prompt": "a person wearing blue jeans", "clothing": "bottomwear"}
        if ticked:
            data["notify_by_email"] = "on"
        assert client.post(reverse("editor:edit_new"), data).status_code == 302
    assert [j.notify_by_email for j in EditJob.objects.filter(owner=user).order_by("created_at")] == [True, False]
    client.post(reverse("editor:profile_ready_email"), {})
    assert not preferences_for(user_id=user.pk).email_when_ready


def _job(user: Any, state: str, **kwargs: Any) -> EditJob:
    job = make_job(user, state=state, **kwargs)
    EditJob.objects.filter(pk=job.pk).update(notify_by_email=True)
    return job


@pytest.mark.smoke
@pytest.mark.django_db
def test_one_email_per_outcome_with_a_link_and_the_refund(make_user: Any, settings: Any) -> None:
    settings.SITE_URL = "https://studio.example"
    user = make_user()
    done = _job(user, EditJob.State.SUCCEEDED)
    failed = _job(user, EditJob.State.FAILED, refunded=True, error="No person was found in the photo.")
    expired = _job(user, EditJob.State.EXPIRED, refunded=True, error="The provider did not finish in time.")
    quiet = make_job(user, state=EditJob.State.SUCCEEDED)  # did not ask
    running = _job(user, EditJob.State.SUBMITTED)
    assert set(edit_jobs_email_due()) == {str(done.pk), str(failed.pk), str(expired.pk)}
    for job in (done, failed, expired, quiet, running):
        edit_job_email_send(job_id=str(job.pk))
    assert len(mail.outbox) == 3
    by_subject = {m.subject: m for m in mail.outbox}
    ready = by_subject["[Fashion AI Studio] Your edit is ready"]
    assert ready.to == [user.email] and f"https://studio.example/edits/{done.pk}/" in ready.body
    assert "not charged" not in ready.body
    fail = by_subject["[Fashion AI Studio] Your edit could not be made"]
    assert "No person was found" in fail.body
    assert "You were not charged: 1 credit went back to your balance." in fail.body
    assert f"https://studio.example/edits/{failed.pk}/" in fail.body
    late = by_subject["[Fashion AI Studio] Your edit took too long and was stopped"]
    assert "You were not charged: 1 credit went back" in late.body
    # Never twice: again by hand, by the task and by the sweep.
    for job in (done, failed, expired):
        assert not edit_job_email_send(job_id=str(job.pk))
        assert not edit_job_email_wanted(job_id=str(job.pk))
    assert edit_jobs_email_due() == []
    assert len(mail.outbox) == 3
    assert EditJobEmail.objects.filter(sent_at__isnull=False).count() == 3


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_second_email_row_for_one_edit_is_refused_by_the_database(make_user: Any) -> None:
    job = _job(make_user(), EditJob.State.SUCCEEDED)
    EditJobEmail.objects.create(job=job, kind="succeeded", to="a@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        EditJobEmail.objects.create(job=job, kind="succeeded", to="a@example.com")


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_failed_send_gives_the_email_back_for_a_retry(make_user: Any, settings: Any) -> None:
    settings.EMAIL_BACKEND = "tests.web.test_web_ready_email.BrokenBackend"
    job = _job(make_user(), EditJob.State.SUCCEEDED)
    with pytest.raises(ConnectionRefusedError):
        edit_job_email_send(job_id=str(job.pk))
    assert edit_job_email_wanted(job_id=str(job.pk))  # nothing went out: still due
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert edit_job_email_send(job_id=str(job.pk)) and len(mail.outbox) == 1


class BrokenBackend:
    def __init__(self, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: list[Any]) -> int:
        raise ConnectionRefusedError("the mail server is down")


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_sweep_queues_the_emails_it_finds(make_user: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from fashionsite.celery import app

    app.conf.task_always_eager = True
    try:
        user = make_user()
        _job(user, EditJob.State.EXPIRED, refunded=True)
        sweep_edit_jobs()  # queues email_edit_finished (run eagerly here)
    finally:
        app.conf.task_always_eager = False
    assert len(mail.outbox) == 1 and "took too long" in mail.outbox[0].subject


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_send_one_email(make_user: Any) -> None:
    assert connection.vendor == "postgresql"  # real concurrent transactions
    job = _job(make_user(), EditJob.State.SUCCEEDED)
    barrier = threading.Barrier(6)
    results: list[Any] = []

    def send() -> None:
        try:
            barrier.wait()
            results.append(edit_job_email_send(job_id=str(job.pk)))
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 5 + [True]
    assert len(mail.outbox) == 1
