"""The compose step end to end: a real upload, the real recolour engine over HTTP, real storage (S3 when the test
environment has it), the compose step, its pages and downloads, chained edits, its queue, and what happens when
composing fails (the job stays SUCCEEDED and charged, the 512 result is kept: the paid edit is never lost)."""
from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from devservices.fashionai import run_fashionai
from devservices.samples import person_scene
from editor import compose, images, storage
from editor.images import CropSquare
from editor.models import CreditEntry, EditJob, Photo
from editor.provider_time import EXPECTED_CACHE_KEY
from editor.services.edit_commands import edit_job_delete, edit_job_submit
from editor.services.full_results import edit_job_run_compose
from editor.services.job_steps import (
    NextStep,
    edit_job_run_finish,
    edit_job_run_poll,
    edit_job_run_submit,
    edit_jobs_sweep,
)
from editor.services.photos import photo_create_from_job_result, photo_create_from_upload
from editor.tasks import dispatch_step
from tests.support.fixtures import purge_broker

WIDTH, HEIGHT, LEFT, TOP, SIDE = 1920, 1080, 1000, 120, 900  # 16:9, the person off centre


@pytest.fixture(scope="module")
def recolor_service() -> Iterator[Any]:
    with run_fashionai(engine="recolor", workers=1) as server:
        yield server


@pytest.fixture
def provider(settings: Any, recolor_service: Any) -> Iterator[Any]:
    settings.FASHION_AI_BASE_URL = recolor_service.base_url
    settings.FASHION_AI_API_KEY = recolor_service.api_key
    settings.FASHION_AI_EXPECTED_SECONDS = 0.5
    settings.POLL_MIN_INTERVAL_SECONDS = 0.1
    cache.delete(EXPECTED_CACHE_KEY)
    yield recolor_service
    purge_broker()


def upload(user: Any, *, width: int = WIDTH, height: int = HEIGHT) -> Photo:
    pixels = person_scene(width, height, left=LEFT, top=TOP, side=SIDE)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=92)
    crop = CropSquare(left=LEFT / width, top=TOP / height, side=SIDE / min(width, height))
    return photo_create_from_upload(
        user=user, uploaded_file=SimpleUploadedFile("me.jpg", out.getvalue(), content_type="image/jpeg"), crop=crop
    )


def run_to_success(job: EditJob) -> NextStep:
    """Submit and poll in this process until the job SUCCEEDED; returns what the finishing step asked for next."""
    step = edit_job_run_submit(job_id=str(job.pk))
    deadline = time.monotonic() + 60
    while step.task in ("poll", "finish"):
        assert time.monotonic() < deadline, "the provider did not finish"
        time.sleep(step.countdown)
        run = edit_job_run_poll if step.task == "poll" else edit_job_run_finish
        step = run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.state == EditJob.State.SUCCEEDED, (job.state, job.error_detail)
    return step


def succeeded_job(user: Any, prompt: str = "a red shirt") -> EditJob:
    photo = upload(user)
    job = edit_job_submit(user=user, photo=photo, prompt=prompt, clothing="topwear")
    step = run_to_success(job)
    assert step == NextStep("compose")  # the paid edit is done; composing follows on its own queue
    job.refresh_from_db()
    assert job.compose_state == EditJob.Compose.PENDING and job.result_image and not job.full_result
    return job


def decoded(name: str) -> np.ndarray[Any, Any]:
    return compose.decode_rgb(storage.read(name))


@pytest.mark.django_db(transaction=True)
def test_the_upload_keeps_the_capped_original_privately_beside_the_512_input(funded_user: Any, settings: Any) -> None:
    settings.ORIGINAL_MAX_SIDE = 1600
    user = funded_user(1)
    photo = upload(user)
    assert (photo.width, photo.height) == (512, 512)
    assert (photo.original_width, photo.original_height) == (1600, 900)  # 1920x1080 capped at 1600
    assert photo.original.name.startswith(f"users/{user.pk}/originals/")
    scale = 1600 / WIDTH
    assert (photo.square_left, photo.square_top, photo.square_side) == (
        round(LEFT * scale), round(TOP * scale), round(SIDE * scale)
    )
    with Image.open(io.BytesIO(storage.read(photo.original.name))) as original:
        assert original.format == "JPEG" and original.size == (1600, 900)
        assert not original.info.get("exif") and not original.info.get("icc_profile")


