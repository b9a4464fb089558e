"""Our extensions to Segmind's protocol (docs/fashionai.md, "Ours"), over real HTTP against the real service.

Each is optional: a client that sends none of them (the official SDK) sees Segmind's behaviour, which
tests/fashionai/test_fashionai_api.py checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devservices.fashionai import FashionAIServer, run_fashionai

PROMPT = "a person wearing a red shirt"


@pytest.fixture(scope="module")
def fai() -> Iterator[FashionAIServer]:
    # passthrough engine, each job 0.4 s: long enough to be seen QUEUED/PROCESSING, short enough to finish.
    with run_fashionai(delay=0.4, api_keys="ext-key:1000,other-key") as server:
        yield server


def _client(server: FashionAIServer, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.root_url, headers={"x-api-key": key or server.api_key}, timeout=30)


def _health(server: FashionAIServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.root_url}/health").json()
    return body


def _idle(server: FashionAIServer, timeout: float = 60) -> dict[str, Any]:
    """Health once no job is queued or processing (earlier tests' jobs count engine runs too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = _health(server)
        if health["jobs"]["QUEUED"] == health["jobs"]["PROCESSING"] == 0:
            return health
        time.sleep(0.05)
    raise AssertionError("the service did not become idle")


def _wait_terminal(client: httpx.Client, status_url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url)
        if response.json().get("status") in ("COMPLETED", "FAILED", "CANCELLED"):
            return response
        time.sleep(0.05)
    raise AssertionError("job did not finish")


# ------------------------------------------------------------------------------------------------ Idempotency-Key


def test_same_idempotency_key_and_body_return_the_first_job(fai: FashionAIServer, astronaut_b64: str) -> None:
    runs_before = _idle(fai)["engine_runs"]
    body = {"image": astronaut_b64, "prompt": PROMPT, "clothing": "topwear"}
    with _client(fai) as client:
        first = client.post("/v2/fashion-ai", json=body, headers={"Idempotency-Key": "edit-1"})
        assert first.status_code == 200, first.text
        assert "idempotent-replayed" not in first.headers
        credits_after_first = first.headers["x-remaining-credits"]
        # The same request again, re-serialised (key order differs): the same job, not charged again.
        again = client.post(
            "/v2/fashion-ai", json=dict(reversed(body.items())), headers={"Idempotency-Key": "edit-1"}
        )
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["x-remaining-credits"] == credits_after_first
        _wait_terminal(client, first.json()["status_url"])
        # Still the same job once it has finished (the key lives for the retention window).
        late = client.post("/v2/fashion-ai", json=body, headers={"Idempotency-Key": "edit-1"})
        assert late.json()["request_id"] == first.json()["request_id"]
    assert _idle(fai)["engine_runs"] == runs_before + 1


def test_same_idempotency_key_with_another_body_is_409(fai: FashionAIServer, astronaut_b64: str) -> None:
    with _client(fai) as client:
        first = client.post(
            "/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}, headers={"Idempotency-Key": "edit-2"}
        )
        assert first.status_code == 200
        other = client.post(
            "/v2/fashion-ai",
            json={"image": astronaut_b64, "prompt": "a blue shirt"},
            headers={"Idempotency-Key": "edit-2"},
        )
    assert other.status_code == 409
    assert "different request body" in other.json()["error"]


def test_idempotency_keys_are_per_api_key(fai: FashionAIServer, astronaut_b64: str) -> None:
    body = {"image": astronaut_b64, "prompt": PROMPT}
    with _client(fai) as mine, _client(fai, key="other-key") as theirs:
        a = mine.post("/v2/fashion-ai", json=body, headers={"Idempotency-Key": "shared-name"})
        b = theirs.post("/v2/fashion-ai", json=body, headers={"Idempotency-Key": "shared-name"})
    assert a.status_code == b.status_code == 200
    assert a.json()["request_id"] != b.json()["request_id"]


def test_racing_submits_with_one_key_make_one_job(fai: FashionAIServer, astronaut_b64: str) -> None:
    runs_before = _idle(fai)["engine_runs"]
    body = {"image": astronaut_b64, "prompt": PROMPT}

    def send(_: int) -> httpx.Response:
        with _client(fai) as client:
            return client.post("/v2/fashion-ai", json=body, headers={"Idempotency-Key": "edit-race"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["request_id"] for a in answers}) == 1
    with _client(fai) as client:
        _wait_terminal(client, answers[0].json()["status_url"])
    assert _idle(fai)["engine_runs"] == runs_before + 1


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\tinside"])
def test_malformed_idempotency_key_is_400(fai: FashionAIServer, astronaut_b64: str, value: str) -> None:
    with _client(fai) as client:
        response = client.post(
            "/v2/fashion-ai",
            json={"image": astronaut_b64, "prompt": PROMPT},
            headers={"Idempotency-Key": value.encode()},
        )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]


