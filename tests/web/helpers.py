"""Builders for the website tests: real image bytes in every format we accept (and some we refuse), and jobs."""
from __future__ import annotations

import io
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from editor.models import CreditEntry, EditJob, Photo


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (640, 480), mode: str = "RGB",
                color: Any = (200, 40, 40), **save: Any) -> bytes:
    image = Image.new(mode, size, color)
    if mode in ("RGB", "RGBA"):
        # A left/right split so crops and orientation are visible in the pixels.
        image.paste((30, 30, 200) if mode == "RGB" else (30, 30, 200, 255), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def upload(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def make_photo(user: Any, *, side: int = 512) -> Photo:
    photo = Photo(owner=user, original_name="p.jpg")
    photo.image.save("p.jpg", ContentFile(image_bytes(size=(side, side))), save=False)
    photo.thumbnail.save("t.jpg", ContentFile(image_bytes(size=(64, 64))), save=False)
    photo.width = photo.height = side
    photo.save()
    return photo


def make_job(user: Any, *, photo: Photo | None = None, state: str = EditJob.State.SUCCEEDED,
             prompt: str = "a person wearing a red hoodie", clothing: str = "topwear",
             with_result: bool = True, refunded: bool = False, error: str = "") -> EditJob:
    photo = photo or make_photo(user)
    now = timezone.now()
    job = EditJob(owner=user, photo=photo, prompt=prompt, clothing=clothing, state=state, cost_credits=1,
                  error_detail=error, submitted_at=now,
                  finished_at=now if state in EditJob.FINAL_STATES else None)
    if with_result and state == EditJob.State.SUCCEEDED:
        job.result_image.save("r.png", ContentFile(image_bytes("PNG", size=(512, 512), color=(10, 160, 10))),
                              save=False)
        job.result_thumbnail.save("rt.jpg", ContentFile(image_bytes(size=(128, 128))), save=False)
    job.save()
    if refunded:
        CreditEntry.objects.create(user=user, kind="charge", amount=-1, balance_after=0, job=job)
        CreditEntry.objects.create(user=user, kind="refund", amount=1, balance_after=1, job=job)
    return job


def stored_names(prefix: str) -> list[str]:
    """Every stored file under a prefix, through the storage API (local folder or S3 bucket)."""
    from django.core.files.storage import default_storage

    try:
        dirs, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return []
    names = [f"{prefix}/{f}" for f in files]
    for d in dirs:
        names += stored_names(f"{prefix}/{d}")
    return names
