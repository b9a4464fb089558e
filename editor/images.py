"""Image handling, Pillow only: uploads turned into a clean 512x512 RGB photo (or refused clearly), and the
provider's results checked, re-encoded from pixels and thumbnailed.

Uploads: everything is checked before the first byte is stored, so a refused upload leaves nothing behind:
the type is sniffed by Pillow (never the filename or the browser's content type), the byte size, the
pixel count (decompression bombs) and the smallest side are limited, and the image is fully decoded
(truncated or corrupt files fail here, not in a worker). Normalising means: EXIF orientation applied,
converted to 8-bit sRGB-ish RGB (CMYK, 16-bit, palette and alpha handled), every piece of metadata
dropped (we re-encode from pixels). Two images come out: the original itself (its long side capped at
ORIGINAL_MAX_SIDE), kept privately so the finished edit can be composed back into the whole photo
(editor/compose.py), and the square cut from it (centred, or the user's square) resized to 512x512, which is what
the model sees. The square's place in the original is returned with them.

Animated images (GIF is refused anyway; animated WebP/PNG) keep their first frame: people upload
"live" photos from phones and expect the still.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from django.conf import settings
from PIL import Image, ImageCms, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from editor import content_screening
from editor.errors import Refused

try:  # HEIC/HEIF from phones; registered once per process.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    _HEIF_FORMATS = ["HEIF"]
except ImportError:  # pragma: no cover - pillow-heif is a pinned dependency
    _HEIF_FORMATS = []

ACCEPTED_FORMATS = ["JPEG", "PNG", "WEBP", *_HEIF_FORMATS]
ACCEPTED_LABEL = "JPEG, PNG, WebP or HEIC"
SIDE = 512
THUMBNAIL_SIDE = 256
# The kept original: 4:4:4 at this quality is visually lossless, and a fraction of a PNG's size and encode time.
ORIGINAL_QUALITY = 95


class PhotoRejected(Refused):
    """An upload we refuse; the message is written for the person who uploaded it."""

    field = "image"


@dataclass(frozen=True)
class CropSquare:
    """A user-chosen square, as fractions: left of the width, top of the height, side of the shorter side."""

    left: float
    top: float
    side: float

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        short = min(width, height)
        side = max(1, min(short, round(max(0.05, min(1.0, self.side)) * short)))
        left = min(max(0, round(self.left * width)), width - side)
        top = min(max(0, round(self.top * height)), height - side)
        return left, top, left + side, top + side


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def _too_many_pixels(max_pixels: int, dims: str) -> str:
    return f"This picture has too many pixels{dims}. Please upload one under {max_pixels / 1_000_000:g} megapixels."


def _open_checked(data: IO[bytes]) -> Image.Image:
    """Sniff and fully decode the image, turning every way it can be bad into a PhotoRejected."""
    max_pixels = settings.UPLOAD_MAX_PIXELS
    with warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, then raises; treat both as a bomb.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            try:
                image = Image.open(data, formats=ACCEPTED_FORMATS)
            except UnidentifiedImageError as exc:
                raise PhotoRejected(
                    f"This file is not a picture we can read. Please upload a {ACCEPTED_LABEL} photo."
                ) from exc
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoRejected(_too_many_pixels(max_pixels, f" ({width}x{height})"))
            if min(width, height) < settings.UPLOAD_MIN_SIDE:
                raise PhotoRejected(
                    f"This picture is too small ({width}x{height} pixels). Please upload one at least "
                    f"{settings.UPLOAD_MIN_SIDE} pixels on each side."
                )
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated: keep the first frame (see the module docstring)
            image.load()
            return image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoRejected(_too_many_pixels(max_pixels, "")) from exc
        except PhotoRejected:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise PhotoRejected(
                "This picture looks damaged or incomplete (the file may have been cut off). Please try another."
            ) from exc
        finally:
            Image.MAX_IMAGE_PIXELS = previous_limit


_SRGB = ImageCms.createProfile("sRGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: 16-bit scaled down, alpha flattened on white, CMYK/ICC converted to sRGB."""
    icc = image.info.get("icc_profile")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    if icc and image.mode in ("RGB", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to Pillow's plain conversion below
    return image.convert("RGB") if image.mode != "RGB" else image


@dataclass(frozen=True)
class NormalisedPhoto:
    """An upload made safe: the 512 model input, its thumbnail, and the capped original it was cut from.

    `square` is (left, top, side) of the model input in the original's pixels; the original is the upright,
    metadata-free, sRGB photo, its long side capped at ORIGINAL_MAX_SIDE, stored as a high-quality JPEG."""

    model_input: bytes
    thumbnail: bytes
    original: bytes
    original_size: tuple[int, int]
    square: tuple[int, int, int]


def _cap(image: Image.Image) -> Image.Image:
    limit = settings.ORIGINAL_MAX_SIDE
    width, height = image.size
    if max(width, height) <= limit:
        return image
    scale = limit / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: a cheap integer reduce first, then Lanczos over the last factor of two (same look, ~3x faster).
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _normalised(image: Image.Image, box: tuple[int, int, int, int]) -> NormalisedPhoto:
    square = image.crop(box).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return NormalisedPhoto(
        model_input=_encode_jpeg(square, quality=92),
        thumbnail=_encode_jpeg(square.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS), quality=82),
        original=_encode_jpeg(image, quality=ORIGINAL_QUALITY),
        original_size=image.size,
        square=(box[0], box[1], box[2] - box[0]),
    )


