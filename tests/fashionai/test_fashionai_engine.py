"""The CPU engine on real photos (scikit-image's astronaut and cameraman, OpenCV's samples from Debian's opencv-doc),
the quality gate, and the prompt parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from bench import photos as samples
from devservices.fashionai import REPO_ROOT
from fashionai.engine import EngineFailure, edit, preview
from fashionai.prompt import parse_prompt
from fashionai.regions import _dilate

# Hand-measured boxes on the 512x512 astronaut (y0, y1, x0, x1), independent of the engine's own landmarks.
FACE = (75, 175, 185, 265)
CHEST = (300, 420, 120, 290)  # the orange suit's chest
BACKGROUND = [(0, 90, 0, 90), (0, 60, 300, 512), (260, 330, 400, 512)]  # flag, sky/shuttle, dark backdrop


def _box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    return image[y0:y1, x0:x1].astype(np.int16)


def _diff(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    return float(np.abs(_box(a, box) - _box(b, box)).mean())


@pytest.fixture(scope="module")
def cameraman() -> np.ndarray:
    """Greyscale photo of a man side-on in a long black coat and black gloves, behind a camera."""
    return samples.cameraman()


# Hand-measured boxes on the 512x512 cameraman (y0, y1, x0, x1).
COAT_CHEST = (200, 280, 60, 140)
COAT_OVER_THIGHS = (380, 460, 20, 90)  # the coat's skirt, below the hips
GLOVES = (192, 222, 185, 235)  # the right glove, under his chin
SKY = (0, 60, 0, 512)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 0


def test_topwear_recolour_changes_the_garment_only(astronaut: np.ndarray) -> None:
    result, seconds = edit(astronaut, "a person wearing a blue shirt", "topwear")
    out = result.image
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    # Inside the garment: clearly changed, and now blue rather than orange.
    assert _diff(out, astronaut, CHEST) > 40
    chest = _box(out, CHEST).reshape(-1, 3).mean(axis=0)
    assert chest[2] > chest[0] + 30, chest  # blue channel dominates red
    # Face and background: unchanged (the face box is protected; the background is outside the person mask).
    assert _diff(out, astronaut, FACE) < 0.5
    for box in BACKGROUND:
        assert _diff(out, astronaut, box) < 0.5, box
    assert 0.1 < result.meta["garment_fraction"] < 0.5
    assert "type or shape" in result.meta["limitations"]
    assert seconds > 0  # compute time is measured; its speed is bench/bench_fashionai.py's business


def test_recolour_keeps_shading(astronaut: np.ndarray) -> None:
    """Folds and shadows survive: lightness inside the garment still varies like the original's."""
    out = edit(astronaut, "a grey shirt", "topwear")[0].image
    before = cv2.cvtColor(astronaut, cv2.COLOR_RGB2LAB)[..., 0][300:420, 120:290].astype(float)
    after = cv2.cvtColor(out, cv2.COLOR_RGB2LAB)[..., 0][300:420, 120:290].astype(float)
    assert np.corrcoef(before.ravel(), after.ravel())[0, 1] > 0.7
    assert after.std() > 0.5 * before.std()


def test_edit_is_deterministic(astronaut: np.ndarray) -> None:
    a = edit(astronaut, "navy and white striped shirt", "topwear")[0].image
    b = edit(astronaut, "navy and white striped shirt", "topwear")[0].image
    assert np.array_equal(a, b)


@pytest.mark.parametrize("pattern", ["stripes", "checks", "dots"])
def test_patterns_add_structure(astronaut: np.ndarray, pattern: str) -> None:
    plain = edit(astronaut, "a dark green shirt", "topwear")[0].image
    patterned, _ = edit(astronaut, f"a dark green shirt with white {pattern}", "topwear")
    assert patterned.meta["pattern"] == pattern
    # The pattern's white parts raise the garment's spread well above the plain recolour's (measured on the
    # garment itself: the suit's white straps are not part of it and stay white in both).
    garment = preview(astronaut, "topwear").mask
    assert patterned.image[garment].astype(float).std() > plain[garment].astype(float).std() + 10
    assert _diff(patterned.image, astronaut, FACE) < 0.5


def test_gate_refuses_coat_covered_bottomwear_readably(cameraman: np.ndarray) -> None:
    """The cameraman's long coat hangs over his thighs: "blue jeans" used to paint the coat and the grass blue and
    come back done. Now the gate refuses with a reason a person can act on, and the preview says so in advance."""
    with pytest.raises(EngineFailure) as refused:
        edit(cameraman, "blue jeans", "bottomwear")
    message = str(refused.value)
    assert "mostly hidden by a long coat" in message and "try topwear" in message
    verdict = preview(cameraman, "bottomwear").verdict
    assert not verdict["ok"] and verdict["code"] == "covered_by_long_top" and verdict["message"] == message


def test_long_coat_belongs_to_topwear_and_greyscale_stays_grey(cameraman: np.ndarray) -> None:
    """Topwear on the greyscale cameraman: the whole coat, its skirt over the thighs too, turns red; the gloves, the
    face, the sky and everything beyond a few pixels of feather around the garment stay exactly as they were."""
    result, _ = edit(cameraman, "a red coat", "topwear")
    out = result.image
    assert result.meta["greyscale"] is True
    for box in (COAT_CHEST, COAT_OVER_THIGHS):
        patch = _box(out, box).reshape(-1, 3).mean(axis=0)
        assert patch[0] > patch[2] + 25, (box, patch)  # red now, in a grey photo
    assert _diff(out, cameraman, GLOVES) < 1.0
    assert _diff(out, cameraman, SKY) == 0.0
    mask = preview(cameraman, "topwear").mask
    outside = ~_dilate(mask, 5)
    assert not _changed(out, cameraman)[outside].any()
    grey = out[outside].astype(np.int16)
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()  # still grey everywhere else


