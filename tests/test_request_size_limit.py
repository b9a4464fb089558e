"""An oversized body is refused with 413 before Django reads (and spools) it."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from editor.models import Photo

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def test_body_over_the_upload_limit_is_refused_unread(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    client.force_login(user)
    claimed = settings.UPLOAD_MAX_BYTES + 5 * 1024 * 1024
    # Claim a huge body but send a small one: if the middleware read the body, parsing would fail differently.
    response = client.generic(
        "POST", reverse("editor:edit_new"), data=b"x" * 10, content_type="multipart/form-data; boundary=zz",
        CONTENT_LENGTH=str(claimed),
    )
    assert response.status_code == 413
    assert "too big" in response.content.decode()
    assert not Photo.objects.filter(owner=user).exists()


def test_body_within_the_limit_reaches_the_view(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(make_user())
    response = client.post(reverse("editor:edit_new"), {"prompt": "a red shirt", "clothing": "topwear"})
    assert response.status_code != 413
