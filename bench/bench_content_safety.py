"""Content screening cost (fashionai/safety.py), as an engine worker pays it: one onnxruntime thread.

    .venv/bin/python -m bench.bench_content_safety [--runs 40]

Prints the median and p95 milliseconds of one screening (NudeNet 320n on a 512x512 RGB image) for two real photos
from scikit-image (the astronaut: a person; coffee: none). A job is screened twice (input and result), so its cost
is about twice the figure. The detector is loaded once, as a worker does at start-up; its load time is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from skimage import data

from fashionai import safety


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    started = time.perf_counter()
    screener = safety.Screener(safety.SafetyPolicy())
    print(f"detector load: {(time.perf_counter() - started) * 1000:.0f} ms")
    for name in ("astronaut", "coffee"):
        rgb = np.ascontiguousarray(getattr(data, name)())
        screener.screen(rgb)  # warm-up: the first run allocates onnxruntime's buffers
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            screener.screen(rgb)
            times.append(time.perf_counter() - started)
        print(f"screening {name} {rgb.shape[1]}x{rgb.shape[0]}: {_ms(times)}")


if __name__ == "__main__":
    main()
