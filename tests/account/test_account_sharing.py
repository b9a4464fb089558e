"""Share a result: a public before/after page anyone with the link can open, naming nobody, not indexed, images
without metadata; revocable, optionally expiring, counted; off for the whole site with one switch."""
from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image

pytestmark = pytest.mark.django_db


def make_link(client: Any, data: Any, expiry: str = "") -> Any:
    from editor.models import ShareLink

    client.force_login(data.user)
    job = data.jobs[1]
    response = client.post(f"/edits/{job.pk}/share/", {"expires_in_days": expiry})
    assert response.status_code == 302
    return ShareLink.objects.filter(job=job).latest("created_at")


def test_a_shared_edit_is_public_names_nobody_and_is_not_indexed(client: Any, user_with_data: Any) -> None:
    from django.test import Client

    data = user_with_data(photos=2)
    link = make_link(client, data, expiry="7")
    assert link.expires_at is not None
    page = client.get(f"/edits/{data.jobs[1].pk}/").content.decode()
    assert f"/s/{link.token}/" in page and 'data-testid="share-revoke"' in page

    visitor = Client()
    response = visitor.get(f"/s/{link.token}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "noindex" in response["X-Robots-Tag"] and '<meta name="robots" content="noindex' in body
    assert data.jobs[1].prompt in body
    for secret in (data.user.email, data.user.username, f"users/{data.user.pk}/", "X-Amz-Signature"):
        assert secret not in body
    for which in ("before", "after"):
        image = visitor.get(f"/s/{link.token}/{which}.jpg")
        assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
        assert "noindex" in image["X-Robots-Tag"]
        assert b"SecretCameraMaker" not in image.content and b"Exif" not in image.content
        with Image.open(io.BytesIO(image.content)) as decoded:
            assert not decoded.getexif() and "exif" not in decoded.info
    assert visitor.get(f"/s/{link.token}/other.jpg").status_code == 404
    visitor.get(f"/s/{link.token}/")
    link.refresh_from_db()
    assert link.view_count == 2


def test_a_link_is_404_after_revoke_or_expiry(client: Any, user_with_data: Any) -> None:
    from django.test import Client
    from django.utils import timezone

    from editor.models import ShareLink

    data = user_with_data(photos=2)
    revoked, expiring = make_link(client, data), make_link(client, data, expiry="1")
    visitor = Client()
    assert visitor.get(f"/s/{revoked.token}/").status_code == 200
    assert client.post(f"/edits/{data.jobs[1].pk}/share/{revoked.pk}/revoke/").status_code == 302
    for path in ("", "before.jpg", "after.jpg"):
        assert visitor.get(f"/s/{revoked.token}/{path}").status_code == 404
    assert visitor.get(f"/s/{expiring.token}/").status_code == 200
    ShareLink.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for path in ("", "before.jpg", "after.jpg"):
        assert visitor.get(f"/s/{expiring.token}/{path}").status_code == 404
    assert visitor.get("/s/not-a-token/").status_code == 404


def test_only_the_owner_shares_or_revokes(client: Any, user_with_data: Any, make_user: Any) -> None:
    from editor.models import ShareLink

    data = user_with_data(photos=2)
    link = make_link(client, data)
    other = make_user()
    client.force_login(other)
    assert client.post(f"/edits/{data.jobs[1].pk}/share/", {"expires_in_days": ""}).status_code == 404
    assert client.post(f"/edits/{data.jobs[1].pk}/share/{link.pk}/revoke/").status_code == 404
    assert ShareLink.objects.filter(job=data.jobs[1]).count() == 1
    assert ShareLink.objects.get(pk=link.pk).revoked_at is None
    # A running edit cannot be shared.
    client.force_login(data.user)
    client.post(f"/edits/{data.running.pk}/share/", {"expires_in_days": ""})
    assert not ShareLink.objects.filter(job=data.running).exists()


def test_staff_turn_sharing_off_for_the_whole_site(client: Any, user_with_data: Any) -> None:
    from django.test import Client

    from editor.models import ShareLink, SiteSwitches

    data = user_with_data(photos=2)
    link = make_link(client, data)
    SiteSwitches.objects.update_or_create(pk=1, defaults={"sharing_enabled": False})
    assert Client().get(f"/s/{link.token}/").status_code == 404
    assert Client().get(f"/s/{link.token}/after.jpg").status_code == 404
    client.post(f"/edits/{data.jobs[1].pk}/share/", {"expires_in_days": ""})
    assert ShareLink.objects.filter(job=data.jobs[1]).count() == 1
    assert 'data-testid="sharing-off"' in client.get(f"/edits/{data.jobs[1].pk}/").content.decode()
    SiteSwitches.objects.filter(pk=1).update(sharing_enabled=True)
    assert Client().get(f"/s/{link.token}/").status_code == 200
