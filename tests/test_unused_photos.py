"""Photos that no edit uses are deleted, with their files, once the grace period has passed."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from editor.models import EditJob, Photo
from editor.services.photos import photos_delete_unused
from editor.tasks import delete_unused_photos

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def _age(photo: Any, hours: float) -> None:
    Photo.objects.filter(pk=photo.pk).update(created_at=timezone.now() - timedelta(hours=hours))


def test_old_unused_photos_go_with_their_files(
    make_user: Any, make_photo: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user = make_user()
    abandoned, recent, used = make_photo(user), make_photo(user), make_photo(user)
    _age(abandoned, 30)
    _age(used, 30)
    EditJob.objects.create(owner=user, photo=used, prompt="a red shirt", clothing="topwear", cost_credits=1,
                           state=EditJob.State.SUCCEEDED)
    abandoned_file = abandoned.image.name
    assert default_storage.exists(abandoned_file)

    # Files are deleted once the transaction commits (a rollback must not leave rows without files).
    with django_capture_on_commit_callbacks(execute=True):
        deleted = photos_delete_unused(older_than_seconds=24 * 3600)

    assert deleted == 1
    assert set(Photo.objects.values_list("pk", flat=True)) == {recent.pk, used.pk}
    assert not default_storage.exists(abandoned_file)
    assert default_storage.exists(used.image.name) and default_storage.exists(recent.image.name)
    # Running it again finds nothing more; the beat task calls the same service.
    assert delete_unused_photos() == 0
