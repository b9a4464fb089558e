"""Fixtures for the dashboard tests (the known history lives in tests/dashboard/history.py)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.history import history


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # These tests create many users and log them in with force_login: PBKDF2's deliberate slowness buys nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


__all__ = ["history"]
