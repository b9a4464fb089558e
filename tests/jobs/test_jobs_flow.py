"""Edit jobs end to end over real Redis, a real Celery worker, SeaweedFS S3, PostgreSQL and the local
Fashion AI service (HTTP)."""
from __future__ import annotations

import io
import time
from typing import Any

import pytest
import requests
from django.core.files.storage import default_storage
from PIL import Image

from devservices.fashionai import run_fashionai
from editor.models import CreditEntry, EditJob, ProviderError
from editor.services.credits import credits_ledger_sum
from editor.services.edit_commands import edit_job_submit
from tests.jobs.conftest import wait_for_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def balance(user: Any) -> int:
    user.credit_account.refresh_from_db()
    return int(user.credit_account.balance)


def test_job_succeeds_and_result_outlives_provider_retention(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    # The provider forgets everything 1 s after a job finishes.
    with run_fashionai(delay=0.5, retention=1.0) as fai:
        worker = shared_worker.serve(fai)
        user = funded_user(3)
        photo = make_photo(user)
        job = edit_job_submit(user=user, photo=photo, prompt="  a person wearing a red shirt ", clothing="topwear")
        assert job.state == EditJob.State.CREATED
        assert job.prompt == "a person wearing a red shirt"
        assert balance(user) == 2  # reserved at submit
        (job,) = wait_for_jobs([job.pk], worker=worker)
        assert job.state == EditJob.State.SUCCEEDED, job.error_detail
        assert job.request_id and job.status_url.startswith(shared_worker.root_url)  # where the worker sent it
        assert job.submitted_at and job.provider_completed_at and job.finished_at
        assert job.submitted_at <= job.provider_completed_at <= job.finished_at
        assert 1 <= job.poll_count <= 12
        assert job.provider_metrics.get("total_time", 0) >= 0.5
        # Wait until the provider has forgotten the request: its result URL is 404 now.
        deadline = time.monotonic() + 10
        while requests.get(job.response_url, headers={"x-api-key": fai.api_key}, timeout=5).status_code != 404:
            assert time.monotonic() < deadline, "the provider never forgot the request"
            time.sleep(0.2)

    # Ours is still there, in S3, behind presigned URLs.
    assert job.result_image.name.startswith(f"users/{user.pk}/results/")
    assert job.result_thumbnail.name.startswith(f"users/{user.pk}/thumbs/")
    url = default_storage.url(job.result_image.name)
    assert "Signature=" in url or "X-Amz-Signature=" in url
    unsigned = url.split("?")[0]
    assert requests.get(unsigned, timeout=5).status_code in (401, 403)  # private bucket
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as result:
        assert result.size == (512, 512)
    thumb = requests.get(default_storage.url(job.result_thumbnail.name), timeout=5)
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.format == "WEBP" and max(small.size) == 256
    assert balance(user) == 2 == credits_ledger_sum(user_id=user.pk)
    assert not CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).exists()


def test_provider_failed_job_ends_failed_with_one_refund(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    with run_fashionai(delay=0.2, fail_rate=1.0) as fai:
        worker = shared_worker.serve(fai)
        user = funded_user(2)
        job = edit_job_submit(user=user, photo=make_photo(user), prompt="blue jeans", clothing="bottomwear")
        (job,) = wait_for_jobs([job.pk], worker=worker)
    assert job.state == EditJob.State.FAILED
    assert job.error_code == "provider_failed"
    assert "Simulated failure" in job.error_detail  # the provider's own words reach the user
    assert CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).count() == 1
    assert balance(user) == 2 == credits_ledger_sum(user_id=user.pk)
    assert ProviderError.objects.filter(job=job, kind="422").exists()


def test_request_the_provider_forgot_ends_expired_with_one_refund(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    user = funded_user(2)
    with run_fashionai(delay=60) as fai:
        worker = shared_worker.serve(fai)
        job = edit_job_submit(user=user, photo=make_photo(user), prompt="a green shirt", clothing="topwear")
        deadline = time.monotonic() + 20
        while EditJob.objects.get(pk=job.pk).poll_count < 1:
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.1)
    # A fresh provider at the same address (the worker's) knows nothing of the request: 404.
    with run_fashionai() as fresh:
        shared_worker.serve(fresh)
        (job,) = wait_for_jobs([job.pk], worker=worker, timeout=20)
    assert job.state == EditJob.State.EXPIRED
    assert CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).count() == 1
    assert balance(user) == 2 == credits_ledger_sum(user_id=user.pk)
    assert ProviderError.objects.filter(job=job, kind="404").exists()


def test_error_storm_slows_jobs_but_loses_none(shared_worker: Any, funded_user: Any, make_photo: Any) -> None:
    # Half of all API calls answer 429 (with Retry-After), 500 or 502.
    with run_fashionai(delay=0.3, error_rate=0.5, extra_args=["--seed", "7"]) as fai:
        worker = shared_worker.serve(fai)
        user = funded_user(5)
        photo = make_photo(user)
        jobs = [
            edit_job_submit(user=user, photo=photo, prompt=f"a shirt in colour {n}", clothing="topwear")
            for n in range(5)
        ]
        done = wait_for_jobs([j.pk for j in jobs], worker=worker, timeout=60)
    assert [j.state for j in done] == [EditJob.State.SUCCEEDED] * 5
    kinds = set(ProviderError.objects.filter(job__in=done).values_list("kind", flat=True))
    assert kinds & {"429", "5xx"}
    assert balance(user) == 0 == credits_ledger_sum(user_id=user.pk)
    assert not CreditEntry.objects.filter(kind=CreditEntry.Kind.REFUND).exists()


