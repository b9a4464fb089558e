"""Private services for each pytest-xdist worker process (`make test` runs the suite with `-n`).

Loaded with `-p tests.support.parallel` (pyproject's addopts), so it runs before pytest-django loads the settings:
in a worker named gwN it points REDIS_URL and CELERY_BROKER_URL at Redis database N+1 (its own broker: queues,
scheduled polls and `purge` are the worker's alone) and AWS_STORAGE_BUCKET_NAME at `<bucket>-gwN` (created here).
pytest-django already gives each worker its own test database (`test_<name>_gwN`). Celery worker subprocesses
started by a test inherit the environment, so they talk to the same private parts. Without xdist it does nothing.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def redis_database_url(url: str, database: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _isolate(worker: str) -> None:
    database = int(worker.removeprefix("gw")) + 1  # database 0 stays the serial run's
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        url = os.environ.get(name, "")
        if url.startswith(("redis://", "rediss://")):
            os.environ[name] = redis_database_url(url, database)
    bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME")
    if bucket:
        os.environ["AWS_STORAGE_BUCKET_NAME"] = f"{bucket}-{worker}"


if WORKER:
    _isolate(WORKER)


def pytest_configure(config: pytest.Config) -> None:
    if not (WORKER and os.environ.get("AWS_STORAGE_BUCKET_NAME") and os.environ.get("AWS_S3_ENDPOINT_URL")):
        return
    import boto3

    client = boto3.client(
        "s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], region_name=os.environ.get("AWS_S3_REGION_NAME"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
    )
    bucket = os.environ["AWS_STORAGE_BUCKET_NAME"]
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
