"""Regenerate the home page's before/after examples (static/img/examples/) with the bundled engine (fashionai/).

    .venv/bin/python scripts/make_home_examples.py

The photo is scikit-image's astronaut (public domain, in the scikit-image wheel); each example is one real edit by
`fashionai.engine.edit` (the recolour engine the local service runs), saved small (320 px JPEG) so the page stays
light. The page lists them from EXAMPLES in editor/home_examples.py, which this script reads too.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devservices.samples import astronaut_png  # noqa: E402  (the repository root is on the path first)
from editor.home_examples import BEFORE, EXAMPLES, FOLDER  # noqa: E402
from fashionai import engine  # noqa: E402

SIDE = 320


def save_small(rgb: np.ndarray, path: Path) -> None:
    image = Image.fromarray(rgb).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    image.save(path, format="JPEG", quality=82, optimize=True, progressive=True)


def main() -> int:
    out = REPO / "static" / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    photo = np.asarray(Image.open(io.BytesIO(astronaut_png(512))).convert("RGB"))
    save_small(photo, out / BEFORE)
    for example in EXAMPLES:
        result, seconds = engine.edit(photo, example.prompt, example.clothing, engine="recolor")
        save_small(result.image, out / example.file)
        print(f"{example.file}: {example.prompt!r} ({example.clothing}) in {seconds:.2f} s")
    for path in sorted(out.iterdir()):
        print(f"{path.relative_to(REPO)}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