def test_bottomwear_on_visible_jeans_changes_only_them() -> None:
    """basketball1 (opencv-doc): jeans visible under a T-shirt. The jeans change; the T-shirt and the wall do not."""
    photo = samples.basketball(1)
    out = edit(photo, "red trousers", "bottomwear")[0].image
    jeans, shirt, wall = (325, 400, 60, 120), (150, 230, 50, 130), (50, 250, 250, 450)
    assert _diff(out, photo, jeans) > 15
    assert _diff(out, photo, shirt) < 1.0
    assert _diff(out, photo, wall) == 0.0


def test_edit_stays_inside_the_person() -> None:
    """Several people: only the prominent one changes; the small second figure and the backdrop stay identical."""
    photo = samples.two_astronauts()
    result, _ = edit(photo, "a green shirt", "topwear")
    assert _diff(result.image, photo, (312, 512, 312, 512)) == 0.0  # the second, smaller person
    assert _diff(result.image, photo, (300, 420, 30, 200)) > 30  # the first one's suit


def test_a_bigger_second_person_is_a_readable_refusal() -> None:
    """basketball1 whole (opencv-doc): the pose model finds the small man with the ball, while a bigger man stands
    at the right. Editing the small one would not be "the most prominent person": refuse, and say why."""
    with pytest.raises(EngineFailure, match="several people in this photo") as refused:
        edit(samples.basketball_both(), "a red t-shirt", "topwear")
    assert "crop the photo to the one person" in str(refused.value)


def test_preview_is_the_mask_the_edit_uses(astronaut: np.ndarray) -> None:
    shown = preview(astronaut, "topwear", "royal blue shirt")
    result, _ = edit(astronaut, "royal blue shirt", "topwear")
    assert shown.verdict["ok"] and shown.meta["mask_digest"] == result.meta["mask_digest"]
    changed = _changed(result.image, astronaut)
    assert changed[shown.mask].mean() > 0.99  # the region changes...
    assert not changed[~_dilate(shown.mask, 5)].any()  # ...and nothing beyond a few pixels of feather


def test_region_not_visible_fails_clearly(astronaut: np.ndarray) -> None:
    with pytest.raises(EngineFailure, match="bottomwear is not visible"):
        edit(astronaut, "black trousers", "bottomwear")


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_photo_without_a_person_fails_clearly(name: str) -> None:
    photo = cv2.resize(getattr(data, name)(), (512, 512))
    with pytest.raises(EngineFailure, match="No person found in the photo"):
        edit(photo, "a red shirt", "topwear")


def test_prompt_with_nothing_applicable_fails(astronaut: np.ndarray) -> None:
    with pytest.raises(EngineFailure, match="names no colour"):
        edit(astronaut, "a fancier outfit please", "topwear")


def test_passthrough_returns_the_crop_untouched(astronaut: np.ndarray) -> None:
    result, _ = edit(astronaut, "anything", "topwear", engine="passthrough")
    assert np.array_equal(result.image, astronaut)


@pytest.mark.parametrize(
    ("prompt", "colours", "pattern", "material"),
    [
        ("a person wearing blue jeans", ["denim"], None, "denim"),
        ("jeans", ["denim"], None, "denim"),
        ("a navy blue blazer", ["navy blue"], None, None),
        ("light blue linen shirt", ["blue"], None, "linen"),
        ("red and white striped t-shirt", ["red", "white"], "stripes", None),
        ("black leather jacket", ["black"], None, "leather"),
        ("leather jacket", ["black"], None, "leather"),
        ("polka dot dress", [], "dots", None),
        ("a green tartan shirt", ["green"], "checks", None),
        ("off-white silk blouse", ["off white"], None, "silk"),
        ("a shirt", [], None, None),
    ],
)
def test_prompt_parser(prompt: str, colours: list[str], pattern: str | None, material: str | None) -> None:
    spec = parse_prompt(prompt)
    assert [c.name for c in spec.colours] == colours
    assert spec.pattern == pattern
    assert spec.material == material


def test_prompt_modifiers() -> None:
    light, plain, dark = (parse_prompt(f"{m} blue shirt").colours[0] for m in ("light", "", "dark"))
    assert light.lightness_delta > plain.lightness_delta > dark.lightness_delta


def test_cli_edit_writes_a_png(tmp_path: Path, astronaut: np.ndarray) -> None:
    source, target = tmp_path / "in.jpg", tmp_path / "out.png"
    cv2.imwrite(str(source), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    run = subprocess.run(
        [sys.executable, "-m", "fashionai", "edit", str(source), "a red silk shirt", "topwear", str(target)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "type or shape" in run.stdout
    assert cv2.imread(str(target)).shape == (512, 512, 3)
    failed = subprocess.run(
        [sys.executable, "-m", "fashionai", "edit", str(source), "black trousers", "bottomwear", str(target)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "not visible" in failed.stderr
