"""Adds the rate-limit headers the key check computed (editor/api/ratelimit.py) to every API answer, problems
included. Sync and async capable, so under the ASGI server it costs no thread hop."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class RateLimitHeadersMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self._add(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return self._add(request, await get_response(request))

    @staticmethod
    def _add(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        for name, value in getattr(request, "api_rate_headers", {}).items():
            response.setdefault(name, value)
        return response