@pytest.mark.django_db(transaction=True)
def test_compose_puts_the_edit_into_the_whole_photo_and_the_pages_show_it(
    provider: Any, funded_user: Any, client: Any
) -> None:
    user = funded_user(2)
    job = succeeded_job(user)
    square_thumbnail = job.result_thumbnail.name
    assert edit_job_run_compose(job_id=str(job.pk)) == NextStep()
    job.refresh_from_db()
    assert job.compose_state == EditJob.Compose.DONE and job.state == EditJob.State.SUCCEEDED
    assert job.full_result.name == storage.job_full_result_key(user.pk, job.pk)
    full, original = decoded(job.full_result.name), decoded(job.photo.original.name)
    assert full.shape == original.shape == (HEIGHT, WIDTH, 3)
    # The edit is there, inside the square; outside the square the photo is the original (JPEG re-encoded once).
    square = (slice(TOP, TOP + SIDE), slice(LEFT, LEFT + SIDE))
    outside = np.ones(full.shape[:2], bool)
    outside[square] = False
    assert np.abs(full.astype(int) - original)[outside].mean() < 0.2
    red = full[square].astype(int)
    was = original[square].astype(int)
    assert ((red[..., 0] - red[..., 2]) - (was[..., 0] - was[..., 2])).max() > 60
    # The thumbnail is the whole photo's; the square's thumbnail goes.
    with Image.open(io.BytesIO(storage.read(job.result_thumbnail.name))) as thumbnail:
        assert thumbnail.size == (256, 144)
    assert not storage.exists(square_thumbnail)
    assert decoded(job.result_image.name).shape == (512, 512, 3)  # the model's square is kept as it was

    client.force_login(user)
    page = client.get(f"/edits/{job.pk}/").content.decode()
    assert "data-full" in page and f'width="{WIDTH}" height="{HEIGHT}"' in page
    assert "Your whole photo, 1920×1080 pixels" in page and "The 512 square as the model made it" in page
    full_download = client.get(f"/edits/{job.pk}/download/")
    square_download = client.get(f"/edits/{job.pk}/download/?square=1")
    for response, size, suffix in ((full_download, (WIDTH, HEIGHT), ".jpg"), (square_download, (512, 512), "-512")):
        assert response.status_code in (200, 302)
        body = b"".join(response.streaming_content) if response.status_code == 200 else storage.read(
            job.full_result.name if size[0] == WIDTH else job.result_image.name
        )
        with Image.open(io.BytesIO(body)) as image:
            assert image.size == size
        disposition = response.get("Content-Disposition", "") or response.get("Location", "")
        assert suffix in disposition.replace("%2F", "/")
    # Someone else's edit is still a 404, full or square.
    intruder = funded_user(0)
    client.force_login(intruder)
    for url in (f"/edits/{job.pk}/full/", f"/edits/{job.pk}/download/", f"/photos/{job.photo.pk}/original/"):
        assert client.get(url).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_new_edit_page_says_what_the_user_gets(funded_user: Any, client: Any) -> None:
    client.force_login(funded_user(1))
    page = client.get("/edit/new/").content.decode()
    assert "You get your whole photo back at full resolution (up to 4096 pixels on the long side)" in page
    assert "512×512 square as the model made it as a second download" in page


@pytest.mark.django_db(transaction=True)
def test_a_chained_edit_starts_from_the_full_result_at_the_same_square(provider: Any, funded_user: Any) -> None:
    user = funded_user(2)
    job = succeeded_job(user)
    edit_job_run_compose(job_id=str(job.pk))
    job.refresh_from_db()
    again = photo_create_from_job_result(user=user, job=job)
    first = job.photo
    assert (again.original_width, again.original_height) == (WIDTH, HEIGHT)
    assert (again.square_left, again.square_top, again.square_side) == (
        first.square_left, first.square_top, first.square_side
    )
    full = decoded(job.full_result.name)
    cut = full[first.square_top:first.square_top + first.square_side,
               first.square_left:first.square_left + first.square_side]
    expected = np.asarray(Image.fromarray(cut).resize((512, 512), Image.Resampling.LANCZOS), int)
    model_input = decoded(again.image.name).astype(int)
    elsewhere = full[first.square_top:first.square_top + first.square_side,
                     first.square_left - 60:first.square_left - 60 + first.square_side]
    wrong = np.asarray(Image.fromarray(elsewhere).resize((512, 512), Image.Resampling.LANCZOS), int)
    # The square of the full result (JPEG q92 noise on a detailed photo is ~2 levels), not one beside it.
    assert np.abs(model_input - expected).mean() < 4.0 < np.abs(model_input - wrong).mean()
    assert np.abs(decoded(again.original.name).astype(int) - full).mean() < 0.5  # the new original is it
    # And the second edit composes into that whole photo too.
    # (The astronaut has no legs to put jeans on: the second edit changes the top again.)
    second = edit_job_submit(user=user, photo=again, prompt="a green shirt", clothing="topwear", source_job=job)
    assert run_to_success(second) == NextStep("compose")
    edit_job_run_compose(job_id=str(second.pk))
    second.refresh_from_db()
    assert second.compose_state == EditJob.Compose.DONE
    twice = decoded(second.full_result.name)
    assert twice.shape == (HEIGHT, WIDTH, 3)
    outside = np.ones(twice.shape[:2], bool)
    outside[first.square_top:first.square_top + first.square_side,
            first.square_left:first.square_left + first.square_side] = False
    assert np.abs(twice.astype(int) - full)[outside].mean() < 0.3  # still the same whole photo around it


