"""Full-resolution results: carry the provider's 512x512 edit back into the whole original photo. Pure numpy/OpenCV,
no Django: editor/services/compose.py reads and stores the files, this module only computes pixels.

The provider edits a 512 square cut from the original (`Square`, in the original's pixels) and answers with its own
512 square. A generative provider moves the whole picture a pixel or two, adds noise everywhere and may redraw the
garment with another texture or a slightly different outline. So:

1. **Align**: phase correlation of the two 512 squares' luminance finds a small global shift; the output is moved
   back onto the input before anything is compared.
2. **Change mask** (512 scale): CIELAB difference, blurred (noise averages out), thresholded with hysteresis (a
   strong core, grown through connected weaker change; isolated noise specks have no core and vanish), holes
   filled, dilated a little and feathered. It fades to zero at the square's sides that lie inside the photo, so
   nothing can end in a hard line at the square's border.
3. **Carry the edit up** (full scale, only inside the mask's bounding box, in strips): the colour change (output
   minus input, in Lab) is upsampled with a fast guided filter whose guide is the original's own lightness, so the
   change follows the original's edges at full resolution; added to the original's Lab it keeps the original's
   luminance detail (folds, weave, stitching). Where the provider changed the structure (local correlation of the
   two squares' lightness is low: a new pattern, a moved edge) the upscaled output is used instead.
4. **Paste** into the whole photo with the (guided, feathered) mask. Outside the mask the original's pixels are
   untouched: bit-identical. At full resolution the fade at the square's sides starts on an 8x8 block boundary.
5. **JPEG** (`compose_files`): editor/jpeg_blocks.py keeps the stored original's own coefficients in every 8x8 block
   the compose did not change, so the stored result is the original there too, not a re-encode of it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from editor import jpeg_blocks

SIDE = 512

RGB = NDArray[np.uint8]  # H x W x 3
Floats = NDArray[np.float32]

# Change detection, in CIELAB Delta E (76) after the blur; a just noticeable difference is about 2.3.
BLUR_SIGMA = 1.5
HIGH_DELTA_E = 12.0  # a region must reach this somewhere to count as changed
LOW_DELTA_E = 5.0  # ... and it grows through connected pixels above this
MIN_REGION_PIXELS = 48  # changed regions smaller than this (at 512) are noise
DILATE_PIXELS = 2
FEATHER_SIGMA = 2.0
BORDER_FADE_PIXELS = 16  # the mask fades to zero over this many (512-scale) pixels at the square's inner sides
MAX_SHIFT_PIXELS = 8.0  # a larger "global shift" is not the provider's jitter: ignore it
MIN_SHIFT_PIXELS = 0.25  # a smaller one is not worth an interpolation (which blurs)
# Structure: local correlation (SSIM's structure term) of the two squares' lightness.
STRUCTURE_RADIUS = 3
STRUCTURE_LOW, STRUCTURE_HIGH = 0.35, 0.75  # below LOW: fall back to the output; above HIGH: transfer
# Fast guided filter (at 512 scale): window radius and regularisation (guide in 0..1).
GUIDE_RADIUS = 2
GUIDE_EPS = 1e-3
STRIP_PIXELS = 1 << 15  # full-resolution pixels processed at a time: a strip's float32 temporaries are ~1 MiB each


@dataclass(frozen=True)
class Square:
    """The square the provider saw, in the original's pixels."""

    left: int
    top: int
    side: int

    def inside(self, width: int, height: int) -> bool:
        return self.side > 0 and self.left >= 0 and self.top >= 0 and self.left + self.side <= width and (
            self.top + self.side <= height
        )


@dataclass
class ComposeReport:
    shift: tuple[float, float] = (0.0, 0.0)  # the output's global shift against the input (512 pixels)
    changed_fraction: float = 0.0  # of the square, at 512
    transferred_fraction: float = 1.0  # of the changed area, carried by colour transfer (rest: upscaled output)
    region: tuple[int, int, int, int] = (0, 0, 0, 0)  # full-resolution box worked on (left, top, right, bottom)
    # region-sized: how far (levels, the largest channel's) each pixel moved from the original (None: none did)
    written: NDArray[np.uint8] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ComposeError(ValueError):
    """The inputs cannot be composed (wrong shapes, a square outside the photo)."""


