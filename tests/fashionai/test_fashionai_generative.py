"""The `generative` engine knob (`--engine generative` / FASHIONAI_ENGINE=generative): the recolour plus what a
diffusion provider does besides (a redrawn pattern, a slightly moved garment edge, the whole picture shifted a
pixel or two, noise everywhere). Served over HTTP like any engine; then the site's full-resolution compose
(editor/compose.py) must leave no seam at the square's border and move nothing outside the garment."""
from __future__ import annotations

import base64
import io
import time
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from devservices.fashionai import run_fashionai
from devservices.samples import person_scene
from editor import compose, images
from fashionai import engine

PROMPT = "a red shirt"
WIDTH, HEIGHT, LEFT, TOP, SIDE = 2880, 1620, 1500, 260, 1200  # 16:9, the person off centre, all sides inside


@pytest.fixture(scope="module")
def photo() -> Any:
    pixels = person_scene(WIDTH, HEIGHT, left=LEFT, top=TOP, side=SIDE)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    crop = images.CropSquare(left=LEFT / WIDTH, top=TOP / HEIGHT, side=SIDE / HEIGHT)
    return images.normalise_image(io.BytesIO(out.getvalue()), crop=crop)


def edit_over_http(model_input: bytes, engine_name: str) -> np.ndarray[Any, Any]:
    with run_fashionai(engine=engine_name, workers=1) as server:
        headers = {"x-api-key": server.api_key}
        with httpx.Client(base_url=server.root_url, headers=headers, timeout=60) as client:
            body = {"image": base64.b64encode(model_input).decode(), "prompt": PROMPT, "clothing": "topwear"}
            submitted = client.post("/v2/fashion-ai", json=body).json()
            deadline = time.monotonic() + 60
            while client.get(submitted["status_url"]).json()["status"] not in ("COMPLETED", "FAILED"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            result = client.get(submitted["response_url"]).json()
            assert result["status"] == "COMPLETED", result
            assert result["edit"]["engine"] == engine_name  # the service says which engine made it
            return compose.decode_rgb(httpx.get(result["output"], timeout=30).content)


@pytest.fixture(scope="module")
def outputs(photo: Any) -> dict[str, np.ndarray[Any, Any]]:
    return {name: edit_over_http(photo.model_input, name) for name in ("recolor", "generative")}


def test_the_knob_changes_what_a_generative_provider_changes(photo: Any, outputs: dict[str, Any]) -> None:
    model_input = compose.decode_rgb(photo.model_input)
    recolored, generated = outputs["recolor"].astype(int), outputs["generative"].astype(int)
    background = np.all(recolored == model_input, axis=2)  # what the plain recolour leaves alone
    assert background.mean() > 0.4
    assert (np.abs(generated - model_input)[background] > 0).mean() > 0.5  # noise and the shift, everywhere
    dx, dy = compose.global_shift(model_input, outputs["generative"])
    assert abs(dx - engine.GENERATIVE_SHIFT[0]) < 0.3 and abs(dy - engine.GENERATIVE_SHIFT[1]) < 0.3
    # Deterministic: the engine in-process gives the very same pixels.
    again = engine.generative(model_input, PROMPT, "topwear").image
    assert np.array_equal(again, outputs["generative"])


def test_compose_moves_nothing_outside_the_garment_and_leaves_no_seam(photo: Any, outputs: dict[str, Any]) -> None:
    original = compose.decode_rgb(photo.original)
    model_input = compose.decode_rgb(photo.model_input)
    square = compose.Square(*photo.square)
    result, report = compose.compose(original, square, model_input, outputs["generative"])
    _, plain = compose.compose(original, square, model_input, outputs["recolor"])
    # The garment as the engine drew it (the recolour's own change), grown by the moved edge and the feather.
    garment = np.any(outputs["recolor"] != model_input, axis=2).astype(np.uint8)
    reach = engine.GENERATIVE_EDGE_GROWTH + compose.DILATE_PIXELS + 3 * int(compose.FEATHER_SIGMA) + 2
    grown = cv2.dilate(garment, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    allowed = np.zeros(original.shape[:2], bool)
    allowed[square.top:square.top + square.side, square.left:square.left + square.side] = cv2.resize(
        grown, (square.side, square.side), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    moved = np.any(result != original, axis=2)
    print(f"\ngenerative: shift {report.shift[0]:.2f},{report.shift[1]:.2f}; changed {report.changed_fraction:.1%} of "
          f"the square; carried by colour transfer {report.transferred_fraction:.0%} (plain recolour "
          f"{plain.changed_fraction:.1%}, {plain.transferred_fraction:.0%})")
    assert not moved[~allowed].any(), f"{moved[~allowed].sum()} pixels moved outside the garment"
    assert moved[allowed].mean() > 0.3  # and the edit is there
    # The redrawn pattern and edge are not colour-transferable: that part falls back to the provider's pixels.
    assert report.transferred_fraction < plain.transferred_fraction - 0.05
    # No seam: at each side of the square (all inside the photo) the edit meets the untouched photo outside
    # without a step, and comes in gradually (the garment crosses the bottom side: the model saw no further).
    change = result.astype(int) - original.astype(int)
    inward = {  # the square's pixels from its border inwards, as (depth, along the side, channel)
        "left": change[square.top:square.top + square.side, square.left:square.left + 12].transpose(1, 0, 2),
        "right": change[square.top:square.top + square.side, square.left + square.side - 12:
                        square.left + square.side][:, ::-1].transpose(1, 0, 2),
        "top": change[square.top:square.top + 12, square.left:square.left + square.side],
        "bottom": change[square.top + square.side - 12:square.top + square.side,
                         square.left:square.left + square.side][::-1],
    }
    for name, band in inward.items():
        at_border = np.abs(band[0]).max()
        per_pixel = np.abs(np.diff(band, axis=0)).max()
        print(f"{name} side: change on the border line at most {at_border} levels, at most {per_pixel} "
              f"levels from one pixel to the next going inwards")
        assert at_border <= 3, f"{name} side of the square: a step of {at_border} levels at the border"
        assert per_pixel <= 16, f"{name} side of the square: the edit jumps by {per_pixel} levels"
