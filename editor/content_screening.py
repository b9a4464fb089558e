"""Screening uploads before they are stored (UPLOAD_SCREENING, off by default): NudeNet's detector, the same model
the self-hosted engine screens every job with (fashionai/safety.py; the site image does not carry fashionai/, hence
this small twin). Useful when the provider is Segmind's cloud, or to refuse a photo before it is ever kept.

The model (`nudenet/320n.onnx`, 12 MB, AGPL-3.0: docs/fashionai.md, "Content screening") ships inside the nudenet
wheel and runs on onnxruntime with one thread, loaded once per process on the first screened upload (~1 s), never
when the setting is off. A refusal is an `errors.Refused` on the image field, raised before anything is stored.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

from django.conf import settings
from PIL import Image

from editor.errors import Refused

REFUSED_MESSAGE = (
    "This photo can't be used: our content filter does not allow it (content not allowed). "
    "Please choose another photo."
)


class PhotoBlocked(Refused):
    field = "image"


_lock = threading.Lock()  # one onnxruntime session per process, shared by the web server's threads


@lru_cache(maxsize=1)
def _detector() -> Any:
    # Lazy on purpose (third-party only): OpenCV, onnxruntime and the model load only where screening is on.
    import nudenet  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    detector = nudenet.NudeDetector()
    detector.onnx_session = onnxruntime.InferenceSession(
        os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx"),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return detector


def detect(image: Image.Image) -> list[dict[str, Any]]:
    """NudeNet's detections ({"class", "score", "box"}) for an RGB image."""
    import numpy as np  # noqa: PLC0415 - lazy like nudenet: every site process would pay for its import

    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # what cv2.imread would give it
    with _lock:
        return list(_detector().detect(bgr))


def screen_upload(image: Image.Image) -> None:
    """Refuse the upload when a blocked class (UPLOAD_SCREENING_BLOCK) scores at least the threshold."""
    blocked = set(settings.UPLOAD_SCREENING_BLOCK)
    threshold = settings.UPLOAD_SCREENING_THRESHOLD
    if any(d["class"] in blocked and float(d["score"]) >= threshold for d in detect(image)):
        raise PhotoBlocked(REFUSED_MESSAGE)
