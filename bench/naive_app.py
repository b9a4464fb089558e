"""The naive design, for comparison only (bench/bench_jobs.py): one Celery task per edit that calls the SDK's
blocking `submit_async(...).wait()`, then downloads and stores the result. A worker process is held for the whole
provider time, so N processes run N jobs at once. Never use this in the product.

Reads CELERY_BROKER_URL, FASHION_AI_BASE_URL, FASHION_AI_API_KEY and the AWS_* variables; results (timings and
status-call counts) go to a Redis list for the bench to read.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import boto3
import redis
import requests
from botocore.config import Config
from celery import Celery
from segmind import SegmindClient

RESULTS_KEY = "bench:naive:results"
QUEUE = "naive-bench"

app = Celery("naive_bench", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task(name="naive.edit")
def naive_edit(image_url: str, prompt: str) -> None:
    client = SegmindClient(api_key=os.environ["FASHION_AI_API_KEY"], base_url=os.environ["FASHION_AI_BASE_URL"])
    calls = {"status": 0}

    def count(request: object) -> None:
        if str(getattr(request, "url", "")).endswith("/status"):
            calls["status"] += 1

    client._client.event_hooks["request"].append(count)
    started = time.time()
    job = client.submit_async("fashion-ai", image=image_url, prompt=prompt, clothing="topwear")
    submitted = time.time()
    result = job.wait()  # the blocking loop: one status call per second, the worker process held throughout
    data = requests.get(result["output"], timeout=30).content
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_S3_REGION_NAME") or None,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    s3.put_object(Bucket=os.environ["AWS_STORAGE_BUCKET_NAME"], Key=f"naive/{uuid.uuid4().hex}.png", Body=data)
    stored = time.time()
    total = float((result.get("metrics") or {}).get("total_time") or 0.0)
    record = {"started": started, "submitted": submitted, "provider_done": submitted + total, "stored": stored,
              "status_calls": calls["status"]}
    redis.Redis.from_url(app.conf.broker_url).rpush(RESULTS_KEY, json.dumps(record))