def normalise_image(data: IO[bytes], *, crop: CropSquare | None = None) -> NormalisedPhoto:
    """Decode, check and normalise an upload: the capped original and the 512 square cut from it."""
    image = _open_checked(data)
    try:
        image = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, KeyError):
        pass  # unreadable EXIF: keep the pixels as stored
    image = _cap(_to_rgb(image))
    if settings.UPLOAD_SCREENING:  # the whole upright photo, before any crop: nothing of it is kept if refused
        content_screening.screen_upload(image)
    width, height = image.size
    if crop is None:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    else:
        box = crop.box(width, height)
    return _normalised(image, box)


def normalise_result_photo(data: bytes, *, square: tuple[int, int, int] | None) -> NormalisedPhoto:
    """A finished edit's (full-resolution) result as the next edit's photo: the model input is its square at the
    same place as the previous edit's (`square`, in the result's pixels), or the centred square."""
    image = _to_rgb(_open_checked(io.BytesIO(data)))
    width, height = image.size
    if square is not None and square[2] > 0 and square[0] + square[2] <= width and square[1] + square[2] <= height:
        left, top, side = square
    else:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
    # Not capped again: a composed result already is, and the square's coordinates must stay valid.
    return _normalised(image, (left, top, left + side, top + side))


def _encode_jpeg(image: Image.Image, *, quality: int) -> bytes:
    out = io.BytesIO()
    # A fresh image from the raw pixels: Pillow would otherwise copy .info (comments, EXIF, XMP, ICC) into the
    # new file. Nothing about the original (camera, GPS position, editing software) leaks.
    clean = Image.frombytes("RGB", image.size, image.convert("RGB").tobytes())
    # No optimize=True: Pillow then sizes its buffer at one byte per pixel, and a very detailed photo at
    # 4:4:4 needs more, which fails the save ("broken data stream").
    clean.save(out, format="JPEG", quality=quality, subsampling=0)
    return out.getvalue()


def check_upload_size(size: int | None) -> None:
    if size is not None and size > settings.UPLOAD_MAX_BYTES:
        raise PhotoRejected(
            f"This file is too big ({_mb(size)}). The limit is {_mb(settings.UPLOAD_MAX_BYTES)}."
        )
    if size == 0:
        raise PhotoRejected("This file is empty. Please choose another photo.")



# --- Edit results ---------------------------------------------------------------------------------

def make_thumbnail(decoded: Image.Image, *, side: int = THUMBNAIL_SIDE, quality: int = 82) -> bytes:
    """A WebP thumbnail at most `side` pixels wide and high (aspect kept), RGB, no metadata.

    Takes the image already decoded by the download check: decoding it again cost as much as the thumbnail."""
    image = ImageOps.exif_transpose(decoded).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # method 2 instead of 4: ~30 % less CPU per thumbnail for ~3 % more bytes (docs/performance.md, Edit jobs).
    image.save(out, format="WEBP", quality=quality, method=2)
    return out.getvalue()


def image_mime(data: bytes) -> str:
    """The MIME type Pillow sniffs from the bytes (never from a file name)."""
    with Image.open(io.BytesIO(data)) as image:
        return Image.MIME.get(str(image.format), "application/octet-stream")


AI_MARK_TEXT = "AI-edited"


