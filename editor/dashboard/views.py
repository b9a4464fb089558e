"""Staff pages: the usage dashboard, its CSV export and one user's usage. Thin: selectors do the reading."""
from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from editor.dashboard.forms import PeriodForm
from editor.dashboard.selectors import (
    dashboard_data,
    purchase_figures,
    usage_rows_for_export,
    user_usage,
    wrong_results,
)
from editor.models import EditJob, Photo
from editor.storage import serve

# The image fields staff may open from the admin, per model, and the permission each needs.
STAFF_FILE_FIELDS = {
    "photo": (Photo, ("image", "thumbnail"), "editor.view_photo"),
    "job": (EditJob, ("result_image", "result_thumbnail"), "editor.view_editjob"),
}
# Being staff only opens the admin's door: each page checks its own permission (403 without it).
USAGE_PERMISSION = "dashboard.view_usage"

View = TypeVar("View", bound=Callable[..., Any])


def staff_with(permission: str) -> Callable[[View], View]:
    """Staff only (others go to the login page), and among staff only those holding `permission` (403)."""

    def decorate(view: View) -> View:
        checked = permission_required(permission, raise_exception=True)(view)
        return staff_member_required(checked)

    return decorate


@staff_member_required
@require_GET
def staff_root(request: HttpRequest) -> HttpResponse:
    """/staff/ is where people look first: send staff on to the dashboard (which checks its permission)."""
    return redirect("staff_dashboard")


@staff_with(USAGE_PERMISSION)
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    form = PeriodForm(request.GET or None)
    period = form.get_period()
    data = dashboard_data(period=period)
    return render(
        request,
        "dashboard/dashboard.html",
        {
            "form": form,
            "data": data,
            "period": period,
            "chart_data": data.chart_data(),
            "query": request.GET.urlencode(),
            "periods": [("today", "Today"), ("7d", "7 days"), ("30d", "30 days")],
            "farming_threshold": settings.DASHBOARD_SIGNUP_FARMING_THRESHOLD,
            "purchases": purchase_figures(period=period),
            "wrong": wrong_results(period=period, succeeded=data.succeeded),
        },
    )


@staff_with(USAGE_PERMISSION)
@require_GET
def dashboard_export(request: HttpRequest) -> HttpResponse:
    period = PeriodForm(request.GET or None).get_period()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{period.start}-to-{period.end}.csv"'
    writer = csv.writer(response)
    for row in usage_rows_for_export(period=period):
        writer.writerow(row)
    return response


@staff_with(USAGE_PERMISSION)
@require_GET
def user_usage_view(request: HttpRequest, user_id: int) -> HttpResponse:
    usage = user_usage(user_id=user_id)
    return render(request, "dashboard/user_usage.html", {"usage": usage, "subject": usage.user})


@staff_member_required
@require_GET
def staff_file(request: HttpRequest, kind: str, pk: Any, field: str) -> HttpResponseBase:
    """Any user's photo or result for staff (the admin's thumbnails). MEDIA_URL is never served: on S3 this
    redirects to a short-lived presigned URL, locally it streams the file."""
    if kind not in STAFF_FILE_FIELDS or field not in STAFF_FILE_FIELDS[kind][1]:
        raise Http404("No such file")
    model, _, permission = STAFF_FILE_FIELDS[kind]
    if not request.user.has_perm(permission):
        raise PermissionDenied  # a staff account without the right to view these rows sees none of their files
    # Staff thumbnails in the admin: cached a little less long than the owner's own views.
    return serve(getattr(get_object_or_404(model, pk=pk), field), max_age=600)
