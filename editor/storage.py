"""Every stored file, in one place: its key, storing and replacing it, presigned URLs (and their cache), serving it
to a browser, the input the provider fetches, and the one rule for deleting it.

This is the only module that knows S3 from local files. Everything else passes storage names (keys) around.

Keys, one scheme: `users/<owner id>/<folder>/<id><extension>` (folders photos, originals, thumbs, results). A
photo's id is a fresh random uuid; a job's files use the job's own id (a random UUID too, so keys stay
unguessable) so a retried save overwrites its earlier copy instead of leaving an orphan; the full-resolution
result is `results/<job id>-full.jpg`. Raw direct uploads wait under `incoming/<owner id>/<random hex>` until checked.

Deleting, one rule: files go only after the transaction that removed their rows commits (a rollback must not
leave rows without files); a failed delete is logged and never reaches the person (an orphan file is better than
a failed request); `editor.services.files.files_sweep` removes orphans later.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, cast

import boto3
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from storages.backends.s3 import S3Storage

from editor import images

log = logging.getLogger(__name__)

USERS_PREFIX = "users"
# The raw objects browsers POST straight to S3 live under this prefix until confirmed (then deleted).
DIRECT_UPLOAD_PREFIX = "incoming"
# "Download my data" ZIPs: outside users/ (they are not the user's content, the orphan sweep must not see them).
EXPORTS_PREFIX = "exports"
RESULT_EXTENSIONS = (".png", ".jpg")
JOB_THUMBNAIL_EXTENSION = ".webp"
FULL_RESULT_SUFFIX = "-full.jpg"


class S3MediaStorage(S3Storage):  # type: ignore[misc]  # django-storages is untyped
    """django-storages' S3 backend, with one boto3 session per process instead of one per thread.

    S3Storage keeps a boto3 resource per thread (resources are not thread-safe) and builds each from a new session,
    which loads and parses S3's service model again: ~65 ms of CPU under the GIL per thread. The I/O worker's
    64 threads paid that at the first burst of submits, the main cause of 500 edits waiting up to 12 s to reach
    the provider (docs/performance.md "Edit jobs"). Each thread still gets its own resource; only the session, and
    so the parsed model, is shared: a thread's first connection then costs ~4 ms. Sessions are not thread-safe,
    so resources are made from it under a lock (once per thread)."""

    _session_lock = threading.Lock()

    def _create_session(self) -> boto3.Session:
        shared: tuple[int, boto3.Session] | None = getattr(self, "_shared_session", None)
        if shared is None or shared[0] != os.getpid():  # a forked child makes its own
            shared = (os.getpid(), super()._create_session())
            self._shared_session = shared
        return shared[1]

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_shared_session", None)  # not picklable; the copy makes its own
        return state

    @property
    def connection(self) -> Any:
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            with self._session_lock:
                connection = super().connection
        return connection


def _backend() -> Storage:
    # The object behind `default_storage` (the same instance; rebuilt when settings.STORAGES changes).
    return storages["default"]


def is_s3() -> bool:
    """Are files in S3 (presigned URLs, direct uploads) or on the local disk (served through our views)?"""
    return isinstance(_backend(), S3Storage)


# ------------------------------------------------------------------------------------------------ keys


def extension_of(filename: str, default: str) -> str:
    return PurePosixPath(filename).suffix.lower() or default


def photo_key(owner_id: Any, filename: str) -> str:
    return f"{USERS_PREFIX}/{owner_id}/photos/{uuid.uuid4().hex}{extension_of(filename, '.jpg')}"


def photo_thumbnail_key(owner_id: Any, filename: str) -> str:
    return f"{USERS_PREFIX}/{owner_id}/thumbs/{uuid.uuid4().hex}{extension_of(filename, '.jpg')}"


def photo_original_key(owner_id: Any, filename: str) -> str:
    return f"{USERS_PREFIX}/{owner_id}/originals/{uuid.uuid4().hex}{extension_of(filename, '.jpg')}"


def job_result_key(owner_id: Any, job_id: Any, extension: str) -> str:
    return f"{USERS_PREFIX}/{owner_id}/results/{job_id}{extension}"


def job_full_result_key(owner_id: Any, job_id: Any) -> str:
    """The full-resolution result (always JPEG); the 512 square the model made stays at job_result_key."""
    return f"{USERS_PREFIX}/{owner_id}/results/{job_id}{FULL_RESULT_SUFFIX}"


def job_thumbnail_key(owner_id: Any, job_id: Any) -> str:
    return f"{USERS_PREFIX}/{owner_id}/thumbs/{job_id}{JOB_THUMBNAIL_EXTENSION}"


def job_full_thumbnail_key(owner_id: Any, job_id: Any) -> str:
    # Its own key, not the square's thumbnail overwritten: browsers and the URL cache keep a URL's content.
    return f"{USERS_PREFIX}/{owner_id}/thumbs/{job_id}-full{JOB_THUMBNAIL_EXTENSION}"


def job_file_keys(owner_id: Any, job_id: Any) -> list[str]:
    """Every key a job's result can have been stored at (an interrupted save may have left any of them)."""
    return [job_result_key(owner_id, job_id, ext) for ext in RESULT_EXTENSIONS] + [
        job_thumbnail_key(owner_id, job_id), job_full_result_key(owner_id, job_id),
        job_full_thumbnail_key(owner_id, job_id),
    ]


