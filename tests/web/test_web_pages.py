"""Pages through Django's test client: forms, refusals, owner-only access, CSRF, files."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.urls import reverse

from editor.models import CreditEntry, EditJob, Photo
from editor.services.credits import credits_grant
from tests.web.helpers import image_bytes, make_job, make_photo, stored_names, upload

pytestmark = [pytest.mark.django_db]


def client_for(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def owner_urls(job: EditJob, photo: Photo) -> list[tuple[str, str]]:
    """Every URL that names an object, with its method."""
    j, p = {"pk": job.pk}, {"pk": photo.pk}
    return [
        ("get", reverse("editor:job_detail", kwargs=j)),
        ("get", reverse("editor:job_status", kwargs=j)),
        ("get", reverse("editor:job_result", kwargs=j)),
        ("get", reverse("editor:job_download", kwargs=j)),
        ("get", reverse("editor:job_thumb", kwargs=j)),
        ("post", reverse("editor:job_delete", kwargs=j)),
        ("get", reverse("editor:photo_image", kwargs=p)),
        ("get", reverse("editor:photo_thumb", kwargs=p)),
    ]


PLAIN_URLS = ["editor:edit_new", "editor:gallery", "editor:credits"]


@pytest.mark.smoke
def test_anonymous_is_sent_to_login_everywhere(make_user: Any) -> None:
    owner = make_user()
    job = make_job(owner)
    anonymous = Client()
    urls = [("get", reverse(name)) for name in PLAIN_URLS] + owner_urls(job, job.photo)
    urls += [("post", reverse("editor:upload_start")), ("post", reverse("editor:upload_finish"))]
    for method, url in urls:
        response = getattr(anonymous, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    assert EditJob.objects.filter(pk=job.pk).exists()


@pytest.mark.smoke
def test_other_users_ids_answer_404_and_change_nothing(make_user: Any) -> None:
    owner, stranger = make_user(), make_user()
    job = make_job(owner)
    client = client_for(stranger)
    for method, url in owner_urls(job, job.photo):
        assert getattr(client, method)(url).status_code == 404, url
    # Nor through the form's hidden fields.
    response = client.post(reverse("editor:edit_new"), {"photo": job.photo.pk, "prompt": "a red top",
                                                        "clothing": "topwear"})
    assert response.status_code == 400 and "not found" in response.content.decode()
    response = client.get(reverse("editor:edit_new") + f"?from={job.pk}")
    assert str(job.pk) not in response.content.decode()
    assert EditJob.objects.filter(owner=stranger).count() == 0
    assert EditJob.objects.filter(pk=job.pk).exists()
    # The owner sees it all.
    owner_client = client_for(owner)
    for _method, url in owner_urls(job, job.photo)[:5]:
        assert owner_client.get(url).status_code in (200, 302), url


def test_csrf_is_enforced_on_state_changing_views(make_user: Any) -> None:
    user = make_user()
    credits_grant(user=user, amount=5, reason="test")
    job = make_job(user)
    client = client_for(user, enforce_csrf_checks=True)
    posts = [
        (reverse("editor:job_delete", kwargs={"pk": job.pk}), {}),
        (reverse("editor:edit_new"), {"prompt": "a red top", "clothing": "topwear",
                                      "image": upload(image_bytes())}),
        (reverse("editor:upload_start"), {}),
        (reverse("editor:upload_finish"), {"key": "incoming/1/" + "0" * 32}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert EditJob.objects.filter(pk=job.pk).exists() and EditJob.objects.count() == 1
    # With the token from the page, the same delete works.
    page = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    response = client.post(reverse("editor:job_delete", kwargs={"pk": job.pk}),
                           {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302 and not EditJob.objects.filter(pk=job.pk).exists()


@pytest.mark.smoke
def test_new_edit_upload_creates_a_charged_job(make_user: Any, django_capture_on_commit_callbacks: Any) -> None:
    user = make_user()
    credits_grant(user=user, amount=3, reason="test")
    client = client_for(user)
    page = client.get(reverse("editor:edit_new"))
    assert page.status_code == 200
    html = page.content.decode()
    user.credit_account.refresh_from_db()
    assert "This edit costs" in html and f'data-testid="edit-balance">{user.credit_account.balance}<' in html
    response = client.post(reverse("editor:edit_new"), {
        "image": upload(image_bytes("PNG", (800, 600)), "me.png", "image/png"),
        "prompt": "  a person wearing   blue jeans ", "clothing": "bottomwear",
        "crop_left": "0.1", "crop_top": "0", "crop_side": "0.9",
    })
    job = EditJob.objects.get(owner=user)
    assert response.status_code == 302 and response["Location"] == reverse("editor:job_detail", kwargs={"pk": job.pk})
    assert (job.prompt, job.clothing, job.state) == ("a person wearing blue jeans", "bottomwear", "created")
    assert job.photo.width == 512 and job.photo.original_name == "me.png"
    assert CreditEntry.objects.get(job=job, kind="charge").amount == -1


@pytest.mark.smoke
def test_refused_uploads_and_submits_say_why_and_store_nothing(
    make_user: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user = make_user()
    client = client_for(user)
    cases = [
        (b"just text, not a photo" * 50, "not a picture"),
        (image_bytes("PNG", (90, 90)), "too small"),
        (image_bytes("JPEG", (600, 600))[:900], "damaged or incomplete"),
    ]
    credits_grant(user=user, amount=3, reason="test")
    for data, words in cases:
        response = client.post(reverse("editor:edit_new"), {"image": upload(data), "prompt": "a red top",
                                                            "clothing": "topwear"})
        assert response.status_code == 400 and words in response.content.decode(), words
    settings.UPLOAD_MAX_BYTES = 5_000
    response = client.post(reverse("editor:edit_new"), {"image": upload(b"\xff" * 6_000), "prompt": "a red top",
                                                        "clothing": "topwear"})
    assert "too big" in response.content.decode()
    settings.UPLOAD_MAX_BYTES = 15 * 1024 * 1024
    # No photo chosen, no prompt.
    response = client.post(reverse("editor:edit_new"), {"prompt": "", "clothing": "topwear"})
    assert "Please choose a photo" in response.content.decode() and "required" in response.content.decode()
    # A valid photo but no credits left: the job service refuses, and the normalised photo is removed again.
    CreditEntry.objects.all().delete()
    user.credit_account.balance = 0
    user.credit_account.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("editor:edit_new"), {"image": upload(image_bytes()), "prompt": "a red top",
                                                            "clothing": "topwear"})
    assert response.status_code == 400 and "Not enough credits" in response.content.decode()
    assert Photo.objects.count() == 0 and EditJob.objects.count() == 0
    assert stored_names(f"users/{user.pk}") == []


@pytest.mark.smoke
def test_job_page_shows_each_phase(make_user: Any, django_assert_max_num_queries: Any) -> None:
    user = make_user()
    client = client_for(user)
    running = make_job(user, state=EditJob.State.SUBMITTED)
    html = client.get(reverse("editor:job_detail", kwargs={"pk": running.pk})).content.decode()
    assert 'hx-trigger="every 1s"' in html and "<progress" in html and "Waiting in the queue" in html
    assert "htmx-2.0.11.min.js" in html and 'aria-live="polite"' in html
    poll = reverse("editor:job_status", kwargs={"pk": running.pk})
    # The phase the page shows is still current: 204, nothing rendered, htmx keeps the panel.
    with django_assert_max_num_queries(3):  # session, user, one narrow job query
        status = client.get(poll + "?phase=queued")
    assert status.status_code == 204 and status.content == b"" and status["Cache-Control"] == "no-store"
    EditJob.objects.filter(pk=running.pk).update(provider_status="PROCESSING")
    status = client.get(poll + "?phase=queued")
    assert status.status_code == 200
    assert "Editing your photo" in status.content.decode() and "hx-swap-oob" in status.content.decode()
    assert 'data-estimating' in status.content.decode() and 'data-tick="elapsed"' in status.content.decode()
    assert client.get(poll + "?phase=processing").status_code == 204
    # A first poll without a phase, and a finished job, always get the panel.
    assert client.get(poll).status_code == 200
    EditJob.objects.filter(pk=running.pk).update(state=EditJob.State.FAILED, error_detail="The photo shows no person.")
    status = client.get(poll + "?phase=processing")
    assert status.status_code == 200 and "The photo shows no person." in status.content.decode()
    assert "hx-trigger" not in status.content.decode()  # polling stops
    # Someone else's job: 404 on the poll as on the page.
    assert client_for(make_user()).get(poll + "?phase=failed").status_code == 404

    done = make_job(user)
    html = client.get(reverse("editor:job_detail", kwargs={"pk": done.pk})).content.decode()
    assert 'type="range" class="compare-range"' in html and 'hx-trigger="every' not in html  # the share box loads once
    assert f"?from={done.pk}&amp;clothing=bottomwear" in html and "Download" in html

    failed = make_job(user, state=EditJob.State.FAILED, refunded=True, error="The photo shows no person.")
    html = client.get(reverse("editor:job_detail", kwargs={"pk": failed.pk})).content.decode()
    assert "The photo shows no person." in html and "You were not charged: 1 credit went back" in html


@pytest.mark.smoke
def test_edit_again_starts_from_the_result_on_the_other_region(
    make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user = make_user()
    credits_grant(user=user, amount=3, reason="test")
    first = make_job(user, clothing="topwear")
    client = client_for(user)
    page = client.get(reverse("editor:edit_new") + f"?from={first.pk}").content.decode()
    assert f'value="{first.pk}"' in page and re.search(r'value="bottomwear"[^>]*checked', page)
    response = client.post(reverse("editor:edit_new"), {"source_job": first.pk, "prompt": "a person wearing "
                                                        "blue jeans", "clothing": "bottomwear"})
    second = EditJob.objects.exclude(pk=first.pk).get()
    assert response.status_code == 302
    assert second.source_job_id == first.pk and second.photo.source_job_id == first.pk
    assert second.photo_id != first.photo_id and second.photo.width == 512


def test_result_files_are_private_and_download_is_an_attachment(make_user: Any, settings: Any) -> None:
    user = make_user()
    job = make_job(user)
    client = client_for(user)
    response = client.get(reverse("editor:job_download", kwargs={"pk": job.pk}))
    if settings.USE_S3:
        assert response.status_code == 302
        query = parse_qs(urlparse(response["Location"]).query)
        assert "X-Amz-Signature" in query and "attachment" in query["response-content-disposition"][0]
        assert int(query["X-Amz-Expires"][0]) <= settings.MEDIA_URL_EXPIRE_SECONDS
    else:
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment;")
        assert b"".join(response.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
    # No public media tree.
    assert client.get(f"/media/{job.result_image.name}").status_code == 404


@pytest.mark.smoke
def test_gallery_filters_search_and_pagination(make_user: Any) -> None:
    user, other = make_user(), make_user()
    photo = make_photo(user)
    for i in range(14):
        make_job(user, photo=photo, prompt=f"a person wearing jeans number {i}", clothing="bottomwear",
                 with_result=False)
    make_job(user, photo=photo, prompt="a red hoodie", state=EditJob.State.FAILED)
    make_job(other, prompt="someone else's jeans")
    client = client_for(user)

    def items(query: str) -> list[str]:
        html = client.get(reverse("editor:gallery") + query).content.decode()
        return re.findall(r'class="tile-prompt">([^<]+)<', html)

    assert len(items("")) == 15 and items("")[0] == "a red hoodie"  # newest first
    assert len(items("?per_page=12")) == 12 and len(items("?per_page=12&page=2")) == 3
    assert items("?status=failed") == ["a red hoodie"]
    assert len(items("?clothing=bottomwear")) == 14 and items("?q=HOODIE") == ["a red hoodie"]
    assert items("?q=else") == []  # never another user's edits
    assert len(items("?status=nonsense&per_page=7&page=x")) == 15  # bad values fall back to defaults


@pytest.mark.smoke
def test_credits_page_lists_the_ledger_with_jobs(make_user: Any) -> None:
    user = make_user()
    credits_grant(user=user, amount=4, reason="Birthday present")
    job = make_job(user, state=EditJob.State.FAILED, refunded=True, prompt="a golden jacket")
    html = client_for(user).get(reverse("editor:credits")).content.decode()
    # The sign-up bonus, this grant, the charge and its refund.
    assert html.count('data-testid="ledger-row"') == 4
    assert "Birthday present" in html and "a golden jacket" in html
    assert reverse("editor:job_detail", kwargs={"pk": job.pk}) in html
    assert 'data-kind="refund"' in html and 'data-kind="charge"' in html


def test_a_running_edit_can_be_stopped_and_deleted_with_a_refund(
    make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from editor.services.edit_commands import edit_job_submit

    user = make_user()
    credits_grant(user=user, amount=2, reason="test")
    user.credit_account.refresh_from_db()
    before = user.credit_account.balance
    with django_capture_on_commit_callbacks(execute=False):
        job = edit_job_submit(user=user, photo=make_photo(user), prompt="a red top", clothing="topwear")
    user.credit_account.refresh_from_db()
    assert user.credit_account.balance == before - 1
    client = client_for(user)
    page = client.get(reverse("editor:job_detail", kwargs={"pk": job.pk})).content.decode()
    assert 'data-testid="stop-delete"' in page and "Your credit goes back" in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("editor:job_delete", kwargs={"pk": job.pk}))
    assert response.status_code == 302 and response["Location"] == reverse("editor:gallery")
    assert not EditJob.objects.filter(pk=job.pk).exists()
    user.credit_account.refresh_from_db()
    assert user.credit_account.balance == before
    assert CreditEntry.objects.filter(user=user, kind="refund").count() == 1
