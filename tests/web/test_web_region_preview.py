"""The free region preview before paying: the new-edit page's view through editor/integrations/ to our engine's
preview (its extension of the protocol), against the real recolour engine over HTTP; the browser draws it and warns
when the edit would be refused. (The refused edit itself, FAILED and refunded: tests/jobs/test_jobs_gate.py.)"""
from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from bench import photos
from devservices.fashionai import FashionAIServer, run_fashionai
from tests.web.test_web_browser import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _upload(data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("square.png", data, content_type="image/png")


@pytest.fixture(scope="module")
def recolor() -> Iterator[FashionAIServer]:
    with run_fashionai(engine="recolor") as server:
        yield server


@pytest.fixture
def preview_at(settings: Any, recolor: FashionAIServer) -> FashionAIServer:
    settings.FASHION_AI_PREVIEW_URL = f"{recolor.root_url}/v2/fashion-ai/preview"
    settings.FASHION_AI_PREVIEW_API_KEY = recolor.api_key
    settings.FASHION_AI_PREVIEW_IS_ESTIMATE = False
    return recolor


def _mask(answer: dict[str, Any]) -> np.ndarray:
    payload = answer["mask"].split(",", 1)[1]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("L")) > 127


def test_preview_view_answers_the_region_and_warns_before_a_refusal(
    preview_at: FashionAIServer, make_user: Any, settings: Any
) -> None:
    user = make_user()
    client = Client()
    client.force_login(user)
    balance = user.credit_account.balance
    ok = client.post("/edit/preview/", {"image": _upload(_png(photos.astronaut())), "clothing": "topwear",
                                        "prompt": "royal blue shirt"}).json()
    assert ok["available"] and ok["ok"] and not ok["estimate"]
    assert 0.1 < _mask(ok).mean() < 0.5
    coat = client.post("/edit/preview/", {"image": _upload(_png(photos.cameraman())), "clothing": "bottomwear"})
    assert coat.status_code == 200
    refusal = coat.json()
    assert refusal["available"] and not refusal["ok"] and refusal["code"] == "covered_by_long_top"
    assert "mostly hidden by a long coat" in refusal["message"]
    user.credit_account.refresh_from_db()
    assert user.credit_account.balance == balance  # free
    assert client.post("/edit/preview/", {"clothing": "topwear"}).status_code == 400
    # Segmind's cloud as the provider and no self-hosted engine named: no preview at all.
    settings.FASHION_AI_PREVIEW_URL = ""
    none = client.post("/edit/preview/", {"image": _upload(_png(photos.astronaut())), "clothing": "topwear"})
    assert none.json() == {"available": False}
    page = client.get("/edit/new/").content.decode()
    assert "data-preview-url" not in page and 'id="region-preview"' not in page
    # Not logged in: no preview (the engine's CPU is for customers).
    assert Client().post("/edit/preview/", {"clothing": "topwear"}).status_code == 302


def test_preview_with_segmind_as_provider_is_an_estimate(
    preview_at: FashionAIServer, make_user: Any, settings: Any
) -> None:
    settings.FASHION_AI_PREVIEW_IS_ESTIMATE = True
    client = Client()
    client.force_login(make_user())
    answer = client.post("/edit/preview/", {"image": _upload(_png(photos.astronaut())), "clothing": "topwear"})
    assert answer.json()["estimate"] is True
    assert 'data-preview-estimate="1"' in client.get("/edit/new/").content.decode()


def test_preview_is_rate_limited_per_user(preview_at: FashionAIServer, make_user: Any, settings: Any) -> None:
    settings.FASHION_AI_PREVIEW_PER_MINUTE = 1
    client = Client()
    client.force_login(make_user())
    square = _png(photos.astronaut())
    first = client.post("/edit/preview/", {"image": _upload(square), "clothing": "topwear"})
    second = client.post("/edit/preview/", {"image": _upload(square), "clothing": "topwear"})
    assert first.status_code == 200
    assert second.status_code == 429 and "Too many previews" in second.json()["error"]


@pytest.mark.browser
def test_new_edit_page_draws_the_region_and_warns(
    page: Any, live_server: Any, preview_at: FashionAIServer, make_user: Any
) -> None:
    base = live_server.url
    user = make_user()
    log_in(page, base, user)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/edit/new/")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "camera.png", "mimeType": "image/png", "buffer": _png(photos.cameraman())}])
    page.locator("#crop:not([hidden])").wait_for()
    page.get_by_label(re.compile("Top")).check()
    page.locator("#region-preview:not([hidden])").wait_for(timeout=20_000)
    assert "the part the edit will change" in page.get_by_test_id("region-note").inner_text()
    assert page.get_by_test_id("region-warning").is_hidden()
    # The region is drawn: part of the overlay is tinted, part transparent.
    alpha = page.evaluate("""() => { const c = document.getElementById('region-preview');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let on = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) on++; return on / (d.length / 4); }""")
    assert 0.05 < alpha < 0.6
    page.get_by_label(re.compile("Bottom")).check()
    warning = page.get_by_test_id("region-warning")
    warning.wait_for(state="visible", timeout=20_000)
    assert "would probably be refused" in warning.inner_text() and "long coat" in warning.inner_text()
    assert not errors, errors
