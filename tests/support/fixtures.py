"""Pytest fixtures for the real moving parts (Celery worker, the Fashion AI service), shared by all tests.

Registered from tests/conftest.py via `pytest_plugins`.
"""
from __future__ import annotations
