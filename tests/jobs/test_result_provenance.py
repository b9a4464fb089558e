"""Provenance: a stored result carries a signed C2PA manifest (edited by AI, which engine, when) that verifies with
c2pa-python after the site stored it, on S3 (SeaweedFS) and on local files (the smoke run), and through the
download; the optional visible "AI-edited" mark changes only its own corner. Keys are a throwaway CA + leaf."""
from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from django.utils import timezone
from PIL import Image
from skimage import data

from devservices.fashionai import run_fashionai
from editor import images, provenance, storage
from editor.models import EditJob
from editor.services.edit_commands import edit_job_submit
from tests.jobs.conftest import wait_for_jobs
from tests.support.c2pa_keys import SigningChain, make_signing_chain


@pytest.fixture
def chain(tmp_path: Path, settings: Any) -> SigningChain:
    made = make_signing_chain(tmp_path / "c2pa")
    settings.C2PA_SIGNING_KEY_FILE = str(made.key_file)
    settings.C2PA_SIGNING_CERTS_FILE = str(made.certs_file)
    return made


def _facts(**changes: Any) -> provenance.EditFacts:
    base = {"provider": "self-hosted Fashion AI service", "model": "fashion-ai", "engine": "recolor",
            "clothing": "topwear", "when": timezone.now()}
    return provenance.EditFacts(**{**base, **changes})


def _encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(data.astronaut()).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", ".png"), ("JPEG", ".jpg")])
def test_a_signed_result_verifies_and_says_edited_by_ai(chain: SigningChain, fmt: str, extension: str) -> None:
    clean, ext = images.clean_result(Image.open(io.BytesIO(_encoded(fmt))))
    assert ext == extension
    parent = _encoded("JPEG")
    signed = provenance.sign_result(clean, extension=ext, parent=parent, parent_mime="image/jpeg", facts=_facts())
    with Image.open(io.BytesIO(signed)) as image, Image.open(io.BytesIO(clean)) as before:
        assert np.array_equal(np.asarray(image), np.asarray(before))  # the manifest changes no pixel
    anchors = chain.anchors_file.read_text()
    trusted = provenance.verify(signed, trust_anchors=anchors)
    assert trusted.state == "Trusted", trusted.failures
    assert provenance.verify(signed).state == "Valid"  # signature and hashes fine; no anchor given to trust it
    opened, edited = trusted.actions
    assert opened["action"] == "c2pa.opened"
    assert edited["action"] == "c2pa.edited"
    assert edited["digitalSourceType"] == provenance.AI_EDIT_SOURCE_TYPE
    assert edited["softwareAgent"]["name"] == "self-hosted Fashion AI service: recolor"
    assert trusted.assertion(provenance.EDIT_ASSERTION)["edited_by_ai"] is True
    assert [i["relationship"] for i in trusted.manifest["ingredients"]] == ["parentOf"]


def test_verification_fails_when_the_file_was_changed(chain: SigningChain) -> None:
    clean, ext = images.clean_result(Image.open(io.BytesIO(_encoded("PNG"))))
    signed = provenance.sign_result(clean, extension=ext, parent=clean, parent_mime="image/png", facts=_facts())
    # Re-encoding from pixels (what the site does to provider output) drops the manifest: why we sign after it.
    recoded, _ = images.clean_result(Image.open(io.BytesIO(signed)))
    assert provenance.verify(recoded).state is None
    # One byte of the image data changed under the same manifest: its hash (the hard binding) no longer matches.
    at = signed.index(b"IDAT") + 40
    tampered = signed[:at] + bytes([signed[at] ^ 0xFF]) + signed[at + 1:]
    result = provenance.verify(tampered, trust_anchors=chain.anchors_file.read_text())
    assert result.state == "Invalid" and result.failures, result


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["s3", "local files"])
def test_a_stored_result_verifies_after_the_site_stored_it(
    celery_worker_factory: Any, funded_user: Any, make_photo: Any, client: Any, tmp_path: Path, settings: Any,
    where: str,
) -> None:
    chain = make_signing_chain(tmp_path / "c2pa")
    worker_env = {**chain.env(), "RESULT_AI_MARK": "true"}
    if where == "s3":
        if not settings.USE_S3:
            pytest.skip("needs the SeaweedFS bucket of scripts/testenv.py (run without --no-s3)")
    else:  # this process and the worker both on local files under tmp_path
        media = tmp_path / "media"
        settings.MEDIA_ROOT = str(media)
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
        worker_env.update({"AWS_STORAGE_BUCKET_NAME": "", "MEDIA_ROOT": str(media)})
    assert storage.is_s3() == (where == "s3")
    started = timezone.now()
    # Screening on as well: a safe photo goes through both the provider's screening and the signing.
    with run_fashionai(delay=0.2, env={"FASHIONAI_SAFETY": "on"}) as fai:
        worker = celery_worker_factory(fashionai=fai, env=worker_env)
        user = funded_user(1)
        photo = make_photo(user)
        job = edit_job_submit(user=user, photo=photo, prompt="a red shirt", clothing="topwear")
        (job,) = wait_for_jobs([job.pk], worker=worker)
    assert job.state == EditJob.State.SUCCEEDED, job.error_detail
    stored = storage.read(str(job.result_image.name))
    verified = provenance.verify(stored, trust_anchors=chain.anchors_file.read_text())
    assert verified.state == "Trusted", verified.failures
    edited = verified.actions[-1]
    assert edited["action"] == "c2pa.edited"
    assert edited["softwareAgent"]["name"] == "self-hosted Fashion AI service: passthrough"
    when = timezone.datetime.fromisoformat(edited["when"])
    assert started - timedelta(seconds=1) <= when <= timezone.now()
    facts = verified.assertion(provenance.EDIT_ASSERTION)
    assert facts == {"edited_by_ai": True, "provider": "self-hosted Fashion AI service", "model": "fashion-ai",
                     "engine": "passthrough", "clothing": "topwear", "visible_mark": True}

    # What the person downloads is those very bytes (a presigned S3 URL, or our own file response).
    client.force_login(user)
    response = client.get(f"/edits/{job.pk}/download/")
    assert response.status_code == (302 if where == "s3" else 200)
    if where == "s3":
        downloaded = requests.get(response["Location"], timeout=10).content
    else:
        downloaded = b"".join(response.streaming_content)
    assert downloaded == stored

    # The visible mark: the passthrough engine returns the photo, so only the mark's corner differs from it.
    with Image.open(io.BytesIO(stored)) as result_image, photo.image.open("rb") as handle:
        result = np.asarray(result_image.convert("RGB")).astype(int)
        original = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB")).astype(int)
    left, top, right, bottom = images.ai_mark_box(*result_image.size)
    inside = np.zeros(result.shape[:2], bool)
    inside[top:bottom, left:right] = True
    assert np.abs(result - original)[inside].max() > 100  # white letters on a dark box
    assert np.abs(result - original)[~inside].max() == 0