# ------------------------------------------------------------------------------------------------ 512 analysis


def _as_square(image: RGB) -> RGB:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ComposeError(f"expected an RGB image, got shape {image.shape}")
    if image.shape[:2] == (SIDE, SIDE):
        return image
    shrink = image.shape[0] > SIDE or image.shape[1] > SIDE
    return np.asarray(
        cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC), np.uint8
    )


def _lab(rgb: RGB) -> Floats:
    scaled = rgb.astype(np.float32)
    scaled *= 1.0 / 255.0
    return np.asarray(cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab), np.float32)


def global_shift(model_input: RGB, model_output: RGB) -> tuple[float, float]:
    """(dx, dy): how far the output's content sits from the input's (phase correlation of their lightness)."""
    a = cv2.cvtColor(model_input, cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(model_output, cv2.COLOR_RGB2GRAY).astype(np.float32)
    window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
    (dx, dy), _response = cv2.phaseCorrelate(a, b, window)
    if not (abs(dx) <= MAX_SHIFT_PIXELS and abs(dy) <= MAX_SHIFT_PIXELS):
        return 0.0, 0.0
    return float(dx), float(dy)


def align(model_output: RGB, shift: tuple[float, float]) -> RGB:
    """The output moved back by `shift` (edges replicated)."""
    dx, dy = shift
    if abs(dx) < MIN_SHIFT_PIXELS and abs(dy) < MIN_SHIFT_PIXELS:
        return model_output
    matrix = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], np.float32)
    return np.asarray(
        cv2.warpAffine(model_output, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        np.uint8,
    )


def _hysteresis(strength: Floats, low: float, high: float) -> NDArray[np.bool_]:
    weak = (strength > low).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    if count <= 1:
        return np.zeros(strength.shape, bool)
    peak = np.zeros(count, np.float32)
    np.maximum.at(peak, np.asarray(labels, np.intp).ravel(), strength.ravel())
    keep = (peak > high) & (stats[:, cv2.CC_STAT_AREA] >= MIN_REGION_PIXELS)
    keep[0] = False
    return np.asarray(keep[labels], bool)


def _fill_holes(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Holes (background components not touching the square's border) become part of the mask."""
    inverse = (~mask).astype(np.uint8)
    count, labels = cv2.connectedComponents(inverse, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    hole = np.ones(count, bool)
    hole[border] = False
    hole[0] = False
    return np.asarray(mask | hole[labels], bool)


def _border_fade(fade_sides: tuple[bool, bool, bool, bool]) -> Floats:
    """1 inside, ramping to 0 at the sides (left, top, right, bottom) that lie inside the photo."""
    # 0 on the border pixel itself, so the edit meets the untouched photo there without a step.
    ramp = np.clip(np.arange(SIDE, dtype=np.float32) / BORDER_FADE_PIXELS, 0.0, 1.0)
    ones = np.ones(SIDE, np.float32)
    left, top, right, bottom = fade_sides
    horizontal = (ramp if left else ones) * (ramp[::-1] if right else ones)
    vertical = (ramp if top else ones) * (ramp[::-1] if bottom else ones)
    return np.asarray(np.outer(vertical, horizontal), np.float32)


def _change(model_input: RGB, aligned_output: RGB, shift: tuple[float, float]) -> Floats:
    """The soft change mask (0..1, 512x512) before the fade at the square's sides."""
    delta = np.sqrt(np.sum((_lab(model_input) - _lab(aligned_output)) ** 2, axis=2)).astype(np.float32)
    moved = max(abs(shift[0]), abs(shift[1]))
    edge = int(np.ceil(moved)) + 1 if moved >= MIN_SHIFT_PIXELS else 0
    if edge:
        # The rows and columns the alignment had to invent (edge pixels repeated) say nothing: take their
        # neighbours' difference instead, so a garment still reaches the border and the border adds nothing.
        inner = np.ascontiguousarray(delta[edge:-edge, edge:-edge])
        delta = np.asarray(cv2.copyMakeBorder(inner, edge, edge, edge, edge, cv2.BORDER_REPLICATE), np.float32)
    delta = np.asarray(cv2.GaussianBlur(delta, (0, 0), BLUR_SIGMA), np.float32)
    changed = _hysteresis(delta, LOW_DELTA_E, HIGH_DELTA_E)
    if not changed.any():
        return np.zeros((SIDE, SIDE), np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    changed = cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    changed = _fill_holes(changed)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * DILATE_PIXELS + 1,) * 2)
    changed = cv2.dilate(changed.astype(np.uint8), grow).astype(bool)
    soft = np.asarray(cv2.GaussianBlur(changed.astype(np.float32), (0, 0), FEATHER_SIGMA), np.float32)
    soft[soft < 1.0 / 256] = 0.0
    return soft


def change_mask(
    model_input: RGB, aligned_output: RGB, *, fade_sides: tuple[bool, bool, bool, bool] = (True,) * 4,
    shift: tuple[float, float] = (0.0, 0.0),
) -> Floats:
    """The soft change mask (0..1, 512x512) between the input and the aligned output, faded at `fade_sides`."""
    faded = _change(model_input, aligned_output, shift) * _border_fade(fade_sides)
    faded[faded < 1.0 / 256] = 0.0
    return np.asarray(faded, np.float32)


def structure_weight(input_lab: Floats, output_lab: Floats) -> Floats:
    """1 where the output keeps the input's structure (transfer the colour), 0 where it redrew it (use the output)."""
    size = (2 * STRUCTURE_RADIUS + 1,) * 2
    a, b = input_lab[..., 0], output_lab[..., 0]
    mean_a, mean_b = cv2.blur(a, size), cv2.blur(b, size)
    var_a = np.maximum(cv2.blur(a * a, size) - mean_a * mean_a, 0.0)
    var_b = np.maximum(cv2.blur(b * b, size) - mean_b * mean_b, 0.0)
    cov = cv2.blur(a * b, size) - mean_a * mean_b
    c3 = 4.5  # SSIM's C2 / 2 for lightness 0..100: flat against flat counts as the same structure
    correlation = (cov + c3) / (np.sqrt(var_a * var_b) + c3)
    weight = np.clip((correlation - STRUCTURE_LOW) / (STRUCTURE_HIGH - STRUCTURE_LOW), 0.0, 1.0).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(weight, (0, 0), 1.5), np.float32)


def _guided_coefficients(guide: Floats, targets: Floats, *, in_place: bool = False) -> tuple[Floats, Floats]:
    """He & Sun's fast guided filter, low-resolution half: per-pixel (a, b) with target ~ a * guide + b.
    One channel at a time: the same arithmetic, with few 512 x 512 temporaries alive at once; with `in_place`,
    b is written over `targets`."""
    size = (2 * GUIDE_RADIUS + 1,) * 2
    mean_p = cv2.blur(guide, size)
    var_p = cv2.blur(guide * guide, size) - mean_p * mean_p
    var_p += GUIDE_EPS
    coef_a = np.empty(targets.shape, np.float32)
    coef_b = targets if in_place else np.empty(targets.shape, np.float32)
    for channel in range(targets.shape[2]):
        target = np.ascontiguousarray(targets[..., channel])
        mean_q = np.asarray(cv2.blur(target, size), np.float32)
        a = np.asarray(cv2.blur(target * guide, size), np.float32)  # corr(p, q) ...
        a -= mean_p * mean_q
        a /= var_p  # ... = (corr(p, q) - mean(p) mean(q)) / (var(p) + eps)
        mean_q -= a * mean_p  # b = mean(q) - a mean(p)
        coef_a[..., channel] = cv2.blur(a, size)
        coef_b[..., channel] = cv2.blur(mean_q, size)
    return coef_a, coef_b


# ------------------------------------------------------------------------------------------------ full resolution


def _axis_map(start: int, stop: int, scale: float) -> Floats:
    """Low-resolution coordinates of full-resolution pixels start..stop-1 (pixel centres aligned, as cv2.resize)."""
    return ((np.arange(start, stop, dtype=np.float32) + 0.5) * scale - 0.5).astype(np.float32)


def _mask_box(mask: Floats, square: Square, width: int, height: int) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    scale = square.side / SIDE
    left = square.left + max(0, int(np.floor((cols.min() - 1) * scale)))
    top = square.top + max(0, int(np.floor((rows.min() - 1) * scale)))
    right = square.left + min(square.side, int(np.ceil((cols.max() + 2) * scale)))
    bottom = square.top + min(square.side, int(np.ceil((rows.max() + 2) * scale)))
    return left, top, min(right, width), min(bottom, height)


def compose(
    original: RGB, square: Square, model_input: RGB, model_output: RGB, *, in_place: bool = False,
    strip_pixels: int = STRIP_PIXELS,
) -> tuple[RGB, ComposeReport]:
    """The whole original with the provider's edit carried into it at full resolution.

    `original` is H x W x 3 uint8 (the normalised original), `model_input` the 512 square the provider was sent
    (cut from `original` at `square`), `model_output` its answer (any size; resized to 512). With `in_place` the
    original's array is written (saves one full-size copy); pixels outside the change mask are never written.
    `report.written` says how far each pixel of `report.region` moved from the original (the JPEG keeps the rest)."""
    if original.ndim != 3 or original.shape[2] != 3 or original.dtype != np.uint8:
        raise ComposeError(f"the original must be H x W x 3 uint8, got {original.shape} {original.dtype}")
    height, width = original.shape[:2]
    if not square.inside(width, height):
        raise ComposeError(f"the square {square} is not inside the {width}x{height} original")
    model_input = _as_square(model_input)
    model_output = _as_square(model_output)
    report = ComposeReport()
    report.shift = global_shift(model_input, model_output)
    aligned = align(model_output, report.shift)
    fade_sides = (
        square.left > 0, square.top > 0, square.left + square.side < width, square.top + square.side < height
    )
    unfaded = _change(model_input, aligned, report.shift)
    fade = _border_fade(fade_sides)
    mask = unfaded * fade
    mask[mask < 1.0 / 256] = 0.0
    result = original if in_place else original.copy()
    report.changed_fraction = float((mask > 0).mean())
    box = _mask_box(mask, square, width, height)
    if box is None:
        return result, report
    report.region = box

    input_lab, output_lab = _lab(model_input), _lab(aligned)
    structure = structure_weight(input_lab, output_lab)
    inside = mask > 0.5
    report.transferred_fraction = float(structure[inside].mean()) if inside.any() else 1.0
    guide = input_lab[..., 0] * (1.0 / 100.0)
    # One guided filter for the three Lab channels of the change and the mask itself (its edge snaps to the
    # original's edges at full resolution); the fade at the square's sides is applied after it, so the guide
    # cannot pull the edit back up to the border.
    targets = np.dstack([output_lab - input_lab, unfaded]).astype(np.float32)
    del input_lab, output_lab, inside, unfaded
    # Lightness: only the local mean change is carried (no gain on the guide), so the original's own detail keeps
    # its full contrast; the chroma channels and the mask follow the guide's edges.
    window = (2 * GUIDE_RADIUS + 1,) * 2
    lightness = cv2.blur(cv2.blur(targets[..., 0], window), window)
    coef_a, coef_b = _guided_coefficients(guide, targets, in_place=True)
    coef_a[..., 0] = 0.0
    coef_b[..., 0] = lightness
    del targets, guide, lightness
    plain = np.dstack([mask, structure]).astype(np.float32)
    del structure, fade
    output_float = aligned.astype(np.float32)

    left, top, right, bottom = box
    scale = SIDE / square.side
    map_x = _axis_map(left - square.left, right - square.left, scale)
    fade_x = _full_fade(left, right, square.left, square.left + square.side, scale, fade_sides[0], fade_sides[2])
    # The full-resolution work is per pixel (every neighbourhood filter ran at 512 above), so the strips need no
    # overlap and any strip height gives the same pixels (tests/jobs/test_compose_photos.py checks it).
    strip_rows = max(8, strip_pixels // max(1, right - left))
    report.written = np.zeros((bottom - top, right - left), np.uint8)
    for row in range(top, bottom, strip_rows):
        row_end = min(bottom, row + strip_rows)
        map_y = _axis_map(row - square.top, row_end - square.top, scale)
        grid_x = np.ascontiguousarray(np.broadcast_to(map_x, (row_end - row, map_x.size)))
        grid_y = np.ascontiguousarray(np.broadcast_to(map_y[:, None], (row_end - row, map_x.size)))
        fade = np.outer(
            _full_fade(row, row_end, square.top, square.top + square.side, scale, fade_sides[1], fade_sides[3]), fade_x
        ).astype(np.float32)
        written = _compose_strip(
            result[row:row_end, left:right], original[row:row_end, left:right] if not in_place else None,
            grid_x, grid_y, coef_a, coef_b, plain, output_float, fade,
        )
        del grid_x, grid_y
        if written is not None:
            report.written[row - top:row_end - top] = written
    return result, report


def _full_fade(start: int, stop: int, low: int, high: int, scale: float, fade_low: bool, fade_high: bool) -> Floats:
    """The fade at the square's inner sides for full-resolution pixels start..stop-1 along one axis (the square
    spans low..high): the 512 ramp (0 on the border line, 1 after BORDER_FADE_PIXELS), but starting from the first
    8x8 JPEG block boundary inside the square, so the block the border crosses is not changed at all and keeps
    the original's own JPEG coefficients (re-coding it would move the photo's pixels beside the square)."""
    at = np.arange(start, stop, dtype=np.float32) + 0.5
    fade = np.ones(stop - start, np.float32)
    if fade_low:
        begin = -(-low // 8) * 8
        fade = np.minimum(fade, np.clip(((at - begin) * scale - 0.5) / BORDER_FADE_PIXELS, 0.0, 1.0))
    if fade_high:
        end = high // 8 * 8
        fade = np.minimum(fade, np.clip(((end - at) * scale - 0.5) / BORDER_FADE_PIXELS, 0.0, 1.0))
    return np.asarray(fade, np.float32)


def _remap(source: Floats, grid_x: Floats, grid_y: Floats, interpolation: int) -> Floats:
    out = cv2.remap(source, grid_x, grid_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out if out.ndim == 3 else out[..., None], np.float32)


def _compose_strip(
    target: RGB, source: RGB | None, grid_x: Floats, grid_y: Floats, coef_a: Floats, coef_b: Floats,
    plain: Floats, output_float: Floats, fade: Floats,
) -> NDArray[np.uint8] | None:
    """One strip of the mask's box: transfer or fall back, then blend into `target` (a view of the result).
    Returns how far each of the strip's pixels moved (levels; None: none can have). The arithmetic is the same as
    ever, in place where it can be, so a strip holds a few float32 copies of itself at a time."""
    pixels = target if source is None else source
    flat = _remap(plain, grid_x, grid_y, cv2.INTER_LINEAR)
    support = flat[..., 0] > 0.0
    if not support.any():
        return None
    original = pixels.astype(np.float32)
    lab = np.asarray(cv2.cvtColor(original * (1.0 / 255.0), cv2.COLOR_RGB2Lab), np.float32)
    guide = lab[..., 0:1] * (1.0 / 100.0)
    change = _remap(coef_a, grid_x, grid_y, cv2.INTER_LINEAR)
    change *= guide
    change += _remap(coef_b, grid_x, grid_y, cv2.INTER_LINEAR)
    del guide
    alpha = np.clip(change[..., 3], 0.0, 1.0)
    alpha *= fade
    alpha[~support] = 0.0
    lab += change[..., :3]
    del change, support
    transferred = np.asarray(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), np.float32)
    del lab
    transferred *= 255.0
    edited = _remap(output_float, grid_x, grid_y, cv2.INTER_CUBIC)  # the upscaled output ...
    transferred -= edited
    transferred *= flat[..., 1:2]
    edited += transferred  # ... moved towards the transfer by the structure weight
    del transferred, flat
    edited -= original
    edited *= alpha[..., None]
    edited += original  # the blend: original + alpha * (edited - original)
    del original, alpha
    edited += 0.5
    np.clip(edited, 0, 255, out=edited)
    blended = edited.astype(np.uint8)
    del edited
    # Where alpha is 0 this is the original's own integer value again: untouched pixels stay bit-identical.
    written = np.asarray(cv2.absdiff(blended, pixels).max(axis=2), np.uint8)
    np.copyto(target, blended)
    return written


# ------------------------------------------------------------------------------------------------ files


RESULT_QUALITY = 95  # 4:4:4, the same as the kept original: re-encoding untouched pixels changes them very little
PREVIEW_SIDE = 256


@dataclass
class ComposedFiles:
    jpeg: bytes  # the full-resolution result
    preview: RGB  # at most PREVIEW_SIDE on its long side, for the thumbnail
    size: tuple[int, int]
    report: ComposeReport


def decode_rgb(data: bytes) -> RGB:
    """Any image OpenCV reads (our stored JPEG/PNG files) as RGB, EXIF ignored (our files carry none)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ComposeError("an image could not be decoded")
    cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second full-size copy
    return np.asarray(image, np.uint8)


def encode_jpeg_consuming(rgb: RGB, quality: int = RESULT_QUALITY) -> bytes:
    """JPEG bytes of `rgb`, which is turned into BGR in place to spare a full-size copy (do not use it after)."""
    cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, encoded = cv2.imencode(".jpg", rgb, params)
    if not ok:
        raise ComposeError("the result could not be encoded")
    return bytes(encoded.tobytes())


def compose_files(
    *, original: bytes, square: Square, model_input: bytes, model_output: bytes,
    ignore_box: tuple[int, int, int, int] | None = None, finish: Callable[[RGB], None] | None = None,
    finish_box: Callable[[int, int], tuple[int, int, int, int]] | None = None,
) -> ComposedFiles:
    """compose() on stored files: decode, compose in place, encode.

    `ignore_box` (left, top, right, bottom of the 512 output) is not an edit (our own visible mark on the stored
    square); `finish` draws on the composed result in place before it is encoded (the mark, at full size), only
    inside `finish_box(width, height)`. The JPEG keeps the original's own 8x8 blocks wherever no pixel changed
    (editor/jpeg_blocks.py), so the photo outside the edit is exactly the stored original's, not a re-encode."""
    try:
        pixels = decode_rgb(original)
        inputs, output = decode_rgb(model_input), _as_square(decode_rgb(model_output))
        if ignore_box is not None:
            left, top, right, bottom = ignore_box
            output = output.copy()
            output[top:bottom, left:right] = _as_square(inputs)[top:bottom, left:right]
        result, report = compose(pixels, square, inputs, output, in_place=True)
        del inputs, output
    except cv2.error as exc:  # OpenCV's own failures (an odd size, out of memory) as one error type
        raise ComposeError(f"OpenCV: {exc}") from exc
    height, width = result.shape[:2]
    patches: list[jpeg_blocks.Patch] | None = []
    if report.written is not None:
        patches = [(report.region[0], report.region[1], report.written)]
    if finish is not None:
        if finish_box is None:
            patches = None  # it may draw anywhere: encode the pixels
            finish(result)
        else:
            left, top, right, bottom = finish_box(width, height)
            before = result[top:bottom, left:right].copy()
            finish(result)
            patches = [*(patches or []), (left, top, cv2.absdiff(result[top:bottom, left:right], before).max(axis=2))]
    scale = PREVIEW_SIDE / max(width, height)
    preview = np.asarray(
        cv2.resize(result, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        if scale < 1 else result.copy(),
        np.uint8,
    )
    writer = jpeg_blocks.BlockWriter.open(original, width, height) if patches is not None else None
    if writer is None or patches is None:
        return ComposedFiles(jpeg=encode_jpeg_consuming(result), preview=preview, size=(width, height), report=report)
    # Only the changed blocks' pixels are needed now: the whole decoded photo goes before the coefficients come.
    box = jpeg_blocks.block_box(patches, width, height)
    region = result[box[1]:box[3], box[0]:box[2]].copy() if box else np.zeros((0, 0, 3), np.uint8)
    del result, pixels
    jpeg = writer.write(region, box, patches)
    if jpeg is None:  # the coefficients could not be read after all: encode the pixels as before
        result = decode_rgb(original)
        if box:
            result[box[1]:box[3], box[0]:box[2]] = region
        jpeg = encode_jpeg_consuming(result)
    return ComposedFiles(jpeg=jpeg, preview=preview, size=(width, height), report=report)
