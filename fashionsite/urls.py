from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("health/", include("fashionsite.health")),
    path("staff/", include("editor.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("editor.urls")),
]