def direct_upload_key(owner_id: Any) -> str:
    return f"{DIRECT_UPLOAD_PREFIX}/{owner_id}/{uuid.uuid4().hex}"


def user_content_prefix(owner_id: Any) -> str:
    """Every photo, result and thumbnail of one user is under this prefix."""
    return f"{USERS_PREFIX}/{owner_id}"


def export_key(owner_id: Any, token: str) -> str:
    return f"{EXPORTS_PREFIX}/{owner_id}/{token}.zip"


def user_prefixes(owner_id: Any) -> list[str]:
    """Every prefix a user's files can be under: their content, raw direct uploads, their data exports."""
    return [user_content_prefix(owner_id), f"{DIRECT_UPLOAD_PREFIX}/{owner_id}", f"{EXPORTS_PREFIX}/{owner_id}"]


# ------------------------------------------------------------------------------------------------ store and read


def store_at(name: str, data: bytes) -> str:
    """Store `data` at exactly `name`, replacing an earlier (partial) copy."""
    backend = _backend()
    if is_s3():
        # S3 is configured with file_overwrite (fashionsite/settings.py): one PUT replaces an earlier copy.
        stored = backend.save(name, ContentFile(data))
        if stored != name:  # pragma: no cover - only if file_overwrite were turned off
            raise RuntimeError(f"storage renamed {name} to {stored}")
        return stored
    if backend.exists(name):
        backend.delete(name)
    stored = backend.save(name, ContentFile(data))
    if stored != name:  # pragma: no cover - only if another writer raced us between delete and save
        backend.delete(stored)
        raise RuntimeError(f"storage renamed {name} to {stored}")
    return stored


def store_file_at(name: str, path: str) -> str:
    """Store a local file (a ZIP being built on disk) at exactly `name`, streamed, replacing an earlier copy."""
    backend = _backend()
    if not is_s3() and backend.exists(name):
        backend.delete(name)
    with open(path, "rb") as handle:
        stored = backend.save(name, File(handle))
    if stored != name:  # pragma: no cover - only if another writer raced us
        raise RuntimeError(f"storage renamed {name} to {stored}")
    return stored


def store_new(field_file: FieldFile, filename: str, data: bytes) -> str:
    """Store a new file through the model field (its upload_to picks the key); returns the storage name."""
    field_file.save(filename, ContentFile(data), save=False)
    return str(field_file.name or "")


def exists(name: str) -> bool:
    return bool(name) and _backend().exists(name)


def read(name: str, *, limit: int | None = None) -> bytes:
    """The stored bytes (at most `limit` + 1 when given, so a caller can tell "too big" without buffering more)."""
    with _backend().open(name, "rb") as handle:
        return bytes(handle.read() if limit is None else handle.read(limit + 1))


def size(name: str) -> int:
    return int(_backend().size(name))


def stored_files(prefix: str) -> Iterator[tuple[str, datetime]]:
    """(name, last modified) of every stored file under `prefix`, S3 or local."""
    backend = _backend()
    if isinstance(backend, S3Storage):
        for obj in backend.bucket.objects.filter(Prefix=prefix.rstrip("/") + "/"):
            yield obj.key, obj.last_modified
        return
    if not isinstance(backend, FileSystemStorage) or not backend.exists(prefix):
        return
    folders = [prefix.rstrip("/")]
    while folders:
        folder = folders.pop()
        dirs, files = backend.listdir(folder)
        folders += [f"{folder}/{d}" for d in dirs]
        for name in files:
            path = f"{folder}/{name}"
            yield path, backend.get_modified_time(path).astimezone(UTC)


# ------------------------------------------------------------------------------------------------ URLs


def _presign(name: str, *, expire: int, parameters: dict[str, str] | None = None) -> str:
    backend = cast(S3Storage, _backend())
    return str(backend.url(name, parameters=parameters, expire=expire))


