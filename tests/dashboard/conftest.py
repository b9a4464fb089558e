"""Fixtures for the dashboard tests (the known history lives in tests/dashboard/history.py)."""
from __future__ import annotations

from tests.dashboard.history import history

__all__ = ["history"]