@pytest.mark.django_db(transaction=True)
def test_storage_trouble_is_retried_then_the_paid_512_result_is_kept(
    provider: Any, funded_user: Any, settings: Any, client: Any
) -> None:
    settings.COMPOSE_MAX_ATTEMPTS = 3
    user = funded_user(2)
    job = succeeded_job(user)
    storage.delete_now([job.photo.original.name])  # the original cannot be read
    steps = [edit_job_run_compose(job_id=str(job.pk)) for _ in range(3)]
    assert [s.task for s in steps] == ["compose", "compose", None]
    job.refresh_from_db()
    assert job.state == EditJob.State.SUCCEEDED and job.compose_state == EditJob.Compose.FAILED
    assert job.compose_attempts == 3 and "512 square" in job.compose_detail
    assert job.result_image and storage.exists(job.result_image.name) and not job.full_result
    kinds = list(CreditEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == [CreditEntry.Kind.CHARGE]  # charged once, not refunded: the user has the edit
    assert edit_job_run_compose(job_id=str(job.pk)) == NextStep()  # nothing more happens
    client.force_login(user)
    page = client.get(f"/edits/{job.pk}/").content.decode()
    assert 'data-testid="compose-failed"' in page and 'width="512" height="512"' in page
    download = client.get(f"/edits/{job.pk}/download/")
    assert download.status_code in (200, 302)


@pytest.mark.django_db(transaction=True)
def test_an_original_that_cannot_be_composed_fails_at_once_and_keeps_the_result(
    provider: Any, funded_user: Any
) -> None:
    user = funded_user(1)
    job = succeeded_job(user)
    storage.store_at(job.photo.original.name, b"\xff\xd8 not really a jpeg")
    assert edit_job_run_compose(job_id=str(job.pk)) == NextStep()
    job.refresh_from_db()
    assert job.compose_state == EditJob.Compose.FAILED and job.compose_attempts == 1
    assert job.state == EditJob.State.SUCCEEDED and storage.exists(job.result_image.name)


@pytest.mark.django_db(transaction=True)
def test_compose_twice_or_after_delete_changes_nothing(provider: Any, funded_user: Any) -> None:
    user = funded_user(2)
    job = succeeded_job(user)
    assert edit_job_run_compose(job_id=str(job.pk)) == NextStep()
    job.refresh_from_db()
    done = (job.full_result.name, job.result_thumbnail.name, job.compose_attempts)
    assert edit_job_run_compose(job_id=str(job.pk)) == NextStep()
    job.refresh_from_db()
    assert (job.full_result.name, job.result_thumbnail.name, job.compose_attempts) == done
    other = succeeded_job(user, prompt="a blue shirt")
    edit_job_delete(user=user, job=other)
    assert edit_job_run_compose(job_id=str(other.pk)) == NextStep()
    assert not storage.exists(storage.job_full_result_key(user.pk, other.pk))
    edit_job_delete(user=user, job=job)
    assert not storage.exists(done[0]) and not storage.exists(done[1])


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_re_enqueues_a_lost_compose(provider: Any, funded_user: Any, settings: Any) -> None:
    user = funded_user(1)
    job = succeeded_job(user)
    assert (str(job.pk), NextStep("compose")) not in edit_jobs_sweep()  # it was just enqueued
    EditJob.objects.filter(pk=job.pk).update(updated_at=job.updated_at.replace(year=2020))
    assert (str(job.pk), NextStep("compose")) in edit_jobs_sweep()


@pytest.mark.django_db(transaction=True)
def test_compose_goes_to_its_own_queue_never_the_one_polls_wait_in(funded_user: Any, make_photo: Any) -> None:
    purge_broker()
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    before = broker.llen("celery")
    dispatch_step("00000000-0000-0000-0000-000000000000", NextStep("compose"))
    try:
        assert broker.llen("compose") == 1 and broker.llen("celery") == before
        dispatch_step("00000000-0000-0000-0000-000000000000", NextStep("poll"))
        assert broker.llen("compose") == 1 and broker.llen("celery") == before + 1
    finally:
        purge_broker()
        broker.delete("compose")


@pytest.mark.django_db(transaction=True)
def test_the_visible_ai_mark_is_drawn_on_the_whole_photo_not_pasted_from_the_square(
    provider: Any, funded_user: Any, settings: Any
) -> None:
    settings.RESULT_AI_MARK = True
    user = funded_user(1)
    job = succeeded_job(user)
    edit_job_run_compose(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.compose_state == EditJob.Compose.DONE
    full, original = decoded(job.full_result.name).astype(int), decoded(job.photo.original.name).astype(int)
    left, top, right, bottom = images.ai_mark_box(WIDTH, HEIGHT)
    assert np.abs(full[top:bottom, left:right] - original[top:bottom, left:right]).mean() > 20  # drawn there
    # The square's own mark (bottom right of the 512 output) is not an edit: that corner stays the photo's.
    scale = SIDE / 512
    m_left, m_top, m_right, m_bottom = (round(v * scale) for v in images.ai_mark_box(512, 512))
    corner = (slice(TOP + m_top, TOP + m_bottom), slice(LEFT + m_left, LEFT + m_right))
    assert np.abs(full[corner] - original[corner]).mean() < 1.0
