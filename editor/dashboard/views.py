"""Staff pages: the usage dashboard, its CSV export and one user's usage. Thin: selectors do the reading."""
from __future__ import annotations

import csv

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from editor.dashboard.forms import PeriodForm
from editor.dashboard.selectors import dashboard_data, usage_rows_for_export, user_usage


@staff_member_required
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
        },
    )


@staff_member_required
@require_GET
def dashboard_export(request: HttpRequest) -> HttpResponse:
    period = PeriodForm(request.GET or None).get_period()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{period.start}-to-{period.end}.csv"'
    writer = csv.writer(response)
    for row in usage_rows_for_export(period=period):
        writer.writerow(row)
    return response


@staff_member_required
@require_GET
def user_usage_view(request: HttpRequest, user_id: int) -> HttpResponse:
    usage = user_usage(user_id=user_id)
    return render(request, "dashboard/user_usage.html", {"usage": usage, "subject": usage.user})

