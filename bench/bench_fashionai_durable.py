"""Durable mode side by side with the in-memory service: the same burst of passthrough jobs (run from the repo root,
with a Redis: `scripts/testenv.py` starts one and sets REDIS_URL):

    .venv/bin/python scripts/testenv.py --no-postgres -- .venv/bin/python -m bench.bench_fashionai_durable --jobs 500

(a) memory: one `serve` process with 2 engine workers; (b) redis: two API processes and one engine process with 2
engine workers on one Redis, submits to the first API process, polls from the second. Prints the submit rate and
the time until every job is COMPLETED. Every loop is bounded.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from devservices.fashionai import FashionAIServer, run_fashionai


def _image() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (512, 512), (120, 80, 200)).save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode()


def _burst(submit_to: FashionAIServer, poll_from: FashionAIServer, jobs: int) -> tuple[float, float]:
    body = {"image": _image(), "prompt": "a person wearing a red shirt"}
    headers = {"x-api-key": submit_to.api_key}
    started = time.perf_counter()
    with httpx.Client(base_url=submit_to.root_url, headers=headers, timeout=30) as a, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _i: a.post("/v2/fashion-ai", json=body), range(jobs)))
    submitted = time.perf_counter() - started
    ids = [answer.json()["request_id"] for answer in answers if answer.status_code == 200]
    assert len(ids) == jobs, {answer.status_code for answer in answers}
    pending = set(ids)
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=poll_from.root_url, headers=headers, timeout=30) as b:
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                if b.get(f"/v2/requests/{job_id}/status").json()["status"] == "COMPLETED":
                    pending.discard(job_id)
            time.sleep(0.05)
    assert not pending, f"{len(pending)} jobs did not complete"
    return jobs / submitted, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    key, env = "bench-key", {"FASHIONAI_RATE_LIMIT": "0"}
    with run_fashionai(workers=2, api_keys=key, env=env) as fai:
        rate, total = _burst(fai, fai, args.jobs)
    print(f"(a) memory: {args.jobs} jobs, submits {rate:.0f}/s, all COMPLETED after {total:.1f} s")
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        print("(b) redis: skipped (no REDIS_URL; run through scripts/testenv.py)")
        return
    prefix, folder = f"bench-{uuid.uuid4().hex[:8]}:", tempfile.mkdtemp(prefix="fashionai-bench-")
    with contextlib.ExitStack() as stack:
        api_a, api_b = (
            stack.enter_context(run_fashionai(
                redis_url=redis_url, redis_prefix=prefix, output_dir=folder, api_keys=key, env=env
            ))
            for _ in range(2)
        )
        stack.enter_context(run_fashionai(
            role="engine", workers=2, redis_url=redis_url, redis_prefix=prefix, output_dir=folder
        ))
        rate, total = _burst(api_a, api_b, args.jobs)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"(b) redis: {args.jobs} jobs, submits {rate:.0f}/s, all COMPLETED after {total:.1f} s")


if __name__ == "__main__":
    main()
