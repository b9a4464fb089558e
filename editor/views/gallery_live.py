"""The gallery's live poll: one JSON answer for every running tile of the page."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from editor.selectors.gallery_live import gallery_tile_states
from editor.types import AuthedRequest


@login_required
@require_GET
def gallery_states(request: AuthedRequest) -> JsonResponse:
    ids = [value for value in request.GET.get("ids", "").split(",") if value]
    response = JsonResponse({"jobs": gallery_tile_states(user=request.user, ids=ids)})
    response["Cache-Control"] = "no-store"
    return response
