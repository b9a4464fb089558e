"""The profile's developer pages: API keys (create: shown once; revoke) and webhooks (endpoints, secret rotation,
a test event, the delivery log with redeliver). Thin: each POST calls one service; refusals are shown as they are.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from editor.api.models import ApiKey, ApiScope, WebhookDelivery, WebhookEndpoint, WebhookEvent
from editor.api.tasks import deliver_soon
from editor.errors import Refused
from editor.services.api_keys import api_key_create, api_key_revoke
from editor.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_redeliver,
    webhook_send_test,
)
from editor.types import AuthedRequest


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")
    scopes = forms.MultipleChoiceField(choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=[ApiScope.EDITS_READ, ApiScope.EDITS_WRITE])


class WebhookForm(forms.Form):
    url = forms.CharField(max_length=500, label="Receiver URL")
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=list(WebhookEvent.values))


def _keys_page(request: AuthedRequest, form: ApiKeyForm, new_key: str = "", status: int = 200) -> HttpResponse:
    keys = ApiKey.objects.filter(user_id=request.user.pk).order_by("-created_at")
    return render(request, "editor/developer_keys.html", {"form": form, "keys": keys, "new_key": new_key},
                  status=status)


@never_cache  # the page that shows a new key once must not be kept by any cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: AuthedRequest) -> HttpResponse:
    if request.method == "POST":
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                created = api_key_create(user=request.user, name=form.cleaned_data["name"],
                                         scopes=form.cleaned_data["scopes"])
            except Refused as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                return _keys_page(request, ApiKeyForm(), new_key=created.plaintext)
        return _keys_page(request, form, status=400)
    return _keys_page(request, ApiKeyForm())


@login_required
@require_POST
def api_key_revoke_view(request: AuthedRequest, pk: int) -> HttpResponse:
    if not api_key_revoke(key_id=pk, user=request.user):
        raise Http404("No such key")
    messages.success(request, "The key was revoked: requests with it are refused from now on.")
    return redirect("editor:api_keys")


def _webhooks_page(request: AuthedRequest, form: WebhookForm, secret: str = "", status: int = 200,
                   secret_for: Any = None) -> HttpResponse:
    endpoints = list(WebhookEndpoint.objects.filter(user_id=request.user.pk).order_by("-created_at"))
    deliveries = {e.pk: list(WebhookDelivery.objects.filter(endpoint=e).order_by("-created_at", "-id")[:20])
                  for e in endpoints}
    rows = [(e, deliveries[e.pk]) for e in endpoints]
    return render(request, "editor/developer_webhooks.html",
                  {"form": form, "rows": rows, "secret": secret, "secret_for": secret_for}, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def webhooks(request: AuthedRequest) -> HttpResponse:
    if request.method == "POST":
        form = WebhookForm(request.POST)
        if form.is_valid():
            try:
                endpoint, secret = webhook_endpoint_create(
                    user=request.user, url=form.cleaned_data["url"], events=form.cleaned_data["events"],
                    description=form.cleaned_data["description"])
            except Refused as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                return _webhooks_page(request, WebhookForm(), secret=secret, secret_for=endpoint.pk)
        return _webhooks_page(request, form, status=400)
    return _webhooks_page(request, WebhookForm())


@never_cache
@login_required
@require_POST
def webhook_action(request: AuthedRequest, pk: int, action: str) -> HttpResponse:
    try:
        if action == "rotate":
            secret = webhook_endpoint_rotate_secret(user=request.user, endpoint_id=pk)
            return _webhooks_page(request, WebhookForm(), secret=secret, secret_for=pk)
        if action == "test":
            deliver_soon(webhook_send_test(user=request.user, endpoint_id=pk))
            messages.success(request, "A test event is on its way; its delivery shows below.")
        elif action == "delete":
            webhook_endpoint_delete(user=request.user, endpoint_id=pk)
            messages.success(request, "The endpoint was deleted.")
        else:
            raise Http404("No such action")
    except Refused as exc:
        raise Http404(exc.message) from None
    return redirect("editor:webhooks")


@login_required
@require_POST
def webhook_redeliver_view(request: AuthedRequest, pk: int) -> HttpResponse:
    try:
        deliver_soon(webhook_redeliver(user=request.user, delivery_id=pk))
    except Refused as exc:
        raise Http404(exc.message) from None
    messages.success(request, "The message is being sent again.")
    return redirect("editor:webhooks")
