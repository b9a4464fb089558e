"""Small image helpers for edit results (thumbnails). Pillow only, bytes in and bytes out."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

THUMBNAIL_SIDE = 256


def make_thumbnail(data: bytes, *, side: int = THUMBNAIL_SIDE, quality: int = 82) -> bytes:
    """A WebP thumbnail at most `side` pixels wide and high (aspect kept), RGB, no metadata."""
    with Image.open(io.BytesIO(data)) as opened:
        image: Image.Image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=quality, method=4)
    return out.getvalue()


def image_mime(data: bytes) -> str:
    """The MIME type Pillow sniffs from the bytes (never from a file name)."""
    with Image.open(io.BytesIO(data)) as image:
        return Image.MIME.get(str(image.format), "application/octet-stream")


def clean_result(data: bytes, image_format: str) -> tuple[bytes, str]:
    """Keep PNG and JPEG results as they are; re-encode anything else to PNG. Returns (bytes, extension)."""
    if image_format == "PNG":
        return data, ".png"
    if image_format == "JPEG":
        return data, ".jpg"
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, format="PNG")
        return out.getvalue(), ".png"