def media_urls(names: Iterable[str]) -> dict[str, str] | None:
    """Presigned GET URLs for S3 keys, reused from the cache while at least half their lifetime is left; None
    when files are local (pages then link to the permission-checked file views).

    Reuse keeps an image's URL the same across page loads, so browsers cache thumbnails instead of fetching them
    again under a new signature, and a gallery page reads 24 URLs in one cache round trip instead of signing
    24 (about a third of its CPU, docs/performance.md "Load"). Every URL handed out is still valid for at least
    MEDIA_URL_EXPIRE_SECONDS / 2. A cache that is down only costs the signing."""
    if not is_s3():
        return None
    wanted = {name: "media-url:" + hashlib.sha256(name.encode()).hexdigest() for name in names if name}
    try:
        cached: dict[str, Any] = cache.get_many(list(wanted.values())) if wanted else {}
    except Exception as exc:  # noqa: BLE001 - a cache outage must not break pages
        log.warning("media URL cache unavailable (%s); signing every URL", type(exc).__name__)
        cached = {}
    urls: dict[str, str] = {}
    fresh: dict[str, str] = {}
    for name, key in wanted.items():
        url = cached.get(key)
        if not isinstance(url, str):
            url = _presign(name, expire=settings.MEDIA_URL_EXPIRE_SECONDS)
            fresh[key] = url
        urls[name] = url
    if fresh:
        try:
            cache.set_many(fresh, timeout=max(1, settings.MEDIA_URL_EXPIRE_SECONDS // 2))
        except Exception as exc:  # noqa: BLE001
            log.warning("media URL cache unavailable (%s); URLs not kept", type(exc).__name__)
    return urls


def provider_image_for(name: str) -> str:
    """The input the provider fetches: a presigned GET URL (S3), else the image inline as a data: URI."""
    if is_s3() and not settings.FASHION_AI_SEND_DATA_URI:
        return _presign(name, expire=settings.PROVIDER_INPUT_URL_EXPIRE_SECONDS)
    data = read(name)
    return f"data:{images.image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


# ------------------------------------------------------------------------------------------------ serving


def serve(field_file: FieldFile | None, *, download_name: str = "", max_age: int = 3600) -> HttpResponseBase:
    """A stored file for a browser, after the caller checked who may see it. MEDIA_URL is never served.

    S3: a redirect to a short-lived presigned URL (never cached: the signature expires). Local: the file streamed,
    cacheable by this browser only for `max_age` (the content behind an id never changes). `download_name` makes
    the browser save it under that name."""
    if not field_file or not field_file.name:
        raise Http404("No such file")
    return serve_name(str(field_file.name), download_name=download_name, max_age=max_age)


def serve_name(name: str, *, download_name: str = "", max_age: int = 3600) -> HttpResponseBase:
    """`serve` for a stored name without a model field (a data export)."""
    if not name:
        raise Http404("No such file")
    if is_s3():
        disposition = f'attachment; filename="{download_name}"'
        parameters = {"ResponseContentDisposition": disposition} if download_name else None
        redirect = HttpResponseRedirect(
            _presign(name, expire=settings.MEDIA_URL_EXPIRE_SECONDS, parameters=parameters)
        )
        redirect["Cache-Control"] = "private, no-store"
        return redirect
    try:
        handle = _backend().open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404("No such file") from exc
    response = FileResponse(handle, as_attachment=bool(download_name), filename=download_name or name)
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response


# ------------------------------------------------------------------------------------------------ deleting


def delete_now(names: Iterable[str]) -> list[str]:
    """Delete these files; a failure is logged and the name returned (the sweep finds the orphan later)."""
    failed: list[str] = []
    for name in names:
        if not name:
            continue
        try:
            _backend().delete(name)
        except Exception as exc:  # noqa: BLE001 - storage hiccup: an orphan is better than a failed request
            log.warning("could not delete stored file %s (%s); the files sweep will retry", name, type(exc).__name__)
            failed.append(name)
    return failed


def delete_after_commit(names: Iterable[str]) -> None:
    """The one way stored files are deleted: once the rows that used them are gone for good."""
    wanted = [name for name in names if name]
    if wanted:
        transaction.on_commit(lambda: delete_now(wanted))


# ------------------------------------------------------------------------------------------------ direct uploads


def _s3_client() -> Any:
    return cast(S3Storage, _backend()).connection.meta.client


def direct_upload_post(*, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
    """A presigned POST for exactly `key`: S3 itself enforces the size range and an image Content-Type."""
    post = _s3_client().generate_presigned_post(
        Bucket=settings.AWS_STORAGE_BUCKET_NAME,
        Key=key,
        Fields={"success_action_status": "201"},
        Conditions=[
            ["content-length-range", 1, max_bytes],
            {"success_action_status": "201"},
            # Whatever lands here is never served as HTML or script, even by a presigned URL.
            ["starts-with", "$Content-Type", "image/"],
        ],
        ExpiresIn=expires_in,
    )
    return {"url": post["url"], "fields": post["fields"]}


def head_size(name: str) -> int | None:
    """The size of a stored object, or None when it is not there (S3 only: a HEAD, no download)."""
    try:
        head = _s3_client().head_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=name)
    except Exception:  # noqa: BLE001 - botocore ClientError (404) and friends
        return None
    return int(head.get("ContentLength", 0))
