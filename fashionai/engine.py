"""The CPU clothing engine: find the garment, recolour/pattern it, keep the shading.

Pipeline (one 512x512 RGB image):
1. mediapipe's legacy Pose (`enable_segmentation=True`, models shipped inside mediapipe==0.10.21): 33 landmarks and a
   person mask. No landmarks -> "no person".
2. Garment geometry from landmarks (torso + arms, or pelvis + legs) intersected with the person mask.
3. Refinement by small Lab colour models: garment clusters seeded from the torso/thigh core, skin clusters from the
   face; pixels closer to skin than to the garment are dropped, small holes (logos, patches) are filled.
4. Edges snapped with GrabCut in a thin band around the mask (at half resolution, for speed).
5. Lab recolour that keeps the original lightness variations (folds, shading), optional stripes/checks/dots, material
   looks, and a feathered alpha blend. The face box is always excluded.

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

from fashionai.prompt import Colour, EditSpec, parse_prompt

SIZE = 512
LIMITATION = (
    "Recolours and patterns the garment already worn; it cannot change the garment's type or shape "
    "(a t-shirt stays a t-shirt, trousers stay trousers)."
)
CLOTHING = ("topwear", "bottomwear")

# mediapipe Pose landmark indices
NOSE, L_EYE_OUT, R_EYE_OUT, MOUTH_L, MOUTH_R = 0, 3, 6, 9, 10
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 23, 24, 25, 26, 27, 28


Image = NDArray[np.uint8]  # H x W x 3 RGB
Mask = NDArray[np.bool_]  # H x W
Floats = NDArray[np.floating[Any]]  # landmarks, Lab pixels, weights (float32 or wider after arithmetic)


class EngineFailure(Exception):
    """A job the engine cannot do; the message is shown to the user as the job's error."""


@dataclass
class EditResult:
    image: Image
    meta: dict[str, Any] = field(default_factory=dict)


_POSE: Any = None


def _pose() -> Any:
    """One Pose graph per process (loading it costs ~150 ms; a worker reuses it for every job)."""
    global _POSE
    if _POSE is None:
        import mediapipe as mp  # heavy import, only in engine workers

        _POSE = mp.solutions.pose.Pose(
            static_image_mode=True,  # every request is an unrelated photo: no tracking between calls
            model_complexity=1,  # pose_landmark_full.tflite, shipped in the wheel
            enable_segmentation=True,
            min_detection_confidence=0.5,
        )
    return _POSE


def warm_up() -> None:
    _pose()


def passthrough(rgb: Image, prompt: str, clothing: str) -> EditResult:
    return EditResult(image=rgb, meta={"engine": "passthrough", "clothing": clothing, "limitations": LIMITATION})


def recolor(rgb: Image, prompt: str, clothing: str) -> EditResult:
    if clothing not in CLOTHING:
        raise EngineFailure(f"clothing must be one of {', '.join(CLOTHING)}")
    spec = parse_prompt(prompt)
    if not spec.applicable:
        raise EngineFailure(
            "The prompt names no colour, pattern or garment colour this engine can apply "
            "(try e.g. 'a red shirt', 'light blue striped shirt' or 'blue jeans'). "
            "It can only recolour or pattern the existing garment, not change its type or shape."
        )
    if rgb.shape != (SIZE, SIZE, 3):
        rgb = np.asarray(cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA), np.uint8)
    result = _pose().process(rgb)
    if result.pose_landmarks is None or result.segmentation_mask is None:
        raise EngineFailure("No person found in the photo. Use a photo of one person, upper body or full body visible.")
    lm = np.array([(p.x * SIZE, p.y * SIZE, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)
    person = result.segmentation_mask > 0.5
    if person.mean() < 0.02:
        raise EngineFailure("No person found in the photo (the detected figure is too small or unclear).")

    lab = np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab), np.float32)
    face = _face_box(lm)
    if clothing == "topwear":
        geometry, core = _topwear_geometry(lm)
    else:
        geometry, core = _bottomwear_geometry(lm)
    region = geometry & person
    core &= person
    if region.mean() < 0.015 or core.sum() < 150:
        raise EngineFailure(
            f"The {clothing} is not visible in this photo "
            f"({'shoulders and chest' if clothing == 'topwear' else 'hips and legs'} must be in the picture)."
        )
    mask = _refine(lab, region, core, face, person)
    if mask.mean() < 0.01:
        raise EngineFailure(f"Could not find the {clothing} garment in this photo (too little of it is visible).")
    mask = _snap_edges(rgb, mask, geometry & _dilate(person, 5))
    if face is not None:
        mask[face] = False
    out = _recolour(rgb, lab, mask, spec, lm)
    meta = {
        "engine": "recolor",
        "clothing": clothing,
        "applied": spec.describe(),
        "colours": [c.name for c in spec.colours],
        "pattern": spec.pattern,
        "material": spec.material,
        "garment_fraction": round(float(mask.mean()), 4),
        "notes": list(spec.notes),
        "limitations": LIMITATION,
    }
    return EditResult(image=out, meta=meta)


