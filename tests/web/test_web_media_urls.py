"""Presigned media URLs are reused while at least half their lifetime is left (browsers then cache thumbnails,
and a gallery page signs nothing it signed a moment ago); they still expire, and a cache outage only costs the
signing."""
from __future__ import annotations

import contextlib
import re
import time
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from editor.storage import media_urls
from tests.web.helpers import make_job, make_photo

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _s3_and_empty_cache() -> Any:
    assert settings.USE_S3, "run through scripts/testenv.py (make test), which starts SeaweedFS"
    cache.clear()
    yield
    with contextlib.suppress(Exception):  # the outage test points the cache at nothing
        cache.clear()


def gallery_thumbnail_urls(client: Client) -> list[str]:
    page = client.get(reverse("editor:gallery")).content.decode()
    return [unescape(url) for url in re.findall(r'<img src="([^"]+)" alt="" width="256"', page)]


def test_gallery_hands_out_the_same_working_url_on_the_next_load(make_user: Any) -> None:
    user = make_user()
    job = make_job(user, photo=make_photo(user))
    client = Client()
    client.force_login(user)

    first = gallery_thumbnail_urls(client)
    time.sleep(1.1)  # a new signature now would carry a different X-Amz-Date
    second = gallery_thumbnail_urls(client)
    assert len(first) == 1 and first == second
    url = first[0]
    assert urlparse(url).path.endswith(job.result_thumbnail.name)
    query = parse_qs(urlparse(url).query)
    assert "X-Amz-Signature" in query and query["X-Amz-Expires"] == [str(settings.MEDIA_URL_EXPIRE_SECONDS)]
    assert requests.get(url, timeout=5).status_code == 200


def test_a_reused_url_is_replaced_before_half_its_lifetime_and_still_expires(make_user: Any, settings: Any) -> None:
    settings.MEDIA_URL_EXPIRE_SECONDS = 2  # kept for 1 s
    user = make_user()
    name = make_job(user, photo=make_photo(user)).result_thumbnail.name

    first = media_urls([name])[name]
    assert media_urls([name])[name] == first
    time.sleep(1.3)
    second = media_urls([name])[name]
    assert second != first  # re-signed: never handed out with less than half its lifetime left
    assert requests.get(second, timeout=5).status_code == 200
    time.sleep(2.5)
    assert requests.get(first, timeout=5).status_code == 403  # and the old one died on time


def test_a_cache_outage_only_costs_the_signing(make_user: Any, settings: Any) -> None:
    from devservices.net import free_port

    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    }}
    user = make_user()
    name = make_job(user, photo=make_photo(user)).result_thumbnail.name
    url = media_urls([name])[name]
    assert "X-Amz-Signature" in url
    assert requests.get(url, timeout=5).status_code == 200
