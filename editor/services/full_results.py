"""The compose step: after a job SUCCEEDED with the provider's 512 square, put the edit back into the user's whole
photo at full resolution (the pixels: editor/compose.py). Called only by editor/tasks.py, on its own queue.

What happens when composing fails (decided here, tested in tests/jobs/test_full_results.py): the job stays
SUCCEEDED and charged, its 512 result is never touched, so the paid edit is never lost. Storage trouble is retried
(COMPOSE_MAX_ATTEMPTS in all, a lost message is re-enqueued by the sweeper); an input that cannot be composed
(undecodable, a square outside the photo) fails at once. Either way the job ends with compose_state FAILED, the
page says the full-resolution photo could not be made and offers the 512 square.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone
from PIL import Image

from editor import compose, images, provenance, storage
from editor.models import EditJob
from editor.polling import backoff_delay
from editor.provider_time import poll_policy
from editor.services.job_state import (
    edit_job_claim_compose,
    edit_job_mark_compose_failed,
    edit_job_mark_composed,
    edit_job_record_compose_retry,
)
from editor.services.job_steps import DONE, NextStep

log = logging.getLogger(__name__)

GAVE_UP = "The full-resolution photo could not be made; the edit is kept as the 512 square the model made."


def _retry_or_give_up(job: EditJob, detail: str) -> NextStep:
    attempts = job.compose_attempts + 1  # counted by the claim of this run
    if attempts >= settings.COMPOSE_MAX_ATTEMPTS:
        edit_job_mark_compose_failed(job_id=job.pk, detail=GAVE_UP)
        return DONE
    edit_job_record_compose_retry(job_id=job.pk, detail=detail)
    return NextStep("compose", backoff_delay(errors=attempts, policy=poll_policy(), retry_after=None))


def _with_provenance(job: EditJob, data: bytes, *, parent: bytes) -> bytes:
    if not provenance.signing_enabled():
        return data
    facts = provenance.EditFacts(
        provider=provenance.provider_label(),
        model=settings.FASHION_AI_MODEL,
        engine=settings.FASHION_AI_MODEL,
        clothing=job.clothing,
        when=timezone.now(),
        visible_mark=settings.RESULT_AI_MARK,
    )
    return provenance.sign_result(data, extension=".jpg", parent=parent, parent_mime="image/jpeg", facts=facts)


def edit_job_run_compose(*, job_id: str) -> NextStep:
    """Compose, store and record the full-resolution result of a SUCCEEDED job (idempotent: the job's own keys)."""
    job = EditJob.objects.select_related("photo").filter(pk=job_id).first()
    if job is None or job.state != EditJob.State.SUCCEEDED or job.compose_state != EditJob.Compose.PENDING:
        return DONE
    if not edit_job_claim_compose(job_id=job.pk, max_attempts=settings.COMPOSE_MAX_ATTEMPTS):
        # Attempts used up (each delivery counts, also one killed mid-way): keep the 512 result.
        edit_job_mark_compose_failed(job_id=job.pk, detail=GAVE_UP)
        return DONE
    photo = job.photo
    square = compose.Square(photo.square_left, photo.square_top, photo.square_side)
    try:
        original = storage.read(str(photo.original.name))
        model_input = storage.read(str(photo.image.name))
        model_output = storage.read(str(job.result_image.name))
    except Exception as exc:  # noqa: BLE001 - storage hiccup (or a file gone): retried, then given up
        log.warning("job %s: could not read files to compose (%s)", job.pk, type(exc).__name__)
        return _retry_or_give_up(job, "Waiting for storage to compose the full-resolution photo.")
    marked = settings.RESULT_AI_MARK  # the stored square carries the mark: not an edit; drawn again at full size
    try:
        composed = compose.compose_files(
            original=original, square=square, model_input=model_input, model_output=model_output,
            ignore_box=images.ai_mark_box(images.SIDE, images.SIDE) if marked else None,
            finish=images.draw_ai_mark_on if marked else None, finish_box=images.ai_mark_box if marked else None,
        )
    except (compose.ComposeError, ValueError, MemoryError) as exc:
        log.warning("job %s: cannot compose the full-resolution result (%s: %s)", job.pk, type(exc).__name__, exc)
        edit_job_mark_compose_failed(job_id=job.pk, detail=GAVE_UP)
        return DONE
    try:
        # Signed like the square (editor/provenance.py), with the person's whole photo as the parent.
        jpeg = _with_provenance(job, composed.jpeg, parent=original)
    except provenance.ProvenanceError as exc:
        log.warning("job %s: could not sign the full-resolution result (%s)", job.pk, exc)
        return _retry_or_give_up(job, "Waiting to sign the full-resolution photo.")
    del original
    try:
        full_name = storage.store_at(storage.job_full_result_key(job.owner_id, job.pk), jpeg)
        thumbnail = images.make_thumbnail(Image.fromarray(composed.preview))
        thumb_name = storage.store_at(storage.job_full_thumbnail_key(job.owner_id, job.pk), thumbnail)
    except Exception as exc:  # noqa: BLE001 - storage down: try again later
        log.warning("job %s: could not store the full-resolution result (%s)", job.pk, type(exc).__name__)
        return _retry_or_give_up(job, "Waiting for storage to store the full-resolution photo.")
    square_thumb = str(job.result_thumbnail.name or "")
    if edit_job_mark_composed(job_id=job.pk, full_result_name=full_name, thumbnail_name=thumb_name):
        log.info(
            "job %s: composed %dx%d (changed %.0f %% of the square, shift %.1f,%.1f)", job.pk, *composed.size,
            100 * composed.report.changed_fraction, *composed.report.shift,
        )
        if square_thumb and square_thumb != thumb_name:
            storage.delete_after_commit([square_thumb])  # the square's thumbnail: nothing shows it any more
        return DONE
    # Someone else finished it (a duplicate delivery: same keys, keep them) or the job went (deleted): clean up.
    if not EditJob.objects.filter(pk=job.pk, compose_state=EditJob.Compose.DONE).exists():
        storage.delete_after_commit([full_name, thumb_name])
    return DONE
