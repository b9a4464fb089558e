"""The result helpers work on the image the download check decoded once (editor/images.py)."""
from __future__ import annotations

import io

from PIL import Image

from editor import images


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def test_png_and_jpeg_results_are_re_encoded_from_their_pixels() -> None:
    picture = Image.new("RGB", (40, 30), (200, 10, 10))
    for fmt, extension in (("PNG", ".png"), ("JPEG", ".jpg")):
        data = encoded(picture, fmt)
        cleaned, got = images.clean_result(decoded(data))
        assert got == extension
        result = decoded(cleaned)
        assert result.format == fmt and result.size == (40, 30)
        red, green, blue = result.convert("RGB").getpixel((20, 15))  # type: ignore[misc]
        assert red > 190 and green < 25 and blue < 25


def test_other_formats_become_png_with_their_pixels_and_alpha() -> None:
    picture = Image.new("RGBA", (40, 30), (10, 20, 30, 128))
    data = encoded(picture, "WEBP", lossless=True)
    cleaned, extension = images.clean_result(decoded(data))
    assert extension == ".png"
    result = decoded(cleaned)
    assert result.format == "PNG" and result.mode == "RGBA"
    assert result.getpixel((5, 5)) == (10, 20, 30, 128)


def test_thumbnail_is_a_small_upright_webp_without_metadata() -> None:
    picture = Image.new("RGB", (600, 300), (0, 128, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    data = encoded(picture, "JPEG", exif=exif.tobytes())
    thumbnail = decoded(images.make_thumbnail(decoded(data)))
    assert thumbnail.format == "WEBP" and thumbnail.mode == "RGB"
    assert thumbnail.size == (128, 256)  # turned upright, then fitted in 256 x 256
    assert not thumbnail.getexif()


def _zlib_levels(png: bytes) -> set[int]:
    """FLEVEL (0 fastest .. 3 maximum) of the zlib stream in the first IDAT chunk."""
    offset, levels = 8, set()
    while offset < len(png):
        length = int.from_bytes(png[offset:offset + 4], "big")
        kind = png[offset + 4:offset + 8]
        if kind == b"IDAT":
            levels.add(png[offset + 9] >> 6)  # the zlib header's second byte
            break
        offset += 12 + length
    return levels


def test_png_results_are_encoded_at_a_fast_zlib_level() -> None:
    """The finish step's re-encode is on the path from COMPLETED to stored: zlib level 6 took ~54 ms of CPU for a
    512 square photo, level 1 ~18 ms for ~10 % more bytes (docs/performance.md "Edit jobs")."""
    picture = Image.effect_noise((512, 512), 40).convert("RGB")
    cleaned, extension = images.clean_result(decoded(encoded(picture, "PNG")))
    assert extension == ".png"
    assert _zlib_levels(cleaned) == {0}  # zlib's "fastest" class (levels 0 and 1)
    assert decoded(cleaned).tobytes() == picture.tobytes()  # still lossless