ENGINES = {"recolor": recolor, "passthrough": passthrough}


# ----------------------------------------------------------------------------------------------------- geometry


def _pt(lm: Floats, i: int) -> Floats:
    return lm[i, :2].astype(np.float32)


def _poly_mask(points: list[Floats]) -> Mask:
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(canvas, [np.round(np.array(points)).astype(np.int32)], (1,))
    return canvas.astype(bool)


def _limb(canvas: NDArray[np.uint8], a: Floats, b: Floats, thickness: float) -> None:
    start = (int(round(float(a[0]))), int(round(float(a[1]))))
    end = (int(round(float(b[0]))), int(round(float(b[1]))))
    cv2.line(canvas, start, end, (1,), max(2, int(thickness)))


def _visible(lm: Floats, i: int, minimum: float = 0.5) -> bool:
    x, y, vis = lm[i]
    return bool(vis >= minimum and -0.02 * SIZE <= x <= 1.02 * SIZE and -0.02 * SIZE <= y <= 1.02 * SIZE)


def _face_box(lm: Floats) -> Mask | None:
    """Face area (eyes to below the mouth), always protected from edits and used as the skin colour sample."""
    pts = lm[[NOSE, 1, 2, L_EYE_OUT, 4, 5, R_EYE_OUT, 7, 8, MOUTH_L, MOUTH_R]]
    if pts[:, 2].mean() < 0.5:
        return None
    eye_dist = float(np.linalg.norm(_pt(lm, 7) - _pt(lm, 8)))  # ear to ear
    x0, x1 = pts[:, 0].min(), pts[:, 0].max()
    y0, y1 = pts[:, 1].min(), pts[:, 1].max()
    box = np.zeros((SIZE, SIZE), bool)
    pad = 0.15 * eye_dist
    xa, xb = int(max(0, x0 - pad)), int(min(SIZE, x1 + pad))
    ya, yb = int(max(0, y0 - 0.6 * eye_dist)), int(min(SIZE, y1 + 0.45 * eye_dist))
    if xb > xa and yb > ya:
        box[ya:yb, xa:xb] = True
    return box


def _torso_frame(lm: Floats, top: tuple[int, int], bottom: tuple[int, int]) -> tuple[Floats, Floats]:
    """Unit vectors (across, down) of the torso. `across` is perpendicular to the spine, not the shoulder line:
    in a profile pose the two shoulders nearly coincide and their difference points nowhere useful."""
    mid_top = (_pt(lm, top[0]) + _pt(lm, top[1])) / 2
    mid_bottom = (_pt(lm, bottom[0]) + _pt(lm, bottom[1])) / 2
    down = mid_bottom - mid_top
    down = down / max(float(np.linalg.norm(down)), 1e-3)
    across = np.array([-down[1], down[0]], np.float32)
    if float(np.dot(across, _pt(lm, top[0]) - _pt(lm, top[1]))) < 0:
        across = -across  # keep "across" pointing from the right side of the body to the left
    return across, down


