"""The Fashion AI service's memory under a burst of submits (issue 13 item 8): prints its RSS after N submits.

    .venv/bin/python -m bench.bench_fashionai_memory                 # 1500 submits, defaults
    .venv/bin/python -m bench.bench_fashionai_memory --submits 3000 --concurrency 16

One real service (recolor engine, one worker, so the queue grows while the engine works), one API key, a 512x512
JPEG photo as base64 per submit. Prints the answers by status code, the service's RSS before and after, and what
its /health says is queued. The attack in the issue reached 1.13 GB after 1,500 submits (decoded pixels queued).
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image
from skimage import data

from devservices.fashionai import run_fashionai


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--engine", default="recolor", choices=("recolor", "passthrough"))
    args = parser.parse_args()

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=92)
    image = base64.b64encode(buf.getvalue()).decode()
    print(f"input: 512x512 JPEG, {len(buf.getvalue()) / 1024:.0f} KiB ({len(image) / 1024:.0f} KiB as base64)")

    with run_fashionai(engine=args.engine, workers=1) as server:
        before = _rss_mib(server.process.pid)
        codes: collections.Counter[int] = collections.Counter()
        with httpx.Client(base_url=server.root_url, headers={"x-api-key": server.api_key}, timeout=60) as client:

            def submit(_: int) -> int:
                return client.post("/v2/fashion-ai", json={"image": image, "prompt": "a red shirt"}).status_code

            started = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as pool:
                codes.update(pool.map(submit, range(args.submits)))
            elapsed = time.monotonic() - started
            health = client.get("/health").json()
        after = _rss_mib(server.process.pid)
    answered = ", ".join(f"{code}: {count}" for code, count in sorted(codes.items()))
    print(f"{args.submits} submits in {elapsed:.1f} s ({answered})")
    print(f"queued after the burst: {health['queued']} jobs, {health.get('queued_bytes', 0) / 2**20:.1f} MiB")
    print(f"service RSS: {before:.0f} MiB before, {after:.0f} MiB after {args.submits} submits")


if __name__ == "__main__":
    main()
