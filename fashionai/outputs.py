"""The folder of result PNGs: one per running service, removed on a clean stop, and swept at the next start when a
service was killed (SIGKILL, OOM) before it could remove its own.

Each folder holds a lock file that its service keeps locked (flock) while it runs; the kernel drops the lock when the
process dies, however it dies. So a folder whose lock can be taken belongs to no living service.
"""

from __future__ import annotations

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
