"""Fault/load knobs, retention, rate limits, the fetch allow-list, and startup config, each on its own real service."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from PIL import Image
from segmind import InferenceFailed, SegmindClient

from devservices.fashionai import REPO_ROOT, FashionAIServer, run_fashionai
from fashionai.fetch import _public, host_allowed

PROMPT = "a red shirt"


@pytest.fixture(scope="module")
def tiny_b64() -> str:
    """A small image: fast submits for load-style tests on the passthrough engine."""
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _client(server: FashionAIServer, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.root_url, headers={"x-api-key": key or server.api_key}, timeout=30)


def _wait(client: httpx.Client, url: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(url)
        if response.json().get("status") in ("COMPLETED", "FAILED"):
            return response
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_retention_expires_requests_and_images(tiny_b64: str) -> None:
    with run_fashionai(retention=1.0) as server, _client(server) as client:
        body = client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).json()
        assert _wait(client, body["status_url"]).json()["status"] == "COMPLETED"
        output = client.get(body["response_url"]).json()["output"]
        assert httpx.get(output).status_code == 200
        time.sleep(1.4)
        request_id = body["request_id"]
        for url in (body["status_url"], body["response_url"], f"/v1/requests/{request_id}"):
            gone = client.get(url)
            assert gone.status_code == 404
            assert gone.json() == {"error": f"Request {request_id} not found"}
        assert httpx.get(output).status_code == 404


def test_fail_rate_one_fails_every_job(tiny_b64: str) -> None:
    with run_fashionai(fail_rate=1.0) as server:
        client = SegmindClient(api_key=server.api_key, base_url=server.base_url)
        job = client.submit_async("fashion-ai", image=tiny_b64, prompt=PROMPT)
        with pytest.raises(InferenceFailed) as failure:
            job.wait(timeout=20, interval=0.05)
        assert "Simulated failure" in (failure.value.detail or "")
        with _client(server) as http:
            assert http.get(job.status_url).status_code == 422
            result = http.get(job.response_url)
            assert result.status_code == 422
            assert result.json()["status"] == "FAILED"
            assert http.post("/v1/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).status_code == 422


def test_fail_rate_is_a_fraction_and_reproducible_with_a_seed(tiny_b64: str) -> None:
    def outcomes() -> list[str]:
        with run_fashionai(fail_rate=0.5, extra_args=["--seed", "11"]) as server, _client(server) as client:
            urls = [
                client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).json()["status_url"]
                for _ in range(20)
            ]
            return [_wait(client, url).json()["status"] for url in urls]

    first = outcomes()
    assert 3 <= first.count("FAILED") <= 17
    assert outcomes() == first


def test_error_rate_answers_500_502_429(tiny_b64: str) -> None:
    with run_fashionai(error_rate=0.5, extra_args=["--seed", "3"]) as server, _client(server) as client:
        codes = [client.get("/v2/requests/nope/status") for _ in range(80)]
        seen = {response.status_code for response in codes}
        assert seen == {404, 500, 502, 429}
        limited = next(r for r in codes if r.status_code == 429)
        assert limited.headers["Retry-After"] == "1"
        assert "x-rate-limit-reset-at-utc" in limited.headers
        assert all("error" in r.json() for r in codes)
        # Health and the OpenAPI document are not part of the faulty API surface.
        assert all(httpx.get(f"{server.root_url}/health").status_code == 200 for _ in range(10))


def test_delay_does_not_hold_the_engine_worker(tiny_b64: str) -> None:
    """200 jobs with a 2 s delay on ONE worker all finish in about 2 s, not 400 s."""
    jobs = 200
    with run_fashionai(delay=2.0, workers=1) as server, _client(server) as client:
        started = time.monotonic()

        def submit(_: int) -> str:
            response = client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT})
            assert response.status_code == 200
            return str(response.json()["status_url"])

        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(submit, range(jobs)))
        submitted = time.monotonic() - started
        first = client.get(urls[0]).json()["status"]
        if submitted < 1.5:
            assert first in ("QUEUED", "PROCESSING")  # still inside its delay
        health = httpx.get(f"{server.root_url}/health").json()
        assert sum(health["jobs"].values()) == jobs
        for url in urls:
            assert _wait(client, url, timeout=30).json()["status"] == "COMPLETED"
        elapsed = time.monotonic() - started
    assert elapsed < submitted + 2.0 + 8.0, (elapsed, submitted)


def test_full_queue_answers_429_with_retry_headers(astronaut_b64: str) -> None:
    with (
        run_fashionai(engine="recolor", workers=1, extra_args=["--max-queue", "1"]) as server,
        _client(server) as client,
    ):
        with ThreadPoolExecutor(6) as pool:
            responses = list(
                pool.map(
                    lambda _: client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}),
                    range(8),
                )
            )
    codes = [r.status_code for r in responses]
    assert codes.count(200) >= 2
    busy = [r for r in responses if r.status_code == 429]
    assert busy, codes
    assert int(busy[0].headers["Retry-After"]) >= 1
    assert "queue full" in busy[0].json()["error"]


def test_status_delay_holds_status_and_result_calls(tiny_b64: str) -> None:
    with run_fashionai(extra_args=["--status-delay", "0.6"]) as server, _client(server) as client:
        body = client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).json()
        for url in (body["status_url"], body["response_url"], f"/v1/requests/{body['request_id']}"):
            started = time.monotonic()
            response = client.get(url)
            assert time.monotonic() - started >= 0.6
            assert response.status_code == 200 and response.json()["request_id"] == body["request_id"]


def test_per_key_rate_limit(tiny_b64: str, image_host: str) -> None:
    with run_fashionai(api_keys="rl,other", extra_args=["--rate-limit", "3"]) as server:
        with _client(server, "rl") as client:
            codes = [client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        limited = codes[-1]
        assert 50 <= int(limited.headers["Retry-After"]) <= 61
        reset = datetime.strptime(limited.headers["x-rate-limit-reset-at-utc"], "%Y-%m-%dT%H:%M:%SZ")
        assert 40 < (reset.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() < 62
        with _client(server, "other") as client:  # other keys are not affected
            assert client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).status_code == 200


def test_fetch_allow_list_refuses_other_hosts_and_internal_addresses(image_host: str) -> None:
    port = image_host.rsplit(":", 1)[1]
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_HOSTS": "localhost,*.example.com"}) as server:
        with _client(server) as client:
            not_listed = client.post("/v2/fashion-ai", json={"image": f"{image_host}/astronaut.jpg", "prompt": "red"})
            assert not_listed.status_code == 400
            assert "not in the service's allowed hosts" in not_listed.json()["error"]
            # Listed, but it resolves to loopback: an internal address is never fetched once the list is on.
            internal = client.post(
                "/v2/fashion-ai", json={"image": f"http://localhost:{port}/astronaut.jpg", "prompt": "red"}
            )
            assert internal.status_code == 400
            assert "internal address" in internal.json()["error"]


def test_fetch_policy_helpers() -> None:
    assert host_allowed("media.example.com", ("*.example.com",))
    assert not host_allowed("example.com.evil.net", ("*.example.com",))
    assert host_allowed("anything.net", ("*",))
    for internal in (
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
    ):
        assert not _public(internal), internal
    assert _public("93.184.216.34")


def test_bad_configuration_stops_the_service_with_a_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONAI_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    missing_keys = subprocess.run(
        [sys.executable, "-m", "fashionai", "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert missing_keys.returncode == 2
    assert "FASHIONAI_API_KEYS" in missing_keys.stderr
    bad_rate = subprocess.run(
        [sys.executable, "-m", "fashionai", "serve"],
        env={**env, "FASHIONAI_API_KEYS": "k", "FASHIONAI_FAIL_RATE": "lots"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad_rate.returncode == 2
    assert "FASHIONAI_FAIL_RATE='lots' is not a number" in bad_rate.stderr
