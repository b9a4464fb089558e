"""One edit's page, its live status fragment (polled by htmx) and deleting it."""
from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from editor.errors import Refused
from editor.models import Clothing, EditJob, WrongResultReport
from editor.progress import ERROR_CONTENT_BLOCKED, FAILED_PHASES, PHASE_LABELS, RUNNING_PHASES, bar_constants
from editor.selectors.gallery import (
    edit_job_for_owner,
    edit_job_retried_as,
    job_full_result_url,
    job_result_url,
    photo_image_url,
    photo_original_url,
)
from editor.selectors.jobs import edit_job_composing_for_owner, edit_job_phase_for_owner, edit_job_progress
from editor.selectors.reports import wrong_refunds_left, wrong_report_for_job
from editor.selectors.sharing import share_links_for_job, sharing_enabled
from editor.services.edit_commands import edit_job_delete, edit_job_try_again
from editor.services.wrong_results import edit_job_report_wrong
from editor.status_tokens import status_token_check, status_token_issue
from editor.types import AuthedRequest


def owned_job_or_404(request: AuthedRequest, pk: Any) -> EditJob:
    """The viewer's own edit; someone else's looks exactly like a missing one (404)."""
    job = edit_job_for_owner(user=request.user, job_id=pk)
    if job is None:
        raise Http404("No such edit")
    return job


def _failure(job: EditJob) -> tuple[str, str]:
    """A plain headline, then the reason we were given (the engine's and our own messages are written for people)."""
    if job.state == EditJob.State.EXPIRED:
        reason = job.error_detail or "The editing service did not finish in time."
        return "The edit took too long and was stopped.", reason
    return "The edit could not be made.", job.error_detail or "The editing service could not edit this photo."


def _poll_token(request: AuthedRequest, job: EditJob) -> str:
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    return status_token_issue(job_id=job.pk, owner_id=job.owner_id, session_cookie=cookie) if cookie else ""


def _panel_context(job: EditJob, request: AuthedRequest) -> dict[str, Any]:
    progress = edit_job_progress(job=job)
    phase = progress["phase"]
    # edit_job_progress already checked the ledger for the one refund a failed job gets.
    refunded = job.cost_credits if progress.get("not_charged") else 0
    full = phase == "done" and bool(job.full_result) and bool(job.photo.original)
    composing = phase == "done" and job.compose_state == EditJob.Compose.PENDING
    return {
        # The whole photo at full resolution once composed; until then (or if composing failed) the square.
        "full": full,
        "composing": composing,
        "compose_failed": phase == "done" and job.compose_state == EditJob.Compose.FAILED,
        "shown": "composing" if composing else phase,
        "image_width": job.photo.original_width if full else 512,
        "image_height": job.photo.original_height if full else 512,
        "job": job,
        "progress": progress,
        "phase": phase,
        "phase_label": PHASE_LABELS[phase],
        "percent": max(0, min(100, round(float(progress.get("fraction") or 0) * 100))),
        "running": phase in RUNNING_PHASES,
        "before_url": photo_original_url(photo=job.photo) if full else photo_image_url(photo=job.photo),
        "after_url": job_full_result_url(job=job) if full else (job_result_url(job=job) if job.result_image else ""),
        "failure": _failure(job) if phase in FAILED_PHASES else ("", ""),
        "refunded": refunded,
        "other_clothing": Clothing.BOTTOMWEAR if job.clothing == Clothing.TOPWEAR else Clothing.TOPWEAR,
        "poll_token": _poll_token(request, job) if phase in RUNNING_PHASES else "",
        # A failed edit offers "try again with a changed prompt" once; after that it points at the new try.
        "retried_as": edit_job_retried_as(job=job) if phase in FAILED_PHASES else None,
        # The content filter would refuse the same photo again: no "try again" for it.
        "retryable": phase in FAILED_PHASES and job.error_code != ERROR_CONTENT_BLOCKED,
        "cost": settings.EDIT_COST_CREDITS,
        "clothing_choices": Clothing.choices,
        **(_wrong_result_context(job) if phase == "done" else {}),
    }


def _wrong_result_context(job: EditJob) -> dict[str, Any]:
    report = wrong_report_for_job(job=job)
    return {
        "wrong_report": report,
        "wrong_refunds_left": 0 if report else wrong_refunds_left(user_id=job.owner_id),
        "wrong_reasons": WrongResultReport.Reason.choices,
    }


