"""Where the garment is, and whether the engine should dare to edit it: the region and the quality gate.

The same `find_region` runs for an edit and for the free preview (`/v2/fashion-ai/preview`, our extension), so the
preview shows exactly the mask the edit then uses.

What makes a region (one 512x512 RGB image):
- the most prominent person: mediapipe's pose picks one; the person mask is cut to the connected parts that belong
  to that pose, so other people are never edited (a bigger person elsewhere is a readable refusal);
- the garment's geometry from the landmarks (torso + arms, or pelvis + legs), minus the face and the hands
  (gloves, a bag's handle, a phone: the hand landmarks say where they are);
- long coats and dresses: when the thighs carry the torso garment (same colour model, and no gap between the legs
  where trousers would show one), that part belongs to topwear; bottomwear keeps only the legwear below the hem;
- colour models seeded from the dominant colours of the chest/thigh core (badges and straps do not seed), skin
  from the face; a greyscale photo is modelled on lightness alone and stays grey outside the garment;
- GrabCut in a thin band snaps the edges; the result never leaves the person mask.

The gate scores the mask before anything is recoloured and refuses, with a message a person can act on, when the
garment is mostly hidden, covered by a long top, not one clear colour area, indistinguishable from the background
or the skin, or without edges to follow. A refusal is a FAILED job (refunded), never a wrong edit charged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

SIZE = 512
CLOTHING = ("topwear", "bottomwear")

# mediapipe Pose landmark indices
NOSE, L_EYE_OUT, R_EYE_OUT, MOUTH_L, MOUTH_R = 0, 3, 6, 9, 10
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
L_PINKY, R_PINKY, L_INDEX, R_INDEX, L_THUMB, R_THUMB = 17, 18, 19, 20, 21, 22
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 23, 24, 25, 26, 27, 28

Image = NDArray[np.uint8]  # H x W x 3 RGB
Mask = NDArray[np.bool_]  # H x W
Floats = NDArray[np.floating[Any]]  # landmarks, Lab pixels, weights

# Gate thresholds, tuned on the evaluation set (bench/bench_engine_quality.py); see docs/fashionai.md.
MIN_COVERAGE = 0.35  # mask / expected garment area (geometry inside the person)
MIN_SEED = 0.5  # the chest/thigh core must itself be garment
MAX_BODY_SHARE = {"topwear": 0.8, "bottomwear": 0.65}  # mask / person
MAX_BACKGROUND_LIKE = 0.75  # garment-coloured share of the background ring just outside the person
MAX_SKIN_LIKE = 0.2  # mask pixels that look like the face's skin
MIN_EDGES = 0.12  # mask boundary inside the person that follows an image edge
MIN_LEGWEAR_VISIBLE = 0.5  # bottomwear: legwear below a long top / whole leg area


COVERED_MESSAGE = (
    "The trousers are mostly hidden by a long coat or dress: try topwear, or another photo where the legwear shows."
)


class EngineFailure(Exception):
    """A job the engine cannot do; the message is shown to the user as the job's error."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    code: str  # "ok" or why not: covered_by_long_top, mostly_hidden, unclear, leaks, background, skin, edges, ...
    message: str  # what the person is told ("" when ok)
    score: float  # 0..1, higher is better; for display and the scorecard
    checks: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "code": self.code, "message": self.message, "score": round(self.score, 3),
                "checks": {k: round(v, 3) for k, v in self.checks.items()}}


@dataclass
class Region:
    clothing: str
    mask: Mask  # what the edit recolours (before the feathered blend)
    verdict: Verdict
    landmarks: Floats
    lab: Floats
    face: Mask | None
    person: Mask
    greyscale: bool
    notes: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return mask_digest(self.mask)


