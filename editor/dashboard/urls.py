from __future__ import annotations

from django.urls import path

from editor.dashboard import views

# Mounted at /staff/ by fashionsite/urls.py; names are global (base.html links 'staff_dashboard').
urlpatterns = [
    path("", views.staff_root, name="staff_root"),
    path("dashboard/", views.dashboard, name="staff_dashboard"),
    path("dashboard/export.csv", views.dashboard_export, name="staff_dashboard_export"),
    path("users/<int:user_id>/", views.user_usage_view, name="staff_user_usage"),
    path("files/<str:kind>/<uuid:pk>/<str:field>/", views.staff_file, name="staff_file"),
]
