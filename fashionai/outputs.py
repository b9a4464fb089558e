"""Where result PNGs live. In-memory mode (`OutputDir`): one folder per running service, removed on a clean stop,
and swept at the next start when a service was killed (SIGKILL, OOM) before it could remove its own. Durable mode:
a folder every process shares (`SharedFolderOutputs`) or an S3 bucket (`S3Outputs`), outliving any one process.

Each folder holds a lock file that its service keeps locked (flock) while it runs; the kernel drops the lock when the
process dies, however it dies. So a folder whose lock can be taken belongs to no living service.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "fashionai-out-"
LOCK_NAME = ".lock"
# A folder without a lock file may be one another service is creating this instant; only older ones are debris.
_UNLOCKED_GRACE_SECONDS = 60.0


class OutputDir:
    def __init__(self, root: str | None = None) -> None:
        self.root = root or tempfile.gettempdir()
        while True:
            path = tempfile.mkdtemp(prefix=PREFIX, dir=self.root)
            fd = os.open(os.path.join(path, LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Another service's sweep may have removed the folder between mkdtemp and flock: start again.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(os.path.join(path, LOCK_NAME)).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        self.path = path
        self._lock_fd: int | None = fd

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def sweep_abandoned(root: str | None = None, *, keep: str | None = None) -> list[str]:
    """Remove output folders in `root` whose service is gone; return their paths."""
    removed: list[str] = []
    for entry in Path(root or tempfile.gettempdir()).glob(PREFIX + "*"):
        if str(entry) == keep or not entry.is_dir() or entry.is_symlink():
            continue
        lock = entry / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - entry.stat().st_mtime > _UNLOCKED_GRACE_SECONDS:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(str(entry))
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its service is alive
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
        finally:
            os.close(fd)
    return removed


class SharedFolderOutputs:
    """Durable mode's result PNGs in one folder every API and engine process can read (a local folder on one
    machine, NFS or similar across machines). Files outlive any process; expired ones are deleted by the sweep."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def attempt_path(self, name: str, attempt: str) -> str:
        """Where one engine run writes: two engines that both ran a job (a lease ran out) never share a file."""
        return os.path.join(self.folder, f".{name}.{attempt}")

    async def publish(self, name: str, attempt_path: str) -> None:
        os.replace(attempt_path, self.path(name))  # readers never see a half-written file

    async def discard(self, attempt_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(attempt_path)

    async def delete(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(name))

    def url(self, name: str, *, expires_in: float) -> str | None:
        """A direct URL to the object, when the store has one (S3); None: the API serves /outputs/{name}."""
        return None

    async def read(self, name: str) -> bytes | None:
        try:
            with open(self.path(name), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None


MAX_PRESIGN_SECONDS = 7 * 86400  # SigV4's limit
MIN_PRESIGN_SECONDS = 60


class S3Outputs:
    """Durable mode's result PNGs in an S3-compatible bucket: an engine writes the PNG to a local scratch file,
    uploads it, and the API answers with a presigned GET URL that expires with the job (so no API process serves
    the bytes). Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/..., instance roles)."""

    def __init__(self, *, bucket: str, prefix: str, endpoint_url: str = "", region: str = "") -> None:
        import boto3  # lazy: only S3 deployments need it
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"}),
        )
        self.scratch = tempfile.mkdtemp(prefix="fashionai-s3-scratch-")

    def key(self, name: str) -> str:
        return self.prefix + name

    def path(self, name: str) -> str:
        return ""  # no shared file: readers get url()

    def attempt_path(self, name: str, attempt: str) -> str:
        return os.path.join(self.scratch, f"{name}.{attempt}")

    async def publish(self, name: str, attempt_path: str) -> None:
        try:
            await asyncio.to_thread(
                self.client.upload_file, attempt_path, self.bucket, self.key(name),
                ExtraArgs={"ContentType": "image/png"},
            )
        finally:
            await self.discard(attempt_path)

    async def discard(self, attempt_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(attempt_path)

    async def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):  # DeleteObjects takes at most 1000 keys
            objects = [{"Key": self.key(name)} for name in names[start:start + 1000]]
            await asyncio.to_thread(
                self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )

    def url(self, name: str, *, expires_in: float) -> str | None:
        seconds = int(min(MAX_PRESIGN_SECONDS, max(MIN_PRESIGN_SECONDS, expires_in)))
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(name)}, ExpiresIn=seconds
        )
        return url

    async def read(self, name: str) -> bytes | None:
        try:
            answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.key(name))
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = await asyncio.to_thread(answer["Body"].read)
        return data

    def remove_scratch(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


ResultStore = SharedFolderOutputs | S3Outputs
