"""A person's data: request a ZIP of it, download it, delete the account."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from editor import storage
from editor.errors import Refused
from editor.services.account_commands import account_delete_start, data_export_start
from editor.services.account_data import data_export_for_download
from editor.types import AuthedRequest, HttpRequest


@login_required
@require_POST
def data_export_request_view(request: AuthedRequest) -> HttpResponse:
    try:
        data_export_start(user=request.user)
    except Refused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "We are preparing a ZIP of your data. The download link comes by email.")
    return redirect("editor:profile")


@login_required
@require_GET
def data_export_download(request: AuthedRequest, token: str) -> HttpResponseBase:
    export = data_export_for_download(user=request.user, token=token)
    if export is None:  # someone else's, expired or unknown: all look the same
        raise Http404("No such export")
    return storage.serve_name(export.file_name, download_name="fashion-ai-studio-data.zip", max_age=0)


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request: AuthedRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            account_delete_start(
                user=request.user, password=request.POST.get("password", ""),
                confirmed=request.POST.get("confirm") == "on",
            )
        except Refused as exc:
            error = exc.message
        else:
            logout(request)
            return redirect("editor:account_deleted")
    return render(request, "editor/account_delete.html", {"error": error}, status=400 if error else 200)


@require_GET
def account_deleted(request: HttpRequest) -> HttpResponse:
    return render(request, "editor/account_deleted.html")
