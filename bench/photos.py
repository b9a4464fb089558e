"""Real photos that ship inside packages, for the evaluation set (bench/bench_engine_quality.py) and the engine tests.

No photo is stored in this repository and nothing is downloaded:
- scikit-image's data (pip): `astronaut` (NASA, Eileen Collins; public domain), `camera` (the cameraman, by Lav
  Varshney; CC0).
- Debian's `opencv-doc` package (apt; scripts/ensure-system-packages.sh installs it for the tests), OpenCV's
  samples/data, under OpenCV's licence (Apache-2.0 / BSD-3-Clause, debian/copyright): `basketball1.png` and
  `basketball2.png` (two people indoors, greyscale), `messi5.jpg` (a footballer side-on in front of a crowd),
  `vtest.avi` (pedestrians far away, first frame).

Every photo is cropped to a square the way the site's crop tool would, then resized to the engine's 512x512.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
SIZE = 512

RGB = NDArray[np.uint8]


class MissingSample(RuntimeError):
    pass


def _square(rgb: RGB, left: int, top: int, side: int) -> RGB:
    crop = Image.fromarray(np.ascontiguousarray(rgb[top : top + side, left : left + side]))
    return np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS), np.uint8).copy()


def opencv_sample(name: str) -> RGB:
    path = OPENCV_SAMPLES / name
    if not path.exists():
        raise MissingSample(
            f"{path} is missing: install Debian's opencv-doc (scripts/ensure-system-packages.sh test does)"
        )
    if path.suffix == ".avi":
        import cv2  # lazy: only the video sample needs OpenCV's decoder

        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read()
        capture.release()
        if not ok:
            raise MissingSample(f"{path} could not be read")
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), np.uint8)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.uint8).copy()


def astronaut() -> RGB:
    from skimage import data  # lazy: scikit-image is a test/bench dependency only

    return np.ascontiguousarray(data.astronaut())


def cameraman() -> RGB:
    """Greyscale (stored as RGB): a man in a long black coat and gloves, side-on behind a camera on a tripod."""
    from skimage import data

    grey = data.camera()
    return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))


def basketball(which: int = 1) -> RGB:
    """The left square: a man in a dark T-shirt and jeans holding a ball up (the second man is cut off)."""
    return _square(opencv_sample(f"basketball{which}.png"), 0, 0, 480)


def basketball_both() -> RGB:
    """The whole frame, letterboxed: both men (the one with the ball small on the left, the other at the right)."""
    rgb = opencv_sample("basketball1.png")
    pad = np.zeros((rgb.shape[1] - rgb.shape[0], rgb.shape[1], 3), np.uint8)
    return _square(np.vstack([rgb, pad]), 0, 0, rgb.shape[1])


def footballer() -> RGB:
    """messi5.jpg, the centre square: striped shirt, shorts, socks; a crowd behind."""
    rgb = opencv_sample("messi5.jpg")
    side = min(rgb.shape[:2])
    return _square(rgb, (rgb.shape[1] - side) // 2, 0, side)


def pedestrians() -> RGB:
    """The first frame of vtest.avi: several small people walking (no prominent person)."""
    rgb = opencv_sample("vtest.avi")
    side = min(rgb.shape[:2])
    return _square(rgb, (rgb.shape[1] - side) // 2, 0, side)


def two_astronauts() -> RGB:
    """Two people: the astronaut's middle half and, apart from her, a smaller copy of the whole photo (a composite
    of a real photo; the segmenter sees the small one as a second figure or as background)."""
    rgb = astronaut()
    canvas = np.empty((SIZE, SIZE, 3), np.uint8)
    canvas[:] = rgb[5, 500]  # the studio backdrop's grey
    canvas[:, :256] = rgb[:, 96:352]
    small = np.asarray(Image.fromarray(rgb).resize((200, 200), Image.Resampling.LANCZOS), np.uint8)
    canvas[SIZE - 200 :, SIZE - 200 :] = small
    return canvas


def chelsea() -> RGB:
    """scikit-image's cat (no person; CC0 by Stefan van der Walt)."""
    from skimage import data

    return _square(np.ascontiguousarray(data.chelsea()), 0, 0, min(data.chelsea().shape[:2]))
