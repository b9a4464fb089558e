"""Edit job services without a worker: validation, refusals, idempotent steps, concurrent submits, delete, retry,
progress. Provider calls go over HTTP to the real local Fashion AI service."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import connection

from editor.models import CreditAccount, CreditEntry, EditJob, Photo
from editor.provider_time import EXPECTED_CACHE_KEY, expected_provider_seconds
from editor.selectors.jobs import edit_job_progress, edit_jobs_in_flight_count
from editor.services.credits import credits_ledger_sum
from editor.services.edit_commands import EditJobRefused, edit_job_delete, edit_job_retry, edit_job_submit
from editor.services.job_state import edit_job_mark_failed
from editor.services.job_steps import edit_job_run_finish, edit_job_run_poll, edit_job_run_submit, edit_jobs_sweep
from tests.support.fixtures import purge_broker


def balance(user: Any) -> int:
    return int(CreditAccount.objects.get(user=user).balance)


@pytest.fixture
def provider(settings: Any, fashionai_service: Any) -> Any:
    """Point this process's settings at the local service with fast timings."""
    settings.FASHION_AI_BASE_URL = fashionai_service.base_url
    settings.FASHION_AI_API_KEY = fashionai_service.api_key
    settings.FASHION_AI_EXPECTED_SECONDS = 0.5
    settings.POLL_MIN_INTERVAL_SECONDS = 0.1
    cache.delete(EXPECTED_CACHE_KEY)  # a learned value from another test must not stretch the schedule
    assert expected_provider_seconds() == 0.5
    yield fashionai_service
    purge_broker()  # the steps enqueued follow-ups nobody consumes here


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prompt", "clothing", "message"),
    [
        ("ab", "topwear", "at least 3"),
        ("x" * 501, "topwear", "under 500"),
        ("a red hat", "hats", "the top or the bottom"),
    ],
)
def test_submit_validates_input(
    funded_user: Any, make_photo: Any, prompt: str, clothing: str, message: str
) -> None:
    user = funded_user(3)
    with pytest.raises(EditJobRefused, match=message):
        edit_job_submit(user=user, photo=make_photo(user), prompt=prompt, clothing=clothing)
    assert not EditJob.objects.exists() and balance(user) == 3


@pytest.mark.django_db
def test_submit_refuses_another_users_photo_short_credits_and_too_many_in_flight(
    funded_user: Any, make_photo: Any, settings: Any
) -> None:
    owner, other = funded_user(3), funded_user(0)
    photo = make_photo(owner)
    with pytest.raises(EditJobRefused, match="was not found"):
        edit_job_submit(user=other, photo=photo, prompt="a red shirt", clothing="topwear")
    with pytest.raises(EditJobRefused, match="Not enough credits"):
        edit_job_submit(user=other, photo=make_photo(other), prompt="a red shirt", clothing="topwear")
    settings.MAX_JOBS_IN_FLIGHT_PER_USER = 2
    for _ in range(2):
        edit_job_submit(user=owner, photo=photo, prompt="a red shirt", clothing="topwear")
    with pytest.raises(EditJobRefused, match="2 edits running"):
        edit_job_submit(user=owner, photo=photo, prompt="a red shirt", clothing="topwear")
    assert edit_jobs_in_flight_count(user=owner) == 2
    assert balance(owner) == 1 == credits_ledger_sum(user_id=owner.pk)
    assert balance(other) == 0


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_submits_with_ten_credits_accept_exactly_ten(
    funded_user: Any, make_photo: Any, settings: Any
) -> None:
    assert connection.vendor == "postgresql"
    settings.MAX_JOBS_IN_FLIGHT_PER_USER = 100  # only the credits may limit this burst
    user = funded_user(10)
    photo = make_photo(user)
    barrier = threading.Barrier(50)
    accepted: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit() -> None:
        try:
            barrier.wait()
            job = edit_job_submit(user=user, photo=photo, prompt="a purple shirt", clothing="topwear")
            with lock:
                accepted.append(str(job.pk))
        except EditJobRefused as exc:
            with lock:
                refused.append(exc.message)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    purge_broker()
    assert not errors, errors
    assert len(accepted) == 10 and len(refused) == 40
    assert all("Not enough credits" in m for m in refused)
    assert balance(user) == 0 == credits_ledger_sum(user_id=user.pk)
    assert EditJob.objects.filter(owner=user).count() == 10
    assert CreditEntry.objects.filter(user=user, kind=CreditEntry.Kind.CHARGE).count() == 10
    assert not CreditEntry.objects.filter(user=user, balance_after__lt=0).exists()


