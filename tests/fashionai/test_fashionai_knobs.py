"""Fault/load knobs, retention, rate limits, the fetch allow-list, and startup config, each on its own real service."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from segmind import InferenceFailed, SegmindClient

from devservices.fashionai import REPO_ROOT, FashionAIServer, run_fashionai
from fashionai import config
from fashionai.fetch import host_allowed, is_public

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
    """200 jobs with a 2 s delay on ONE worker: many sit in their delay at once (a held worker would allow one)."""
    jobs = 200
    with run_fashionai(delay=2.0, workers=1) as server, _client(server) as client:

        def submit(_: int) -> str:
            response = client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT})
            assert response.status_code == 200
            return str(response.json()["status_url"])

        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(submit, range(jobs)))
        most_in_delay = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = httpx.get(f"{server.root_url}/health").json()["jobs"]
            assert sum(counts.values()) == jobs
            most_in_delay = max(most_in_delay, counts["PROCESSING"])
            if counts["COMPLETED"] == jobs:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"jobs did not finish: {counts}")
        for url in urls:
            assert _wait(client, url, timeout=30).json()["status"] == "COMPLETED"
    assert most_in_delay >= 10, most_in_delay


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


def _engine_workers(server: FashionAIServer) -> list[int]:
    """The pids of the service's engine processes (spawned multiprocessing children, not its resource tracker)."""
    pids = []
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                pids.append(int(child))
    assert pids, "no engine worker found"
    return pids


