from __future__ import annotations

from django.urls import path

from editor.views import pages

app_name = "editor"

urlpatterns = [
    path("", pages.home, name="home"),
    path("profile/", pages.profile, name="profile"),
]
