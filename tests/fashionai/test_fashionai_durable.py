"""Durable mode (docs/fashionai.md, "Durable and horizontal"): API and engine processes on one Redis, none holding
state another needs. Real processes, the real Redis from scripts/testenv.py (REDIS_URL), real SIGKILLs.

Each test gets its own key prefix on that Redis and its own shared results folder, so tests never see each other's
jobs.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from PIL import Image
from standardwebhooks import Webhook

from devservices.fashionai import FashionAIServer, run_fashionai
from fashionai.redis_jobs import key_hash

PROMPT = "a person wearing a red shirt"


def _png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


IMAGE = _png_b64()


@pytest.fixture()
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs a Redis: run through scripts/testenv.py (it sets REDIS_URL)")
    return url


class Deployment:
    """One durable deployment: a Redis prefix and a results folder; API and engine processes join it."""

    def __init__(self, redis_url: str, folder: Path, stack: contextlib.ExitStack) -> None:
        self.redis_url = redis_url
        self.prefix = f"test-{uuid.uuid4().hex[:10]}:"
        self.folder: str | None = str(folder)
        self.env: dict[str, str] = {}  # FASHIONAI_* every process of this deployment gets
        self.stack = stack
        self.redis = redis.Redis.from_url(redis_url)

    def use_s3(self, bucket: str, endpoint_url: str) -> None:
        self.folder = None
        self.env = {"FASHIONAI_OUTPUT_S3_BUCKET": bucket, "FASHIONAI_OUTPUT_S3_ENDPOINT_URL": endpoint_url,
                    "FASHIONAI_OUTPUT_S3_PREFIX": self.prefix.replace(":", "/")}

    def api(self, **kwargs: Any) -> FashionAIServer:
        kwargs.setdefault("api_keys", "durable-key:1000,other-key")
        kwargs.setdefault("lease", 1.5)
        kwargs["env"] = {**self.env, **kwargs.get("env", {})}
        return self.stack.enter_context(run_fashionai(
            redis_url=self.redis_url, redis_prefix=self.prefix, output_dir=self.folder, **kwargs
        ))

    def engine(self, **kwargs: Any) -> FashionAIServer:
        kwargs.setdefault("lease", 1.5)
        kwargs["env"] = {**self.env, **kwargs.get("env", {})}
        return self.stack.enter_context(run_fashionai(
            role="engine", redis_url=self.redis_url, redis_prefix=self.prefix, output_dir=self.folder, **kwargs
        ))

    def credits(self, api_key: str = "durable-key") -> int:
        return int(self.redis.get(self.prefix + "credits:" + key_hash(api_key)) or -1)

    def held_by(self, process: FashionAIServer, stream: str = "stream", group: str = "engines") -> int:
        """Stream entries the process holds right now (taken, not yet acknowledged)."""
        consumers = self.redis.xinfo_consumers(self.prefix + stream, group)
        return sum(int(c["pending"]) for c in consumers if f"-{process.process.pid}-" in c["name"].decode())


@pytest.fixture()
def deployment(redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    with contextlib.ExitStack() as stack:
        dep = Deployment(redis_url, tmp_path / "outputs", stack)
        yield dep
        for name in dep.redis.scan_iter(match=dep.prefix + "*"):
            dep.redis.delete(name)


def _client(server: FashionAIServer, key: str = "durable-key") -> httpx.Client:
    return httpx.Client(base_url=server.root_url, headers={"x-api-key": key}, timeout=30)


def _submit(client: httpx.Client, headers: dict[str, str] | None = None, prompt: str = PROMPT) -> httpx.Response:
    return client.post("/v2/fashion-ai", json={"image": IMAGE, "prompt": prompt}, headers=headers or {})


def _wait_all(client: httpx.Client, ids: list[str], timeout: float = 45) -> dict[str, dict[str, Any]]:
    """Every job's status body once all have finished."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for job_id in [i for i in ids if i not in done]:
            body = client.get(f"/v2/requests/{job_id}/status").json()
            if body["status"] in ("COMPLETED", "FAILED"):
                done[job_id] = body
        if len(done) == len(ids):
            return done
        time.sleep(0.1)
    states = {client.get(f"/v2/requests/{i}/status").json()["status"] for i in ids if i not in done}
    raise AssertionError(f"{len(ids) - len(done)} of {len(ids)} jobs did not finish (still {states})")