def mask_digest(mask: Mask) -> str:
    """A short fingerprint of a mask: the preview and the edit report it, so a client can check they agree."""
    return hashlib.sha256(np.packbits(mask.astype(bool)).tobytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------- the pose

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


_SELFIE: Any = None


def _people() -> Any:
    """mediapipe's selfie segmentation (shipped in the same wheel): every person in the photo, where the pose's
    own mask covers only the one person it found (~10 ms)."""
    global _SELFIE
    if _SELFIE is None:
        import mediapipe as mp

        _SELFIE = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    return _SELFIE


def warm_up() -> None:
    _pose()
    _people()


# ----------------------------------------------------------------------------------------------------- helpers


def _pt(lm: Floats, i: int) -> Floats:
    return lm[i, :2].astype(np.float32)


def _ipt(p: Floats) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _poly_mask(points: list[Floats]) -> Mask:
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(canvas, [np.round(np.array(points)).astype(np.int32)], (1,))
    return canvas.astype(bool)


def _limb(canvas: NDArray[np.uint8], a: Floats, b: Floats, thickness: float) -> None:
    cv2.line(canvas, _ipt(a), _ipt(b), (1,), max(2, int(thickness)))


def _visible(lm: Floats, i: int, minimum: float = 0.5) -> bool:
    x, y, vis = lm[i]
    return bool(vis >= minimum and -0.02 * SIZE <= x <= 1.02 * SIZE and -0.02 * SIZE <= y <= 1.02 * SIZE)


def _dilate(mask: Mask, radius: int) -> Mask:
    if radius <= 0:
        return mask
    if radius > 12:
        # A large elliptic kernel costs O(radius) per pixel; the distance to the mask is one linear pass.
        outside = np.asarray(~mask, np.uint8)
        distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_5)
        return np.asarray(distance <= radius, bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _erode(mask: Mask, radius: int) -> Mask:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def _share(part: Mask, whole: Mask) -> float:
    total = int(whole.sum())
    return float((part & whole).sum()) / total if total else 0.0


def is_greyscale(rgb: Image) -> bool:
    """A black-and-white photo (stored as RGB): its channels agree almost everywhere."""
    sample = rgb[::4, ::4].astype(np.int16)
    spread = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(np.mean(spread)) < 3.0


# ----------------------------------------------------------------------------------------------------- geometry


def face_box(lm: Floats) -> Mask | None:
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


def head_mask(lm: Floats) -> Mask:
    """The whole head, hair included (the face box alone leaves dark hair next to a dark collar)."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    if lm[[NOSE, 7, 8], 2].mean() < 0.5:
        return canvas.astype(bool)
    ears = (_pt(lm, 7) + _pt(lm, 8)) / 2
    mouth = (_pt(lm, MOUTH_L) + _pt(lm, MOUTH_R)) / 2
    # Side-on, the ears nearly coincide: the nose and mouth still say how big the head is.
    size = max(float(np.linalg.norm(_pt(lm, 7) - _pt(lm, 8))),
               1.6 * max(float(np.linalg.norm(_pt(lm, NOSE) - ears)), float(np.linalg.norm(mouth - ears))))
    centre = ears - np.array([0.0, 0.2 * size], np.float32)
    cv2.ellipse(canvas, _ipt(centre), (int(0.75 * size), int(0.85 * size)), 0.0, 0.0, 360.0, (1,), -1)
    return canvas.astype(bool)


def hands_mask(lm: Floats) -> Mask:
    """Both hands from the wrist, pinky, index and thumb landmarks, fingers extended and padded: gloves, a bag's
    handle, a phone held in the hand stay as they are even when they share the garment's colour."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    for wrist, fingers in ((L_WRIST, (L_PINKY, L_INDEX, L_THUMB)), (R_WRIST, (R_PINKY, R_INDEX, R_THUMB))):
        if not (_visible(lm, wrist, 0.4) and all(_visible(lm, f, 0.4) for f in fingers)):
            continue
        w = _pt(lm, wrist)
        tips = [_pt(lm, f) for f in fingers]
        size = max(max(float(np.linalg.norm(t - w)) for t in tips), 6.0)
        reach = [w + 1.6 * (t - w) for t in tips]  # the landmarks sit at the knuckles; fingers reach further
        hull = cv2.convexHull(np.round(np.array([w, *tips, *reach])).astype(np.int32))
        cv2.fillConvexPoly(canvas, hull, (1,))
        centre = np.mean(np.array(reach), axis=0)
        cv2.circle(canvas, _ipt(centre), int(0.9 * size), (1,), -1)
        canvas = _dilate(canvas.astype(bool), int(0.35 * size)).astype(np.uint8)
    return canvas.astype(bool)


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


def topwear_geometry(lm: Floats) -> tuple[Mask, Mask]:
    """(where a top can be, its colour seed)."""
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
    side_on = hips_seen and sw < 0.6 * torso_len
    # Side-on, the back and the front of the garment lie well outside the shoulder line: widen the torso.
    widen = 0.3 * scale if side_on else 0.0
    half_top = max(abs(float(np.dot(ls - rs, across))) / 2 + 0.15 * scale + widen, 0.35 * scale)
    half_bottom = max(abs(float(np.dot(lh - rh, across))) / 2 + 0.22 * scale + widen, 0.33 * scale)
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
            _limb(canvas, _pt(lm, s), _pt(lm, e), 0.6 * scale)
            # Round cap: a bent sleeve bulges past the elbow joint.
            cv2.circle(canvas, _ipt(_pt(lm, e)), int(0.38 * scale), (1,), -1)
            if lm[w, 2] > 0.2 or _visible(lm, e, 0.6):
                wrist = _pt(lm, w) if lm[w, 2] > 0.2 else _pt(lm, e) + 0.9 * (_pt(lm, e) - _pt(lm, s))
                _limb(canvas, _pt(lm, e), wrist * 0.9 + _pt(lm, e) * 0.1, 0.45 * scale)
    # The polygon is a guess of the garment's outline: let the colour model and GrabCut find the real one a little
    # further out (a coat's back, a loose sleeve), but not below the hem line, where trousers begin.
    hem = mid_h + down * 0.12 * scale
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    above_hem = (xx - hem[0]) * down[0] + (yy - hem[1]) * down[1] < 0
    grown = _dilate(canvas.astype(bool), int(0.6 * scale))
    canvas = canvas | (grown & above_hem).astype(np.uint8)
    # Colour seed: the middle of the chest (a shrunken torso quad, nudged up: the belt line is less reliable).
    centre = mid_s + down * torso_len * 0.45
    core_half = 0.45 * min(half_top - widen, half_bottom - widen)
    core = _poly_mask(
        [
            centre - across * core_half - down * torso_len * 0.22,
            centre + across * core_half - down * torso_len * 0.22,
            centre + across * core_half + down * torso_len * 0.2,
            centre - across * core_half + down * torso_len * 0.2,
        ]
    )
    return canvas.astype(bool), core


@dataclass
class _Legs:
    geometry: Mask  # pelvis + legs
    core: Mask  # thigh seeds
    lower_thighs: Mask  # just above the knees: a long top reaches here, shorts and short tops do not
    hw: float  # hip width (body scale of the legs)
    gap: bool | None  # background between the thighs (trousers with legs apart), None: cannot tell


def _legs(lm: Floats, person: Mask) -> _Legs | None:
    if not (_visible(lm, L_HIP) and _visible(lm, R_HIP)):
        return None
    lh, rh, ls, rs = (_pt(lm, i) for i in (L_HIP, R_HIP, L_SHOULDER, R_SHOULDER))
    hw = float(np.linalg.norm(lh - rh))
    if hw < 8 or min(lh[1], rh[1]) > 0.97 * SIZE:
        return None
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
    lower = np.zeros((SIZE, SIZE), np.uint8)
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        if lm[knee, 2] > 0.2:
            a, b = _pt(lm, hip), _pt(lm, knee)
            _limb(canvas, a, b, 1.05 * hw)
            _limb(core, a + 0.15 * (b - a), a + 0.6 * (b - a), 0.35 * hw)
            _limb(lower, a + 0.45 * (b - a), a + 0.75 * (b - a), 0.3 * hw)
            if lm[ankle, 2] > 0.2:
                _limb(canvas, b, _pt(lm, ankle) * 0.92 + b * 0.08, 0.75 * hw)
    if not core.any():
        # Knees out of view: seed from the pelvis itself.
        centre = (lh + rh) / 2 - up * 0.35 * hw
        cv2.circle(core, _ipt(centre), max(3, int(0.3 * hw)), (1,), -1)
    gap: bool | None = None
    if _visible(lm, L_KNEE, 0.5) and _visible(lm, R_KNEE, 0.5):
        lk, rk = _pt(lm, L_KNEE), _pt(lm, R_KNEE)
        hip_span = float(np.linalg.norm(lh - rh))
        if hip_span > 10 and float(np.linalg.norm(lk - rk)) > 1.3 * hip_span:
            # Halfway down the thighs, between them: trousers leave a gap there, a coat or a dress does not.
            probe = np.zeros((SIZE, SIZE), np.uint8)
            mid = ((lh + rh) / 2) * 0.45 + ((lk + rk) / 2) * 0.55
            cv2.circle(probe, _ipt(mid), max(3, int(0.12 * hw)), (1,), -1)
            inside = probe.astype(bool)
            if inside.any():
                gap = _share(person, inside) < 0.5
    return _Legs(canvas.astype(bool), core.astype(bool), lower.astype(bool), hw, gap)


# ----------------------------------------------------------------------------------------------------- colour models


def _weighted(lab: Floats, greyscale: bool) -> Floats:
    # Lightness varies with shading across one garment; chroma is more telling, so L counts half. A greyscale
    # photo has no chroma at all: lightness is all there is.
    weights = np.array([1.0, 0.0, 0.0] if greyscale else [0.5, 1.0, 1.0], np.float32)
    return lab * weights


def _clusters(samples: Floats, k: int) -> Floats:
    """k-means centres of the samples, keeping only the dominant ones (a badge or a strap on the chest must not
    seed the garment: it would pull in the helmet ring or the background that share its colour)."""
    if len(samples) > 4000:
        # Deterministic subsample (fixed stride), not random: same input -> same output.
        samples = samples[:: len(samples) // 4000 + 1]
    k = max(1, min(k, len(samples)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(12345)
    # (the OpenCV stubs don't know bestLabels/rect may be None, which the runtime accepts)
    _, labels, centres = cv2.kmeans(  # type: ignore[call-overload]
        samples.astype(np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    counts = np.bincount(np.asarray(labels).ravel(), minlength=k)
    dominant = counts >= 0.2 * len(samples)
    if not dominant.any():
        dominant = counts == counts.max()
    return np.asarray(centres, np.float32)[dominant]


def _nearest(pixels: Floats, centres: Floats) -> Floats:
    d = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    nearest: Floats = np.sqrt(d.min(axis=1))
    return nearest


@dataclass
class _Model:
    centres: Floats
    threshold: float

    def distance(self, pixels: Floats) -> Floats:
        return _nearest(pixels, self.centres)


def _model(wlab: Floats, seed: Mask, greyscale: bool) -> _Model | None:
    if int(seed.sum()) < 150:
        return None
    samples = wlab[seed]
    centres = _clusters(samples, 3)
    spread = float(np.percentile(_nearest(samples, centres), 90))
    low, high = (6.0, 18.0) if greyscale else (10.0, 30.0)
    return _Model(centres, float(np.clip(spread * 1.6, low, high)))


# ----------------------------------------------------------------------------------------------------- the region


def _main_person(person: Mask, lm: Floats) -> tuple[Mask, int, bool]:
    """(the pose's own person, how many people-sized figures there are, whether a bigger one is elsewhere)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person.astype(np.uint8), connectivity=8)
    if count <= 2:
        return person, 1, False
    anchor = np.zeros((SIZE, SIZE), np.uint8)
    key = [i for i in (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP, NOSE) if _visible(lm, i, 0.3)]
    for i in key:
        cv2.circle(anchor, _ipt(_pt(lm, i)), 6, (1,), -1)
    if len(key) >= 3:
        cv2.fillConvexPoly(anchor, cv2.convexHull(np.round(lm[key, :2]).astype(np.int32)), (1,))
    votes = np.bincount(labels[anchor.astype(bool)].ravel(), minlength=count)
    votes[0] = 0
    if votes.max() == 0:
        return person, 1, False
    main = int(votes.argmax())
    main_area = int(stats[main, cv2.CC_STAT_AREA])
    areas = stats[1:, cv2.CC_STAT_AREA]
    people = int((areas >= 0.25 * main_area).sum())
    bigger_elsewhere = bool((areas > 1.3 * main_area).any())
    # Small pieces next to the main figure (a hand separated by a held object) still belong to it.
    own = labels == main
    near = _dilate(own, 12)
    for i in range(1, count):
        if i != main and stats[i, cv2.CC_STAT_AREA] < 0.1 * main_area and (near & (labels == i)).any():
            own |= labels == i
    return own, people, bigger_elsewhere


def _other_people(rgb: Image, person: Mask) -> tuple[int, bool]:
    """(people-sized figures besides the pose's person, whether one of them is bigger than it)."""
    everyone = _people().process(rgb).segmentation_mask
    if everyone is None:
        return 0, False
    rest = (everyone > 0.5) & ~_dilate(person, 7)
    count, _, stats, _ = cv2.connectedComponentsWithStats(rest.astype(np.uint8), connectivity=8)
    own = max(1, int(person.sum()))
    areas = stats[1:, cv2.CC_STAT_AREA]
    return int((areas >= 0.25 * own).sum()), bool((areas > 1.3 * own).any())


def _refine(wlab: Floats, region: Mask, core: Mask, model: _Model, skin: _Model | None) -> Mask:
    ys, xs = np.nonzero(region)
    pixels = wlab[ys, xs]
    d_garment = model.distance(pixels)
    keep = d_garment < model.threshold
    skin_like = np.zeros((SIZE, SIZE), bool)
    if skin is not None:
        d_skin = skin.distance(pixels)
        # Closer to skin than to the garment: arms, neck, hands.
        looks_skin = (d_skin < d_garment) & (d_skin < 14.0)
        keep &= ~looks_skin
        skin_like[ys[looks_skin], xs[looks_skin]] = True
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
    # Fill enclosed holes (prints, logos, badges) that are part of the garment, not an arm across the chest.
    filled = mask.copy()
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, (1,), thickness=-1)
    holes = (filled > 0) & (mask == 0) & region & ~_dilate(skin_like, 2)
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


def _edge_alignment(rgb: Image, mask: Mask, person: Mask, cut: Mask) -> float:
    """Share of the mask's boundary inside the person (not at the person's outline, not where the face or a hand
    was cut out) that lies within 2 px of an image edge: a boundary through the middle of a plain area is a guess."""
    boundary = mask & ~_erode(mask, 1)
    inner = boundary & _erode(person, 3) & ~_dilate(cut, 3)
    inner[:3, :] = inner[-3:, :] = False
    inner[:, :3] = inner[:, -3:] = False
    total = int(inner.sum())
    if total < 40:
        return 1.0  # the garment's outline is the person's: nothing to judge
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 20, 60) > 0
    return float((inner & _dilate(edges, 2)).sum()) / total


def _fail(code: str, message: str, checks: dict[str, float] | None = None) -> Verdict:
    return Verdict(False, code, message, 0.0, checks or {})


def find_region(rgb: Image, clothing: str) -> Region:
    """The garment's mask and the gate's verdict. Raises EngineFailure only when there is nothing to judge (no
    person, bad clothing value); every other refusal is in `verdict`."""
    if clothing not in CLOTHING:
        raise EngineFailure(f"clothing must be one of {', '.join(CLOTHING)}")
    if rgb.shape != (SIZE, SIZE, 3):
        rgb = np.asarray(cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA), np.uint8)
    result = _pose().process(rgb)
    if result.pose_landmarks is None or result.segmentation_mask is None:
        raise EngineFailure("No person found in the photo. Use a photo of one person, upper body or full body visible.")
    lm = np.array([(p.x * SIZE, p.y * SIZE, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)
    person_all = result.segmentation_mask > 0.5
    if person_all.mean() < 0.02:
        raise EngineFailure("No person found in the photo (the detected figure is too small or unclear).")
    person, people, bigger_elsewhere = _main_person(person_all, lm)
    others, bigger = _other_people(rgb, person_all)
    people, bigger_elsewhere = people + others, bigger_elsewhere or bigger
    greyscale = is_greyscale(rgb)
    lab = np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab), np.float32)
    wlab = _weighted(lab, greyscale)
    face = face_box(lm)
    hands = hands_mask(lm)
    protected = hands | head_mask(lm) | (face if face is not None else np.zeros_like(hands))
    notes: list[str] = []
    if people > 1 and not bigger_elsewhere:
        notes.append(f"{people} people in the photo: only the most prominent one is edited.")
    empty = np.zeros((SIZE, SIZE), bool)

    def region(mask: Mask, verdict: Verdict) -> Region:
        return Region(clothing, mask, verdict, lm, lab, face, person, greyscale, notes)

    if bigger_elsewhere:
        return region(empty, _fail(
            "several_people",
            "There are several people in this photo and the engine found a smaller one, not the most prominent: "
            "crop the photo to the one person whose clothing should change.",
        ))

    skin = _model(wlab, face & person, greyscale) if face is not None else None
    top_geometry, top_core = topwear_geometry(lm)
    top_core &= person & ~protected
    torso = _model(wlab, top_core, greyscale)
    legs = _legs(lm, person)

    # A long top (coat, dress) over the thighs: the thighs carry the torso's garment, and no gap between them.
    covered = empty
    if torso is not None and legs is not None and legs.gap is not True:
        # A coat's skirt flares out past the legs' geometry: look a little wider than the legs themselves.
        leg_area = _dilate(legs.geometry, int(0.5 * legs.hw)) & person & ~protected & ~top_geometry
        ys, xs = np.nonzero(leg_area)
        if len(ys):
            like_top = np.zeros((SIZE, SIZE), np.uint8)
            near = torso.distance(wlab[ys, xs]) < torso.threshold
            like_top[ys[near], xs[near]] = 1
            like_top = np.asarray(cv2.morphologyEx(like_top, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)), np.uint8)
            # Only what hangs from the torso garment counts (a same-coloured shoe does not).
            count, labels = cv2.connectedComponents(like_top, connectivity=8)
            attached = np.unique(labels[_dilate(top_geometry & person, 3) & (like_top > 0)])
            attached = attached[attached > 0]
            candidate = np.isin(labels, attached) & leg_area
            # The thighs wear the torso's garment: their seed area is torso-coloured, either in what hangs from
            # the top or inside the top's own (grown) area, which a bent pose tilts over the hips.
            tys, txs = np.nonzero(legs.lower_thighs & person & ~protected)
            thigh_near = torso.distance(wlab[tys, txs]) < torso.threshold
            joined = candidate[tys, txs] | top_geometry[tys, txs]
            if (len(tys) >= 100 and float((thigh_near & joined).mean()) > 0.6
                    and _same_mix(torso, wlab[top_core], wlab[candidate])):
                covered = candidate
                notes.append("A long top (coat or dress) covers the thighs: it is treated as topwear.")

    checks: dict[str, float] = {"people": float(people)}
    if clothing == "topwear":
        geometry = top_geometry | covered
        core = top_core
        model = torso
        what = "top"
    else:
        if legs is None:
            return region(empty, _fail(
                "not_visible", "The bottomwear is not visible in this photo (hips and legs must be in the picture)."
            ))
        geometry = legs.geometry & ~_dilate(covered, 4)
        full_legs = legs.geometry & person & ~protected
        visible = geometry & person & ~protected
        checks["legwear_visible"] = _share(visible, full_legs)
        if covered.any() and checks["legwear_visible"] < MIN_LEGWEAR_VISIBLE:
            return region(empty, _fail("covered_by_long_top", COVERED_MESSAGE, checks))
        core = legs.core & geometry & person & ~protected
        if core.sum() < 150 and covered.any():
            core = _erode(visible, 3)  # legwear below the hem: seed from what shows
        core = _not_skin(core, wlab, skin, greyscale)  # bare thighs under shorts must not seed the garment
        model = _model(wlab, core, greyscale)
        what = "trousers or skirt"
    area = geometry & person & ~protected
    if model is None or area.mean() < 0.015:
        where = "shoulders and chest" if clothing == "topwear" else "hips and legs"
        return region(empty, _fail(
            "not_visible", f"The {clothing} is not visible in this photo ({where} must be in the picture).", checks
        ))

    mask = _refine(wlab, area, core, model, skin)
    mask = _snap_edges(rgb, mask, area)
    mask &= person & ~protected  # never outside the person, never on the face or the hands

    # ------------------------------------------------------------------------------------------- the gate
    filled = mask.astype(np.uint8).copy()
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, (1,), thickness=-1)
    ring = _dilate(person, 10) & ~_dilate(person, 3) & _dilate(geometry, 10)
    ring_px = wlab[ring]
    checks.update(
        coverage=_share(mask, area),
        seed=_share(mask, core),
        body_share=_share(mask, person),
        holes=1.0 - float(mask.sum()) / max(1, int(filled.sum())),
        background_like=float((model.distance(ring_px) < model.threshold).mean()) if len(ring_px) > 50 else 0.0,
        # Garment pixels that look like the face's skin: bare legs or arms taken for the garment.
        skin_like=(
            float(((skin.distance(wlab[mask]) < _skin_near(skin, greyscale))
                   & np.logical_or(not greyscale, model.distance(wlab[mask]) > 3.0)).mean())
            if skin is not None and mask.any() else 0.0
        ),
        edges=_edge_alignment(rgb, mask, person, protected | ~area),
        fraction=float(mask.mean()),
    )
    verdict = _judge(checks, clothing, f"the {what}")
    if not verdict.ok and covered.any() and clothing == "bottomwear":
        # Whatever else failed, the long top over the legwear is the reason a person can act on.
        verdict = _fail("covered_by_long_top", COVERED_MESSAGE, checks)
    return region(mask, verdict)  # a refused region is still shown by the preview


def _same_mix(model: _Model, reference: Floats, other: Floats) -> bool:
    """Whether `other` mixes the model's colours like `reference` does: a coat's skirt is the coat's colours in
    the coat's proportions; red shorts under a red-and-blue striped shirt match one stripe colour only."""
    if len(model.centres) < 2 or len(other) < 50:
        return True
    k = len(model.centres)

    def mix(pixels: Floats) -> Floats:
        d = ((pixels[:, None, :] - model.centres[None, :, :]) ** 2).sum(axis=2)
        counts: Floats = np.bincount(d.argmin(axis=1), minlength=k).astype(np.float64)
        return counts / max(1.0, float(counts.sum()))

    return 0.5 * float(np.abs(mix(reference) - mix(other)).sum()) < 0.35


def _skin_near(skin: _Model, greyscale: bool) -> float:
    return 4.0 if greyscale else 8.0


def _not_skin(seed: Mask, wlab: Floats, skin: _Model | None, greyscale: bool) -> Mask:
    # In a greyscale photo skin and a mid-grey garment share their lightness: lightness alone cannot tell them apart.
    if skin is None or not seed.any() or greyscale:
        return seed
    ys, xs = np.nonzero(seed)
    keep = skin.distance(wlab[ys, xs]) >= _skin_near(skin, greyscale)
    out = np.zeros_like(seed)
    out[ys[keep], xs[keep]] = True
    return out


def _judge(checks: dict[str, float], clothing: str, garment: str) -> Verdict:
    """The gate: the first failed check names the refusal; otherwise a 0..1 score for display."""
    if checks["fraction"] < 0.01 or checks["coverage"] < MIN_COVERAGE:
        return _fail("mostly_hidden", f"Too little of {garment} is visible in this photo (it may be covered by "
                     "an arm, a bag or another garment): try another photo.", checks)
    if checks["seed"] < MIN_SEED:
        return _fail("unclear", f"Could not find one clear colour area for {garment} in this photo: "
                     "try another photo, or the other garment.", checks)
    if checks["body_share"] > MAX_BODY_SHARE[clothing]:
        return _fail("leaks", f"Could not tell {garment} apart from the rest of the person (similar colours): "
                     "try another photo.", checks)
    if checks["background_like"] > MAX_BACKGROUND_LIKE:
        return _fail("background", f"{garment.capitalize()} and the background have about the same colour: "
                     "try a photo with more contrast.", checks)
    if checks["skin_like"] > MAX_SKIN_LIKE:
        return _fail("skin", f"{garment.capitalize()} and the skin have about the same colour: "
                     "try another photo.", checks)
    if checks["edges"] < MIN_EDGES:
        return _fail("edges", f"Could not find the edges of {garment} in this photo: try another photo.", checks)
    score = float(np.clip(
        min(checks["coverage"] / 0.8, 1.0)
        * min(checks["seed"] / 0.9, 1.0)
        * (1.0 - checks["background_like"] * 0.5)
        * (1.0 - checks["skin_like"])
        * min(checks["edges"] / 0.4, 1.0) ** 0.5,
        0.0, 1.0,
    ))
    return Verdict(True, "ok", "", score, checks)
