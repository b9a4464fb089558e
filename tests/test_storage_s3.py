"""Media go to a private S3 bucket (SeaweedFS over real HTTP) and the app hands out expiring URLs."""
from __future__ import annotations

import os
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


@pytest.fixture(autouse=True)
def _needs_s3() -> None:
    # `make test` always provides SeaweedFS; running this file without it is a setup error, not a skip.
    assert settings.USE_S3, "run through scripts/testenv.py (make test), which starts SeaweedFS"


def test_default_storage_is_private_s3_with_presigned_expiring_urls() -> None:
    from storages.backends.s3 import S3Storage

    assert isinstance(default_storage._wrapped if hasattr(default_storage, "_wrapped") else default_storage,
                      S3Storage)
    key = default_storage.save(f"tests/{uuid.uuid4().hex}.txt", ContentFile(b"private bytes"))
    try:
        endpoint = os.environ["AWS_S3_ENDPOINT_URL"]
        bucket = settings.AWS_STORAGE_BUCKET_NAME
        # The object is really in the S3 server...
        assert default_storage.exists(key)
        # ...an unsigned GET is refused (private bucket)...
        assert requests.get(f"{endpoint}/{bucket}/{key}", timeout=5).status_code == 403
        # ...the URL the app hands out is presigned, works, and says when it dies.
        url = default_storage.url(key)
        query = parse_qs(urlparse(url).query)
        assert "X-Amz-Signature" in query
        assert query["X-Amz-Expires"] == [str(settings.MEDIA_URL_EXPIRE_SECONDS)]
        assert requests.get(url, timeout=5).content == b"private bytes"
        # A tampered signature is refused.
        assert requests.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=5).status_code == 403
        # A URL whose lifetime has passed is refused.
        short = default_storage.url(key, expire=1)
        time.sleep(2.5)
        assert requests.get(short, timeout=5).status_code == 403
    finally:
        default_storage.delete(key)
    assert not default_storage.exists(key)


def test_threads_share_one_boto3_session_each_with_its_own_connection() -> None:
    """A thread-pool worker's threads must not each build a boto3 session (each parses S3's service model again,
    ~65 ms of CPU under the GIL: 64 threads held a burst of 500 submits up for seconds)."""
    import threading

    from editor import storage

    backend = default_storage._wrapped if hasattr(default_storage, "_wrapped") else default_storage
    key = default_storage.save(f"tests/{uuid.uuid4().hex}.txt", ContentFile(b"x"))
    sessions: list[object] = []
    connections: list[object] = []

    def touch() -> None:
        assert storage.exists(key)
        connections.append(backend.connection)
        sessions.append(backend._create_session())

    try:
        threads = [threading.Thread(target=touch) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        default_storage.delete(key)
    assert len(connections) == 6 and len({id(c) for c in connections}) == 6  # boto3 resources are per thread
    assert len({id(s) for s in sessions}) == 1  # one session, so the model is parsed once per process