def _snapshot(job_id: Any) -> dict[str, Any]:
    job = EditJob.objects.get(pk=job_id)
    keep = ("state", "request_id", "provider_status", "submit_attempts", "poll_count", "next_poll_at",
            "finished_at", "result_image", "result_thumbnail", "error_code")
    return {name: getattr(job, name) for name in keep} | {
        "ledger": list(CreditEntry.objects.filter(job_id=job_id).values_list("kind", "amount"))
    }


@pytest.mark.django_db(transaction=True)
def test_every_step_run_twice_changes_nothing_the_second_time(
    provider: Any, funded_user: Any, make_photo: Any
) -> None:
    user = funded_user(2)
    job = edit_job_submit(user=user, photo=make_photo(user), prompt="a white shirt", clothing="topwear")

    step = edit_job_run_submit(job_id=str(job.pk))
    assert step.task == "poll"
    first = _snapshot(job.pk)
    assert first["state"] == "submitted" and first["request_id"]
    assert edit_job_run_submit(job_id=str(job.pk)).task is None
    assert _snapshot(job.pk) == first  # no second provider job, nothing moved

    # A duplicate poll message arriving before the scheduled time does nothing.
    assert edit_job_run_poll(job_id=str(job.pk)).task is None
    assert _snapshot(job.pk) == first

    deadline = time.monotonic() + 15
    while step.task == "poll":
        assert time.monotonic() < deadline
        time.sleep(step.countdown)
        step = edit_job_run_poll(job_id=str(job.pk))
    assert step.task == "finish"  # the poll that saw COMPLETED hands the result to the images queue
    step = edit_job_run_finish(job_id=str(job.pk))
    assert step.task is None
    done = _snapshot(job.pk)
    assert done["state"] == "succeeded" and done["result_image"]
    for again in (edit_job_run_finish, edit_job_run_poll, edit_job_run_submit):
        assert again(job_id=str(job.pk)).task is None
    assert _snapshot(job.pk) == done
    assert edit_jobs_sweep() == [] and edit_jobs_sweep() == []
    assert _snapshot(job.pk) == done

    # Failing twice refunds once.
    failing = edit_job_submit(user=user, photo=job.photo, prompt="another shirt", clothing="topwear")
    assert edit_job_mark_failed(job_id=failing.pk, error_code="x", error_detail="broken") is True
    assert edit_job_mark_failed(job_id=failing.pk, error_code="x", error_detail="broken") is False
    assert CreditEntry.objects.filter(job=failing, kind=CreditEntry.Kind.REFUND).count() == 1
    assert balance(user) == 1 == credits_ledger_sum(user_id=user.pk)


