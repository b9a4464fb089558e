"""Sample inputs shared by tests and benchmarks."""
from __future__ import annotations

import io
from typing import Any


def astronaut_png(side: int = 512) -> bytes:
    """scikit-image's astronaut (a person, upper body) as a side x side PNG."""
    from PIL import Image  # Pillow and scikit-image load only when a sample is asked for
    from skimage import data

    photo = data.astronaut()  # type: ignore[no-untyped-call]  # scikit-image is untyped
    image = Image.fromarray(photo).resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def person_scene(width: int, height: int, *, left: int, top: int, side: int, seed: int = 1) -> Any:
    """A photo of a person (scikit-image's astronaut, `side` pixels square at left/top) in a real scene (its
    rocket photo behind), with real full-resolution detail over everything (the high-pass of its gravel photo and
    sensor grain), so a result that is only an upscaled 512 square shows up as blurred. H x W x 3 uint8 RGB."""
    import cv2
    import numpy as np
    from skimage import data

    rng = np.random.default_rng(seed)
    scene = cv2.resize(data.rocket(), (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)  # type: ignore[no-untyped-call]
    person = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_LANCZOS4)  # type: ignore[no-untyped-call]
    scene[top:top + side, left:left + side] = person
    texture = data.gravel().astype(np.float32)  # type: ignore[no-untyped-call]
    reps = (height // texture.shape[0] + 1, width // texture.shape[1] + 1)
    texture = np.tile(texture, reps)[:height, :width]
    texture -= cv2.GaussianBlur(texture, (0, 0), 2.0)
    scene += 0.35 * texture[..., None] + rng.normal(0.0, 2.0, (height, width, 1)).astype(np.float32)
    return np.clip(scene + 0.5, 0, 255).astype(np.uint8)
