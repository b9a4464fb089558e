"""The full-resolution compose step (editor/compose.py): CPU per megapixel and peak memory against the decoded image.

    .venv/bin/python -m bench.bench_compose                  # 3, 8 and 11 Mpx (the 4096 cap), 3 runs each
    .venv/bin/python -m bench.bench_compose --runs 1 --sizes 2048x1536

For each size: a real photo (devservices.samples.person_scene, the person's square off centre), stored as the site
stores originals (JPEG q95 4:4:4), its 512 model input, and the real recolour engine's output (in-process, not
timed). Each run is a fresh process that does exactly what the compose task does with the files it read:
decode the original, compose in place, encode the JPEG (`compose_files`). Printed:
- CPU ms per megapixel of the original (process CPU time, all threads), for the whole step and for `compose()`
  alone (decode and encode excluded);
- peak memory above the process's level before the step (VmHWM after clearing it), against the decoded image's
  bytes (width x height x 3). Goals: at most 150 ms of CPU per megapixel, at most 4x the decoded bytes.
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def _one_run(inputs: dict[str, Any], queue: Any) -> None:
    from editor import compose

    square = compose.Square(*inputs["square"])
    # Warm the code paths on a tiny image so imports and OpenCV's first-call set-up are not counted.
    tiny = np.zeros((600, 600, 3), np.uint8)
    compose.compose(tiny, compose.Square(0, 0, 600), tiny[:512, :512], tiny[:512, :512])
    baseline = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    started = time.process_time()
    composed = compose.compose_files(original=inputs["original"], square=square, model_input=inputs["model_input"],
                                     model_output=inputs["model_output"])
    total = time.process_time() - started
    peak = _status_kib("VmHWM") - baseline
    # compose() alone, on decoded arrays (a second decode, outside the measured step).
    pixels = compose.decode_rgb(inputs["original"])
    model_input, model_output = compose.decode_rgb(inputs["model_input"]), compose.decode_rgb(inputs["model_output"])
    started = time.process_time()
    compose.compose(pixels, square, model_input, model_output, in_place=True)
    core = time.process_time() - started
    queue.put({"total": total, "core": core, "peak_kib": peak, "jpeg": len(composed.jpeg),
               "changed": composed.report.changed_fraction, "region": composed.report.region})


def prepare(width: int, height: int) -> dict[str, Any]:
    from devservices.samples import person_scene
    from editor.compose import decode_rgb
    from fashionai import engine

    side = int(min(width, height) * 0.8)
    left, top = width - side - width // 20, (height - side) // 2
    pixels = person_scene(width, height, left=left, top=top, side=side)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95, subsampling=0)
    cut = Image.fromarray(pixels[top:top + side, left:left + side])
    square_image = cut.resize((512, 512), Image.Resampling.LANCZOS)
    model_input = io.BytesIO()
    square_image.save(model_input, format="JPEG", quality=92)
    output = engine.recolor(decode_rgb(model_input.getvalue()), "a red shirt", "topwear").image
    png = io.BytesIO()
    Image.fromarray(output).save(png, format="PNG")
    return {"original": out.getvalue(), "model_input": model_input.getvalue(), "model_output": png.getvalue(),
            "square": (left, top, side)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2048x1536,3840x2160,4096x2731")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")  # a clean process per run: its peak is the step's alone
    print(f"{'size':>10} {'Mpx':>5} {'ms/Mpx':>7} {'core':>6} {'peak MiB':>8} {'decoded MiB':>11} {'peak/dec':>8} "
          f"{'changed':>7}")
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        inputs = prepare(width, height)
        megapixels = width * height / 1e6
        decoded = width * height * 3
        runs = []
        for _ in range(args.runs):
            queue = context.Queue()
            process = context.Process(target=_one_run, args=(inputs, queue))
            process.start()
            runs.append(queue.get(timeout=300))
            process.join(60)
        ms = statistics.median(r["total"] for r in runs) * 1000 / megapixels
        core = statistics.median(r["core"] for r in runs) * 1000 / megapixels
        peak = max(r["peak_kib"] for r in runs) * 1024
        rows.append({"size": size, "ms_per_mpx": round(ms), "core_ms_per_mpx": round(core),
                     "peak_mib": round(peak / 2**20, 1), "decoded_mib": round(decoded / 2**20, 1),
                     "peak_over_decoded": round(peak / decoded, 2)})
        print(f"{size:>10} {megapixels:5.1f} {ms:7.0f} {core:6.0f} {peak / 2**20:8.1f} {decoded / 2**20:11.1f} "
              f"{peak / decoded:8.2f} {runs[0]['changed']:7.0%}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
