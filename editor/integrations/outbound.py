"""Requests the site makes to addresses its users give: image URLs of the developer API and users' webhook
receivers. One implementation of the rules with the Fashion AI service (fashionai/fetch.py): the allow-list,
internal addresses refused on every hop (loopback, private, link-local metadata, IPv6 forms reaching IPv4), the
connection pinned to the checked address (no DNS rebinding), capped size and time.
"""
from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from editor.errors import Refused
from fashionai.fetch import GENERIC_ERROR, Answer, FetchError, FetchPolicy, fetch_image, post_checked

__all__ = ["GENERIC_ERROR", "Answer", "FetchError", "ImageUrlRefused", "fetch_image_url", "post_webhook"]

log = logging.getLogger(__name__)


class ImageUrlRefused(Refused):
    """The image URL was not fetched; the message never says why (it would map the internal network)."""


def _image_policy() -> FetchPolicy:
    return FetchPolicy(
        allow_hosts=tuple(settings.API_IMAGE_URL_ALLOW_HOSTS),
        allow_internal=settings.API_FETCH_ALLOW_INTERNAL,
        timeout=settings.API_IMAGE_URL_TIMEOUT_SECONDS,
        max_bytes=settings.UPLOAD_MAX_BYTES,
    )


def _webhook_policy() -> FetchPolicy:
    return FetchPolicy(
        allow_hosts=("*",),  # any public host: the user chose it; internal addresses are still refused
        allow_internal=settings.WEBHOOK_ALLOW_INTERNAL,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
    )


def fetch_image_url(url: str) -> bytes:
    """The image at `url`, fetched under the rules above. Must be called from synchronous code (a thread with no
    running event loop: a WSGI thread, sync_to_async, a Celery task)."""
    try:
        return asyncio.run(fetch_image(url, _image_policy()))
    except FetchError as exc:
        log.info("image URL refused: %s", exc.reason)
        raise ImageUrlRefused(f"The {GENERIC_ERROR}.", field="image_url") from None


def post_webhook(url: str, *, body: bytes, headers: list[tuple[str, str]]) -> Answer:
    """POST one webhook message; FetchError (with `.reason` for the delivery log) when none was delivered."""
    return asyncio.run(post_checked(url, _webhook_policy(), body=body, headers=headers))