def _ai_mark_layout(width: int, height: int) -> tuple[int, int, tuple[int, int, int, int]]:
    """(font size, padding, label box) of the visible mark: bottom right, scaled with the image."""
    font_size = max(11, round(min(width, height) / 32))
    pad = max(3, font_size // 2)
    left, top, right, bottom = (round(v) for v in ImageFont.load_default(size=font_size).getbbox(AI_MARK_TEXT))
    box_right, box_bottom = width - pad, height - pad
    box = (box_right - (right - left) - 2 * pad, box_bottom - (bottom - top) - 2 * pad, box_right, box_bottom)
    return font_size, pad, box


def ai_mark_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the visible mark goes (left, top, right, bottom; right and bottom exclusive, as for a crop): the only
    pixels it changes."""
    left, top, right, bottom = _ai_mark_layout(width, height)[2]
    return left, top, right + 1, bottom + 1  # the drawn rectangle includes its right and bottom edges


def _with_ai_mark(image: Image.Image) -> Image.Image:
    """A visible "AI-edited" label in the bottom-right corner (RESULT_AI_MARK): white on a translucent dark box."""
    font_size, pad, box = _ai_mark_layout(*image.size)
    font = ImageFont.load_default(size=font_size)
    marked = image.copy()
    draw = ImageDraw.Draw(marked, "RGBA")
    draw.rounded_rectangle(box, radius=max(2, pad // 2), fill=(0, 0, 0, 150))
    left, top, _right, _bottom = (round(v) for v in font.getbbox(AI_MARK_TEXT))
    draw.text((box[0] + pad - left, box[1] + pad - top), AI_MARK_TEXT, font=font, fill=(255, 255, 255, 235))
    return marked


def draw_ai_mark_on(pixels: np.ndarray[Any, Any]) -> None:
    """The visible mark drawn into an H x W x 3 uint8 RGB array in place (the full-resolution result), laid out
    for the whole image as `_with_ai_mark` does, but drawn on its box alone (no copy of the whole photo)."""
    height, width = pixels.shape[:2]
    font_size, pad, box = _ai_mark_layout(width, height)
    left, top, right, bottom = ai_mark_box(width, height)
    crop = Image.fromarray(np.ascontiguousarray(pixels[top:bottom, left:right]))
    font = ImageFont.load_default(size=font_size)
    draw = ImageDraw.Draw(crop, "RGBA")
    draw.rounded_rectangle((0, 0, box[2] - left, box[3] - top), radius=max(2, pad // 2), fill=(0, 0, 0, 150))
    text_left, text_top, _right, _bottom = (round(v) for v in font.getbbox(AI_MARK_TEXT))
    draw.text((pad - text_left, pad - text_top), AI_MARK_TEXT, font=font, fill=(255, 255, 255, 235))
    pixels[top:bottom, left:right] = np.asarray(crop)


PNG_COMPRESS_LEVEL = 1


def clean_result(decoded: Image.Image, *, ai_mark: bool = False) -> tuple[bytes, str]:
    """The result as we store it: always re-encoded from its pixels, never the provider's bytes (those can carry
    text chunks, EXIF/GPS, or HTML after the image's end). JPEG stays JPEG, anything else becomes PNG; the EXIF
    orientation is applied first so the result looks as it did. `ai_mark` draws the visible "AI-edited" label.
    Returns (bytes, extension); a C2PA manifest is added afterwards, to these bytes (editor/provenance.py)."""
    try:
        upright = ImageOps.exif_transpose(decoded) or decoded
    except (OSError, ValueError, SyntaxError, KeyError):
        upright = decoded  # unreadable EXIF: keep the pixels as stored
    if ai_mark:
        transparent = "A" in upright.getbands() or "transparency" in upright.info
        if upright.mode not in ("RGB", "RGBA"):
            upright = upright.convert("RGBA") if transparent else _to_rgb(upright)
        upright = _with_ai_mark(upright)
    if decoded.format == "JPEG":
        return _encode_jpeg(_to_rgb(upright), quality=95), ".jpg"
    if "A" in upright.getbands() or upright.mode in ("P", "PA") and "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        fresh = Image.frombytes("RGBA", rgba.size, rgba.tobytes())
    else:
        rgb = _to_rgb(upright)
        fresh = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    out = io.BytesIO()
    # zlib level 1: a third of the default's CPU (~18 ms against ~54 ms for a 512 square photo) for ~10 % more
    # bytes; this encode is on every edit's path from COMPLETED to stored (docs/performance.md "Edit jobs").
    fresh.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue(), ".png"


def public_copy(data: bytes, *, quality: int = 90) -> bytes:
    """A JPEG of the pixels only, for a public share page: whatever metadata a stored file might carry (EXIF, GPS,
    XMP, ICC, comments) is not in it. Stored files are already clean; this holds even if one were not."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return _encode_jpeg(image, quality=quality)
