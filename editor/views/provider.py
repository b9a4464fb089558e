"""The provider's completion webhook (ours, docs/fashionai.md): no session, no CSRF token; the Standard Webhooks
signature is the authentication. All the checks are in editor/services/provider_webhooks.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from editor.services.provider_webhooks import provider_webhook_receive

MAX_BODY_BYTES = 256 * 1024  # a result body is a few hundred bytes


@csrf_exempt  # the signature, not a cookie, proves the sender
@require_POST
def provider_webhook(request: HttpRequest) -> HttpResponse:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return HttpResponse(status=413)
    verdict = provider_webhook_receive(body=request.body, headers=dict(request.headers))
    return HttpResponse(status=int(verdict))
