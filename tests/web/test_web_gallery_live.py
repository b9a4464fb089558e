"""Issue 14 item 11: gallery tiles of running edits update live with ONE request for the whole page (the states of
the listed ids, the owner's only), and failed tiles look different from finished ones."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from editor.models import EditJob
from tests.web.helpers import make_job
from tests.web.test_web_browser import log_in


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_states_endpoint_answers_for_the_owners_ids_in_one_query(make_user: Any) -> None:
    owner, stranger = make_user(), make_user()
    running = [make_job(owner, state=EditJob.State.SUBMITTED) for _ in range(5)]
    done = make_job(owner)
    failed = make_job(owner, state=EditJob.State.FAILED)
    theirs = make_job(stranger, state=EditJob.State.SUBMITTED)
    client = client_for(owner)
    client.get(reverse("editor:gallery"))  # session warm
    ids = [str(j.pk) for j in [*running, done, failed, theirs]] + ["not-a-uuid"]
    url = reverse("editor:gallery_states") + "?ids=" + ",".join(ids)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    jobs = json.loads(response.content)["jobs"]
    assert str(theirs.pk) not in jobs and "not-a-uuid" not in jobs  # someone else's edit is not found
    assert {jobs[str(j.pk)]["state"] for j in running} == {"submitted"}
    assert jobs[str(done.pk)] == {"state": "succeeded", "label": "Done", "final": True,
                                  "thumb": reverse("editor:job_thumb", kwargs={"pk": done.pk})}
    assert jobs[str(failed.pk)]["label"] == "Failed · not charged" and jobs[str(failed.pk)]["thumb"] == ""
    # Session, user and ONE query for every tile (cheap whatever the page size).
    job_queries = [q for q in queries.captured_queries if "editor_editjob" in q["sql"]]
    assert len(job_queries) == 1 and len(queries.captured_queries) <= 3
    assert Client().get(url).status_code == 302  # signed out: to the login page


@pytest.mark.browser
@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_running_tiles_update_live_with_one_request_per_poll(page: Any, live_server: Any, make_user: Any) -> None:
    user = make_user()
    make_job(user)  # a finished one: never asked about
    to_finish = make_job(user, state=EditJob.State.SUBMITTED, prompt="a person wearing a green coat")
    to_fail = make_job(user, state=EditJob.State.SUBMITTED, prompt="a person wearing a purple scarf")
    log_in(page, live_server.url, user)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.url.startswith(live_server.url) else None)
    page.goto(f"{live_server.url}/gallery/")
    page.evaluate("window.__noReload = 'still here'")
    finish_tile = page.locator(f'[data-testid=tile][data-job="{to_finish.pk}"]')
    fail_tile = page.locator(f'[data-testid=tile][data-job="{to_fail.pk}"]')
    assert finish_tile.locator(".badge").inner_text() == "In progress"

    # The worker finishes one and fails the other (rows written as the state writer would leave them).
    finished = make_job(user)  # borrow a stored result and thumbnail
    EditJob.objects.filter(pk=to_finish.pk).update(
        state=EditJob.State.SUCCEEDED, result_image=finished.result_image.name,
        result_thumbnail=finished.result_thumbnail.name)
    EditJob.objects.filter(pk=to_fail.pk).update(state=EditJob.State.FAILED, error_detail="No person found.")

    page.locator(f'[data-testid=tile][data-job="{to_finish.pk}"]:not([data-running])').wait_for(timeout=15_000)
    fail_tile.locator(".badge", has_text="Failed").wait_for(timeout=15_000)
    assert page.evaluate("window.__noReload") == "still here"  # no reload
    assert finish_tile.locator(".badge").inner_text() == "✓ Done" or "Done" in finish_tile.inner_text()
    assert f"/edits/{to_finish.pk}/thumb/" in (finish_tile.locator("img").get_attribute("src") or "")

    polls = [u for u in requests if "/gallery/states/" in u]
    assert polls, "the gallery never asked for the tiles' states"
    # One request per poll names every running tile; no per-tile status requests at all.
    assert str(to_finish.pk) in polls[0] and str(to_fail.pk) in polls[0]
    assert not [u for u in requests if "/status/" in u]
    # Once nothing runs, polling stops.
    count = len(polls)
    page.wait_for_timeout(4500)
    assert len([u for u in requests if "/gallery/states/" in u]) == count

    # Failed tiles look different from finished ones: another border, a greyed picture.
    def look(tile: Any) -> tuple[str, str, str]:
        return tile.evaluate("""t => { const a = getComputedStyle(t.querySelector('a'));
            return [a.borderTopColor, a.borderTopStyle, getComputedStyle(t.querySelector('img')).filter]; }""")
    assert look(fail_tile) != look(finish_tile)
    assert "grayscale" in look(fail_tile)[2]
    # And after a reload, the server-rendered tiles look the same way.
    page.reload()
    assert "grayscale" in look(page.locator(f'[data-testid=tile][data-job="{to_fail.pk}"]'))[2]
    assert "not charged" in page.locator(f'[data-testid=tile][data-job="{to_fail.pk}"] .badge').inner_text()