def _submit_many(client: httpx.Client, count: int) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _i: _submit(client), range(count)))
    assert [a.status_code for a in answers] == [200] * count, answers[0].text
    return [a.json()["request_id"] for a in answers]




def test_a_job_submitted_to_one_api_process_is_polled_and_fetched_from_the_other(deployment: Deployment) -> None:
    api_a, api_b = deployment.api(), deployment.api()
    deployment.engine(workers=1, delay=0.3)
    deployment.engine(workers=1, delay=0.3)
    with _client(api_a) as a, _client(api_b) as b:
        submitted = _submit(a)
        assert submitted.status_code == 200, submitted.text
        request_id = submitted.json()["request_id"]
        first = b.get(f"/v2/requests/{request_id}/status")
        assert first.status_code == 200
        assert first.json()["status"] in ("QUEUED", "PROCESSING")
        status = _wait_all(b, [request_id])[request_id]
        assert status["status"] == "COMPLETED"
        result = b.get(f"/v2/requests/{request_id}").json()
        assert result["output"].startswith(api_b.root_url + "/outputs/")
        image = httpx.get(result["output"].replace(api_b.root_url, api_a.root_url))
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        # Another key's view of it is an unknown id, whichever process answers.
        assert _client(api_a, "other-key").get(f"/v2/requests/{request_id}/status").status_code == 404


