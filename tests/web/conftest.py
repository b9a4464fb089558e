"""Website tests: local media goes to a temporary folder (S3 runs use the throwaway bucket)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _private_media_root(settings: Any, tmp_path: Path) -> None:
    if not settings.USE_S3:
        settings.MEDIA_ROOT = str(tmp_path / "media")

