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
    runs_before = _health(fai)["engine_runs"]
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
    assert _health(fai)["engine_runs"] == runs_before + 1


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
    runs_before = _health(fai)["engine_runs"]
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
    assert _health(fai)["engine_runs"] == runs_before + 1


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
