"""Sample inputs shared by tests and benchmarks."""
from __future__ import annotations

import io


def astronaut_png(side: int = 512) -> bytes:
    """scikit-image's astronaut (a person, upper body) as a side x side PNG."""
    from PIL import Image  # Pillow and scikit-image load only when a sample is asked for
    from skimage import data

    photo = data.astronaut()  # type: ignore[no-untyped-call]  # scikit-image is untyped
    image = Image.fromarray(photo).resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
