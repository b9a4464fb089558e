"""Upload fuzzing through the real "new edit" view: hostile files, each generated here, must get a clear refusal
(400 with a message, nothing stored) or become a safe 512x512 RGB JPEG with no metadata (no EXIF/GPS, XMP, text
chunks, comments or trailing payloads). The storage (S3 under scripts/testenv.py) is listed before and after each
upload: nothing unexpected may appear.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image
from pillow_heif import from_pillow

from editor.models import EditJob, Photo
from editor.services.credits import credits_grant

SCRIPT = b"<script>alert(document.cookie)</script>"
GPS_MARK = b"GPS-LEAK-47.3769N"


def _photo(size: tuple[int, int] = (640, 480), mode: str = "RGB", grain: float = 12) -> Image.Image:
    """Photo-like pixels: smooth gradients plus sensor grain (`grain` = noise standard deviation)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 255 / size[0], y * 255 / size[1], (x + y) * 127 / sum(size)], axis=-1)
    pixels = np.clip(base + rng.normal(0, grain, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image.convert(mode) if mode != "RGB" else image


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x9286] = GPS_MARK.decode()  # UserComment-ish marker we can search for in the bytes
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (47.0, 22.0, 36.8)
    gps[3], gps[4] = "E", (8.0, 32.0, 29.0)
    return exif


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_lying_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims a giant size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 30)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _jpeg_lying_size(width: int, height: int) -> bytes:
    data = bytearray(_encode(_photo((256, 256)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_with_text() -> bytes:
    raw = _encode(_photo(), "PNG")
    text = _png_chunk(b"tEXt", b"Comment\x00" + SCRIPT) + _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00"
                                                                    + b"<x:xmpmeta>" + GPS_MARK + b"</x:xmpmeta>")
    return raw[:33] + text + raw[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def _bomb_png() -> bytes:
    # 12,000 x 12,000 (144 Mpx) of zeros: ~50 KB compressed, ~430 MB decoded as RGB.
    return _encode(Image.new("1", (12_000, 12_000)), "PNG")


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (300, 300), color) for color in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _heic(**options: Any) -> bytes:
    out = io.BytesIO()
    from_pillow(_photo((400, 300))).save(out, quality=70, **options)
    return out.getvalue()


def _svg() -> bytes:
    return (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="600" height="600">'
            b'<rect width="600" height="600" fill="red"/>' + SCRIPT + b"</svg>")


@dataclass
class Case:
    name: str
    data: bytes
    filename: str
    content_type: str
    accepted: bool
    message: str = ""  # a word the refusal must contain


def cases() -> list[Case]:
    jpeg = _encode(_photo(), "JPEG", quality=90)
    png = _encode(_photo(), "PNG")
    heic = _heic()
    return [
        Case("zero bytes", b"", "empty.jpg", "image/jpeg", False, "empty"),
        Case("truncated JPEG", jpeg[: len(jpeg) // 2], "cut.jpg", "image/jpeg", False, "damaged"),
        Case("truncated PNG", png[: len(png) // 3], "cut.png", "image/png", False, "damaged"),
        Case("random bytes", np.random.default_rng(1).bytes(50_000), "noise.jpg", "image/jpeg", False, "not a picture"),
        Case("decompression bomb PNG", _bomb_png(), "bomb.png", "image/png", False, "too many pixels"),
        Case("PNG header claiming 65535x65535", _png_lying_size(65535, 65535), "huge.png", "image/png", False,
             "too many pixels"),
        Case("JPEG header claiming 60000x60000", _jpeg_lying_size(60000, 60000), "huge.jpg", "image/jpeg", False,
             "too many pixels"),
        Case("tiny 10x10", _encode(_photo((10, 10)), "PNG"), "tiny.png", "image/png", False, "too small"),
        Case("HTML with a script", b"<html><body>" + SCRIPT + b"</body></html>", "photo.jpg", "image/jpeg", False,
             "not a picture"),
        Case("SVG with a script", _svg(), "photo.svg", "image/svg+xml", False, "not a picture"),
        Case("GIF/JS polyglot", b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;" + SCRIPT, "poly.gif", "image/gif",
             False, "not a picture"),
        Case("PDF", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "photo.pdf", "application/pdf", False,
             "not a picture"),
        Case("BMP (not accepted)", _encode(_photo(), "BMP"), "photo.bmp", "image/bmp", False, "not a picture"),
        Case("TIFF (not accepted)", _encode(_photo(), "TIFF"), "photo.tiff", "image/tiff", False, "not a picture"),
        Case("animated GIF", _animated("GIF"), "anim.gif", "image/gif", False, "not a picture"),
        Case("truncated HEIC", heic[: len(heic) // 2], "cut.heic", "image/heic", False, ""),
        Case("HEIC header only", heic[:64], "stub.heic", "image/heic", False, ""),
        # Accepted, and must come out clean:
        Case("JPEG with EXIF GPS", _encode(_photo(), "JPEG", exif=_gps_exif()), "gps.jpg", "image/jpeg", True),
        Case("JPEG with an HTML payload after EOI", jpeg + b"<html>" + SCRIPT, "poly.jpg", "image/jpeg", True),
        Case("JPEG with a script in its comment", _encode(_photo(), "JPEG", comment=SCRIPT), "c.jpg", "image/jpeg",
             True),
        Case("PNG with script text chunk and XMP", _png_with_text(), "text.png", "image/png", True),
        Case("PNG named .exe", png, "photo.exe", "application/x-msdownload", True),
        Case("JPEG named .png", jpeg, "../../../etc/passwd.png", "image/png", True),
        Case("animated WebP", _animated("WEBP"), "anim.webp", "image/webp", True),
        Case("WebP with EXIF GPS", _encode(_photo(), "WEBP", exif=_gps_exif()), "gps.webp", "image/webp", True),
        Case("CMYK JPEG", _encode(_photo(mode="CMYK"), "JPEG"), "cmyk.jpg", "image/jpeg", True),
        Case("16-bit PNG", _encode(Image.fromarray(
            (np.arange(480 * 640, dtype=np.uint32).reshape(480, 640) % 65536).astype(np.uint16)), "PNG"),
            "deep.png", "image/png", True),
        Case("palette PNG with transparency", _encode(_photo().convert("P"), "PNG", transparency=0), "p.png",
             "image/png", True),
        Case("HEIC from a phone", heic, "IMG_0001.HEIC", "image/heic", True),
        Case("HEIC with EXIF GPS", _heic(exif=_gps_exif().tobytes()), "gps.heic", "image/heic", True),
        Case("extreme aspect 4000x130", _encode(_photo((4000, 130)), "PNG"), "wide.png", "image/png", True),
    ]


def stored_files() -> set[str]:
    def walk(prefix: str) -> set[str]:
        dirs, files = default_storage.listdir(prefix)
        found = {f"{prefix}{name}" for name in files}
        for folder in dirs:
            found |= walk(f"{prefix}{folder}/")
        return found

    return walk("")


ALL_CASES = cases()


def test_there_are_enough_hostile_files() -> None:
    assert len(ALL_CASES) >= 20
    assert sum(not c.accepted for c in ALL_CASES) >= 12 and sum(c.accepted for c in ALL_CASES) >= 10


def test_the_hostile_inputs_carry_their_payloads() -> None:
    """So "nothing survived" below means something: the inputs do contain what must not come out."""
    by_name = {c.name: c.data for c in ALL_CASES}
    for name in ("JPEG with EXIF GPS", "WebP with EXIF GPS", "HEIC with EXIF GPS",
                 "PNG with script text chunk and XMP"):
        assert GPS_MARK in by_name[name], name
    for name in ("JPEG with an HTML payload after EOI", "JPEG with a script in its comment",
                 "PNG with script text chunk and XMP"):
        assert SCRIPT in by_name[name], name
    assert Image.open(io.BytesIO(by_name["JPEG with EXIF GPS"])).getexif().get_ifd(0x8825)
    assert Image.open(io.BytesIO(by_name["CMYK JPEG"])).mode == "CMYK"
    assert Image.open(io.BytesIO(by_name["16-bit PNG"])).mode.startswith("I")
    assert getattr(Image.open(io.BytesIO(by_name["animated WebP"])), "n_frames", 1) == 3


@pytest.fixture
def uploader(make_user: Callable[..., Any], settings: Any) -> tuple[Client, Any]:
    settings.MAX_JOBS_IN_FLIGHT_PER_USER = 1000
    user = make_user()
    credits_grant(user=user, amount=1000, reason="fuzzing")
    client = Client()
    client.force_login(user)
    return client, user


@pytest.mark.django_db
@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_hostile_upload(case: Case, uploader: tuple[Client, Any]) -> None:
    client, user = uploader
    before = stored_files()
    photos_before = Photo.objects.count()
    upload = SimpleUploadedFile(case.filename, case.data, content_type=case.content_type)
    response = client.post(reverse("editor:edit_new"), {"image": upload, "prompt": "a red shirt",
                                                         "clothing": "topwear"})
    after = stored_files()
    new_files = after - before

    if not case.accepted:
        assert response.status_code == 400, (case.name, response.status_code)
        errors = response.context["form"].errors.get("image", [])
        assert errors, f"{case.name}: refused without a message"
        assert case.message.lower() in " ".join(errors).lower(), (case.name, errors)
        assert new_files == set(), f"{case.name}: a refused upload left files behind: {new_files}"
        assert Photo.objects.count() == photos_before
        assert not EditJob.objects.filter(owner=user).exists()
        return

    assert response.status_code == 302, (case.name, response.status_code, response.context and
                                         response.context["form"].errors)
    job = EditJob.objects.get(owner=user)
    photo = job.photo
    # Exactly the normalised photo, its thumbnail and the cleaned full-resolution original were stored, under the
    # user's own prefix; every one of them is re-encoded, so no metadata or payload rides along.
    assert new_files == {photo.image.name, photo.thumbnail.name, photo.original.name}, new_files
    for name in new_files:
        assert name.startswith(f"users/{user.pk}/") and ".." not in name and "passwd" not in name
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
        for forbidden in (SCRIPT, b"<script", b"<html", GPS_MARK, b"SpyCam", b"Exif\x00\x00", b"http://ns.adobe.com",
                          b"xmpmeta"):
            assert forbidden not in data, f"{case.name}: {forbidden!r} survived into {name}"
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.mode == "RGB"
        assert not image.getexif(), f"{case.name}: EXIF survived"
        assert not {"exif", "xmp", "comment", "XML:com.adobe.xmp"} & set(image.info), image.info.keys()
        assert data.endswith(b"\xff\xd9"), "trailing bytes after the JPEG end"
    with default_storage.open(str(photo.image.name), "rb") as handle:
        assert Image.open(handle).size == (512, 512)
    assert photo.owner_id == user.pk and (photo.width, photo.height) == (512, 512)


@pytest.mark.django_db
def test_a_very_detailed_photo_is_accepted(uploader: tuple[Client, Any]) -> None:
    """Heavy grain (or gravel, foliage, fabric texture) makes a big JPEG. Pillow's optimize=True buffer guess (one
    byte per pixel) is too small for 4:4:4 JPEGs of such pictures: the upload must still work, not crash."""
    client, user = uploader
    detailed = _encode(_photo((1024, 1024), grain=90), "PNG")
    response = client.post(reverse("editor:edit_new"), {
        "image": SimpleUploadedFile("grain.png", detailed, content_type="image/png"), "prompt": "a red shirt",
        "clothing": "topwear"})
    assert response.status_code == 302
    assert EditJob.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_upload_over_the_byte_limit_is_refused_and_stores_nothing(uploader: tuple[Client, Any], settings: Any) -> None:
    client, user = uploader
    big = _encode(_photo((800, 800), grain=60), "PNG")
    # Just over the photo limit, so the body passes the request-size guard (limit + 1 MiB of form overhead,
    # tests/test_request_size_limit.py) and the upload check itself must refuse it.
    settings.UPLOAD_MAX_BYTES = len(big) - 1000
    before = stored_files()
    response = client.post(reverse("editor:edit_new"), {
        "image": SimpleUploadedFile("big.png", big, content_type="image/png"), "prompt": "red", "clothing": "topwear"})
    assert response.status_code == 400
    assert "MB" in " ".join(response.context["form"].errors["image"])
    assert stored_files() == before
    assert not Photo.objects.filter(owner=user).exists()
