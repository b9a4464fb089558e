"""Refuse request bodies larger than any legitimate form before Django reads them.

Django spools an upload to a temporary file while parsing the body (the CSRF middleware already reads
it), so without this a multi-gigabyte POST would fill the disk before the upload's own size check ran.
A reverse proxy should cap bodies too (docs/deploy.md); this is the application's own guard.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

# Room for the other form fields and multipart boundaries around the largest accepted photo.
FORM_OVERHEAD_BYTES = 1024 * 1024


class RequestBodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.UPLOAD_MAX_BYTES + FORM_OVERHEAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            megabytes = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
            body = render_to_string(
                "413.html", {"message": f"That file is too big. Photos can be at most {megabytes:.0f} MB."}
            )
            # No `Connection: close`: WSGI forbids hop-by-hop headers from the application (runserver answered
            # 500 to it, gunicorn drops it). The servers deal with the unread body themselves: runserver reads
            # and discards it, gunicorn discards up to 64 KB and then closes the connection.
            return HttpResponse(body, status=413)
        return self.get_response(request)
