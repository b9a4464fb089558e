"""The developer API over a live uvicorn server (tests/api/conftest.py): keys and scopes, ownership, idempotency
under concurrent duplicates, `Prefer: wait`, image URLs under the SSRF rules, cursor pages and the ledger."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.api.conftest import ApiStack, bearer, create_edit, problem

pytestmark = pytest.mark.django_db(transaction=True)


def test_auth_scopes_and_rate_limit_headers(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from editor.services.api_keys import api_key_revoke

    url = f"{api_stack.url}/api/v1/edits"
    missing = requests.get(url, timeout=30)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert problem(missing)["code"] == "unauthenticated"
    for wrong in ("fai_00000000_nope", "not-a-key", "fai_", ""):
        assert requests.get(url, headers=bearer(wrong), timeout=30).status_code == 401, wrong

    user, key = api_user()
    ok = requests.get(url, headers=bearer(key), timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.headers["RateLimit-Limit"] == "10000"
    assert int(ok.headers["RateLimit-Remaining"]) < 10000
    assert "RateLimit-Reset" in ok.headers

    _, read_only = api_user(scopes=("edits:read",))
    denied = create_edit(api_stack, read_only)
    assert denied.status_code == 403 and problem(denied)["code"] == "insufficient-scope"
    _, write_only = api_user(scopes=("edits:write",))
    assert requests.get(url, headers=bearer(write_only), timeout=30).status_code == 403
    assert requests.get(f"{api_stack.url}/api/v1/credits", headers=bearer(write_only), timeout=30).status_code == 403

    from editor.api.models import ApiKey

    key_row = ApiKey.objects.get(user=user)
    assert key_row.last_used_at is not None
    assert key not in str(ApiKey.objects.filter(user=user).values_list()), "the key itself is never stored"
    assert api_key_revoke(key_id=key_row.pk, user=user)
    assert requests.get(url, headers=bearer(key), timeout=30).status_code == 401


def test_another_users_ids_are_not_found(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from editor.models import CreditEntry

    owner, owner_key = api_user()
    stranger, stranger_key = api_user()
    created = create_edit(api_stack, owner_key, headers={"Prefer": "wait=30"})
    assert created.status_code == 201, created.text
    edit = created.json()
    assert edit["state"] == "succeeded", edit
    base = f"{api_stack.url}/api/v1/edits"
    missing = str(uuid.uuid4())
    for path in (edit["id"], f"{edit['id']}/result", f"{edit['id']}/thumbnail"):
        theirs = requests.get(f"{base}/{path}", headers=bearer(stranger_key), timeout=30)
        nothing = requests.get(f"{base}/{missing}", headers=bearer(stranger_key), timeout=30)
        assert theirs.status_code == nothing.status_code == 404, path
        assert problem(theirs)["detail"] == problem(nothing)["detail"]
    assert requests.delete(f"{base}/{edit['id']}", headers=bearer(stranger_key), timeout=30).status_code == 404
    # Their photo id cannot start an edit (nor charge anyone).
    reuse = create_edit(api_stack, stranger_key, photo_id=edit["photo_id"])
    assert reuse.status_code == 404, reuse.text
    assert not CreditEntry.objects.filter(user=stranger, kind="charge").exists()
    assert requests.get(base, headers=bearer(stranger_key), timeout=30).json()["data"] == []
    # The owner still has it, and may reuse the photo.
    assert requests.get(f"{base}/{edit['id']}", headers=bearer(owner_key), timeout=30).status_code == 200
    again = create_edit(api_stack, owner_key, photo_id=edit["photo_id"], prompt="a person wearing a green coat")
    assert again.status_code == 201, again.text
    assert again.json()["photo_id"] == edit["photo_id"]


def test_concurrent_duplicates_with_one_idempotency_key_make_one_edit_and_one_charge(
    api_stack: ApiStack, api_user: Callable[..., Any]
) -> None:
    from editor.models import CreditAccount, CreditEntry, EditJob

    user, key = api_user(credits=10)
    clients = 12
    start = threading.Barrier(clients)
    answers: list[requests.Response | str] = []

    def post() -> None:
        start.wait()
        try:
            answers.append(create_edit(api_stack, key, headers={"Idempotency-Key": "order-4711"}))
        except requests.RequestException as exc:
            answers.append(repr(exc))

    threads = [threading.Thread(target=post) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = Counter(a.status_code if isinstance(a, requests.Response) else a for a in answers)
    assert statuses == {201: clients}, (statuses, [a.text[:200] for a in answers if isinstance(a, requests.Response)])
    ids = {a.json()["id"] for a in answers if isinstance(a, requests.Response)}
    assert len(ids) == 1
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers if isinstance(a, requests.Response)]
    assert replayed.count("true") == clients - 1
    assert EditJob.objects.filter(owner=user).count() == 1
    assert CreditEntry.objects.filter(user=user, kind="charge").count() == 1
    assert CreditAccount.objects.get(user=user).balance == 9

    # The same key with another request: 409, nothing charged.
    other = create_edit(api_stack, key, prompt="a person wearing a yellow raincoat",
                        headers={"Idempotency-Key": "order-4711"})
    assert other.status_code == 409 and problem(other)["code"] == "idempotency-key-reused"
    # A new key is a new edit.
    fresh = create_edit(api_stack, key, headers={"Idempotency-Key": "order-4712"})
    assert fresh.status_code == 201 and fresh.json()["id"] not in ids
    assert CreditEntry.objects.filter(user=user, kind="charge").count() == 2


def test_idempotency_key_is_forgotten_after_its_lifetime(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from editor.api.models import IdempotencyRecord

    user, key = api_user()
    first = create_edit(api_stack, key, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    IdempotencyRecord.objects.filter(user=user).update(created_at=timezone.now() - timedelta(hours=25))
    later = create_edit(api_stack, key, prompt="a person wearing a black suit", headers={"Idempotency-Key": "k-1"})
    assert later.status_code == 201, later.text
    assert later.json()["id"] != first.json()["id"]


def test_prefer_wait_answers_at_completion_or_after_the_wait(api_stack: ApiStack,
                                                            api_user: Callable[..., Any]) -> None:
    from django.utils import timezone

    from editor.models import EditJob

    _, key = api_user()
    began = time.monotonic()
    created = create_edit(api_stack, key, headers={"Prefer": "wait=30"})
    took = time.monotonic() - began
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "succeeded" and body["progress"] == 1 and body["eta_seconds"] is None, body
    assert created.headers["Preference-Applied"] == "wait=30"
    assert took < 30
    assert body["credits"] == {"charged": 1, "refunded": 0}
    result = requests.get(body["result"]["url"], headers=bearer(key), timeout=30)
    assert result.status_code == 200 and result.content[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1",
                                                                 b"\xff\xd8\xff\xdb"), result.content[:8]

    # Without Prefer: the answer comes at once, while the edit is still running.
    quick = create_edit(api_stack, key)
    assert quick.status_code == 201 and quick.json()["state"] in ("created", "submitted")
    assert "Preference-Applied" not in quick.headers

    # An edit that will not finish within the wait: the answer comes after about N seconds, still running.
    held = create_edit(api_stack, key).json()
    EditJob.objects.filter(pk=held["id"]).update(state="submitted", next_poll_at=timezone.now().replace(year=2100))
    began = time.monotonic()
    waited = requests.get(f"{api_stack.url}/api/v1/edits/{held['id']}", headers={**bearer(key), "Prefer": "wait=2"},
                          timeout=30)
    took = time.monotonic() - began
    assert waited.status_code == 200 and waited.json()["state"] == "submitted"
    assert 1.8 <= took < 10, took
    # Over the cap: served as the cap.
    capped = requests.get(f"{api_stack.url}/api/v1/edits/{body['id']}", headers={**bearer(key), "Prefer": "wait=999"},
                          timeout=30)
    assert capped.headers["Preference-Applied"] == "wait=60" and capped.json()["state"] == "succeeded"


def test_image_url_is_fetched_under_the_ssrf_rules(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    from editor.models import CreditEntry

    user, key = api_user()
    fetched = create_edit(api_stack, key, image_url=api_stack.image_url)
    assert fetched.status_code == 201, fetched.text
    refusals = []
    for internal in (f"http://127.0.0.1:{api_stack.image_port + 1}/x.png",  # loopback, another port
                     api_stack.url + "/api/v1/openapi.json",  # ourselves
                     "http://169.254.169.254/latest/meta-data/",  # cloud metadata
                     f"http://[::ffff:127.0.0.1]:{api_stack.image_port}/x.png",  # IPv4-mapped
                     "file:///etc/passwd"):
        refused = create_edit(api_stack, key, image_url=internal)
        assert refused.status_code == 422, (internal, refused.text)
        refusals.append(problem(refused)["detail"])
    assert len(set(refusals)) == 1, "one generic message: the answers map nothing"
    assert CreditEntry.objects.filter(user=user, kind="charge").count() == 1


def test_cursor_pages_filters_delete_and_credits(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    user, key = api_user(credits=10)
    ids = []
    for n, clothing in enumerate(("topwear", "bottomwear", "topwear")):
        made = create_edit(api_stack, key, prompt=f"a person wearing outfit number {n}", clothing=clothing,
                           headers={"Prefer": "wait=30"})
        assert made.status_code == 201 and made.json()["state"] == "succeeded", made.text
        ids.append(made.json()["id"])
    base = f"{api_stack.url}/api/v1/edits"
    first = requests.get(base, params={"limit": 2}, headers=bearer(key), timeout=30).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2] and first["next_cursor"]
    second = requests.get(base, params={"limit": 2, "cursor": first["next_cursor"]}, headers=bearer(key),
                          timeout=30).json()
    assert [e["id"] for e in second["data"]] == [ids[0]] and second["next_cursor"] is None
    tops = requests.get(base, params={"clothing": "bottomwear"}, headers=bearer(key), timeout=30).json()
    assert [e["id"] for e in tops["data"]] == [ids[1]]
    words = requests.get(base, params={"q": "number 2", "status": "done"}, headers=bearer(key), timeout=30).json()
    assert [e["id"] for e in words["data"]] == [ids[2]]
    assert requests.get(base, params={"status": "failed"}, headers=bearer(key), timeout=30).json()["data"] == []
    bad = requests.get(base, params={"cursor": "garbage!"}, headers=bearer(key), timeout=30)
    assert bad.status_code == 422 and problem(bad)["code"] == "invalid-cursor"

    ledger = requests.get(f"{api_stack.url}/api/v1/credits", params={"limit": 2}, headers=bearer(key),
                          timeout=30).json()
    assert ledger["balance"] == 7
    assert [e["kind"] for e in ledger["data"]] == ["charge", "charge"] and ledger["next_cursor"]
    rest = requests.get(f"{api_stack.url}/api/v1/credits", params={"cursor": ledger["next_cursor"]},
                        headers=bearer(key), timeout=30).json()
    assert [e["kind"] for e in rest["data"]] == ["charge", "grant"] and rest["next_cursor"] is None

    deleted = requests.delete(f"{base}/{ids[0]}", headers=bearer(key), timeout=30)
    assert deleted.status_code == 204
    assert requests.get(f"{base}/{ids[0]}", headers=bearer(key), timeout=30).status_code == 404


def test_site_rules_apply_credits_and_in_flight_cap(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    _, broke = api_user(credits=0)
    poor = create_edit(api_stack, broke)
    assert poor.status_code == 402 and problem(poor)["code"] == "insufficient-credits"
    _, key = api_user(credits=10)
    short = create_edit(api_stack, key, prompt="ab")
    assert short.status_code == 422 and problem(short)["field"] == "prompt"
    wrong = create_edit(api_stack, key, clothing="hats")
    assert wrong.status_code == 422 and problem(wrong)["field"] == "clothing"
    not_image = create_edit(api_stack, key, image=b"not an image at all")
    assert not_image.status_code == 422
