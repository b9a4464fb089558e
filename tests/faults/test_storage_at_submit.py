"""S3 unreachable when an edit is submitted: the provider could not fetch the photo and would fail the edit for
good, so the worker waits for storage instead and the edit succeeds once it is back."""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from devservices.fashionai import run_fashionai
from devservices.tcpproxy import TcpProxy
from editor.models import EditJob
from editor.services.edit_commands import edit_job_submit
from tests.faults.conftest import assert_consistent, wait_final

pytestmark = pytest.mark.django_db(transaction=True)


def test_s3_down_at_submit_waits_instead_of_failing(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    s3 = urlsplit(os.environ["AWS_S3_ENDPOINT_URL"])
    # The worker (and the presigned URLs it hands the provider) reach S3 only through this proxy.
    proxy = TcpProxy(s3.port or 80).start()
    try:
        # The presigned URLs go through the proxy: the one internal address the service may fetch.
        allow = {"FASHIONAI_FETCH_ALLOW_INTERNAL": f"127.0.0.1:{proxy.port}"}
        with run_fashionai(delay=0.5, env=allow) as fai:
            user = funded_user(3)
            photo = make_photo(user)
            proxy.cut()
            worker = celery_worker_factory(fashionai=fai, env={"AWS_S3_ENDPOINT_URL": proxy.url()})
            ids = [
                edit_job_submit(user=user, photo=photo, prompt=f"a green shirt {n}", clothing="topwear").pk
                for n in range(3)
            ]
            time.sleep(4)
            rows = list(EditJob.objects.filter(pk__in=ids).values_list("state", "error_detail"))
            assert rows == [("created", "Waiting for storage to come back.")] * 3, rows
            proxy.restore()
            done = wait_final(ids, timeout=60, worker=worker)
    finally:
        proxy.cut()
    assert [job.state for job in done] == ["succeeded"] * 3
    assert_consistent([user])
