"""Starting an edit: the form page, and the two JSON endpoints of a direct browser-to-S3 upload."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from editor.errors import Refused
from editor.forms import PROMPT_EXAMPLES, EditForm, crop_from
from editor.models import Clothing, EditJob, Photo
from editor.selectors.credits import credits_balance
from editor.selectors.gallery import edit_job_for_owner, job_full_result_url, job_result_url, photo_image_url
from editor.services.edit_commands import edit_photo_keep_for_form, edit_start
from editor.services.notifications import preferences_for
from editor.services.payments import buying_enabled
from editor.services.photos import (
    UploadRateLimited,
    direct_upload_enabled,
    photo_direct_upload_finish,
    photo_direct_upload_start,
)
from editor.services.previews import PreviewRateLimited, edit_preview, preview_enabled
from editor.types import AuthedRequest


@login_required
@require_http_methods(["GET", "POST"])
def edit_new(request: AuthedRequest) -> HttpResponse:
    user = request.user
    kept_photo: Photo | None = None
    if request.method == "POST":
        form = EditForm(request.POST, request.FILES, user=user)
        if form.is_valid():
            try:
                job = edit_start(
                    user=user,
                    prompt=form.cleaned_data["prompt"],
                    clothing=form.cleaned_data["clothing"],
                    uploaded_file=form.cleaned_data.get("image"),
                    crop=form.crop,
                    photo=form.photo_obj,
                    source_job=form.source_job_obj,
                    notify_by_email=form.cleaned_data.get("notify_by_email", False),
                )
            except Refused as exc:
                form.add_error(exc.field, exc.message)
            else:
                return redirect("editor:job_detail", pk=job.pk)
        elif form.cleaned_data.get("image") and "image" not in form.errors:
            # Only the prompt or the part needs fixing: keep the photo, so the person does not choose it again.
            try:
                kept = edit_photo_keep_for_form(
                    user=user, uploaded_file=form.cleaned_data["image"], crop=form.crop
                )
            except Refused as exc:
                form.add_error(exc.field, exc.message)
            else:
                if kept is not None:
                    form.keep_photo(kept)
        status = 400
    else:
        initial: dict[str, Any] = {"notify_by_email": preferences_for(user_id=user.pk).email_when_ready}
        # "Try another edit" after a failure: the same photo (already stored) and prompt, ready to change.
        failed = edit_job_for_owner(user=user, job_id=request.GET.get("photo_of"))
        if failed is not None:
            kept_photo = failed.photo
            initial.update(photo=failed.photo_id, prompt=failed.prompt, clothing=failed.clothing)
        source = edit_job_for_owner(user=user, job_id=request.GET.get("from"))
        if source is not None and source.result_image:
            initial["source_job"] = source.pk
            # Edit again usually means "now the other part": pre-select it.
            initial["clothing"] = (
                Clothing.BOTTOMWEAR if source.clothing == Clothing.TOPWEAR else Clothing.TOPWEAR
            )
        if request.GET.get("clothing") in Clothing.values:
            initial["clothing"] = request.GET["clothing"]
        form = EditForm(initial=initial, user=user)
        status = 200

    source_job = form.source_job_obj or edit_job_for_owner(
        user=user, job_id=form["source_job"].value() or ""
    )
    existing_photo = form.photo_obj or kept_photo
    context = {
        "form": form,
        "examples": PROMPT_EXAMPLES,
        "cost": settings.EDIT_COST_CREDITS,
        "balance": credits_balance(user=user),
        "low_credits": settings.LOW_CREDITS_THRESHOLD,
        "buying": buying_enabled(),
        "source_job": source_job if source_job and source_job.result_image else None,
        "source_url": _result_url(source_job),
        "existing_photo_url": photo_image_url(photo=existing_photo) if existing_photo else "",
        "direct_upload": direct_upload_enabled(),
        "direct_upload_min_bytes": settings.DIRECT_UPLOAD_MIN_BYTES,
        "max_bytes": settings.UPLOAD_MAX_BYTES,
        "min_side": settings.UPLOAD_MIN_SIDE,
        "preview": preview_enabled(),
        "preview_estimate": settings.FASHION_AI_PREVIEW_IS_ESTIMATE,
        "original_max_side": settings.ORIGINAL_MAX_SIDE,
    }
    return render(request, "editor/edit_new.html", context, status=status)


def _result_url(job: EditJob | None) -> str:
    """An earlier edit edited again: its whole full-resolution photo when there is one."""
    if job is None or not job.result_image:
        return ""
    return job_full_result_url(job=job) if job.full_result else job_result_url(job=job)


@login_required
@require_POST
def upload_start(request: AuthedRequest) -> JsonResponse:
    """Hand the browser a presigned POST so a large photo goes straight to S3."""
    try:
        return JsonResponse(photo_direct_upload_start(user=request.user))
    except UploadRateLimited as exc:
        return JsonResponse({"error": exc.message}, status=429)
    except Refused as exc:
        return JsonResponse({"error": exc.message}, status=400)


@login_required
@require_POST
def upload_finish(request: AuthedRequest) -> JsonResponse:
    """Validate and normalise what the browser posted to S3; the raw object is deleted either way."""
    try:
        photo = photo_direct_upload_finish(
            user=request.user,
            key=request.POST.get("key", ""),
            original_name=request.POST.get("name", "")[:255],
            crop=crop_from(request.POST),
        )
    except Refused as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return JsonResponse({"photo": str(photo.pk), "url": photo_image_url(photo=photo)})


@login_required
@require_POST
def preview(request: AuthedRequest) -> JsonResponse:
    """The free region preview: the square the browser cropped (`image`), `clothing`, `prompt`. Nothing is stored or
    charged. `available: false` when no preview engine answers."""
    upload = request.FILES.get("image")
    if upload is None:
        return JsonResponse({"error": "Send the square as `image`."}, status=400)
    try:
        answer = edit_preview(
            user=request.user, image=upload, size=upload.size,
            clothing=request.POST.get("clothing", ""), prompt=request.POST.get("prompt", ""),
        )
    except PreviewRateLimited as exc:
        return JsonResponse({"error": exc.message}, status=429)
    except Refused as exc:
        return JsonResponse({"error": exc.message}, status=400)
    if answer is None:
        return JsonResponse({"available": False})
    return JsonResponse({
        "available": True, "ok": answer.ok, "code": answer.code, "message": answer.message,
        "mask": answer.mask, "score": answer.score, "estimate": answer.estimate,
    })
