"""The live panel's poll: with the token the job page hands it, "unchanged" costs one owner-scoped query and no
session read; every other case takes the session-checked path and answers as before (editor/status_tokens.py)."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.conf import settings
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from editor import status_tokens
from editor.models import EditJob
from editor.services.job_state import edit_job_record_progress
from tests.web.helpers import make_job

pytestmark = [pytest.mark.django_db]


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def running_job(user: Any) -> EditJob:
    job = make_job(user, state=EditJob.State.SUBMITTED)
    EditJob.objects.filter(pk=job.pk).update(request_id="r-1", provider_status="PROCESSING")
    job.refresh_from_db()
    return job


def poll_url(client: Client, job: EditJob) -> str:
    """The URL the job page tells htmx to poll, as a browser reads it."""
    page = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    found = re.search(r'hx-get="([^"]+)"', page)
    assert found, "the running job's page polls"
    return html.unescape(found.group(1))


def session_reads(client: Client, url: str) -> tuple[int, list[str], int]:
    """Status code, the SQL run and how often the session store was read."""
    engine = __import__(settings.SESSION_ENGINE, fromlist=["SessionStore"])
    reads = 0
    original = engine.SessionStore.load

    def counting_load(self: Any) -> Any:
        nonlocal reads
        reads += 1
        return original(self)

    engine.SessionStore.load = counting_load
    try:
        with CaptureQueriesContext(connection) as queries:
            status = client.get(url).status_code
    finally:
        engine.SessionStore.load = original
    return status, [query["sql"] for query in queries.captured_queries], reads


@pytest.mark.smoke
def test_the_pages_poll_answers_unchanged_from_one_query_without_the_session(make_user: Any) -> None:
    owner = make_user()
    job = running_job(owner)
    client = signed_in(owner)
    url = poll_url(client, job)
    assert "phase=processing" in url and "&t=" in url
    status, sql, reads = session_reads(client, url)
    assert status == 204
    assert reads == 0, "the unchanged answer must not read the session"
    assert len(sql) == 1 and "editor_editjob" in sql[0] and str(owner.pk) in sql[0]


def test_a_phase_change_sends_the_panel(make_user: Any) -> None:
    owner = make_user()
    job = make_job(owner, state=EditJob.State.SUBMITTED)
    client = signed_in(owner)
    url = poll_url(client, job)
    assert "phase=queued" in url
    assert edit_job_record_progress(job_id=job.pk, provider_status="PROCESSING", next_poll_in=60)
    response = client.get(url)
    assert response.status_code == 200 and 'data-phase="processing"' in response.content.decode()


def test_without_the_session_cookie_the_token_opens_nothing(make_user: Any) -> None:
    owner = make_user()
    job = running_job(owner)
    url = poll_url(signed_in(owner), job)
    # Signed out, or the token copied to another browser: the login page, never the phase.
    response = Client().get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    other_session = signed_in(owner)
    status, _sql, reads = session_reads(other_session, url)
    assert status == 204 and reads == 1, "another session of the owner takes the session-checked path"


def test_a_token_names_one_edit_and_one_owner(make_user: Any) -> None:
    owner, stranger = make_user(), make_user()
    mine, theirs = running_job(owner), running_job(stranger)
    client = signed_in(owner)
    url = poll_url(client, mine)
    token = re.search(r"[?&]t=([^&]+)", url)
    assert token
    # The owner's token on someone else's edit: the full path, which says it does not exist.
    other = reverse("editor:job_status", kwargs={"pk": theirs.pk}) + f"?phase=processing&t={token.group(1)}"
    assert client.get(other).status_code == 404
    # A token naming the stranger, signed with the wrong key: refused, then the owner check says 404.
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    forged = signing.dumps([str(theirs.pk), stranger.pk, status_tokens._cookie_digest(cookie)],
                           key="not-the-site-key", salt="editor.status-poll")
    forged_url = reverse("editor:job_status", kwargs={"pk": theirs.pk}) + f"?phase=processing&t={forged}"
    assert client.get(forged_url).status_code == 404


def test_an_expired_token_falls_back_to_the_session(make_user: Any, monkeypatch: Any) -> None:
    owner = make_user()
    job = running_job(owner)
    client = signed_in(owner)
    url = poll_url(client, job)
    monkeypatch.setattr(status_tokens, "TOKEN_MAX_AGE_SECONDS", -1)
    status, _sql, reads = session_reads(client, url)
    assert status == 204 and reads == 1
