"""A person's data: a user with everything a user can have (photos, results, thumbnails, a running edit, a
purchase, share links, a raw direct upload, sessions), and ways to look for what is left of them."""
from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"  # Make
    exif[0x0131] = "SecretSoftware"  # Software
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _private_media_root(settings: Any, tmp_path: Any) -> None:
    # Local files (the SQLite/local run): user ids restart with each test database, so each test gets its own
    # media folder, or a previous test's user 1 would look like this one's.
    if not settings.USE_S3:
        settings.MEDIA_ROOT = str(tmp_path / "media")


@dataclass
class UserData:
    user: Any
    marker: str  # a string in every prompt: if it is anywhere in the database after deletion, data was left
    jobs: list[Any] = field(default_factory=list)
    running: Any = None
    purchase: Any = None
    share: Any = None


@pytest.fixture
def user_with_data(make_user: Callable[..., Any], make_photo: Callable[..., Any], settings: Any) -> Callable[..., Any]:
    from django.db import transaction
    from django.utils import timezone

    from editor import storage
    from editor.dashboard.models import SignupRecord
    from editor.models import DirectUpload, EditJob, Purchase, ShareLink
    from editor.services.credits import credits_charge_for_job, credits_grant, credits_grant_purchase

    settings.STARTER_CREDITS = 0

    def make(photos: int = 3) -> UserData:
        marker = f"marker{os.urandom(4).hex()}"
        user = make_user(email=f"owner{os.urandom(4).hex()}@example.com")
        credits_grant(user=user, amount=20, reason="test credits")
        data = UserData(user=user, marker=marker)
        SignupRecord.objects.create(user=user, ip="203.0.113.7")
        for index in range(photos):
            photo = make_photo(user)
            photo.thumbnail.save("thumb.jpg", io.BytesIO(jpeg_with_exif()), save=True)
            with transaction.atomic():
                job = EditJob.objects.create(owner=user, photo=photo, prompt=f"a {marker} coat number {index}",
                                             clothing="topwear", cost_credits=1, state="succeeded",
                                             finished_at=timezone.now())
                credits_charge_for_job(job=job)
            result = storage.store_at(storage.job_result_key(user.pk, job.pk, ".jpg"), jpeg_with_exif())
            thumb = storage.store_at(storage.job_thumbnail_key(user.pk, job.pk), jpeg_with_exif())
            EditJob.objects.filter(pk=job.pk).update(result_image=result, result_thumbnail=thumb)
            job.refresh_from_db()
            data.jobs.append(job)
        with transaction.atomic():
            data.running = EditJob.objects.create(
                owner=user, photo=data.jobs[0].photo, prompt=f"a {marker} running edit", clothing="bottomwear",
                cost_credits=1, state="submitted", request_id="req-1",
                next_poll_at=timezone.now() + timedelta(hours=1),  # the sweeper leaves it alone
            )
            credits_charge_for_job(job=data.running)
        with transaction.atomic():
            data.purchase = Purchase.objects.create(
                user=user, pack_name="Starter", credits=5, amount_minor=499, currency="eur",
                checkout_session_id=f"cs_test_{os.urandom(8).hex()}", status="paid", paid_at=timezone.now(),
                payment_intent_id=f"pi_test_{os.urandom(8).hex()}",
            )
            credits_grant_purchase(user_id=user.pk, credits=5, external_id=data.purchase.checkout_session_id,
                                   reason="Bought Starter")
        data.share = ShareLink.objects.create(job=data.jobs[0])
        raw = storage.direct_upload_key(user.pk)
        storage.store_at(raw, jpeg_with_exif())
        DirectUpload.objects.create(key=raw, owner=user, expires_at=timezone.now() + timedelta(minutes=10))
        return data

    return make


def stored_names(user_id: Any) -> set[str]:
    """Every stored object under any of the user's prefixes, listed from the store itself."""
    from editor import storage

    return {name for prefix in storage.user_prefixes(user_id) for name, _ in storage.stored_files(prefix)}


def personal_data_left(data: UserData) -> list[str]:
    """Every row in the database that still names the user: their id in a user column, or their email, username
    or prompt marker in any text column of any table; their id in a session."""
    from django.apps import apps
    from django.contrib.sessions.models import Session
    from django.db import models
    from django.db.models import Q

    user = data.user
    needles = [user.email, user.username, data.marker]
    found: list[str] = []
    for model in apps.get_models():
        query = Q()
        for f in model._meta.concrete_fields:
            if isinstance(f, models.CharField | models.TextField) and not f.choices:
                for needle in needles:
                    query |= Q(**{f"{f.name}__icontains": needle})
            if isinstance(f, models.ForeignKey) and f.related_model is type(user):
                query |= Q(**{f.attname: user.pk})
        if model is type(user):
            query |= Q(pk=user.pk)
        if query and (count := model._default_manager.filter(query).count()):
            found.append(f"{model._meta.label}: {count}")
    for session in Session.objects.all():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            found.append(f"session {session.session_key[:6]}")
    return found
