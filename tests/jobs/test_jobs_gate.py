"""The engine's quality gate on the site's failure path, end to end: real worker, Redis, S3, PostgreSQL and the real
recolour engine over HTTP. A refusal is a FAILED job with one refund and the gate's own words on the job page."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from bench import photos
from devservices.fashionai import run_fashionai
from editor.models import CreditEntry, EditJob
from editor.services.edit_commands import edit_job_submit
from tests.jobs.conftest import wait_for_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_refused_edit_fails_with_the_gate_message_and_a_refund(
    shared_worker: Any, funded_user: Any, make_photo: Any
) -> None:
    """The failure path end to end: the gate's refusal is a FAILED job at the provider, one refund here, and the
    person reads the gate's words on the job page."""
    user = funded_user(2)
    photo = make_photo(user, _png(photos.cameraman()))
    with run_fashionai(engine="recolor") as recolor:
        worker = shared_worker.serve(recolor)
        job = edit_job_submit(user=user, photo=photo, prompt="blue jeans", clothing="bottomwear")
        (job,) = wait_for_jobs([job.pk], worker=worker, timeout=60)
    assert job.state == EditJob.State.FAILED
    assert "mostly hidden by a long coat" in job.error_detail and job.result_image.name in ("", None)
    assert CreditEntry.objects.filter(job=job, kind=CreditEntry.Kind.REFUND).count() == 1
    user.credit_account.refresh_from_db()
    assert user.credit_account.balance == 2
    client = Client()
    client.force_login(user)
    assert "mostly hidden by a long coat" in client.get(f"/edits/{job.pk}/").content.decode()
