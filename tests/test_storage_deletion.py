"""One deletion rule for stored files: after commit, failures logged, orphans swept later.

An S3 hiccup is made real: a small HTTP proxy in front of SeaweedFS forwards everything but answers 503 to
deletes while `failing` is set, the way an overloaded S3 endpoint does ("SlowDown")."""
from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.config import Config
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from editor import storage
from editor.models import Photo
from editor.services.files import files_sweep
from tests.web.helpers import image_bytes, make_job, stored_names, upload

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyS3:
    """Forwards requests to the real S3 endpoint; refuses DELETE (and multi-object delete) while failing."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.failing = False
        self.refused = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                deleting = self.command == "DELETE" or (self.command == "POST" and "delete" in self.path)
                if flaky.failing and deleting:
                    flaky.refused += 1
                    payload = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(flaky.upstream.hostname, flaky.upstream.port, timeout=10)
                # The Host header stays the proxy's: it is part of what the client signed.
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky_s3(settings: Any) -> Iterator[FlakyS3]:
    assert django_settings.USE_S3, "run through scripts/testenv.py (make test), which starts SeaweedFS"
    default = settings.STORAGES["default"]
    proxy = FlakyS3(default["OPTIONS"]["endpoint_url"])
    options = {**default["OPTIONS"], "endpoint_url": proxy.url,
               # One attempt: the hiccup reaches our code at once instead of after botocore's retries.
               "client_config": Config(retries={"max_attempts": 1, "mode": "standard"},
                                       s3={"addressing_style": "path"})}
    settings.STORAGES = {**settings.STORAGES, "default": {**default, "OPTIONS": options}}
    yield proxy
    proxy.close()


def test_s3_hiccup_while_cleaning_up_a_refused_edit_still_shows_the_refusal(
    flaky_s3: FlakyS3, make_user: Any, settings: Any
) -> None:
    settings.STARTER_CREDITS = 0
    user = make_user()
    client = Client(raise_request_exception=False)
    client.force_login(user)
    flaky_s3.failing = True

    response = client.post(reverse("editor:edit_new"), {
        "prompt": "a person wearing a red shirt", "clothing": "topwear",
        "image": upload(image_bytes(size=(640, 640))),
    })

    # The person sees why the edit was refused, not a server error about the cleanup.
    assert response.status_code == 400, response.content[:300]
    assert b"Not enough credits" in response.content
    assert flaky_s3.refused >= 1
    assert not Photo.objects.filter(owner=user).exists()
    orphans = stored_names(f"users/{user.pk}")
    assert len(orphans) == 3  # image, thumbnail and the kept original stayed behind

    # Later, with S3 healthy again, the sweep removes what the refused delete left.
    flaky_s3.failing = False
    files_sweep(now=timezone.now() + timedelta(seconds=settings.FILES_ORPHAN_GRACE_SECONDS + 1), user_id=user.pk)
    assert stored_names(f"users/{user.pk}") == []


def test_sweep_keeps_files_rows_still_use_and_young_files(make_user: Any, settings: Any) -> None:
    user = make_user()
    job = make_job(user)  # a photo with its thumbnail, a result and its thumbnail, all referenced
    kept = {job.photo.image.name, job.photo.thumbnail.name, job.result_image.name, job.result_thumbnail.name}
    young_orphan = storage.store_at(f"users/{user.pk}/photos/{uuid.uuid4().hex}.jpg", b"x")
    assert files_sweep(user_id=user.pk).orphans == 0  # just stored: its row may be about to commit
    assert set(stored_names(f"users/{user.pk}")) == kept | {young_orphan}

    later = timezone.now() + timedelta(seconds=settings.FILES_ORPHAN_GRACE_SECONDS + 1)
    assert files_sweep(now=later, user_id=user.pk).orphans == 1
    assert set(stored_names(f"users/{user.pk}")) == kept
