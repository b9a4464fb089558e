"""Users' webhooks end to end: an edit's event reaches a receiver that verifies it with the `standardwebhooks`
library; a receiver answering 500 gets the same message again (same webhook-id) until it answers 200; the
profile's "send a test event", redeliver and secret rotation; credits.low."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devservices.net import wait_until
from tests.api.conftest import ApiStack, create_edit
from tests.servers.client import csrf_token, signed_in

pytestmark = pytest.mark.django_db(transaction=True)


def verified(secret: str, request: Any) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def test_edit_succeeded_is_signed_and_retried_after_500s(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from editor.api.models import WebhookDelivery
    from editor.services.webhooks import webhook_endpoint_create

    user, key = api_user()
    _, secret = webhook_endpoint_create(user=user, url=api_stack.receiver.url,
                                        events=["edit.succeeded", "edit.failed"])
    api_stack.receiver.plan[:] = [500, 500]
    edit = create_edit(api_stack, key, headers={"Prefer": "wait=30"}).json()
    assert edit["state"] == "succeeded"

    attempts = api_stack.receiver.wait_for(3, timeout=60)
    assert len({r.headers["webhook-id"] for r in attempts}) == 1, "every attempt carries the same webhook-id"
    payloads = [verified(secret, r) for r in attempts]
    assert all(p["type"] == "edit.succeeded" and p["data"]["id"] == edit["id"] for p in payloads)
    assert payloads[0]["data"]["credits"] == {"charged": 1, "refunded": 0}
    # A wrong secret or a changed body does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(attempts[0].body, attempts[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(attempts[0].body.replace(b"succeeded", b"failed"), attempts[0].headers)

    def delivered() -> bool:
        return WebhookDelivery.objects.filter(state="succeeded").exists()

    wait_until(delivered, timeout=20, what="the delivery marked delivered")
    row = WebhookDelivery.objects.get()
    assert row.attempts == 3 and row.last_status == 200 and row.next_attempt_at is None
    # Exactly once per event: nothing more arrives after success.
    assert len(api_stack.receiver.requests) == 3


def test_failed_edit_event_and_filters(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from editor.services.job_state import edit_job_mark_failed
    from editor.services.webhooks import webhook_endpoint_create

    user, key = api_user()
    _, only_failures = webhook_endpoint_create(user=user, url=api_stack.receiver.url + "?f", events=["edit.failed"])
    held = create_edit(api_stack, key).json()
    # The provider failing is the job steps' business; here the state writer ends it as they would.
    from editor.models import EditJob

    EditJob.objects.filter(pk=held["id"]).update(next_poll_at=None)
    assert edit_job_mark_failed(job_id=held["id"], error_code="provider_failed", error_detail="The provider failed.")
    request = api_stack.receiver.wait_for(1)[0]
    body = verified(only_failures, request)
    assert body["type"] == "edit.failed"
    assert body["data"]["error"] == {"code": "provider_failed", "message": "The provider failed."}
    assert body["data"]["credits"] == {"charged": 1, "refunded": 1}
    ok = create_edit(api_stack, key, headers={"Prefer": "wait=30"}).json()
    assert ok["state"] == "succeeded"
    import time

    time.sleep(2)
    assert len(api_stack.receiver.requests) == 1, "edit.succeeded is not in this endpoint's filter"


def test_credits_low(api_stack: ApiStack, api_user: Callable[..., Any], settings: Any) -> None:
    from editor.services.webhooks import webhook_endpoint_create

    user, key = api_user(credits=3)  # threshold 3: the first charge crosses it
    _, secret = webhook_endpoint_create(user=user, url=api_stack.receiver.url, events=["credits.low"])
    assert create_edit(api_stack, key).status_code == 201
    body = verified(secret, api_stack.receiver.wait_for(1)[0])
    assert body["type"] == "credits.low" and body["data"] == {"balance": 2, "threshold": 3}


def test_profile_test_event_redeliver_and_rotation(api_stack: ApiStack, make_user: Callable[..., Any]) -> None:
    user = make_user()
    session = signed_in(api_stack.url, user.email, user.raw_password)
    page = f"{api_stack.url}/profile/webhooks/"
    made = session.post(page, data={"csrfmiddlewaretoken": csrf_token(session, page), "url": api_stack.receiver.url,
                                    "description": "shop", "events": ["edit.succeeded"]}, timeout=30)
    assert made.status_code == 200, made.text[:500]
    secret = re.search(r'data-testid="secret">(whsec_[^<]+)<', made.text)
    assert secret, "the secret is shown once"
    assert secret[1] not in session.get(page, timeout=30).text, "and only once"
    endpoint_id = re.search(r'data-testid="endpoint" data-id="(\d+)"', made.text)
    assert endpoint_id

    def action(name: str) -> Any:
        return session.post(f"{api_stack.url}/profile/webhooks/{endpoint_id[1]}/{name}/",
                            data={"csrfmiddlewaretoken": csrf_token(session, page)}, timeout=30)

    assert action("test").status_code in (200, 302)
    first = api_stack.receiver.wait_for(1)[0]
    assert verified(secret[1], first)["type"] == "webhook.test"

    listing = session.get(page, timeout=30).text
    wait_until(lambda: 'data-state="succeeded"' in session.get(page, timeout=30).text, timeout=20,
               what="the delivery log shows it delivered")
    delivery = re.search(r'/profile/webhook-deliveries/(\d+)/redeliver/', session.get(page, timeout=30).text)
    assert delivery, listing[:2000]
    again = session.post(f"{api_stack.url}/profile/webhook-deliveries/{delivery[1]}/redeliver/",
                         data={"csrfmiddlewaretoken": csrf_token(session, page)}, timeout=30)
    assert again.status_code in (200, 302)
    second = api_stack.receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]

    rotated = action("rotate")
    new_secret = re.search(r'data-testid="secret">(whsec_[^<]+)<', rotated.text)
    assert new_secret and new_secret[1] != secret[1]
    assert action("test").status_code in (200, 302)
    third = api_stack.receiver.wait_for(3)[2]
    # During the overlap both secrets verify: receivers switch over without losing a message.
    assert verified(new_secret[1], third)["type"] == "webhook.test"
    assert verified(secret[1], third)["type"] == "webhook.test"
    assert len(third.headers["webhook-signature"].split(" ")) == 2

    # Another user cannot act on this endpoint.
    other = make_user()
    stranger = signed_in(api_stack.url, other.email, other.raw_password)
    refused = stranger.post(f"{api_stack.url}/profile/webhooks/{endpoint_id[1]}/test/",
                            data={"csrfmiddlewaretoken": csrf_token(stranger, page)}, timeout=30)
    assert refused.status_code == 404


def test_internal_receivers_are_refused(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from editor.api.models import WebhookDelivery
    from editor.services.webhooks import webhook_endpoint_create, webhook_send_test

    user, _ = api_user()
    endpoint, _ = webhook_endpoint_create(user=user, url=f"https://127.0.0.1:{api_stack.image_port + 7}/x",
                                          events=["edit.succeeded"])
    delivery_id = webhook_send_test(user=user, endpoint_id=endpoint.pk)
    from editor.api.tasks import deliver_soon

    deliver_soon(delivery_id)
    wait_until(lambda: WebhookDelivery.objects.get(pk=delivery_id).attempts >= 1, timeout=20, what="an attempt")
    row = WebhookDelivery.objects.get(pk=delivery_id)
    assert row.last_status is None and "internal address" in row.last_error
