"""Uploads: type sniffed by Pillow, every refusal clear and storing nothing, every accepted photo normalised."""
from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from editor.images import CropSquare, PhotoRejected
from editor.models import Photo
from editor.services.photos import photo_create_from_upload
from tests.web.helpers import image_bytes, stored_names, upload

pytestmark = [pytest.mark.django_db]


def _open(photo: Photo) -> Image.Image:
    with photo.image.open("rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


def _refused(user: Any, data: bytes, name: str = "x.jpg") -> str:
    with pytest.raises(PhotoRejected) as caught:
        photo_create_from_upload(user=user, uploaded_file=upload(data, name))
    assert Photo.objects.count() == 0
    assert stored_names(f"users/{user.pk}") == []
    return str(caught.value)


@pytest.mark.smoke
@pytest.mark.parametrize(("fmt", "extra"), [("JPEG", {}), ("PNG", {}), ("WEBP", {}), ("HEIF", {})])
def test_accepted_formats_become_a_512_square_rgb_jpeg(make_user: Any, fmt: str, extra: dict[str, Any]) -> None:
    user = make_user()
    # Named .bin with a wrong content type: the type comes from the bytes, not from what the browser says.
    data = image_bytes(fmt, (900, 600))
    photo = photo_create_from_upload(user=user, uploaded_file=upload(data, "x.bin", "text/plain"))
    image = _open(photo)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (512, 512))
    assert (photo.width, photo.height, photo.original_name) == (512, 512, "x.bin")
    assert photo.thumbnail and photo.image.name.startswith(f"users/{user.pk}/photos/")
    # Centre crop of a blue-left/red-right picture 900 wide: the square spans 150..750, so both halves show.
    assert image.getpixel((100, 256))[2] > 150 and image.getpixel((400, 256))[0] > 150


@pytest.mark.smoke
def test_exif_orientation_is_applied_and_all_metadata_dropped(make_user: Any) -> None:
    source = Image.new("RGB", (600, 300), (200, 40, 40))
    source.paste((30, 30, 200), (0, 0, 300, 300))  # blue left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": the blue half ends up on top
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    source.save(out, format="JPEG", exif=exif.tobytes(), comment=b"gps here")
    photo = photo_create_from_upload(user=make_user(), uploaded_file=upload(out.getvalue()))
    image = _open(photo)
    assert image.getpixel((256, 20))[2] > 150  # top is blue: rotated upright
    assert image.getpixel((256, 490))[0] > 150
    assert not image.getexif() and "comment" not in image.info and "icc_profile" not in image.info
    with photo.image.open("rb") as handle:
        assert b"SecretCam" not in handle.read()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16", "L"])
def test_odd_modes_are_converted_to_rgb(make_user: Any, mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    color: Any = {"RGBA": (0, 0, 0, 0), "LA": (0, 0), "P": 3, "CMYK": (0, 255, 255, 0), "I;16": 40000, "L": 120}[mode]
    photo = photo_create_from_upload(user=make_user(), uploaded_file=upload(image_bytes(fmt, (300, 300), mode, color)))
    image = _open(photo)
    assert image.mode == "RGB"
    r, g, b = image.getpixel((400, 256))
    if mode in ("RGBA", "LA"):  # fully transparent flattens on white, not black
        assert min(r, g, b) > 240
    if mode == "CMYK":  # magenta+yellow ink is red
        assert r > 200 and g < 60 and b < 60
    if mode == "I;16":  # 40000/65535 scaled, not clipped to white
        assert 140 < r < 170


def test_animated_webp_keeps_the_first_frame(make_user: Any) -> None:
    frames = [Image.new("RGB", (300, 300), c) for c in ((10, 200, 10), (200, 10, 10))]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    image = _open(photo_create_from_upload(user=make_user(), uploaded_file=upload(out.getvalue())))
    assert image.getpixel((256, 256))[1] > 150


def test_user_chosen_square(make_user: Any) -> None:
    # 900x600: blue 0..450, red 450..900. The square at the far right is all red.
    crop = CropSquare(left=0.9, top=0, side=1.0)  # clamped to the right edge
    photo = photo_create_from_upload(user=make_user(), uploaded_file=upload(image_bytes("PNG", (900, 600))), crop=crop)
    image = _open(photo)
    # The square is pushed to 300..900: x=200 in the output is x=534 in the source, red (centred it would be blue).
    assert image.getpixel((200, 256))[0] > 150 and image.getpixel((20, 256))[2] > 150


@pytest.mark.smoke
def test_refusals_are_clear_and_store_nothing(make_user: Any, settings: Any) -> None:
    user = make_user()
    assert "not a picture" in _refused(user, b"%PDF-1.4 this is not an image at all" * 10, "cv.jpg")
    assert "not a picture" in _refused(user, image_bytes("GIF", (300, 300), "P", 1), "x.gif")
    assert "too small" in _refused(user, image_bytes("PNG", (100, 400)))
    whole = image_bytes("JPEG", (800, 800), quality=95)
    assert "damaged or incomplete" in _refused(user, whole[: len(whole) // 2])
    assert "empty" in _refused(user, b"")
    settings.UPLOAD_MAX_BYTES = 10_000
    assert "too big" in _refused(user, image_bytes("PNG", (300, 300)) + b"\0" * 20_000)


def test_too_many_pixels_and_bombs_are_refused(make_user: Any, settings: Any) -> None:
    user = make_user()
    settings.UPLOAD_MAX_PIXELS = 1_000_000
    # Over our limit: refused from the header, before decoding.
    assert "too many pixels" in _refused(user, image_bytes("PNG", (1200, 1000), "L", 0))
    # A bomb: a tiny file that would decode to 9x the limit (Pillow raises DecompressionBombError past 2x).
    bomb = image_bytes("PNG", (3_000, 3_000), "1", 0)
    assert len(bomb) < 10_000
    assert "too many pixels" in _refused(user, bomb)
    assert Image.MAX_IMAGE_PIXELS != 1_000_000  # the global limit was restored
