"""Photos: turn an untrusted upload into a clean 512x512 RGB image in storage, or refuse it clearly.

Everything is checked before the first byte is stored, so a refused upload leaves nothing behind:
the type is sniffed by Pillow (never the filename or the browser's content type), the byte size, the
pixel count (decompression bombs) and the smallest side are limited, and the image is fully decoded
(truncated or corrupt files fail here, not in a worker). Normalising means: EXIF orientation applied,
converted to 8-bit sRGB-ish RGB (CMYK, 16-bit, palette and alpha handled), every piece of metadata
dropped (we re-encode from pixels), cropped to a square (centred, or the user's square) and resized to
512x512 — the same square the model uses, so the before/after compare lines up.

Animated images (GIF is refused anyway; animated WebP/PNG) keep their first frame: people upload
"live" photos from phones and expect the still.
"""
from __future__ import annotations

import io
import logging
import re
import struct
import uuid
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from editor.errors import Refused
from editor.models import EditJob, Photo

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF from phones; registered once per process.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    _HEIF_FORMATS = ["HEIF"]
except ImportError:  # pragma: no cover - pillow-heif is a pinned dependency
    _HEIF_FORMATS = []

ACCEPTED_FORMATS = ["JPEG", "PNG", "WEBP", *_HEIF_FORMATS]
ACCEPTED_LABEL = "JPEG, PNG, WebP or HEIC"
SIDE = 512
THUMB_SIDE = 256
# The raw objects browsers POST straight to S3 live under this prefix until confirmed (then deleted).
DIRECT_UPLOAD_PREFIX = "incoming"
_DIRECT_KEY_RE = re.compile(rf"^{DIRECT_UPLOAD_PREFIX}/(?P<user>\d+)/[0-9a-f]{{32}}$")


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


def normalise_image(data: IO[bytes], *, crop: CropSquare | None = None) -> tuple[bytes, bytes]:
    """Decode, check and normalise an upload. Returns (512x512 JPEG, 256x256 thumbnail JPEG)."""
    image = _open_checked(data)
    try:
        image = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, KeyError):
        pass  # unreadable EXIF: keep the pixels as stored
    image = _to_rgb(image)
    width, height = image.size
    if crop is None:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    else:
        box = crop.box(width, height)
    square = image.crop(box).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return _encode_jpeg(square, quality=92), _encode_jpeg(
        square.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS), quality=82
    )


def _encode_jpeg(image: Image.Image, *, quality: int) -> bytes:
    out = io.BytesIO()
    # A fresh image from the raw pixels: Pillow would otherwise copy .info (comments, EXIF, XMP, ICC) into the
    # new file. Nothing about the original (camera, GPS position, editing software) leaks.
    clean = Image.frombytes("RGB", image.size, image.convert("RGB").tobytes())
    # No optimize=True: Pillow then sizes its buffer at one byte per pixel, and a very detailed photo at
    # 4:4:4 needs more, which fails the save ("broken data stream").
    clean.save(out, format="JPEG", quality=quality, subsampling=0)
    return out.getvalue()


def _check_size(size: int | None) -> None:
    if size is not None and size > settings.UPLOAD_MAX_BYTES:
        raise PhotoRejected(
            f"This file is too big ({_mb(size)}). The limit is {_mb(settings.UPLOAD_MAX_BYTES)}."
        )
    if size == 0:
        raise PhotoRejected("This file is empty. Please choose a photo.")


def _store(
    *, user: AbstractBaseUser, image_bytes: bytes, thumb_bytes: bytes, original_name: str,
    source_job: EditJob | None = None,
) -> Photo:
    photo = Photo(owner_id=user.pk, original_name=original_name[:255], source_job=source_job)
    saved: list[str] = []
    try:
        photo.image.save("photo.jpg", ContentFile(image_bytes), save=False)
        saved.append(photo.image.name or "")
        photo.thumbnail.save("thumb.jpg", ContentFile(thumb_bytes), save=False)
        saved.append(photo.thumbnail.name or "")
        photo.width = photo.height = SIDE
        photo.size_bytes = len(image_bytes)
        photo.save()
    except Exception:
        # A storage or database failure half-way must not leave orphan objects behind.
        for name in saved:
            default_storage.delete(name)
        raise
    return photo


