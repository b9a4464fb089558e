"""The CPU clothing engine: find the garment, check the region is trustworthy, recolour/pattern it, keep the shading.

Pipeline (one 512x512 RGB image):
1. fashionai/regions.py: mediapipe's legacy Pose (landmarks + person mask, models shipped inside
   mediapipe==0.10.21), the garment region (geometry, long tops, hands, colour models, GrabCut edges) and the
   quality gate's verdict. A refusal is an EngineFailure with the gate's message: a FAILED job, refunded.
2. Lab recolour that keeps the original lightness variations (folds, shading), optional stripes/checks/dots,
   material looks, and a feathered alpha blend (about 3 px beyond the mask). Pixels the blend does not reach stay
   bit-identical, so a greyscale photo stays grey outside the garment.

`preview()` runs step 1 only (our free preview, not part of Segmind's protocol): the same mask the edit would use.
It cannot change a garment's type or shape (a t-shirt stays a t-shirt); the result metadata says so.
Everything is deterministic: same image + prompt -> same pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from fashionai import regions
from fashionai.prompt import Colour, EditSpec, parse_prompt
from fashionai.regions import CLOTHING, L_SHOULDER, R_SHOULDER, SIZE, EngineFailure, Region, _dilate, _pt

LIMITATION = (
    "Recolours and patterns the garment already worn; it cannot change the garment's type or shape "
    "(a t-shirt stays a t-shirt, trousers stay trousers)."
)
NOT_APPLICABLE = (
    "The prompt names no colour, pattern or garment colour this engine can apply "
    "(try e.g. 'a red shirt', 'light blue striped shirt' or 'blue jeans'). "
    "It can only recolour or pattern the existing garment, not change its type or shape."
)

Image = NDArray[np.uint8]  # H x W x 3 RGB
Mask = NDArray[np.bool_]  # H x W
Floats = NDArray[np.floating[Any]]  # landmarks, Lab pixels, weights (float32 or wider after arithmetic)

__all__ = [
    "CLOTHING", "ENGINES", "EditResult", "EngineFailure", "Preview", "edit", "generative", "preview", "recolor",
]


@dataclass
class EditResult:
    image: Image
    meta: dict[str, Any] = field(default_factory=dict)


def warm_up() -> None:
    regions.warm_up()


def passthrough(rgb: Image, prompt: str, clothing: str) -> EditResult:
    return EditResult(image=rgb, meta={"engine": "passthrough", "clothing": clothing, "limitations": LIMITATION})


def _fit(rgb: Image) -> Image:
    if rgb.shape != (SIZE, SIZE, 3):
        return np.asarray(cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA), np.uint8)
    return rgb


def recolor(rgb: Image, prompt: str, clothing: str) -> EditResult:
    if clothing not in CLOTHING:
        raise EngineFailure(f"clothing must be one of {', '.join(CLOTHING)}")
    spec = parse_prompt(prompt)
    if not spec.applicable:
        raise EngineFailure(NOT_APPLICABLE)
    rgb = _fit(rgb)
    region = regions.find_region(rgb, clothing)
    if not region.verdict.ok:
        raise EngineFailure(region.verdict.message)
    out = _recolour(rgb, region.lab, region.mask, spec, region.landmarks)
    meta = {
        "engine": "recolor",
        "clothing": clothing,
        "applied": spec.describe(),
        "colours": [c.name for c in spec.colours],
        "pattern": spec.pattern,
        "material": spec.material,
        "garment_fraction": round(float(region.mask.mean()), 4),
        "mask_digest": region.digest,
        "quality": region.verdict.as_dict(),
        "greyscale": region.greyscale,
        "notes": [*spec.notes, *region.notes],
        "limitations": LIMITATION,
    }
    return EditResult(image=out, meta=meta)


@dataclass
class Preview:
    """What an edit of this photo and clothing would change, and whether the gate would let it."""

    mask: Mask
    verdict: dict[str, Any]
    meta: dict[str, Any]


# A generative provider's habits, for testing what consumes our output (the site's full-resolution compose).
GENERATIVE_SHIFT = (1.0, 2.0)  # the whole picture moves by this many pixels (x, y)
GENERATIVE_NOISE = 3.0  # fresh Gaussian noise everywhere (levels, standard deviation)
GENERATIVE_EDGE_GROWTH = 3  # the garment's outline moves out by this many pixels
GENERATIVE_CHECK = 14  # the garment's texture is redrawn as checks of this many pixels


def generative(rgb: Image, prompt: str, clothing: str) -> EditResult:
    """The recolour, then what a diffusion model does besides: the garment redrawn with a different pattern and a
    slightly moved outline, the whole picture shifted by a pixel or two and fresh noise everywhere. Deterministic
    (a fixed seed), so tests can compare runs."""
    rgb = _fit(rgb)
    base = recolor(rgb, prompt, clothing)
    garment = np.any(base.image != rgb, axis=2)
    out = base.image.astype(np.float32)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GENERATIVE_EDGE_GROWTH + 1,) * 2)
    grown = cv2.dilate(garment.astype(np.uint8), grow).astype(bool)
    # The moved edge: the ring the garment grows into takes the garment's nearby colour (normalised convolution).
    weight = cv2.GaussianBlur(garment.astype(np.float32), (0, 0), 3.0)
    spread = cv2.GaussianBlur(out * garment[..., None], (0, 0), 3.0) / np.maximum(weight, 1e-3)[..., None]
    ring = grown & ~garment
    out[ring] = spread[ring]
    # A different pattern: checks over the garment.
    ys, xs = np.mgrid[0:out.shape[0], 0:out.shape[1]]
    checks = ((xs // GENERATIVE_CHECK + ys // GENERATIVE_CHECK) % 2).astype(bool)
    out[grown & checks] *= 0.8
    dx, dy = GENERATIVE_SHIFT
    moved = cv2.warpAffine(out, np.array([[1, 0, dx], [0, 1, dy]], np.float32), (out.shape[1], out.shape[0]),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    noise = np.random.default_rng(0).normal(0.0, GENERATIVE_NOISE, moved.shape).astype(np.float32)
    image = np.clip(moved + noise + 0.5, 0, 255).astype(np.uint8)
    meta = {**base.meta, "engine": "generative", "shift": list(GENERATIVE_SHIFT), "noise": GENERATIVE_NOISE,
            "edge_growth": GENERATIVE_EDGE_GROWTH, "pattern": "checks"}
    return EditResult(image=image, meta=meta)



def preview(rgb: Image, clothing: str, prompt: str = "") -> Preview:
    """The region and the gate's verdict, without recolouring (the free preview). Never raises for a refusal:
    the verdict says what the edit would answer."""
    rgb = _fit(rgb)
    empty = np.zeros((SIZE, SIZE), bool)
    if clothing not in CLOTHING:
        raise EngineFailure(f"clothing must be one of {', '.join(CLOTHING)}")
    region: Region | None = None
    try:
        region = regions.find_region(rgb, clothing)
        verdict = region.verdict.as_dict()
    except EngineFailure as exc:
        verdict = {"ok": False, "code": "no_person", "message": str(exc), "score": 0.0, "checks": {}}
    if prompt and verdict["ok"] and not parse_prompt(prompt).applicable:
        verdict = {**verdict, "ok": False, "code": "prompt", "message": NOT_APPLICABLE}
    mask = region.mask if region is not None else empty
    meta = {
        "clothing": clothing,
        "garment_fraction": round(float(mask.mean()), 4),
        "mask_digest": regions.mask_digest(mask),
        "greyscale": region.greyscale if region is not None else regions.is_greyscale(rgb),
        "notes": region.notes if region is not None else [],
    }
    return Preview(mask=mask, verdict=verdict, meta=meta)


ENGINES = {"recolor": recolor, "passthrough": passthrough, "generative": generative}


# ----------------------------------------------------------------------------------------------------- recolour


def _target_lab(colour: Colour) -> Floats:
    rgb = np.array([[colour.rgb]], np.float32) / 255.0
    lab: Floats = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0, 0].astype(np.float32)
    lab[0] = np.clip(lab[0] + colour.lightness_delta, 4.0, 97.0)
    lab[1:] *= colour.chroma_factor
    return lab


# material -> (contrast of the garment's own lightness variations, lightness offset)
_MATERIAL_LOOK = {
    "leather": (1.35, -3.0),
    "silk": (1.3, 2.0),
    "velvet": (1.25, -5.0),
    "suede": (0.85, -2.0),
    "linen": (0.9, 2.0),
    "cotton": (1.0, 0.0),
    "wool": (0.9, 0.0),
    "denim": (1.0, 0.0),
    "corduroy": (1.0, 0.0),
}


def _pattern_weight(pattern: str, lm: Floats) -> Floats:
    """0..1 per pixel: where the pattern's second colour goes. Body-aligned, scaled by shoulder width."""
    ls, rs = _pt(lm, L_SHOULDER), _pt(lm, R_SHOULDER)
    sw = max(float(np.linalg.norm(ls - rs)), 40.0)
    across = (ls - rs) / max(float(np.linalg.norm(ls - rs)), 1e-3)
    if not np.isfinite(across).all() or np.linalg.norm(across) < 0.5:
        across = np.array([1.0, 0.0], np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    u = xx * across[0] + yy * across[1]  # along the shoulders
    v = -xx * across[1] + yy * across[0]  # down the body

    def bands(coord: Floats, period: float) -> Floats:
        # Anti-aliased square wave: smooth edges avoid jaggies after the blend.
        wave: Floats = np.clip((np.abs(((coord / period) % 1.0) - 0.5) - 0.25) * period * 0.5 + 0.5, 0.0, 1.0)
        return wave

    if pattern == "stripes":
        return bands(v, sw / 7.0)
    if pattern == "checks":
        period = sw / 4.0
        a, b = bands(u, period), bands(v, period)
        return np.clip(0.55 * a + 0.55 * b, 0.0, 1.0)
    period = sw / 5.0  # dots
    cu = (u / period) % 1.0 - 0.5
    cv = (v / period) % 1.0 - 0.5
    r = np.sqrt(cu**2 + cv**2) * period
    dots: Floats = np.clip(period * 0.22 - r + 0.5, 0.0, 1.0)
    return dots


def _recolour(rgb: Image, lab: Floats, mask: Mask, spec: EditSpec, lm: Floats) -> Image:
    garment_l = lab[..., 0][mask]
    mean_l = float(garment_l.mean())
    std_l = float(garment_l.std()) + 1e-3
    mean_ab = lab[..., 1:][mask].mean(axis=0)
    if spec.colours:
        first = _target_lab(spec.colours[0])
    else:
        # Pattern only: keep the garment's own colour as the base.
        first = np.array([mean_l, mean_ab[0], mean_ab[1]], np.float32)
    if len(spec.colours) > 1:
        second = _target_lab(spec.colours[1])
    else:
        # A pattern with one colour: contrast it with white on dark colours and navy on light ones.
        second = np.array([94.0, 0.0, 2.0] if first[0] < 60 else [22.0, 6.0, -28.0], np.float32)
    contrast, offset = _MATERIAL_LOOK.get(spec.material or "", (1.0, 0.0))
    # Very uniform garments (a flat white shirt) have tiny variations; very busy ones would look noisy: normalise
    # the fold contrast into a natural range, then apply the material's contrast.
    fold_gain = float(np.clip(8.0 / std_l, 0.6, 2.0)) * contrast
    deviation = (lab[..., 0] - mean_l) * fold_gain

    ys, xs = np.nonzero(_dilate(mask, 3))
    dev = deviation[ys, xs]
    if spec.pattern:
        weight = _pattern_weight(spec.pattern, lm)[ys, xs][:, None]
        target = first[None, :] * (1.0 - weight) + second[None, :] * weight
    else:
        target = np.repeat(first[None, :], len(ys), axis=0)
    new_l = np.clip(target[:, 0] + offset + dev, 1.0, 99.0)
    # Chroma fades a little in deep shadows and bright highlights, as real fabric does.
    fade = np.clip(1.0 - np.abs(new_l - target[:, 0]) / 70.0, 0.55, 1.0)
    new_lab = np.stack([new_l, target[:, 1] * fade, target[:, 2] * fade], axis=1).astype(np.float32)
    if spec.material == "denim":
        # Twill: fine diagonal ribs, deterministic.
        twill = np.sin((xs + ys).astype(np.float32) * (2 * np.pi / 4.0)) * 1.8
        new_lab[:, 0] = np.clip(new_lab[:, 0] + twill, 1.0, 99.0)
    new_rgb = cv2.cvtColor(new_lab[None, :, :], cv2.COLOR_Lab2RGB)[0]
    recoloured = rgb.astype(np.float32) / 255.0
    recoloured[ys, xs] = new_rgb

    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=1.2)[..., None]
    blended = recoloured * alpha + (rgb.astype(np.float32) / 255.0) * (1.0 - alpha)
    out = np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # Pixels the blend did not touch stay bit-identical (no float round trip on the background).
    untouched = alpha[..., 0] < 1e-4
    out[untouched] = rgb[untouched]
    return out


def edit(rgb: Image, prompt: str, clothing: str, engine: str = "recolor") -> tuple[EditResult, float]:
    """Run one edit and measure its compute time (seconds)."""
    started = time.perf_counter()
    result = ENGINES[engine](rgb, prompt, clothing)
    return result, time.perf_counter() - started
