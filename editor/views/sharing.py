"""Sharing a finished edit: the owner makes and revokes links; anyone with a link sees a before/after page.

The public page names nobody, asks search engines not to index it, and serves the two images through this site as
fresh JPEGs of the pixels alone (no EXIF, no storage key or presigned URL that would carry the owner's id).
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from editor import images, storage
from editor.errors import Refused
from editor.models import ShareLink
from editor.selectors.sharing import live_share_link
from editor.services.edit_commands import edit_share_create, edit_share_revoke
from editor.services.sharing import share_link_count_view
from editor.types import AuthedRequest
from editor.views.jobs import owned_job_or_404

NOINDEX = "noindex, nofollow, noarchive, noimageindex"


@login_required
@require_POST
def share_create(request: AuthedRequest, pk: Any) -> HttpResponse:
    job = owned_job_or_404(request, pk)
    days = request.POST.get("expires_in_days", "").strip()
    try:
        link = edit_share_create(user=request.user, job=job, expires_in_days=int(days) if days.isdigit() else None)
    except Refused as exc:
        messages.error(request, exc.message)
    else:
        url = request.build_absolute_uri(f"/s/{link.token}/")
        messages.success(request, f"Anyone with this link can see the before and after: {url}")
    return redirect("editor:job_detail", pk=job.pk)


@login_required
@require_POST
def share_revoke(request: AuthedRequest, pk: Any, link_id: int) -> HttpResponse:
    job = owned_job_or_404(request, pk)
    if edit_share_revoke(user=request.user, link_id=link_id):
        messages.success(request, "The link was revoked: it no longer opens.")
    return redirect("editor:job_detail", pk=job.pk)


def _live_or_404(token: str) -> ShareLink:
    link = live_share_link(token=token)
    if link is None:
        raise Http404("No such link")
    return link


def _private(response: HttpResponse) -> HttpResponse:
    response["X-Robots-Tag"] = NOINDEX
    response["Referrer-Policy"] = "no-referrer"
    # A revoked link stops working at once: nothing shared is kept in a cache, the browser's own included.
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    link = _live_or_404(token)
    share_link_count_view(link=link)
    return _private(render(request, "editor/shared.html", {"link": link, "job": link.job, "noindex": NOINDEX}))


@require_GET
def shared_image(request: HttpRequest, token: str, which: str) -> HttpResponse:
    if which not in ("before", "after"):
        raise Http404("No such image")
    link = _live_or_404(token)
    name = link.job.photo.image.name if which == "before" else link.job.result_image.name
    try:
        data = storage.read(str(name))
    except FileNotFoundError as exc:
        raise Http404("No such image") from exc
    return _private(HttpResponse(images.public_copy(data), content_type="image/jpeg"))
