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

from editor.models import CreditEntry, EditJob, ProviderError
from editor.services.credits import credits_ledger_sum
from editor.services.jobs import edit_job_submit
from tests.jobs.conftest import wait_for_jobs
from tests.support.fashionai_server import run_fashionai

pytestmark = pytest.mark.django_db(transaction=True)


def balance(user: Any) -> int:
    user.credit_account.refresh_from_db()
    return int(user.credit_account.balance)


def test_job_succeeds_and_result_outlives_provider_retention(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    # The provider forgets everything 1 s after a job finishes.
    with run_fashionai(delay=0.5, retention=1.0) as fai:
        worker = celery_worker_factory(fashionai=fai)
        user = funded_user(3)
        photo = make_photo(user)
        job = edit_job_submit(user=user, photo=photo, prompt="  a person wearing a red shirt ", clothing="topwear")
        assert job.state == EditJob.State.CREATED
        assert job.prompt == "a person wearing a red shirt"
        assert balance(user) == 2  # reserved at submit
        (job,) = wait_for_jobs([job.pk], worker=worker)
        assert job.state == EditJob.State.SUCCEEDED, job.error_detail
        assert job.request_id and job.status_url.startswith(fai.root_url)
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
