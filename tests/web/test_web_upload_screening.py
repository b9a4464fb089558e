"""UPLOAD_SCREENING: uploads screened by the real NudeNet model before anything is stored, refused with an
`errors.Refused` on the image field.

No explicit image ships with this repository: the refusal is shown by blocking a harmless class the detector really
finds on the astronaut photo (FACE_FEMALE, UPLOAD_SCREENING_BLOCK), the same path a nudity class takes."""
from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image
from skimage import data

from editor import content_screening
from editor.errors import Refused
from editor.models import Photo
from editor.services.photos import photo_create_from_upload
from fashionsite.env import env_words
from tests.web.helpers import stored_names, upload

pytestmark = [pytest.mark.django_db]


def _astronaut_jpeg(size: int = 700) -> bytes:
    out = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((size, size)).save(out, format="JPEG", quality=92)
    return out.getvalue()


def test_the_real_detector_runs_on_a_real_photo() -> None:
    detections = content_screening.detect(Image.fromarray(data.astronaut()))
    assert [d["class"] for d in detections if d["score"] >= 0.5] == ["FACE_FEMALE"], detections


@pytest.mark.smoke
def test_a_safe_photo_is_stored_and_a_blocked_class_is_refused_before_storing(make_user: Any, settings: Any) -> None:
    settings.UPLOAD_SCREENING = True
    user = make_user()
    photo = photo_create_from_upload(user=user, uploaded_file=upload(_astronaut_jpeg()))
    assert Photo.objects.filter(pk=photo.pk).exists()  # the default classes: explicit nudity only

    other = make_user()
    settings.UPLOAD_SCREENING_BLOCK = ("FACE_FEMALE",)
    with pytest.raises(Refused) as refused:
        photo_create_from_upload(user=other, uploaded_file=upload(_astronaut_jpeg()))
    assert refused.value.field == "image"
    assert refused.value.message == content_screening.REFUSED_MESSAGE
    assert not Photo.objects.filter(owner=other).exists()
    assert stored_names(f"users/{other.pk}") == []

    settings.UPLOAD_SCREENING = False  # off (the default): the same photo is stored
    assert photo_create_from_upload(user=other, uploaded_file=upload(_astronaut_jpeg())).pk


def test_the_upload_form_shows_the_refusal(make_user: Any, settings: Any, client: Any) -> None:
    settings.UPLOAD_SCREENING = True
    settings.UPLOAD_SCREENING_BLOCK = ("FACE_FEMALE",)
    user = make_user()
    client.force_login(user)
    response = client.post(
        "/edit/new/",
        {"image": upload(_astronaut_jpeg()), "prompt": "a red shirt", "clothing": "topwear"},
    )
    assert "our content filter does not allow it" in response.content.decode().replace("&#x27;", "'")
    assert not Photo.objects.filter(owner=user).exists()


def test_the_class_list_is_parsed_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    choices = ("FACE_FEMALE", "FEET_EXPOSED")
    monkeypatch.setenv("UPLOAD_SCREENING_BLOCK", "face_female, FEET_EXPOSED,face_female")
    assert env_words("UPLOAD_SCREENING_BLOCK", ("FEET_EXPOSED",), choices) == ("FACE_FEMALE", "FEET_EXPOSED")
    monkeypatch.setenv("UPLOAD_SCREENING_BLOCK", "NAKED")
    with pytest.raises(ImproperlyConfigured, match="NAKED unknown"):
        env_words("UPLOAD_SCREENING_BLOCK", ("FEET_EXPOSED",), choices)
