"""Errors as RFC 9457 problem details: one builder and the mapping from the site's refusals to HTTP statuses."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.encoding import iri_to_uri
from ninja.renderers import JSONRenderer

PROBLEM_TYPE_BASE = "/api/problems/"
MEDIA_TYPE = "application/problem+json"
_renderer = JSONRenderer()


class ApiProblem(Exception):
    """Raised by the API's own checks; answered as a problem document."""

    def __init__(self, status: int, code: str, title: str, detail: str = "", *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.field, self.headers, self.extra = field, headers or {}, extra


def problem_response(request: HttpRequest | None, problem: ApiProblem) -> HttpResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": iri_to_uri(request.path) if request is not None else "",
        "code": problem.code,
    }
    if problem.field is not None:
        body["field"] = problem.field
    body.update(problem.extra)
    response = HttpResponse(_renderer.render(request, body, response_status=problem.status),  # type: ignore[arg-type]
                            status=problem.status, content_type=MEDIA_TYPE)
    for name, value in problem.headers.items():
        response[name] = value
    return response
