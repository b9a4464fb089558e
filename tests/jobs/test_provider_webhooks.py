"""Completion webhooks from our own service (docs/fashionai.md "Ours"): the site's endpoint checks the Standard
Webhooks signature and refuses replayed and unknown deliveries; end to end a job finishes from the webhook with no
status call at all, and a lost webhook still finishes by polling."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.test import Client
from standardwebhooks import Webhook

from devservices.fashionai import run_fashionai
from editor.models import EditJob
from editor.services.edit_commands import edit_job_submit
from tests.faults.conftest import assert_consistent, wait_final
from tests.support.fixtures import purge_broker

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of base64, test only
URL = "/provider/webhook/"


@pytest.fixture
def webhooks_on(settings: Any) -> Any:
    settings.FASHION_AI_EXTENSIONS = True
    settings.FASHION_AI_WEBHOOKS = True
    settings.FASHION_AI_WEBHOOK_URL = "http://testserver" + URL
    settings.FASHION_AI_WEBHOOK_SECRET = SECRET
    return settings


def _signed(data: dict[str, Any], *, secret: str = SECRET, at: datetime | None = None,
            msg_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "request.completed", "timestamp": "x", "data": data})
    at = at or datetime.now(UTC)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    headers = {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": Webhook(secret).sign(msg_id, at, body),
    }
    return body.encode(), headers


@pytest.mark.django_db(transaction=True)
def test_the_endpoint_checks_the_signature_and_refuses_replays_and_unknown_requests(
    webhooks_on: Any, funded_user: Any, make_photo: Any
) -> None:
    user = funded_user(1)
    job = edit_job_submit(user=user, photo=make_photo(user), prompt="a red shirt", clothing="topwear")
    purge_broker()
    EditJob.objects.filter(pk=job.pk).update(
        state="submitted", request_id="req-1", status_url="http://p/v2/requests/req-1/status", provider_status="QUEUED"
    )
    client = Client()
    data = {"status": "COMPLETED", "request_id": "req-1", "output": "http://p/outputs/x.png"}

    forged, forged_headers = _signed(data, secret="whsec_" + "A" * 32)
    assert client.post(URL, forged, content_type="application/json", **forged_headers).status_code == 401
    old, old_headers = _signed(data, at=datetime.now(UTC) - timedelta(minutes=10))
    assert client.post(URL, old, content_type="application/json", **old_headers).status_code == 401
    unsigned = client.post(URL, json.dumps({"data": data}), content_type="application/json")
    assert unsigned.status_code == 401
    assert EditJob.objects.get(pk=job.pk).provider_status == "QUEUED"  # none of them changed anything

    body, headers = _signed(data)
    tampered = body.replace(b"req-1", b"req-2")
    assert client.post(URL, tampered, content_type="application/json", **headers).status_code == 401
    assert client.post(URL, body, content_type="application/json", **headers).status_code == 204
    assert EditJob.objects.get(pk=job.pk).provider_status == "COMPLETED"
    assert client.post(URL, body, content_type="application/json", **headers).status_code == 409  # replayed

    stranger, stranger_headers = _signed({**data, "request_id": "not-ours"})
    assert client.post(URL, stranger, content_type="application/json", **stranger_headers).status_code == 404
    assert client.get(URL).status_code == 405
    purge_broker()


@pytest.mark.django_db(transaction=True)
def test_without_webhooks_configured_the_endpoint_knows_nothing(settings: Any) -> None:
    settings.FASHION_AI_WEBHOOKS = False
    body, headers = _signed({"status": "COMPLETED", "request_id": "req-1"})
    assert Client().post(URL, body, content_type="application/json", **headers).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_job_finishes_from_the_webhook_with_no_status_call(
    live_server: Any, webhooks_on: Any, celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    host_port = live_server.url.removeprefix("http://")  # localhost:<port>, the one internal address allowed
    env = {"FASHIONAI_WEBHOOK_ALLOW_INTERNAL": host_port, "FASHIONAI_WEBHOOK_BACKOFF": "0.2"}
    with run_fashionai(delay=0.5, env=env) as fai:
        worker = celery_worker_factory(fashionai=fai, env={
            "FASHION_AI_WEBHOOK_URL": f"{live_server.url}{URL}",
            "FASHION_AI_WEBHOOK_SECRET": SECRET,
            "FASHION_AI_WEBHOOK_FALLBACK_POLL_SECONDS": "60",  # no poll comes before the test's timeout
        })
        user = funded_user(4)
        photo = make_photo(user)
        ids = [edit_job_submit(user=user, photo=photo, prompt=f"a red shirt {n}", clothing="topwear").pk
               for n in range(4)]
        done = wait_final(ids, timeout=40, worker=worker)
        logs = [
            httpx.get(f"{fai.root_url}/v2/requests/{job.request_id}/deliveries",
                      headers={"x-api-key": fai.api_key}).json()["deliveries"]
            for job in done
        ]
    assert [j.state for j in done] == ["succeeded"] * 4
    assert [j.poll_count for j in done] == [0] * 4  # finished by the webhook alone
    for deliveries in logs:
        assert [d["state"] for d in deliveries] == ["delivered"]
        assert deliveries[0]["type"] == "request.completed"
        assert deliveries[0]["attempts"][-1]["status"] == 204
    assert_consistent([user])


@pytest.mark.django_db(transaction=True)
def test_the_fallback_poll_waits_until_the_job_should_be_done(
    live_server: Any, webhooks_on: Any, celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    """A fallback interval shorter than the job: the poll still comes only once the job should have been done
    (it polled at the fallback interval from the submit: ~2 status calls per delivered job, 1.9 in bench_jobs)."""
    host_port = live_server.url.removeprefix("http://")
    env = {"FASHIONAI_WEBHOOK_ALLOW_INTERNAL": host_port, "FASHIONAI_WEBHOOK_BACKOFF": "0.2"}
    with run_fashionai(delay=4.0, env=env) as fai:
        worker = celery_worker_factory(fashionai=fai, env={
            "FASHION_AI_WEBHOOK_URL": f"{live_server.url}{URL}",
            "FASHION_AI_WEBHOOK_SECRET": SECRET,
            "FASHION_AI_WEBHOOK_FALLBACK_POLL_SECONDS": "1.5",
            "FASHION_AI_EXPECTED_SECONDS": "4",
        })
        user = funded_user(3)
        photo = make_photo(user)
        ids = [edit_job_submit(user=user, photo=photo, prompt=f"a red shirt {n}", clothing="topwear").pk
               for n in range(3)]
        done = wait_final(ids, timeout=40, worker=worker)
    assert [j.state for j in done] == ["succeeded"] * 3
    assert [j.poll_count for j in done] == [0] * 3  # the webhook came first: no status call
    assert_consistent([user])


@pytest.mark.django_db(transaction=True)
def test_a_lost_webhook_still_finishes_by_polling(
    webhooks_on: Any, celery_worker_factory: Any, funded_user: Any, make_photo: Any
) -> None:
    # The registered endpoint never answers (nothing listens there): every delivery fails, polling finishes.
    with run_fashionai(delay=0.5, env={"FASHIONAI_WEBHOOK_ALLOW_INTERNAL": "127.0.0.1:9",
                                      "FASHIONAI_WEBHOOK_BACKOFF": "0.1",
                                      "FASHIONAI_WEBHOOK_ATTEMPTS": "3"}) as fai:
        worker = celery_worker_factory(fashionai=fai, env={
            "FASHION_AI_WEBHOOK_URL": f"http://127.0.0.1:9{URL}",
            "FASHION_AI_WEBHOOK_SECRET": SECRET,
            "FASHION_AI_WEBHOOK_FALLBACK_POLL_SECONDS": "2",
        })
        user = funded_user(2)
        photo = make_photo(user)
        ids = [edit_job_submit(user=user, photo=photo, prompt=f"a red shirt {n}", clothing="topwear").pk
               for n in range(2)]
        done = wait_final(ids, timeout=40, worker=worker)
        time.sleep(1)  # the last retries of the deliveries
        logs = [
            httpx.get(f"{fai.root_url}/v2/requests/{job.request_id}/deliveries",
                      headers={"x-api-key": fai.api_key}).json()["deliveries"]
            for job in done
        ]
    assert [j.state for j in done] == ["succeeded"] * 2
    assert all(j.poll_count >= 1 for j in done)
    for deliveries in logs:  # retried with backoff, then given up; logged attempt by attempt
        assert [d["state"] for d in deliveries] == ["failed"]
        assert len(deliveries[0]["attempts"]) == 3
        assert all(a["status"] is None and a["error"] for a in deliveries[0]["attempts"])
    assert_consistent([user])
