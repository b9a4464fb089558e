"""Content screening, like Segmind's RAI blocks: the input photo and the edited result are each run through NudeNet's
detector, and a job whose image shows a blocked class FAILS with "content not allowed" (HTTP 422 in Segmind's FAILED
form; the caller is refunded like any failed job).

The detector is `nudenet` 3.4.2: a YOLOv8n model (`nudenet/320n.onnx`, 12 MB) shipped inside the wheel and run on
onnxruntime, so nothing is downloaded at run time. Its code and weights are AGPL-3.0 (the wheel's LICENSE file; see
docs/fashionai.md, "Content screening"). It runs in the engine worker processes, one onnxruntime thread each, beside
mediapipe; the HTTP process never imports it.

Which classes block is a setting (`FASHIONAI_SAFETY_BLOCK`, default: the explicit-nudity classes), and so is the
score threshold. Tests block a harmless class the detector does find on a real photo (FACE_FEMALE on scikit-image's
astronaut) instead of shipping explicit images: the same code path from detection to refusal, with a real model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# What the API caller reads. The site recognises a content block by this phrase (editor/services/job_steps.py).
BLOCKED = "content not allowed"
INPUT_BLOCKED = f"{BLOCKED}: the photo was refused by the content filter"
OUTPUT_BLOCKED = f"{BLOCKED}: the edited image was refused by the content filter"

# Every class NudeNet 3.4's 320n model reports (nudenet/nudenet.py, in its output order).
LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
# Explicit nudity only: bare bellies, feet, armpits and male chests are ordinary in clothing photos (swimwear,
# sportswear) and must not be refused.
DEFAULT_BLOCK = (
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class SafetyPolicy:
    """What the engine workers screen for. Plain values: it crosses into spawned worker processes."""

    enabled: bool = True
    threshold: float = DEFAULT_THRESHOLD
    block: tuple[str, ...] = DEFAULT_BLOCK


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    found: tuple[str, ...]  # blocked classes seen at or above the threshold (for the service log)


def parse_labels(raw: str) -> tuple[str, ...]:
    """`A,B` -> ("A", "B"); every name must be one of LABELS (a typo would silently screen for nothing)."""
    labels = tuple(dict.fromkeys(item.strip().upper() for item in raw.split(",") if item.strip()))
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"unknown content class {', '.join(unknown)} (known: {', '.join(LABELS)})")
    if not labels:
        raise ValueError("no content class given")
    return labels


class Screener:
    """NudeNet's detector with its onnxruntime session limited to one thread (each engine worker owns a core)."""

    def __init__(self, policy: SafetyPolicy) -> None:
        import onnxruntime  # lazy: only engine workers load the model
        from nudenet import NudeDetector

        self.policy = policy
        self._detector: Any = NudeDetector()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Same model file NudeDetector just opened, in a session that does not spread over every core.
        self._detector.onnx_session = onnxruntime.InferenceSession(
            model_path(), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def detect(self, rgb: NDArray[np.uint8]) -> list[dict[str, Any]]:
        """NudeNet's raw detections ({"class", "score", "box"}) for an RGB image."""
        # NudeNet's own reader hands the model what cv2.imread returns (BGR); give it the same.
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        return list(self._detector.detect(bgr))

    def screen(self, rgb: NDArray[np.uint8]) -> Verdict:
        block = set(self.policy.block)
        found = tuple(
            sorted(
                {
                    str(d["class"])
                    for d in self.detect(rgb)
                    if d["class"] in block and float(d["score"]) >= self.policy.threshold
                }
            )
        )
        return Verdict(blocked=bool(found), found=found)


def model_path() -> str:
    """The ONNX weights inside the installed nudenet package."""
    import nudenet  # lazy: see Screener

    return os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
