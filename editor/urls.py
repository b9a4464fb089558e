from __future__ import annotations

from django.urls import path

from editor.views import edits, files, gallery, jobs, pages

app_name = "editor"

urlpatterns = [
    path("", pages.home, name="home"),
    path("profile/", pages.profile, name="profile"),
    path("edit/new/", edits.edit_new, name="edit_new"),
    path("edit/preview/", edits.preview, name="edit_preview"),
    path("edit/upload/start/", edits.upload_start, name="upload_start"),
    path("edit/upload/finish/", edits.upload_finish, name="upload_finish"),
    path("edits/<uuid:pk>/", jobs.job_detail, name="job_detail"),
    path("edits/<uuid:pk>/status/", jobs.job_status, name="job_status"),
    path("edits/<uuid:pk>/delete/", jobs.job_delete, name="job_delete"),
    path("edits/<uuid:pk>/result/", files.job_result, name="job_result"),
    path("edits/<uuid:pk>/download/", files.job_download, name="job_download"),
    path("edits/<uuid:pk>/thumb/", files.job_thumb, name="job_thumb"),
    path("photos/<uuid:pk>/", files.photo_image, name="photo_image"),
    path("photos/<uuid:pk>/thumb/", files.photo_thumb, name="photo_thumb"),
    path("gallery/", gallery.gallery, name="gallery"),
    path("credits/", gallery.credits, name="credits"),
]