def _topwear_geometry(lm: Floats) -> tuple[Mask, Mask]:
    if not (_visible(lm, L_SHOULDER) and _visible(lm, R_SHOULDER)):
        return np.zeros((SIZE, SIZE), bool), np.zeros((SIZE, SIZE), bool)
    ls, rs, lh, rh = (_pt(lm, i) for i in (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP))
    across, down = _torso_frame(lm, (L_SHOULDER, R_SHOULDER), (L_HIP, R_HIP))
    up = -down
    sw = float(np.linalg.norm(ls - rs))
    mid_s = (ls + rs) / 2
    torso_len = float(np.linalg.norm((lh + rh) / 2 - mid_s))
    hips_seen = _visible(lm, L_HIP, 0.5) and _visible(lm, R_HIP, 0.5)
    # Body scale: shoulder width, unless the person is side-on (narrow shoulders, long visible torso).
    scale = max(sw, 0.5 * torso_len) if hips_seen else sw
    if not hips_seen:
        # Hips out of frame or guessed: keep the torso length plausible for the shoulder width.
        torso_len = float(np.clip(torso_len, 1.0 * sw, 1.9 * sw))
    mid_h = mid_s + down * torso_len
    half_top = max(abs(float(np.dot(ls - rs, across))) / 2 + 0.15 * scale, 0.35 * scale)
    half_bottom = max(abs(float(np.dot(lh - rh, across))) / 2 + 0.22 * scale, 0.33 * scale)
    polygon = [
        mid_s - across * half_top + up * 0.06 * scale,
        mid_s - across * (half_top - 0.3 * scale) + up * 0.2 * scale,  # collar line
        mid_s + across * (half_top - 0.3 * scale) + up * 0.2 * scale,
        mid_s + across * half_top + up * 0.06 * scale,
        mid_h + across * half_bottom + down * 0.12 * scale,
        mid_h - across * half_bottom + down * 0.12 * scale,
    ]
    canvas = _poly_mask(polygon).astype(np.uint8)
    for s, e, w in ((L_SHOULDER, L_ELBOW, L_WRIST), (R_SHOULDER, R_ELBOW, R_WRIST)):
        if lm[e, 2] > 0.2:
            _limb(canvas, _pt(lm, s), _pt(lm, e), 0.55 * scale)
            # Round cap: a bent sleeve bulges past the elbow joint.
            elbow = (int(round(float(lm[e, 0]))), int(round(float(lm[e, 1]))))
            cv2.circle(canvas, elbow, int(0.36 * scale), (1,), -1)
            if lm[w, 2] > 0.2:
                _limb(canvas, _pt(lm, e), _pt(lm, w) * 0.85 + _pt(lm, e) * 0.15, 0.38 * scale)
    # Colour seed: the middle of the chest (a shrunken torso quad, nudged up: the belt line is less reliable).
    centre = mid_s + down * torso_len * 0.45
    core_half = 0.45 * min(half_top, half_bottom)
    core = _poly_mask(
        [
            centre - across * core_half - down * torso_len * 0.22,
            centre + across * core_half - down * torso_len * 0.22,
            centre + across * core_half + down * torso_len * 0.2,
            centre - across * core_half + down * torso_len * 0.2,
        ]
    )
    return canvas.astype(bool), core


def _bottomwear_geometry(lm: Floats) -> tuple[Mask, Mask]:
    empty = np.zeros((SIZE, SIZE), bool)
    if not (_visible(lm, L_HIP) and _visible(lm, R_HIP)):
        return empty, empty
    lh, rh, ls, rs = (_pt(lm, i) for i in (L_HIP, R_HIP, L_SHOULDER, R_SHOULDER))
    hw = float(np.linalg.norm(lh - rh))
    if hw < 8 or min(lh[1], rh[1]) > 0.97 * SIZE:
        return empty, empty
    across, down = _torso_frame(lm, (L_SHOULDER, R_SHOULDER), (L_HIP, R_HIP))
    up = -down
    # Side-on, the hip joints nearly coincide: measure the body by its torso length instead.
    torso_len = float(np.linalg.norm((ls + rs) / 2 - (lh + rh) / 2))
    hw = max(hw, 0.45 * torso_len)
    canvas = _poly_mask(
        [
            rh - across * 0.45 * hw + up * 0.45 * hw,  # waistband sits above the hip joints
            lh + across * 0.45 * hw + up * 0.45 * hw,
            lh + across * 0.55 * hw - up * 0.5 * hw,
            rh - across * 0.55 * hw - up * 0.5 * hw,
        ]
    ).astype(np.uint8)
    core = np.zeros((SIZE, SIZE), np.uint8)
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        if lm[knee, 2] > 0.2:
            _limb(canvas, _pt(lm, hip), _pt(lm, knee), 1.05 * hw)
            a, b = _pt(lm, hip), _pt(lm, knee)
            _limb(core, a + 0.15 * (b - a), a + 0.6 * (b - a), 0.35 * hw)
            if lm[ankle, 2] > 0.2:
                _limb(canvas, _pt(lm, knee), _pt(lm, ankle) * 0.92 + _pt(lm, knee) * 0.08, 0.75 * hw)
    if not core.any():
        # Knees out of view: seed from the pelvis itself.
        centre = (lh + rh) / 2 - up * 0.35 * hw
        cv2.circle(core, (int(centre[0]), int(centre[1])), max(3, int(0.3 * hw)), (1,), -1)
    return canvas.astype(bool), core.astype(bool)


# ----------------------------------------------------------------------------------------------------- masks