@pytest.mark.django_db(transaction=True)
def test_sweeper_reenqueues_lost_jobs_and_expires_unsaveable_ones(
    funded_user: Any, make_photo: Any, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.SWEEP_OVERDUE_GRACE_SECONDS = 5
    user = funded_user(4)
    photo = make_photo(user)
    jobs = [edit_job_submit(user=user, photo=photo, prompt="a grey shirt", clothing="topwear") for _ in range(4)]
    purge_broker()
    long_ago = timezone.now() - timedelta(seconds=60)
    EditJob.objects.filter(pk=jobs[0].pk).update(next_poll_at=long_ago)  # CREATED, its message lost
    EditJob.objects.filter(pk=jobs[1].pk).update(state="submitted", submitted_at=long_ago, next_poll_at=long_ago)
    EditJob.objects.filter(pk=jobs[2].pk).update(  # the provider finished, nobody saved it, retention is over
        state="submitted", submitted_at=long_ago, provider_status="COMPLETED",
        provider_completed_at=timezone.now() - timedelta(seconds=settings.FASHION_AI_RETENTION_SECONDS + 1),
    )
    # jobs[3] is due right now: not overdue yet, left alone.
    steps = dict(edit_jobs_sweep())
    purge_broker()
    assert steps == {str(jobs[0].pk): steps[str(jobs[0].pk)], str(jobs[1].pk): steps[str(jobs[1].pk)]}
    assert steps[str(jobs[0].pk)].task == "submit" and steps[str(jobs[1].pk)].task == "poll"
    expired = EditJob.objects.get(pk=jobs[2].pk)
    assert expired.state == "expired"
    assert CreditEntry.objects.filter(job=expired, kind=CreditEntry.Kind.REFUND).count() == 1
    assert balance(user) == 1 == credits_ledger_sum(user_id=user.pk)


@pytest.mark.django_db(transaction=True)
def test_delete_removes_files_only_for_the_owner_and_refunds_a_running_edit(
    provider: Any, funded_user: Any, make_photo: Any
) -> None:
    owner, stranger = funded_user(3), funded_user(0)
    running = edit_job_submit(user=owner, photo=make_photo(owner), prompt="a navy shirt", clothing="topwear")
    with pytest.raises(EditJobRefused, match="was not found"):
        edit_job_delete(user=stranger, job=running)
    edit_job_delete(user=owner, job=running)  # still CREATED: stopped, refunded, gone
    assert not EditJob.objects.filter(pk=running.pk).exists()
    assert balance(owner) == 3 == credits_ledger_sum(user_id=owner.pk)
    job = edit_job_submit(user=owner, photo=make_photo(owner), prompt="a navy shirt", clothing="topwear")
    step = edit_job_run_submit(job_id=str(job.pk))
    deadline = time.monotonic() + 15
    while step.task == "poll":
        assert time.monotonic() < deadline
        time.sleep(step.countdown)
        step = edit_job_run_poll(job_id=str(job.pk))
    edit_job_run_finish(job_id=str(job.pk))
    job.refresh_from_db()
    names = [job.result_image.name, job.result_thumbnail.name, job.photo.image.name]
    assert all(default_storage.exists(n) for n in names)
    with pytest.raises(EditJobRefused, match="was not found"):
        edit_job_delete(user=stranger, job=job)
    assert EditJob.objects.filter(pk=job.pk).exists()
    edit_job_delete(user=owner, job=job)
    assert not EditJob.objects.filter(pk=job.pk).exists()
    assert not Photo.objects.filter(pk=job.photo_id).exists()
    assert not any(default_storage.exists(n) for n in names)
    assert balance(owner) == 2 == credits_ledger_sum(user_id=owner.pk)  # the ledger keeps its history


@pytest.mark.django_db
def test_staff_retry_makes_a_new_charged_job_and_progress_says_not_charged(
    funded_user: Any, make_photo: Any, make_user: Any
) -> None:
    user = funded_user(2)
    job = edit_job_submit(user=user, photo=make_photo(user), prompt="a pink shirt", clothing="topwear")
    progress = edit_job_progress(job=job)
    assert progress["phase"] == "queued" and 0 < progress["fraction"] < 1 and not progress["not_charged"]
    with pytest.raises(EditJobRefused):
        edit_job_retry(job=job, staff_user=make_user(is_staff=True))
    edit_job_mark_failed(job_id=job.pk, error_code="provider_failed", error_detail="Blocked content")
    job.refresh_from_db()
    progress = edit_job_progress(job=job)
    assert progress["phase"] == "failed" and progress["not_charged"] and progress["error"] == "Blocked content"
    with pytest.raises(EditJobRefused):
        edit_job_retry(job=job, staff_user=user)  # not staff
    again = edit_job_retry(job=job, staff_user=make_user(is_staff=True))
    assert again.pk != job.pk and again.source_job_id == job.pk and again.prompt == job.prompt
    assert again.state == "created" and balance(user) == 1 == credits_ledger_sum(user_id=user.pk)
