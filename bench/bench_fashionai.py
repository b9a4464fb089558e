"""Benchmarks for the self-hosted Fashion AI service (run from the repo root):

    .venv/bin/python -m bench.bench_fashionai            # all three
    .venv/bin/python -m bench.bench_fashionai --only engine

1. engine: median milliseconds per 512x512 edit (recolor engine, astronaut photo, single-threaded OpenCV like a
   pool worker).
2. throughput: sustained jobs/second of the service with --engine passthrough (HTTP + queue + process pool + PNG).
3. latency: submit and status median/p95 milliseconds while the recolor pool is kept busy.
All traffic goes to a service this script starts on 127.0.0.1, and every loop is bounded.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image
from skimage import data

from devservices.fashionai import run_fashionai

PROMPTS = ["a red shirt", "navy and white striped shirt", "light green checked shirt", "black polka dot top"]


def _astronaut_b64() -> str:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=92)
    return base64.b64encode(buf.getvalue()).decode()


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (n={len(values)})"


def bench_engine(runs: int) -> None:
    import cv2

    from fashionai import engine

    cv2.setNumThreads(1)  # as in a pool worker: one process per core
    rgb = np.ascontiguousarray(data.astronaut())
    engine.warm_up()
    engine.edit(rgb, PROMPTS[0], "topwear")
    times = [engine.edit(rgb, PROMPTS[i % len(PROMPTS)], "topwear")[1] for i in range(runs)]
    print(f"engine (recolor, 512x512 astronaut, topwear): {_ms(times)}")


def bench_throughput(jobs: int, workers: int) -> None:
    image = _astronaut_b64()
    with run_fashionai(engine="passthrough", workers=workers) as server:
        client = httpx.Client(base_url=server.root_url, headers={"x-api-key": server.api_key}, timeout=60)

        def submit(_: int) -> None:
            response = client.post("/v2/fashion-ai", json={"image": image, "prompt": "a red shirt"})
            response.raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(submit, range(jobs)))
        submitted = time.perf_counter() - started
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            counts = client.get("/health").json()["jobs"]
            if counts["COMPLETED"] + counts["FAILED"] >= jobs:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        client.close()
    print(
        f"service throughput (passthrough, {workers} workers, {jobs} jobs of a 512x512 JPEG, 8 client threads): "
        f"{jobs / elapsed:.0f} jobs/s sustained (submits alone: {jobs / submitted:.0f}/s)"
    )


def bench_latency(samples: int, workers: int) -> None:
    image = _astronaut_b64()
    with run_fashionai(engine="recolor", workers=workers) as server:
        client = httpx.Client(base_url=server.root_url, headers={"x-api-key": server.api_key}, timeout=60)
        body = {"image": image, "prompt": "a red shirt"}
        backlog = [client.post("/v2/fashion-ai", json=body).json() for _ in range(30)]  # keeps every worker busy
        submit_times: list[float] = []
        status_times: list[float] = []
        for i in range(samples):
            started = time.perf_counter()
            client.post("/v2/fashion-ai", json=body).raise_for_status()
            submit_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.get(backlog[i % len(backlog)]["status_url"])
            status_times.append(time.perf_counter() - started)
        busy = client.get("/health").json()
        client.close()
    print(f"while busy ({workers} recolor workers, {busy['queued']} jobs still queued at the end):")
    print(f"  submit (512x512 JPEG as base64): {_ms(submit_times)}")
    print(f"  status: {_ms(status_times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("engine", "throughput", "latency"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=40, help="engine edits to time")
    parser.add_argument("--jobs", type=int, default=500, help="jobs for the throughput run")
    parser.add_argument("--samples", type=int, default=60, help="submit/status pairs for the latency run")
    args = parser.parse_args()
    if args.only in (None, "engine"):
        bench_engine(args.runs)
    if args.only in (None, "throughput"):
        bench_throughput(args.jobs, args.workers)
    if args.only in (None, "latency"):
        bench_latency(args.samples, args.workers)


if __name__ == "__main__":
    main()
