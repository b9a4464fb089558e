"""A content block on the provider (Segmind's RAI block; ours in fashionai/safety.py) reaches the site as a FAILED
edit with a refund and a clear message, told apart from the provider's own failures; so does the engine's refusal
of a photo or prompt it cannot edit.

The service blocks a harmless class the real detector finds on the astronaut photo (FACE_FEMALE) instead of a
nudity class: no explicit image ships with this repository (docs/fashionai.md, "Content screening")."""
from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from devservices.fashionai import run_fashionai
from editor.errors import Refused
from editor.models import CreditEntry, EditJob, OperatorAlert, ProviderError
from editor.progress import CONTENT_BLOCKED_MESSAGE, ERROR_CONTENT_BLOCKED, ERROR_REFUSED
from editor.services.credits import credits_ledger_sum
from editor.services.edit_commands import edit_job_retry, edit_job_submit
from tests.jobs.conftest import wait_for_jobs

pytestmark = pytest.mark.django_db(transaction=True)

BLOCKING_SERVICE = {"FASHIONAI_SAFETY": "on", "FASHIONAI_SAFETY_BLOCK": "FACE_FEMALE"}


def test_a_content_block_is_a_failed_edit_with_a_refund_and_a_clear_message(
    shared_worker: Any, funded_user: Any, make_photo: Any, client: Any, make_user: Any
) -> None:
    with run_fashionai(delay=0.2, env=BLOCKING_SERVICE) as fai:
        worker = shared_worker.serve(fai)
        user = funded_user(2)
        job = edit_job_submit(user=user, photo=make_photo(user), prompt="a red shirt", clothing="topwear")
        (job,) = wait_for_jobs([job.pk], worker=worker)
    assert job.state == EditJob.State.FAILED
    assert job.error_code == ERROR_CONTENT_BLOCKED  # not "provider_failed": the photo caused it
    assert job.error_detail == CONTENT_BLOCKED_MESSAGE
    user.credit_account.refresh_from_db()
    assert CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).count() == 1
    assert user.credit_account.balance == 2 == credits_ledger_sum(user_id=user.pk)
    # The provider worked as it should: no provider error, no operator alert.
    assert not ProviderError.objects.filter(job=job).exists()
    assert not OperatorAlert.objects.exists()

    client.force_login(user)
    page = client.get(f"/edits/{job.pk}/").content.decode()
    assert "Our content filter does not allow this photo (content not allowed)" in page
    assert "You were not charged" in page

    staff = make_user(is_staff=True)
    with pytest.raises(Refused, match="content filter refused this photo"):
        edit_job_retry(job=job, staff_user=staff)


def test_a_provider_failure_is_still_a_provider_failure(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    """Only the content filter's phrase makes a block; other FAILED jobs keep their code and the provider's words."""
    with run_fashionai(delay=0.2, fail_rate=1.0, env={"FASHIONAI_SAFETY": "on"}) as fai:
        worker = shared_worker.serve(fai)
        user = funded_user(1)
        job = edit_job_submit(user=user, photo=make_photo(user), prompt="a red shirt", clothing="topwear")
        (job,) = wait_for_jobs([job.pk], worker=worker)
    assert job.error_code == "provider_failed" and "Simulated failure" in job.error_detail
    assert ProviderError.objects.filter(job=job, kind="422").exists()


def test_a_photo_the_engine_cannot_edit_is_a_refusal_not_a_provider_fault(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    """The engine's gate refuses a photo with nobody in it (`error_code` edit_not_possible): the person's photo
    caused it, so the edit says why in the gate's words, is refunded, and counts as no provider error."""
    empty_room = io.BytesIO()
    Image.new("RGB", (512, 512), (182, 176, 168)).save(empty_room, "JPEG", quality=90)
    with run_fashionai(engine="recolor", delay=0.1) as fai:
        worker = shared_worker.serve(fai)
        user = funded_user(1)
        job = edit_job_submit(user=user, photo=make_photo(user, empty_room.getvalue()), prompt="a red shirt",
                              clothing="topwear")
        (job,) = wait_for_jobs([job.pk], worker=worker)
    assert job.state == EditJob.State.FAILED
    assert job.error_code == ERROR_REFUSED, (job.error_code, job.error_detail)
    assert "person" in job.error_detail.lower()
    assert CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).count() == 1
    assert credits_ledger_sum(user_id=user.pk) == 1
    assert not ProviderError.objects.filter(job=job).exists()
    assert not OperatorAlert.objects.exists()
