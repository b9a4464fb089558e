"""Content screening on the service (fashionai/safety.py): the real NudeNet model on real photos, and the refusal as
Segmind's FAILED form (422, "content not allowed", credit refunded).

No explicit image ships with this repository. The blocked case configures the service to block a harmless class the
real detector does find on scikit-image's astronaut photo (FACE_FEMALE): detection, policy, refusal and refund run
exactly as they would for nudity; only the class list differs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from segmind import InferenceFailed, SegmindClient

from devservices.fashionai import FashionAIServer, run_fashionai
from fashionai import config, pool, safety

PROMPT = "a person wearing a red shirt"


def _wait_terminal(client: httpx.Client, status_url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url)
        if response.json().get("status") in ("COMPLETED", "FAILED"):
            return response
        time.sleep(0.05)
    raise AssertionError("job did not finish")


@pytest.fixture(scope="module")
def screener() -> safety.Screener:
    return safety.Screener(safety.SafetyPolicy())


def test_the_model_ships_inside_the_nudenet_wheel() -> None:
    path = Path(safety.model_path())
    assert path.is_file() and path.parent.name == "nudenet"
    assert path.stat().st_size > 10_000_000  # the 12 MB YOLOv8n weights, not a pointer to a download


def test_the_real_detector_finds_the_face_on_a_real_photo(screener: safety.Screener, astronaut: np.ndarray) -> None:
    detections = screener.detect(astronaut)
    faces = [d for d in detections if d["class"] == "FACE_FEMALE"]
    assert faces and faces[0]["score"] > 0.5, detections
    x, y, w, h = faces[0]["box"]
    # Eileen Collins' face in the 512x512 photo is around x 170-280, y 80-180.
    assert 120 < x + w / 2 < 320 and 60 < y + h / 2 < 220, faces
    assert not any(d["class"] in safety.DEFAULT_BLOCK for d in detections), detections


def test_a_safe_photo_passes_and_a_blocked_class_refuses(screener: safety.Screener, astronaut: np.ndarray) -> None:
    assert screener.screen(astronaut) == safety.Verdict(blocked=False, found=())
    strict = safety.Screener(safety.SafetyPolicy(block=("FACE_FEMALE",)))
    assert strict.screen(astronaut) == safety.Verdict(blocked=True, found=("FACE_FEMALE",))
    lenient = safety.Screener(safety.SafetyPolicy(block=("FACE_FEMALE",), threshold=0.99))
    assert not lenient.screen(astronaut).blocked  # the face scores ~0.72: under this threshold it passes


def test_the_worker_screens_the_input_and_the_edited_result(astronaut: np.ndarray, astronaut_jpeg: bytes) -> None:
    """run_engine_job screens twice: the decoded input, then the image the engine made."""
    screened: list[np.ndarray] = []

    class Recording(safety.Screener):
        def screen(self, rgb: np.ndarray) -> safety.Verdict:
            screened.append(rgb.copy())
            return super().screen(rgb)

    previous = pool._SCREENER
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"safety-{os.getpid()}.png"
    try:
        pool._SCREENER = Recording(safety.SafetyPolicy())
        outcome = pool.run_engine_job(astronaut_jpeg, PROMPT, "topwear", str(out), 50_000_000)
        assert outcome["ok"] and outcome["meta"]["content_screened"] is True
        assert len(screened) == 2  # the input, then the result: the recoloured shirt, not the input again
        assert not np.array_equal(screened[0], screened[1])
        pool._SCREENER = Recording(safety.SafetyPolicy(block=("FACE_FEMALE",)))
        screened.clear()
        blocked = pool.run_engine_job(astronaut_jpeg, PROMPT, "topwear", str(out), 50_000_000)
        assert blocked == {"ok": False, "error": safety.INPUT_BLOCKED, "blocked": ["FACE_FEMALE"],
                           "code": "content_blocked"}
        assert len(screened) == 1  # refused before the engine ran
    finally:
        pool._SCREENER = previous
        out.unlink(missing_ok=True)


def test_the_default_service_screens_and_completes_a_safe_photo(service: FashionAIServer, astronaut_b64: str) -> None:
    assert httpx.get(f"{service.root_url}/health").json()["content_screening"] is True
    with httpx.Client(base_url=service.root_url, headers={"x-api-key": service.api_key}, timeout=30) as client:
        submitted = client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}).json()
        assert _wait_terminal(client, submitted["status_url"]).json()["status"] == "COMPLETED"
        result = client.get(submitted["response_url"]).json()
        assert result["edit"]["content_screened"] is True


def test_a_content_block_is_a_422_failed_with_a_refund(astronaut_b64: str) -> None:
    with run_fashionai(
        engine="recolor", api_keys="key:2", env={"FASHIONAI_SAFETY_BLOCK": "FACE_FEMALE"}
    ) as server, httpx.Client(base_url=server.root_url, headers={"x-api-key": "key"}, timeout=30) as client:
        submitted = client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT})
        assert submitted.headers["x-remaining-credits"] == "1"
        status = _wait_terminal(client, submitted.json()["status_url"])
        assert status.status_code == 422
        assert status.json()["status"] == "FAILED"
        assert status.json()["error"] == safety.INPUT_BLOCKED
        assert status.json()["error"].startswith("content not allowed")
        result = client.get(submitted.json()["response_url"])
        assert result.status_code == 422 and result.json()["output"] is None
        # The blocked job gave its credit back: two more submits fit in a 2-credit key.
        sync = client.post("/v1/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT})
        assert sync.status_code == 422 and sync.json() == {"status": "FAILED", "error": safety.INPUT_BLOCKED}
        assert sync.headers["x-remaining-credits"] == "2"
        # The official SDK sees Segmind's own failure shape.
        job = SegmindClient(api_key="key", base_url=server.base_url).submit_async(
            "fashion-ai", image=astronaut_b64, prompt=PROMPT
        )
        with pytest.raises(InferenceFailed) as failure:
            job.wait(timeout=30, interval=0.05)
        assert "content not allowed" in (failure.value.detail or "")
        assert "classes: FACE_FEMALE" in server.log()


def test_screening_settings_are_parsed_strictly() -> None:
    base = {"FASHIONAI_API_KEYS": "k"}
    assert config.load(base).safety_policy() == safety.SafetyPolicy()
    assert not config.load(base, engine="passthrough").safety_policy().enabled  # auto: off for load tests
    assert config.load({**base, "FASHIONAI_SAFETY": "on"}, engine="passthrough").safety_policy().enabled
    assert not config.load({**base, "FASHIONAI_SAFETY": "off"}).safety_policy().enabled
    custom = config.load(
        {**base, "FASHIONAI_SAFETY_BLOCK": "face_female, FEET_EXPOSED", "FASHIONAI_SAFETY_THRESHOLD": "0.7"}
    )
    assert custom.safety_policy() == safety.SafetyPolicy(threshold=0.7, block=("FACE_FEMALE", "FEET_EXPOSED"))
    for env, needle in (
        ({"FASHIONAI_SAFETY": "maybe"}, "FASHIONAI_SAFETY"),
        ({"FASHIONAI_SAFETY_BLOCK": "NAKED"}, "unknown content class NAKED"),
        ({"FASHIONAI_SAFETY_THRESHOLD": "0.1"}, "FASHIONAI_SAFETY_THRESHOLD"),
    ):
        with pytest.raises(config.ConfigError, match=needle):
            config.load({**base, **env})
