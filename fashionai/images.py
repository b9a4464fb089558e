"""Decoding and normalising input images (runs in the HTTP process, in a thread): Pillow only, no engine imports."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = 512


class ImageError(ValueError):
    """The input cannot be used as an image; the message is shown to the API caller."""


def decode_data_uri_or_base64(value: str, *, max_bytes: int) -> bytes:
    """`data:image/png;base64,....` or bare base64 -> bytes."""
    text = value.strip()
    if text.startswith("data:"):
        header, sep, payload = text.partition(",")
        if not sep or ";base64" not in header:
            raise ImageError("image data URI must be base64 encoded (data:image/...;base64,...)")
        text = payload
    # Cheap size check before decoding: base64 is 4 chars per 3 bytes.
    if len(text) * 3 // 4 > max_bytes:
        raise ImageError(f"image is too large (more than {max_bytes} bytes)")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image must be an http(s) URL, a data: URI or base64-encoded image bytes") from None


def probe(data: bytes, *, max_pixels: int) -> None:
    """Cheap check at submit time (header only, no pixels decoded): a readable image within the pixel limit.
    The decode itself happens in the engine worker, so queued jobs hold compressed bytes, not pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"image could not be decoded ({exc.__class__.__name__})") from None
    if width * height > max_pixels:
        raise ImageError(f"image has too many pixels ({width}x{height}; limit {max_pixels})")


def load_rgb_512(data: bytes, *, max_pixels: int) -> NDArray[np.uint8]:
    """Decode any Pillow-readable image, honour EXIF orientation, center-crop and resize to 512x512 RGB (uint8)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between MAX_IMAGE_PIXELS and 2x; we check ourselves below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"image has too many pixels ({width}x{height}; limit {max_pixels})")
            image.draft("RGB", (SIZE * 2, SIZE * 2))  # JPEG: decode at a reduced scale, much faster for big photos
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"image could not be decoded ({exc.__class__.__name__})") from None
    fitted = ImageOps.fit(rgb, (SIZE, SIZE), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8).copy()


def encode_png(rgb: NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
