"""Files, only for their owner: a redirect to a short-lived presigned URL (S3) or a streamed file (local).

There is no public media tree: MEDIA_URL is never served, every file goes through these checks.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from editor.models import Photo
from editor.selectors.gallery import job_download_filename, job_download_url, photo_for_owner
from editor.types import AuthedRequest
from editor.views.jobs import owned_job_or_404


def _serve(field_file: FieldFile, *, download_name: str = "") -> HttpResponseBase:
    if not field_file:
        raise Http404("No such file")
    if settings.USE_S3:
        url = field_file.storage.url(  # type: ignore[call-arg]
            field_file.name,
            parameters={"ResponseContentDisposition": f'attachment; filename="{download_name}"'},
        ) if download_name else field_file.url
        redirect = HttpResponseRedirect(url)
        redirect["Cache-Control"] = "private, no-store"
        return redirect
    name = field_file.name or ""
    try:
        handle = field_file.storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404("No such file") from exc
    response = FileResponse(handle, as_attachment=bool(download_name), filename=download_name or name)
    # Private to this browser; the content behind an id never changes.
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _owned_photo(request: AuthedRequest, pk: Any) -> Photo:
    photo = photo_for_owner(user=request.user, photo_id=pk)
    if photo is None:  # someone else's photo looks exactly like a missing one
        raise Http404("No such photo")
    return photo


@login_required
@require_GET
def photo_image(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    return _serve(_owned_photo(request, pk).image)


@login_required
@require_GET
def photo_thumb(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    photo = _owned_photo(request, pk)
    return _serve(photo.thumbnail or photo.image)


@login_required
@require_GET
def job_result(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    return _serve(owned_job_or_404(request, pk).result_image)


@login_required
@require_GET
def job_thumb(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    job = owned_job_or_404(request, pk)
    return _serve(job.result_thumbnail or job.result_image or job.photo.thumbnail)


@login_required
@require_GET
def job_download(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    job = owned_job_or_404(request, pk)
    if not job.result_image:
        raise Http404("No such result")
    if settings.USE_S3:
        response = HttpResponseRedirect(job_download_url(job=job))
        response["Cache-Control"] = "private, no-store"
        return response
    return _serve(job.result_image, download_name=job_download_filename(job=job))