def test_a_refused_first_submit_leaves_no_key_behind(fai: FashionAIServer, astronaut_b64: str) -> None:
    with _client(fai) as client:
        bad = client.post("/v2/fashion-ai", json={"image": "AAAA", "prompt": PROMPT}, headers={"Idempotency-Key": "k3"})
        assert bad.status_code == 400
        good = client.post(
            "/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}, headers={"Idempotency-Key": "k3"}
        )
    assert good.status_code == 200, good.text


# ------------------------------------------------------------------------------------------------ cancel, deadline


HOLD = 2.5  # seconds each job keeps the one engine worker busy


@pytest.fixture
def slow() -> Iterator[FashionAIServer]:
    """One engine worker held 2.5 s by each job, 5 credits: jobs queue up behind each other."""
    with run_fashionai(api_keys="slow-key:5,stranger", env={"FASHIONAI_ENGINE_HOLD": str(HOLD)}) as server:
        yield server


def _submit(client: httpx.Client, image: str, **headers: str) -> dict[str, Any]:
    response = client.post("/v2/fashion-ai", json={"image": image, "prompt": PROMPT}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["credits"] = int(response.headers.get("x-remaining-credits", "-1"))
    return body


def test_cancel_a_queued_and_a_processing_job(slow: FashionAIServer, astronaut_b64: str) -> None:
    with _client(slow) as client:
        running = _submit(client, astronaut_b64)
        queued = _submit(client, astronaut_b64)
        assert queued["credits"] == 3
        assert client.get(queued["status_url"]).json()["queue_position"] == 0
        with _client(slow, key="stranger") as stranger:  # another key's job is unknown to it, cancel included
            assert stranger.post(f"/v2/requests/{queued['request_id']}/cancel").status_code == 404
        cancelled = client.post(f"/v2/requests/{queued['request_id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "FAILED"
        assert cancelled.json()["error_code"] == "cancelled" and cancelled.json()["retryable"] is False
        # Segmind's clients see a FAILED job (422), which they already know how to handle.
        status = client.get(queued["status_url"])
        assert status.status_code == 422 and status.json()["error_code"] == "cancelled"
        assert client.post(f"/v2/requests/{queued['request_id']}/cancel").status_code == 200  # idempotent
        # The running one: cancelled mid-way, its result never appears.
        deadline = time.monotonic() + 10
        while client.get(running["status_url"]).json()["status"] != "PROCESSING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post(f"/v2/requests/{running['request_id']}/cancel").status_code == 200
        time.sleep(HOLD + 0.3)  # the engine returns meanwhile: its result is dropped
        result = client.get(running["response_url"])
        assert result.status_code == 422 and result.json()["output"] is None
        # Both refunded: the next submit leaves 4 of the 5 credits.
        assert _submit(client, astronaut_b64)["credits"] == 4


def test_cancel_a_finished_job_is_409(slow: FashionAIServer, astronaut_b64: str) -> None:
    with _client(slow) as client:
        job = _submit(client, astronaut_b64)
        assert _wait_terminal(client, job["status_url"]).json()["status"] == "COMPLETED"
        answer = client.post(f"/v2/requests/{job['request_id']}/cancel")
    assert answer.status_code == 409
    assert answer.json()["status"] == "COMPLETED"


def test_start_deadline_fails_a_job_that_waited_too_long(slow: FashionAIServer, astronaut_b64: str) -> None:
    with _client(slow) as client:
        first = _submit(client, astronaut_b64)
        late = _submit(client, astronaut_b64, **{"X-Start-Deadline": "0.5"})
        status = _wait_terminal(client, late["status_url"])
        assert status.status_code == 422
        assert status.json()["error_code"] == "start_deadline_exceeded" and status.json()["retryable"] is True
        assert client.get(first["status_url"]).json()["status"] in ("PROCESSING", "COMPLETED")
        # A deadline long enough changes nothing.
        fine = _submit(client, astronaut_b64, **{"X-Start-Deadline": "60"})
        assert _wait_terminal(client, fine["status_url"]).json()["status"] == "COMPLETED"
        bad = client.post(
            "/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}, headers={"X-Start-Deadline": "soon"}
        )
        assert bad.status_code == 400 and "X-Start-Deadline" in bad.json()["error"]


# ------------------------------------------------------------------------------------------------ status fields


def test_status_carries_queue_position_eta_and_retry_after(slow: FashionAIServer, astronaut_b64: str) -> None:
    with _client(slow) as client:
        jobs = [_submit(client, astronaut_b64) for _ in range(3)]
        second = client.get(jobs[1]["status_url"]).json()
        last = client.get(jobs[2]["status_url"])
        assert last.status_code == 200
        body = last.json()
        # One job is ahead of the last in the queue while the second still waits (each holds the engine 2.5 s).
        assert body["status"] == "QUEUED"
        assert body["queue_position"] == (1 if second["status"] == "QUEUED" else 0)
        assert second["queue_position"] in (0, None)
        assert body["eta_seconds"] > 0 and body["eta"].endswith("Z")
        assert body["expires_at"] is None
        assert 1 <= int(last.headers["retry-after"]) <= 30
        done = _wait_terminal(client, jobs[2]["status_url"])
        assert "retry-after" not in done.headers
        assert done.json()["queue_position"] is None and done.json()["expires_at"].endswith("Z")


def test_wait_long_polls_until_the_job_finishes(slow: FashionAIServer, astronaut_b64: str) -> None:
    with _client(slow) as client:
        job = _submit(client, astronaut_b64)
        started = time.monotonic()
        answer = client.get(job["status_url"], params={"wait": 20})
        held = time.monotonic() - started
        assert answer.json()["status"] == "COMPLETED", answer.text
        assert held > 1.0  # it was held until the engine finished (HOLD s), not answered at once
        assert client.get(job["response_url"], params={"wait": "x"}).status_code == 400


def test_expired_request_is_410_for_our_clients_and_404_for_segmind_ones(astronaut_b64: str) -> None:
    with run_fashionai(retention=1, api_keys="k1,k2") as server, _client(server) as client:
        job = _submit(client, astronaut_b64)
        _wait_terminal(client, job["status_url"])
        time.sleep(1.5)
        ours = {"X-Fashionai-Extensions": "1"}
        for url in (job["status_url"], job["response_url"]):
            gone = client.get(url, headers=ours)
            assert gone.status_code == 410, gone.text
            assert "expired" in gone.json()["error"]
            assert client.get(url).status_code == 404  # Segmind's answer for a client that did not opt in
        assert client.get("/v2/requests/never-was/status", headers=ours).status_code == 404
        with _client(server, key="k2") as stranger:  # another key's expired job is unknown to it
            assert stranger.get(job["status_url"], headers=ours).status_code == 404


def test_failures_carry_a_code_and_a_retryable_flag(astronaut_b64: str) -> None:
    with run_fashionai(fail_rate=1.0, api_keys="k1") as server, _client(server) as client:
        job = _submit(client, astronaut_b64)
        body = _wait_terminal(client, job["status_url"]).json()
    assert body["status"] == "FAILED"
    assert body["error_code"] == "simulated_failure" and body["retryable"] is True


def test_an_image_url_signed_again_is_the_same_request(fai: FashionAIServer, astronaut_jpeg: bytes) -> None:
    """A retry carries a freshly presigned URL (another signature): still the same request. Another path is not."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Host(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(astronaut_jpeg)))
            self.end_headers()
            self.wfile.write(astronaut_jpeg)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with run_fashionai(
            api_keys="k1", env={"FASHIONAI_FETCH_ALLOW_INTERNAL": base.removeprefix("http://")}
        ) as own, _client(own) as client:
            headers = {"Idempotency-Key": "signed"}
            first = client.post("/v2/fashion-ai", json={"image": f"{base}/a.jpg?X-Amz-Signature=1", "prompt": PROMPT},
                                headers=headers)
            again = client.post("/v2/fashion-ai", json={"image": f"{base}/a.jpg?X-Amz-Signature=2", "prompt": PROMPT},
                                headers=headers)
            other = client.post("/v2/fashion-ai", json={"image": f"{base}/b.jpg?X-Amz-Signature=1", "prompt": PROMPT},
                                headers=headers)
    finally:
        server.shutdown()
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json()["request_id"] == first.json()["request_id"]
    assert other.status_code == 409