@login_required
@require_GET
def job_detail(request: AuthedRequest, pk: Any) -> HttpResponse:
    job = owned_job_or_404(request, pk)
    return render(request, "editor/job_detail.html", {
        **_panel_context(job, request), "bar": bar_constants(),
        "sharing_on": sharing_enabled(), "share_links": share_links_for_job(user=request.user, job=job),
    })


@require_GET
def job_status(request: HttpRequest, pk: Any) -> HttpResponse:
    """The live panel, polled by htmx every second. While the phase the page shows is still current the answer is
    204 (htmx keeps the panel; job.js ticks the clock and the bar). A poll with the panel's token answers that
    from one owner-scoped query without loading the session (editor/status_tokens.py); when the phase changed, or
    without a valid token, the session-checked view sends the panel and updates the screen-reader announcer."""
    shown = request.GET.get("phase")
    grant = status_token_check(token=request.GET.get("t", ""), job_id=pk,
                               session_cookie=request.COOKIES.get(settings.SESSION_COOKIE_NAME, ""))
    if grant is not None and shown in RUNNING_PHASES:
        if edit_job_phase_for_owner(owner_id=grant.owner_id, job_id=pk) == shown:
            return _unchanged()
    # The full path is for signed-in owners only; login_required on it guarantees the user.
    return _job_status_panel(cast(AuthedRequest, request), pk, shown)


def _unchanged() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


@login_required
def _job_status_panel(request: AuthedRequest, pk: Any, shown: str | None) -> HttpResponse:
    phase = edit_job_phase_for_owner(owner_id=request.user.pk, job_id=pk)
    if phase is None:
        raise Http404("No such edit")
    still_composing = shown == "composing" and phase == "done" and edit_job_composing_for_owner(
        user=request.user, job_id=pk
    )
    if (phase == shown and phase in RUNNING_PHASES) or still_composing:
        return _unchanged()
    job = owned_job_or_404(request, pk)
    context = _panel_context(job, request)
    context["announce"] = shown != context["shown"]
    # A new phase may come with a refund: the fragment also refreshes the header's balance (hx-swap-oob).
    context["fragment"] = True
    response = render(request, "editor/_job_panel.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def job_retry(request: AuthedRequest, pk: Any) -> HttpResponse:
    """Try a failed edit again, with the prompt and part from the form on its page."""
    job = owned_job_or_404(request, pk)
    prompt, clothing = request.POST.get("prompt", ""), request.POST.get("clothing", "")
    try:
        new_job = edit_job_try_again(user=request.user, job=job, prompt=prompt, clothing=clothing)
    except Refused as exc:
        context = {**_panel_context(job, request), "bar": bar_constants(), "retry_error": exc.message,
                   "retry_prompt": prompt}
        return render(request, "editor/job_detail.html", context, status=400)
    return redirect("editor:job_detail", pk=new_job.pk)


@login_required
@require_POST
def job_delete(request: AuthedRequest, pk: Any) -> HttpResponse:
    job = owned_job_or_404(request, pk)
    try:
        edit_job_delete(user=request.user, job=job)
    except Refused as exc:
        messages.error(request, exc.message)
        return redirect("editor:job_detail", pk=job.pk)
    messages.success(request, "The edit and its files were deleted.")
    return redirect("editor:gallery")


@login_required
@require_POST
def job_report_wrong(request: AuthedRequest, pk: Any) -> HttpResponse:
    """"This result is wrong": record it for staff and refund it once (within the monthly allowance)."""
    job = owned_job_or_404(request, pk)
    try:
        outcome = edit_job_report_wrong(
            user=request.user, job=job, reason=request.POST.get("reason", ""), detail=request.POST.get("detail", "")
        )
    except Refused as exc:
        messages.error(request, exc.message)
        return redirect("editor:job_detail", pk=job.pk)
    if not outcome.created:
        messages.info(request, "You reported this result already; nothing changed.")
    elif outcome.refunded_credits:
        credits = outcome.refunded_credits
        messages.success(request, f"Thank you: we recorded what went wrong and {credits} credit"
                                  f"{'s' if credits != 1 else ''} went back to your balance.")
    else:
        messages.success(request, "Thank you: we recorded what went wrong. This month's refunds for wrong results "
                                  "are used up, so there was no refund this time.")
    return redirect("editor:job_detail", pk=job.pk)