def test_provider_down_at_submit_keeps_the_job_and_the_credits(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    worker = shared_worker.serve(None)  # nothing listens yet: every submit is a refused connection (never sent)
    user = funded_user(2)
    photo = make_photo(user)
    jobs = [edit_job_submit(user=user, photo=photo, prompt="a black shirt", clothing="topwear") for _ in range(2)]
    deadline = time.monotonic() + 20
    while EditJob.objects.filter(pk__in=[j.pk for j in jobs], submit_attempts__gte=2).count() < 2:
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.1)
    assert set(EditJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True)) == {"created"}
    assert ProviderError.objects.filter(kind="network", job__in=jobs).exists()
    assert balance(user) == 0  # still reserved, nothing refunded, nothing lost
    with run_fashionai(delay=0.2) as fai:
        shared_worker.serve(fai)
        done = wait_for_jobs([j.pk for j in jobs], worker=worker, timeout=30)
    assert [j.state for j in done] == [EditJob.State.SUCCEEDED] * 2
    assert balance(user) == 0 == credits_ledger_sum(user_id=user.pk)
    assert CreditEntry.objects.filter(user=user, kind=CreditEntry.Kind.CHARGE).count() == 2


def test_provider_out_of_credits_fails_with_refund_and_alerts_operators(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    from editor.models import OperatorAlert

    with run_fashionai(api_keys="test-key:0") as fai:  # our provider account has no credits: 406
        worker = shared_worker.serve(fai)
        user = funded_user(1)
        job = edit_job_submit(user=user, photo=make_photo(user), prompt="a red skirt", clothing="bottomwear")
        (job,) = wait_for_jobs([job.pk], worker=worker)
    assert job.state == EditJob.State.FAILED and job.error_code == "provider_406"
    assert "not charged" in job.error_detail
    assert balance(user) == 1 == credits_ledger_sum(user_id=user.pk)
    assert OperatorAlert.objects.filter(kind=OperatorAlert.Kind.PROVIDER_NO_CREDITS, resolved_at=None).count() == 1


def test_worker_killed_mid_polling_then_a_new_worker_finishes_every_job(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any, settings: Any
) -> None:
    # The first poll comes after about 1 s, long before the provider finishes (5 s): every job is caught mid-polling.
    with run_fashionai(delay=5) as fai:
        worker = celery_worker_factory(fashionai=fai, env={"FASHION_AI_EXPECTED_SECONDS": "1"})
        user = funded_user(5)
        photo = make_photo(user)
        jobs = [edit_job_submit(user=user, photo=photo, prompt="a yellow top", clothing="topwear") for _ in range(5)]
        ids = [j.pk for j in jobs]
        deadline = time.monotonic() + 20
        while EditJob.objects.filter(pk__in=ids, state="submitted", poll_count__gte=1).count() < 5:
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.05)
        worker.kill()  # SIGKILL mid-polling: its scheduled poll messages die with it
        time.sleep(5)  # the provider finishes meanwhile
        assert EditJob.objects.filter(pk__in=ids, state="submitted").count() == 5
        worker.start()  # a new worker (with beat): the sweeper re-enqueues the overdue polls
        done = wait_for_jobs(ids, worker=worker, timeout=40)
    assert [j.state for j in done] == [EditJob.State.SUCCEEDED] * 5
    assert all(job.result_image.name for job in done)
    assert balance(user) == 0 == credits_ledger_sum(user_id=user.pk)


def test_the_providers_eta_keeps_status_calls_to_about_two_per_job(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    """Our service's status says when a running job should be done; the poll after it comes just then. On the
    geometric approach alone a 3 s job expected to take 3 s (0.2 s floor) cost ~8 status calls."""
    with run_fashionai(delay=3.0) as fai:
        worker = celery_worker_factory(fashionai=fai, env={"FASHION_AI_EXPECTED_SECONDS": "3"})
        user = funded_user(3)
        photo = make_photo(user)
        ids = [edit_job_submit(user=user, photo=photo, prompt=f"a red shirt {n}", clothing="topwear").pk
               for n in range(3)]
        done = wait_for_jobs(ids, timeout=40, worker=worker)
    assert [job.state for job in done] == ["succeeded"] * 3
    assert all(1 <= job.poll_count <= 3 for job in done), [job.poll_count for job in done]
    # ...and COMPLETED is still seen at once: within the ETA margin plus a task's start, not a poll interval later.
    for job in done:
        assert job.provider_completed_at is not None and job.submitted_at is not None
        late = (job.provider_completed_at - job.submitted_at).total_seconds() - job.provider_metrics["total_time"]
        assert late < 1.5, late
