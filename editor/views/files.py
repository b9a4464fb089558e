"""Files, only for their owner: a redirect to a short-lived presigned URL (S3) or a streamed file (local).

There is no public media tree: MEDIA_URL is never served, every file goes through these checks.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from editor.models import Photo
from editor.selectors.gallery import job_download_filename, photo_for_owner
from editor.storage import serve
from editor.types import AuthedRequest
from editor.views.jobs import owned_job_or_404


def _owned_photo(request: AuthedRequest, pk: Any) -> Photo:
    photo = photo_for_owner(user=request.user, photo_id=pk)
    if photo is None:  # someone else's photo looks exactly like a missing one
        raise Http404("No such photo")
    return photo


@login_required
@require_GET
def photo_image(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    return serve(_owned_photo(request, pk).image)


@login_required
@require_GET
def photo_thumb(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    photo = _owned_photo(request, pk)
    return serve(photo.thumbnail or photo.image)


@login_required
@require_GET
def photo_original(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    photo = _owned_photo(request, pk)
    return serve(photo.original or photo.image)


@login_required
@require_GET
def job_full_result(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    job = owned_job_or_404(request, pk)
    return serve(job.full_result or job.result_image)


@login_required
@require_GET
def job_result(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    return serve(owned_job_or_404(request, pk).result_image)


@login_required
@require_GET
def job_thumb(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    job = owned_job_or_404(request, pk)
    return serve(job.result_thumbnail or job.result_image or job.photo.thumbnail)


@login_required
@require_GET
def job_download(request: AuthedRequest, pk: Any) -> HttpResponseBase:
    """The full-resolution JPEG (whole photo); `?square=1` or no full result yet: the 512 square the model made."""
    job = owned_job_or_404(request, pk)
    if not job.result_image:
        raise Http404("No such result")
    square = request.GET.get("square") == "1" or not job.full_result
    file = job.result_image if square else job.full_result
    return serve(file, download_name=job_download_filename(job=job, square=square))