def _noise_b64(side: int, seed: int) -> str:
    """A PNG that does not compress: its bytes, not its pixel count, are what the queue budget sees."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_queue_is_bounded_by_bytes_with_429(tiny_b64: str) -> None:
    big = _noise_b64(370, 1)  # ~410 KB of compressed input each
    env = {"FASHIONAI_MAX_QUEUE_BYTES": str(1024 * 1024)}
    with run_fashionai(env=env) as server, _client(server) as client:
        workers = _engine_workers(server)
        for pid in workers:  # a stalled engine: what it has taken stays taken, the rest waits in the queue
            os.kill(pid, signal.SIGSTOP)
        try:
            codes = [client.post("/v2/fashion-ai", json={"image": big, "prompt": PROMPT}) for _ in range(4)]
            # The first is with the (stopped) engine, two wait queued (~820 KB), the fourth would pass 1 MiB.
            assert [r.status_code for r in codes] == [200, 200, 200, 429]
            assert "queue full" in codes[-1].json()["error"] and int(codes[-1].headers["Retry-After"]) >= 1
            health = httpx.get(f"{server.root_url}/health").json()
            assert health["queued"] == 2 and health["queued_bytes"] <= 1024 * 1024
            # A small input still fits the budget: it is bytes that are bounded, not jobs.
            assert client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).status_code == 200
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        for response in codes[:3]:
            assert _wait(client, response.json()["status_url"]).json()["status"] == "COMPLETED"
        assert httpx.get(f"{server.root_url}/health").json()["queued_bytes"] == 0


def test_jobs_in_flight_are_capped_per_key_with_429(tiny_b64: str) -> None:
    args = ["--max-inflight-per-key", "2"]
    with run_fashionai(api_keys="busy,calm", delay=30, extra_args=args) as server:
        with _client(server, "busy") as client:
            codes = [client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        limited = codes[-1]
        assert "in progress for this API key" in limited.json()["error"]
        assert int(limited.headers["Retry-After"]) >= 1 and "x-rate-limit-reset-at-utc" in limited.headers
        with _client(server, "calm") as client:  # another key is not held up by the busy one
            assert client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).status_code == 200


def test_output_folder_of_a_killed_service_is_removed_at_the_next_start(tiny_b64: str, tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path)}
    with run_fashionai(env=env) as killed, _client(killed) as client:
        body = client.post("/v2/fashion-ai", json={"image": tiny_b64, "prompt": PROMPT}).json()
        assert _wait(client, body["status_url"]).json()["status"] == "COMPLETED"
        (left_behind,) = tmp_path.glob("fashionai-out-*")
        assert any(path.suffix == ".png" for path in left_behind.iterdir())
        os.killpg(killed.process.pid, signal.SIGKILL)
        killed.process.wait(10)
        assert left_behind.is_dir()  # SIGKILL: no chance to clean up
        with run_fashionai(env=env) as fresh:
            folders = list(tmp_path.glob("fashionai-out-*"))
            assert left_behind not in folders and len(folders) == 1
            assert f"removed {left_behind}" in fresh.log()
            # The live service's own folder is kept by a second start beside it.
            with run_fashionai(env=env):
                assert folders[0].is_dir()


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
    generic = {"error": "image URL could not be fetched"}
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_HOSTS": "localhost,*.example.com"}) as server:
        with _client(server) as client:
            not_listed = client.post("/v2/fashion-ai", json={"image": f"{image_host}/astronaut.jpg", "prompt": "red"})
            assert not_listed.status_code == 400 and not_listed.json() == generic
            # Listed, but it resolves to loopback: an internal address is never fetched because a name is listed.
            internal = client.post(
                "/v2/fashion-ai", json={"image": f"http://localhost:{port}/astronaut.jpg", "prompt": "red"}
            )
            assert internal.status_code == 400 and internal.json() == generic
        log = server.log()
    assert "host '127.0.0.1' is not in FASHIONAI_FETCH_ALLOW_HOSTS" in log
    assert "host 'localhost' resolves to internal address" in log


def test_empty_allow_list_fetches_nothing_and_internal_needs_its_exact_host_and_port(image_host: str) -> None:
    """What compose ships (an empty list) refuses every URL; the object store is allowed by host:port only."""
    host_port = image_host.removeprefix("http://")
    with run_fashionai() as server, _client(server) as client:
        refused = client.post("/v2/fashion-ai", json={"image": f"{image_host}/astronaut.jpg", "prompt": "red"})
        assert refused.status_code == 400 and refused.json() == {"error": "image URL could not be fetched"}
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_HOSTS": "*"}) as server, _client(server) as client:
        star = client.post("/v2/fashion-ai", json={"image": f"{image_host}/astronaut.jpg", "prompt": "red"})
        assert star.status_code == 400  # "*" means any public host, never loopback
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_INTERNAL": host_port}) as server, _client(server) as client:
        allowed = client.post("/v2/fashion-ai", json={"image": f"{image_host}/astronaut.jpg", "prompt": "red"})
        assert allowed.status_code == 200, allowed.text
        other_port = client.post(
            "/v2/fashion-ai", json={"image": f"http://127.0.0.1:{server.port}/health", "prompt": "red"}
        )
        assert other_port.status_code == 400
        by_name = client.post(
            "/v2/fashion-ai", json={"image": image_host.replace("127.0.0.1", "localhost") + "/astronaut.jpg",
                                    "prompt": "red"}
        )
        assert by_name.status_code == 400  # the exact host as listed, not another name for the same address


def test_fetch_policy_helpers() -> None:
    assert host_allowed("media.example.com", ("*.example.com",))
    assert not host_allowed("example.com.evil.net", ("*.example.com",))
    assert host_allowed("anything.net", ("*",))
    assert not host_allowed("anything.net", ())
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
        "::",
        "fd00::1",
        "ff02::1",
        "224.0.0.1",
        # IPv6 forms that embed or reach an IPv4 address, refused whatever the IPv4 inside is
        "64:ff9b::7f00:1",  # NAT64 -> 127.0.0.1
        "64:ff9b::5db8:d822",  # NAT64 -> 93.184.216.34, public, refused all the same
        "64:ff9b:1::a00:1",  # NAT64 local-use prefix
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:5db8:d822::1",  # 6to4 of a public address
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
        "::ffff:5db8:d822",  # IPv4-mapped public address
        "::ffff:0:7f00:1",  # IPv4-translated
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fec0::1",  # site-local
        "not-an-address",
    ):
        assert not is_public(internal), internal
    assert is_public("93.184.216.34")
    assert is_public("2606:2800:220:1:248:1893:25c8:1946")


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
    no_port = subprocess.run(
        [sys.executable, "-m", "fashionai", "serve"],
        env={**env, "FASHIONAI_API_KEYS": "k", "FASHIONAI_FETCH_ALLOW_INTERNAL": "s3.internal"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert no_port.returncode == 2
    assert "FASHIONAI_FETCH_ALLOW_INTERNAL entry 's3.internal' must be host:port" in no_port.stderr


def test_defaults_limit_rate_in_flight_jobs_and_queued_bytes() -> None:
    settings = config.load({"FASHIONAI_API_KEYS": "k"})
    assert settings.rate_limit > 0
    assert settings.max_inflight_per_key > 0
    assert 0 < settings.max_queue_bytes <= 1024**3
    assert settings.fetch_allow_hosts == () and settings.fetch_allow_internal == frozenset()
