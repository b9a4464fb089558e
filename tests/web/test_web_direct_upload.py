"""Direct browser-to-S3 uploads against SeaweedFS: presigned POST with a size limit and image Content-Type S3
enforces, per-user keys accepted once, grants limited per user, normalised on confirm, raw object always deleted,
unfinished ones swept once their policy expired."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from editor.models import Photo
from editor.services.files import files_sweep_incoming
from tests.web.helpers import image_bytes, stored_names

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _needs_s3() -> None:
    assert settings.USE_S3, "run through scripts/testenv.py, which starts SeaweedFS"


def _start(client: Client) -> dict[str, Any]:
    response = client.post(reverse("editor:upload_start"))
    assert response.status_code == 200
    return response.json()


def _post_to_s3(grant: dict[str, Any], data: bytes, content_type: str = "image/jpeg") -> requests.Response:
    fields = {**grant["fields"], "Content-Type": content_type}
    return requests.post(grant["url"], data=fields, files={"file": ("photo.jpg", data)}, timeout=10)


def test_direct_upload_round_trip_and_refusals(make_user: Any, settings: Any) -> None:
    user, stranger = make_user(), make_user()
    client, other = Client(), Client()
    client.force_login(user)
    other.force_login(stranger)

    grant = _start(client)
    assert grant["key"].startswith(f"incoming/{user.pk}/")
    assert _post_to_s3(grant, image_bytes("PNG", (700, 500))).status_code == 201
    # Another user cannot claim it.
    assert other.post(reverse("editor:upload_finish"), {"key": grant["key"]}).status_code == 400
    response = client.post(reverse("editor:upload_finish"), {"key": grant["key"], "name": "big.png",
                                                            "crop_left": "0", "crop_top": "0", "crop_side": "1"})
    assert response.status_code == 200, response.content
    photo = Photo.objects.get(pk=response.json()["photo"], owner=user)
    assert (photo.width, photo.original_name) == (512, "big.png")
    assert stored_names(f"incoming/{user.pk}") == []  # the raw upload is gone

    # Not an image: refused with the same words as a normal upload, nothing kept.
    grant = _start(client)
    assert _post_to_s3(grant, b"not a picture" * 100).status_code == 201
    response = client.post(reverse("editor:upload_finish"), {"key": grant["key"]})
    assert response.status_code == 400 and "not a picture" in response.json()["error"]
    assert stored_names(f"incoming/{user.pk}") == [] and Photo.objects.count() == 1

    # Too big: S3 itself refuses the POST (content-length-range in the signed policy).
    settings.UPLOAD_MAX_BYTES = 50_000
    grant = _start(client)
    assert _post_to_s3(grant, b"\xff" * 60_000).status_code == 400
    response = client.post(reverse("editor:upload_finish"), {"key": grant["key"]})
    assert response.status_code == 400 and "not found" in response.json()["error"]

    # A tampered key outside the user's prefix is refused before S3 is asked.
    response = client.post(reverse("editor:upload_finish"), {"key": f"users/{stranger.pk}/photos/x.jpg"})
    assert response.status_code == 400


def _finish(client: Client, key: str) -> Any:
    return client.post(reverse("editor:upload_finish"), {"key": key, "name": "p.png"})


def test_the_policy_accepts_image_content_types_only(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user())
    grant = _start(client)
    # A page someone could later be sent to: S3 refuses to store it under our policy.
    assert _post_to_s3(grant, b"<html><script>alert(1)</script></html>", content_type="text/html").status_code == 403
    assert _post_to_s3(grant, image_bytes("PNG", (700, 500)), content_type="image/png").status_code == 201


def test_each_granted_key_is_accepted_once_and_a_reused_policy_leaves_nothing(make_user: Any) -> None:
    user = make_user()
    client = Client()
    client.force_login(user)
    grant = _start(client)
    assert _post_to_s3(grant, image_bytes("PNG", (700, 500))).status_code == 201
    assert _finish(client, grant["key"]).status_code == 200
    # The signed policy is still valid: the same key can be posted again, but is never accepted a second time.
    assert _post_to_s3(grant, image_bytes("PNG", (640, 480))).status_code == 201
    response = _finish(client, grant["key"])
    assert response.status_code == 400 and "not found" in response.json()["error"]
    assert Photo.objects.filter(owner=user).count() == 1
    # What the reuse left behind (with whatever metadata it carries) goes once the policy has expired.
    assert stored_names(f"incoming/{user.pk}") == [grant["key"]]
    later = timezone.now() + timedelta(seconds=settings.DIRECT_UPLOAD_EXPIRE_SECONDS + 61)
    assert files_sweep_incoming(now=later, prefix=f"incoming/{user.pk}") == 1
    assert stored_names(f"incoming/{user.pk}") == []


def test_unfinished_uploads_are_swept_only_after_their_policy_expired(make_user: Any) -> None:
    user = make_user()
    client = Client()
    client.force_login(user)
    grant = _start(client)
    assert _post_to_s3(grant, image_bytes("JPEG", (700, 500))).status_code == 201
    # The tab was closed: never finished. Still being uploaded/finished in time? Kept.
    assert files_sweep_incoming(prefix=f"incoming/{user.pk}") == 0
    assert stored_names(f"incoming/{user.pk}") == [grant["key"]]
    later = timezone.now() + timedelta(seconds=settings.DIRECT_UPLOAD_EXPIRE_SECONDS + 61)
    assert files_sweep_incoming(now=later, prefix=f"incoming/{user.pk}") == 1
    assert stored_names(f"incoming/{user.pk}") == []


def test_grants_are_rate_limited_per_user(make_user: Any, settings: Any) -> None:
    settings.DIRECT_UPLOAD_GRANTS_PER_HOUR = 3
    client, other = Client(), Client()
    client.force_login(make_user())
    other.force_login(make_user())
    for _ in range(3):
        _start(client)
    response = client.post(reverse("editor:upload_start"))
    assert response.status_code == 429 and "at most 3" in response.json()["error"]
    assert other.post(reverse("editor:upload_start")).status_code == 200  # per user, not global


def test_the_expiry_runs_on_the_beat_schedule() -> None:
    from fashionsite.celery import app

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"editor.tasks.expire_direct_uploads", "editor.tasks.sweep_orphan_files"} <= tasks
    app.loader.import_default_modules()
    assert {"editor.tasks.expire_direct_uploads", "editor.tasks.sweep_orphan_files"} <= set(app.tasks)
