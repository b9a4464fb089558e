"""The free region preview on the new-edit page, before anything is paid: the square the person chose, checked and
normalised like an upload (editor/images.py), then our engine's preview (editor/integrations/fashion_ai.py). Nothing
is stored and nothing is charged; a per-user limit keeps the engine's CPU for edits."""
from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

from editor.errors import Refused
from editor.images import check_upload_size, normalise_image
from editor.integrations.fashion_ai import RegionPreview, preview_enabled, preview_region
from editor.models import Clothing

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

__all__ = ["PreviewRateLimited", "RegionPreview", "edit_preview", "preview_enabled"]


class PreviewRateLimited(Refused):
    """Too many previews this minute (the view answers 429)."""


def _allow(user_id: object) -> bool:
    key = f"edit-preview:{user_id}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: count this one as the first
        cache.set(key, 1, timeout=120)
        count = 1
    return count <= settings.FASHION_AI_PREVIEW_PER_MINUTE


def edit_preview(
    *, user: AbstractBaseUser, image: IO[bytes], size: int | None, clothing: str, prompt: str
) -> RegionPreview | None:
    """The region an edit of this square would change and the quality gate's verdict; None when no preview engine
    answers (the page then shows none)."""
    if clothing not in Clothing.values:
        raise Refused("Choose whether the top or the bottom should change.", field="clothing")
    if not preview_enabled():
        return None
    if not _allow(user.pk):
        raise PreviewRateLimited("Too many previews in a minute; the preview pauses for a moment.")
    check_upload_size(size)
    square = normalise_image(image).model_input
    return preview_region(image=square, clothing=clothing, prompt=prompt.strip()[:500])