def photo_create_from_upload(
    *, user: AbstractBaseUser, uploaded_file: Any, crop: CropSquare | None = None
) -> Photo:
    """Validate and normalise an uploaded file (a Django UploadedFile or any file object with .size)."""
    _check_size(getattr(uploaded_file, "size", None))
    uploaded_file.seek(0)
    # Read at most one byte over the limit: a lying .size cannot make us buffer more.
    raw = uploaded_file.read(settings.UPLOAD_MAX_BYTES + 1)
    _check_size(len(raw))
    image_bytes, thumb_bytes = normalise_image(io.BytesIO(raw), crop=crop)
    return _store(
        user=user, image_bytes=image_bytes, thumb_bytes=thumb_bytes,
        original_name=str(getattr(uploaded_file, "name", "") or ""),
    )


def photo_create_from_job_result(*, user: AbstractBaseUser, job: EditJob) -> Photo:
    """A new photo from a finished edit's result, so the next edit can change the other region.

    The caller (editor/services/edit_commands.py) has checked the job is the user's."""
    if job.state != EditJob.State.SUCCEEDED or not job.result_image:
        raise PhotoRejected("Only a finished edit can be edited again.")
    with job.result_image.open("rb") as handle:
        image_bytes, thumb_bytes = normalise_image(io.BytesIO(handle.read()))
    return _store(
        user=user, image_bytes=image_bytes, thumb_bytes=thumb_bytes,
        original_name=f"edit-{job.pk}.jpg", source_job=job,
    )


def photo_delete(*, photo: Photo) -> None:
    """Delete a photo nobody's edit uses (a refused submit's upload) and its files."""
    if photo.edit_jobs.exists():
        raise PhotoRejected("This photo is used by an edit.")
    names = [f.name for f in (photo.image, photo.thumbnail) if f and f.name]
    photo.delete()

    def delete_files() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete_files)


def photos_delete_unused(*, older_than_seconds: int) -> int:
    """Delete photos that no edit uses and that are older than the grace period (an abandoned direct upload,
    a page closed before submitting), with their files. Returns how many went."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    unused = Photo.objects.filter(created_at__lt=cutoff, edit_jobs__isnull=True).order_by("created_at")
    deleted = 0
    for photo in unused[:500]:
        with transaction.atomic():
            # Re-checked under the row lock: a submit may have picked the photo up since the query above.
            locked = Photo.objects.select_for_update().filter(pk=photo.pk).first()
            if locked is None or locked.edit_jobs.exists():
                continue
            photo_delete(photo=locked)
            deleted += 1
    return deleted


# --- Direct browser-to-S3 uploads ------------------------------------------------------------------

def direct_upload_enabled() -> bool:
    return bool(settings.USE_S3)


def _s3_client() -> Any:
    return default_storage.connection.meta.client  # type: ignore[attr-defined]


def photo_direct_upload_start(*, user: AbstractBaseUser) -> dict[str, Any]:
    """A presigned POST for one raw upload under the user's own prefix, size-limited by S3 itself."""
    if not direct_upload_enabled():
        raise PhotoRejected("Direct uploads need S3 storage.")
    key = f"{DIRECT_UPLOAD_PREFIX}/{user.pk}/{uuid.uuid4().hex}"
    post = _s3_client().generate_presigned_post(
        Bucket=settings.AWS_STORAGE_BUCKET_NAME,
        Key=key,
        Fields={"success_action_status": "201"},
        Conditions=[
            ["content-length-range", 1, settings.UPLOAD_MAX_BYTES],
            {"success_action_status": "201"},
        ],
        ExpiresIn=600,
    )
    return {"url": post["url"], "fields": post["fields"], "key": key, "max_bytes": settings.UPLOAD_MAX_BYTES}


def photo_direct_upload_finish(
    *, user: AbstractBaseUser, key: str, original_name: str = "", crop: CropSquare | None = None
) -> Photo:
    """Validate and normalise a raw object the browser posted to S3, then delete the raw object."""
    match = _DIRECT_KEY_RE.match(key or "")
    if not direct_upload_enabled() or not match or int(match["user"]) != user.pk:
        raise PhotoRejected("This upload was not found. Please upload the photo again.")
    try:
        head = _s3_client().head_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key)
    except Exception as exc:  # botocore ClientError (404) and friends
        raise PhotoRejected("This upload was not found. Please upload the photo again.") from exc
    try:
        _check_size(int(head.get("ContentLength", 0)))
        with default_storage.open(key, "rb") as handle:
            raw = handle.read(settings.UPLOAD_MAX_BYTES + 1)
        _check_size(len(raw))
        image_bytes, thumb_bytes = normalise_image(io.BytesIO(raw), crop=crop)
        return _store(
            user=user, image_bytes=image_bytes, thumb_bytes=thumb_bytes, original_name=original_name
        )
    finally:
        # The raw bytes still carry the original metadata: never keep them, accepted or not.
        default_storage.delete(key)