def test_an_idempotency_key_used_on_one_api_process_replays_on_the_other(deployment: Deployment) -> None:
    api_a, api_b = deployment.api(), deployment.api()
    deployment.engine(workers=1)
    headers = {"Idempotency-Key": f"edit-{uuid.uuid4()}"}
    with _client(api_a) as a, _client(api_b) as b:
        first = _submit(a, headers)
        again = _submit(b, headers)
        assert again.status_code == 200
        assert again.json()["request_id"] == first.json()["request_id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert _submit(b, headers, prompt="a person wearing a green shirt").status_code == 409
        _wait_all(b, [first.json()["request_id"]])
        health = a.get("/health").json()
        assert health["engine_runs"] == 1
        assert deployment.credits() == 999  # one charge for the two submits


def test_cancel_on_the_other_api_process_ends_the_job_and_refunds(deployment: Deployment) -> None:
    api_a, api_b = deployment.api(), deployment.api()
    deployment.engine(workers=1, delay=5)
    with _client(api_a) as a, _client(api_b) as b:
        request_id = _submit(a).json()["request_id"]
        cancelled = b.post(f"/v2/requests/{request_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["error_code"] == "cancelled"
        assert a.get(f"/v2/requests/{request_id}/status").json()["error_code"] == "cancelled"
        assert deployment.credits() == 1000


def test_sigkill_of_an_engine_process_with_100_jobs_accepted_loses_none(deployment: Deployment) -> None:
    api = deployment.api()
    # Each job holds its engine worker 0.25 s: the doomed engine has jobs in hand when it dies.
    doomed = deployment.engine(workers=2, env={"FASHIONAI_ENGINE_HOLD": "0.25"})
    deployment.engine(workers=2, env={"FASHIONAI_ENGINE_HOLD": "0.25"})
    with _client(api) as client:
        ids = _submit_many(client, 100)
        deadline = time.monotonic() + 20
        while deployment.held_by(doomed) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert deployment.held_by(doomed) > 0
        doomed.kill()
        finished = _wait_all(client, ids)
        assert {body["status"] for body in finished.values()} == {"COMPLETED"}
        assert client.get("/health").json()["engine_runs"] >= 100
        assert deployment.credits() == 900  # re-running a job does not charge again


def test_sigkill_of_an_api_process_with_100_jobs_accepted_loses_none(deployment: Deployment) -> None:
    doomed, survivor = deployment.api(), deployment.api()
    deployment.engine(workers=2, env={"FASHIONAI_ENGINE_HOLD": "0.1"})
    with _client(doomed) as a, _client(survivor) as b:
        ids = _submit_many(a, 100)
        queued = b.get("/health").json()["queued"]
        assert queued > 0  # most are still waiting when the API process that took them dies
        doomed.kill()
        finished = _wait_all(b, ids)
        assert {body["status"] for body in finished.values()} == {"COMPLETED"}
        output = b.get(f"/v2/requests/{ids[-1]}").json()["output"]
        assert httpx.get(output).content.startswith(b"\x89PNG")


def test_results_in_s3_are_presigned_urls_that_expire_with_the_job(deployment: Deployment) -> None:
    bucket, endpoint = os.environ.get("AWS_STORAGE_BUCKET_NAME"), os.environ.get("AWS_S3_ENDPOINT_URL")
    if not bucket or not endpoint:
        pytest.skip("needs the test object store: run through scripts/testenv.py")
    deployment.use_s3(bucket, endpoint)
    api = deployment.api(retention=4)
    deployment.engine(retention=4)
    with _client(api) as client:
        request_id = _submit(client).json()["request_id"]
        _wait_all(client, [request_id])
        result = client.get(f"/v2/requests/{request_id}").json()
        assert result["output"].startswith(endpoint + "/")
        assert "X-Amz-Signature=" in result["output"]
        assert httpx.get(result["output"]).content.startswith(b"\x89PNG")
        name = result["output"].split("?")[0].rsplit("/", 1)[1]
        moved = client.get(f"/outputs/{name}")
        assert moved.status_code == 307 and moved.headers["location"].startswith(endpoint + "/")
        sync = client.post("/v1/fashion-ai", json={"image": IMAGE, "prompt": PROMPT})
        assert sync.status_code == 200 and sync.content.startswith(b"\x89PNG")
        # After the retention window the job answers 410 and its object is gone from the bucket.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and httpx.get(result["output"]).status_code == 200:
            time.sleep(0.25)
        assert httpx.get(result["output"]).status_code in (403, 404)
        gone = client.get(f"/v2/requests/{request_id}", headers={"x-fashionai-extensions": "1"})
        assert gone.status_code == 410


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    refuse_first = 0  # answer 500 to this many deliveries before accepting

    def do_POST(self) -> None:  # noqa: N802 (http.server's API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(500 if len(self.received) <= self.refuse_first else 204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.received = []
    _Receiver.refuse_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()
    server.server_close()


def test_a_webhook_registered_on_one_api_process_is_delivered_for_a_job_submitted_to_the_other(
    deployment: Deployment, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    address, received = receiver
    env = {"FASHIONAI_WEBHOOK_ALLOW_INTERNAL": address}
    api_a, api_b = deployment.api(env=env), deployment.api(env=env)
    deployment.engine(workers=1)
    with _client(api_a) as a, _client(api_b) as b:
        secret = a.put("/v2/webhook", json={"url": f"http://{address}/hook"}).json()["secret"]
        request_id = _submit(b).json()["request_id"]
        _wait_all(a, [request_id])
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a second (wrong) delivery would arrive by now
        assert len(received) == 1
        headers, body = received[0]
        event = Webhook(secret).verify(body, headers)
        assert event["type"] == "request.completed" and event["data"]["request_id"] == request_id
        log = b.get(f"/v2/requests/{request_id}/deliveries").json()["deliveries"]
        assert [(d["id"], d["state"]) for d in log] == [(headers["webhook-id"], "delivered")]


def test_queue_positions_and_start_deadlines_hold_across_api_processes(deployment: Deployment) -> None:
    api_a, api_b = deployment.api(), deployment.api()  # no engine yet: everything stays queued
    with _client(api_a) as a, _client(api_b) as b:
        ids = [_submit(a).json()["request_id"] for _ in range(3)]
        assert [b.get(f"/v2/requests/{i}/status").json()["queue_position"] for i in ids] == [0, 1, 2]
        late = _submit(b, {"X-Start-Deadline": "0.5"}).json()["request_id"]
        time.sleep(0.7)
        status = a.get(f"/v2/requests/{late}/status")
        assert status.status_code == 422 and status.json()["error_code"] == "start_deadline_exceeded"
        assert deployment.credits() == 997  # the late one was refunded
        deployment.engine(workers=1)
        held = b.get(f"/v2/requests/{ids[-1]}/status", params={"wait": 20})  # ?wait=N: answered once finished
        assert held.json()["status"] == "COMPLETED"


def test_a_webhook_retry_cut_short_by_sigkill_is_delivered_by_the_other_api_process(
    deployment: Deployment, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    address, received = receiver
    _Receiver.refuse_first = 1
    env = {"FASHIONAI_WEBHOOK_ALLOW_INTERNAL": address, "FASHIONAI_WEBHOOK_BACKOFF": "5"}
    apis = [deployment.api(env=env), deployment.api(env=env)]
    deployment.engine(workers=1)
    with _client(apis[0]) as a:
        secret = a.put("/v2/webhook", json={"url": f"http://{address}/hook"}).json()["secret"]
        request_id = _submit(a).json()["request_id"]
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert received, "no first delivery attempt"
        while not a.get(f"/v2/requests/{request_id}/deliveries").json()["deliveries"] and time.monotonic() < deadline:
            time.sleep(0.02)  # the first attempt is in the log (a kill between the POST and that write loses its line)
        # The process retrying the delivery (5 s backoff) dies; the other takes it over after the 1.5 s lease.
        holder = next(api for api in apis if deployment.held_by(api, "finished", "announcers"))
        survivor = apis[1] if holder is apis[0] else apis[0]
        holder.kill()
        deadline = time.monotonic() + 15
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(received) == 2
        assert received[0][0]["webhook-id"] == received[1][0]["webhook-id"]  # the receiver can drop a repeat
        assert Webhook(secret).verify(received[1][1], received[1][0])["data"]["request_id"] == request_id
        with _client(survivor) as b:
            log = b.get(f"/v2/requests/{request_id}/deliveries").json()["deliveries"]
        assert [(d["state"], [a["status"] for a in d["attempts"]]) for d in log] == [("delivered", [500, 204])]


def _engine_workers(engine: FashionAIServer) -> list[int]:
    """The engine process's pool workers (spawned children; not multiprocessing's resource tracker)."""
    pid = engine.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]


def test_an_engine_worker_killed_on_a_job_gets_the_job_run_again(deployment: Deployment) -> None:
    api = deployment.api()
    engine = deployment.engine(workers=1, env={"FASHIONAI_ENGINE_HOLD": "1.0"})
    with _client(api) as client:
        request_id = _submit(client).json()["request_id"]
        deadline = time.monotonic() + 20
        while client.get(f"/v2/requests/{request_id}/status").json()["status"] != "PROCESSING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for worker in _engine_workers(engine):
            os.kill(worker, signal.SIGKILL)  # out of memory, say: the engine process itself lives on
        status = _wait_all(client, [request_id])[request_id]
        assert status["status"] == "COMPLETED"
        assert deployment.credits() == 999


def test_a_job_that_kills_every_engine_it_runs_on_fails_after_three_runs(deployment: Deployment) -> None:
    api = deployment.api()
    with _client(api) as client:
        request_id = _submit(client).json()["request_id"]
        for _run in range(3):  # a poison job: each engine that takes it dies on it
            engine = deployment.engine(workers=1, env={"FASHIONAI_ENGINE_HOLD": "60"})
            deadline = time.monotonic() + 20
            while deployment.held_by(engine) == 0:
                assert time.monotonic() < deadline, "the engine did not take the job"
                time.sleep(0.02)
            engine.kill()
        deployment.engine(workers=1)
        status = _wait_all(client, [request_id])[request_id]
        assert (status["status"], status["error_code"], status["retryable"]) == ("FAILED", "engine_crashed", True)
        assert deployment.credits() == 1000  # refunded


def test_sigterm_lets_an_engine_finish_the_job_in_hand(deployment: Deployment) -> None:
    api = deployment.api()
    engine = deployment.engine(workers=1, env={"FASHIONAI_ENGINE_HOLD": "1.0"})
    with _client(api) as client:
        request_id = _submit(client).json()["request_id"]
        deadline = time.monotonic() + 20
        while client.get(f"/v2/requests/{request_id}/status").json()["status"] != "PROCESSING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(engine.process.pid, signal.SIGTERM)  # what `docker stop` sends: to the engine process only
        assert engine.process.wait(timeout=30) == 0
        assert client.get(f"/v2/requests/{request_id}/status").json()["status"] == "COMPLETED"


def test_the_free_preview_works_on_a_durable_api_process(deployment: Deployment, astronaut_b64: str) -> None:
    api = deployment.api(engine="recolor")  # no engine process needed: the API process starts one worker for it
    with _client(api) as client:
        answer = client.post("/v2/fashion-ai/preview", json={"image": astronaut_b64, "clothing": "topwear"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["mask"].startswith("data:image/png;base64,")
