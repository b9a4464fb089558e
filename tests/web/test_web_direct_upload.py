"""Direct browser-to-S3 uploads against SeaweedFS: presigned POST with a size limit S3 enforces, per-user keys,
normalised on confirm, raw object always deleted."""
from __future__ import annotations

from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse

from editor.models import Photo
from tests.web.helpers import image_bytes, stored_names

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _needs_s3() -> None:
    assert settings.USE_S3, "run through scripts/testenv.py, which starts SeaweedFS"


def _start(client: Client) -> dict[str, Any]:
    response = client.post(reverse("editor:upload_start"))
    assert response.status_code == 200
    return response.json()


def _post_to_s3(grant: dict[str, Any], data: bytes) -> requests.Response:
    return requests.post(grant["url"], data=grant["fields"], files={"file": ("photo.jpg", data)}, timeout=10)


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
