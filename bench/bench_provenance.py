"""What signing a result with its C2PA manifest costs (editor/provenance.py), and verifying it.

    .venv/bin/python -m bench.bench_provenance [--runs 10]

Signs a re-encoded result (a 512x512 PNG like the engine's, and a 2048x2048 JPEG like a full-resolution photo) with
a throwaway CA + leaf key (tests/support/c2pa_keys.py), its parent ingredient the same size, and prints the median
milliseconds of signing and verifying and the bytes the manifest adds. No services needed.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from tests.support.c2pa_keys import make_signing_chain

    chain = make_signing_chain(Path(tempfile.mkdtemp(prefix="c2pa-bench-")))
    os.environ.update({**chain.env(), "DJANGO_SETTINGS_MODULE": "fashionsite.settings", "FAI_IGNORE_DOTENV": "1"})
    django.setup()
    from django.utils import timezone
    from PIL import Image
    from skimage import data

    from editor import images, provenance

    facts = provenance.EditFacts(provider="self-hosted Fashion AI service", model="fashion-ai", engine="recolor",
                                 clothing="topwear", when=timezone.now())
    photo = Image.fromarray(data.astronaut())
    for label, image, fmt in (("512x512 PNG", photo, "PNG"), ("2048x2048 JPEG", photo.resize((2048, 2048)), "JPEG")):
        encoded = io.BytesIO()
        image.save(encoded, format=fmt)
        clean, extension = images.clean_result(Image.open(io.BytesIO(encoded.getvalue())))
        mime = provenance.MIME_BY_EXTENSION[extension]
        signs: list[float] = []
        checks: list[float] = []
        signed = b""
        for _ in range(args.runs):
            started = time.perf_counter()
            signed = provenance.sign_result(clean, extension=extension, parent=clean, parent_mime=mime, facts=facts)
            signs.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert provenance.verify(signed, trust_anchors=chain.anchors_file.read_text()).state == "Trusted"
            checks.append(time.perf_counter() - started)
        print(f"{label}: {len(clean)} bytes, manifest +{len(signed) - len(clean)} bytes; sign median "
              f"{statistics.median(signs) * 1000:.1f} ms, verify median {statistics.median(checks) * 1000:.1f} ms "
              f"(n={args.runs})")


if __name__ == "__main__":
    main()
