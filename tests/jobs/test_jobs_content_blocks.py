"""A content block on the provider (Segmind's RAI block; ours in fashionai/safety.py) reaches the site as a FAILED
edit with a refund and a clear message, told apart from the provider's own failures.

The service blocks a harmless class the real detector finds on the astronaut photo (FACE_FEMALE) instead of a
nudity class: no explicit image ships with this repository (docs/fashionai.md, "Content screening")."""
from __future__ import annotations

from typing import Any

import pytest

from devservices.fashionai import run_fashionai
from editor.errors import Refused
from editor.models import CreditEntry, EditJob, OperatorAlert, ProviderError
from editor.progress import CONTENT_BLOCKED_MESSAGE, ERROR_CONTENT_BLOCKED
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