def _dilate(mask: Mask, radius: int) -> Mask:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _erode(mask: Mask, radius: int) -> Mask:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def _weighted(lab: Floats) -> Floats:
    # Lightness varies with shading across one garment; chroma is more telling, so L counts half.
    return lab * np.array([0.5, 1.0, 1.0], np.float32)


def _clusters(samples: Floats, k: int) -> Floats:
    if len(samples) > 4000:
        # Deterministic subsample (fixed stride), not random: same input -> same output.
        samples = samples[:: len(samples) // 4000 + 1]
    k = max(1, min(k, len(samples)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(12345)
    # (the OpenCV stubs don't know bestLabels/rect may be None, which the runtime accepts)
    _, _, centres = cv2.kmeans(  # type: ignore[call-overload]
        samples.astype(np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    return np.asarray(centres, np.float32)


def _nearest(pixels: Floats, centres: Floats) -> Floats:
    d = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    nearest: Floats = np.sqrt(d.min(axis=1))
    return nearest


def _refine(
    lab: Floats, region: Mask, core: Mask, face: Mask | None, person: Mask
) -> Mask:
    wlab = _weighted(lab)
    garment = _clusters(wlab[core], 3)
    core_dist = _nearest(wlab[core], garment)
    threshold = float(np.clip(np.percentile(core_dist, 95) * 1.6, 10.0, 30.0))
    ys, xs = np.nonzero(region)
    pixels = wlab[ys, xs]
    d_garment = _nearest(pixels, garment)
    keep = d_garment < threshold
    if face is not None and (face & person).sum() > 100:
        skin = _clusters(wlab[face & person], 2)
        d_skin = _nearest(pixels, skin)
        # Closer to skin than to the garment: arms, neck, hands.
        keep &= ~((d_skin < d_garment) & (d_skin < 14.0))
    mask: NDArray[np.uint8] = np.zeros((SIZE, SIZE), np.uint8)
    mask[ys[keep], xs[keep]] = 1
    mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)), np.uint8)
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, closing), np.uint8)
    # Keep the pieces that belong to the seeded garment (drop stray same-coloured bits of background or skin).
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep_labels = np.zeros(count, bool)
    touched = np.unique(labels[core & (mask > 0)])
    keep_labels[touched] = True
    total = max(1, int(mask.sum()))
    keep_labels |= stats[:, cv2.CC_STAT_AREA] > 0.08 * total
    keep_labels[0] = False
    mask = keep_labels[labels].astype(np.uint8)
    # Fill enclosed holes (prints, logos, badges) that are part of the garment, unless they look like skin.
    filled = mask.copy()
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, (1,), thickness=-1)
    holes = (filled > 0) & (mask == 0) & region
    result: Mask = ((mask > 0) | holes) & region
    return result


def _snap_edges(rgb: Image, mask: Mask, allowed: Mask) -> Mask:
    """GrabCut in a thin band around the mask edge, at half resolution on the mask's bounding box (~40 ms)."""
    band_out = _dilate(mask, 6) & allowed
    band_in = _erode(mask, 6)
    ys, xs = np.nonzero(band_out)
    if len(ys) == 0:
        return mask
    y0, y1 = max(0, ys.min() - 4), min(SIZE, ys.max() + 5)
    x0, x1 = max(0, xs.min() - 4), min(SIZE, xs.max() + 5)
    gc = np.full((SIZE, SIZE), cv2.GC_BGD, np.uint8)
    gc[band_out] = cv2.GC_PR_BGD
    gc[mask] = cv2.GC_PR_FGD
    gc[band_in] = cv2.GC_FGD
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    gc_crop = gc[y0:y1, x0:x1]
    h, w = gc_crop.shape
    if h < 8 or w < 8 or not (gc_crop == cv2.GC_FGD).any() or not (gc_crop == cv2.GC_BGD).any():
        return mask
    small = cv2.resize(crop, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    small_gc = cv2.resize(gc_crop, (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
    if not (small_gc == cv2.GC_FGD).any() or not (small_gc == cv2.GC_BGD).any():
        return mask
    cv2.setRNGSeed(12345)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(small, small_gc, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    except cv2.error:
        return mask
    fg_small = ((small_gc == cv2.GC_FGD) | (small_gc == cv2.GC_PR_FGD)).astype(np.float32)
    fg = cv2.resize(fg_small, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    snapped = mask.copy()
    band = band_out & ~band_in
    local = np.zeros((SIZE, SIZE), bool)
    local[y0:y1, x0:x1] = fg
    snapped[band] = local[band]
    return snapped & allowed


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
