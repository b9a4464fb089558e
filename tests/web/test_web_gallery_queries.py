"""The gallery costs the same few SQL queries per page whatever the page size (1,000 edits)."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from editor.models import EditJob
from tests.web.helpers import make_job, make_photo

pytestmark = [pytest.mark.django_db]


def test_gallery_query_count_does_not_grow_with_page_size(make_user: Any) -> None:
    user = make_user()
    photo = make_photo(user)
    template = make_job(user, photo=photo)  # one real result file, shared by every row
    EditJob.objects.bulk_create([
        EditJob(owner=user, photo=photo, prompt=f"a person wearing outfit {i}",
                clothing=("topwear", "bottomwear")[i % 2],
                state=("succeeded", "failed", "submitted")[i % 3], cost_credits=1,
                result_image=template.result_image.name if i % 3 == 0 else "",
                result_thumbnail=template.result_thumbnail.name if i % 3 == 0 else "")
        for i in range(999)
    ])
    assert EditJob.objects.filter(owner=user).count() == 1000
    client = Client()
    client.force_login(user)

    counts = {}
    for size in (12, 96):
        for query in ("", "&status=done&clothing=topwear&q=outfit"):
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(reverse("editor:gallery") + f"?per_page={size}{query}")
            assert response.status_code == 200
            tiles = len(re.findall(r'data-testid="gallery-item"', response.content.decode()))
            assert tiles == size
            counts[(size, query)] = len(ctx.captured_queries)
    # Same number for 12 and 96 rows: no per-row queries (no N+1 on photos, thumbnails or storage).
    assert counts[(12, "")] == counts[(96, "")]
    filtered = "&status=done&clothing=topwear&q=outfit"
    assert counts[(12, filtered)] == counts[(96, filtered)]
    # Session + user, COUNT, one SELECT with the photo joined, the header's balance: a small constant.
    assert counts[(96, "")] <= 6, counts
    print("gallery queries per page (12 rows, 96 rows):", counts)
