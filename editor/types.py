"""Typing helpers shared by views."""
from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthedRequest(HttpRequest):
    """A request behind @login_required: `user` is a real account, never AnonymousUser."""

    user: User


__all__ = ["AuthedRequest", "HttpRequest"]
