"""Liveness and readiness endpoints for load balancers and compose health checks."""
from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
