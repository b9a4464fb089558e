"""The engine's evaluation set and scorecard: real photos, checked expectations, and time per edit.

    .venv/bin/python -m bench.bench_engine_quality                 # every case, 3 variants each
    .venv/bin/python -m bench.bench_engine_quality --variants 1    # the photos as they are
    .venv/bin/python -m bench.bench_engine_quality --save /tmp/q   # also write before|after|mask images
    .venv/bin/python -m bench.bench_engine_quality --http          # also the preview endpoint over HTTP

Every case is a photo (bench/photos.py: scikit-image's data and Debian's opencv-doc samples; sources and licences
there), a clothing, a prompt and what must happen: an edit, with boxes (y0, y1, x0, x1 on the 512 square) that
must change and boxes that must not (the face, the background, the other garment); or a refusal. Each case also runs
on variants a real upload would bring: the photo as a JPEG (quality 85) and mirrored (boxes mirrored too).

An outcome is:
- correct edit: it succeeded, every must-change box changed, no must-not box did, and no pixel changed outside the
  person beyond 6 px (the feather);
- honest refusal: a refusal was expected (or allowed) and the engine refused (FAILED, refunded on the site);
- cautious refusal: an edit was expected but the gate refused (not charged, but a miss);
- wrong edit: it succeeded where a refusal was expected, or a box or the person rule was broken. The target is 0:
  a wrong edit is charged as a success.

Times are the engine's own per edit (decode excluded), single-threaded OpenCV as in a pool worker: wall and CPU
milliseconds (CPU time is what a loaded machine distorts least). The preview's time is the region and the gate only.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bench import photos

Box = tuple[int, int, int, int]  # y0, y1, x0, x1

CHANGED = 8.0  # mean absolute difference (0..255) a must-change box needs
UNCHANGED = 1.0  # most a must-not box may move (JPEG-free: the engine leaves untouched pixels bit-identical)
FEATHER = 6  # px beyond the person an edit may reach (the blend's feather)


@dataclass(frozen=True)
class Case:
    photo: str
    load: Callable[[], np.ndarray]
    clothing: str
    prompt: str
    refuse: bool = False
    either: bool = False  # a refusal is honest, and an edit is judged by the boxes (which person is "prominent")
    change: tuple[Box, ...] = ()
    keep: tuple[Box, ...] = ()
    note: str = ""


# Boxes hand-measured on the 512x512 squares (bench --save draws them).
ASTRONAUT_FACE = (75, 175, 185, 265)
ASTRONAUT_BACKGROUND = ((0, 90, 0, 90), (0, 60, 300, 512), (260, 330, 400, 512))
ASTRONAUT_HELMET = (400, 480, 330, 460)
CAMERAMAN_SKY, CAMERAMAN_GRASS, CAMERAMAN_FACE = (0, 60, 0, 512), (350, 420, 420, 500), (140, 190, 205, 245)
CAMERAMAN_GLOVE = (192, 222, 185, 235)
BASKETBALL_SHIRT, BASKETBALL_JEANS, BASKETBALL_WALL = (150, 230, 50, 130), (325, 400, 60, 120), (50, 250, 250, 450)
FOOTBALL_SHIRT, FOOTBALL_SHORTS = (205, 270, 150, 230), (378, 400, 200, 280)
FOOTBALL_CROWD, FOOTBALL_FACE, FOOTBALL_GRASS = (0, 80, 0, 512), (110, 160, 180, 225), (460, 512, 0, 150)

CASES: list[Case] = [
    Case("astronaut", photos.astronaut, "topwear", "a royal blue shirt",
         change=((300, 400, 40, 130), (250, 300, 280, 330)),
         keep=(ASTRONAUT_FACE, ASTRONAUT_HELMET, *ASTRONAUT_BACKGROUND)),
    Case("astronaut", photos.astronaut, "bottomwear", "black trousers", refuse=True, note="ends at the waist"),
    Case("cameraman", photos.cameraman, "topwear", "a red coat",
         change=((200, 280, 60, 140), (380, 460, 20, 90)),
         keep=(CAMERAMAN_SKY, CAMERAMAN_GRASS, CAMERAMAN_FACE, CAMERAMAN_GLOVE),
         note="greyscale, side-on, long coat over the thighs, gloves"),
    Case("cameraman", photos.cameraman, "bottomwear", "blue jeans", refuse=True, note="the coat hides the legwear"),
    Case("basketball1", photos.basketball, "topwear", "a red t-shirt",
         change=(BASKETBALL_SHIRT,), keep=(BASKETBALL_JEANS, BASKETBALL_WALL), note="greyscale"),
    Case("basketball1", photos.basketball, "bottomwear", "red trousers",
         change=(BASKETBALL_JEANS,), keep=(BASKETBALL_SHIRT, BASKETBALL_WALL)),
    Case("basketball2", lambda: photos.basketball(2), "topwear", "a green t-shirt",
         change=(BASKETBALL_SHIRT,), keep=(BASKETBALL_JEANS, BASKETBALL_WALL)),
    Case("footballer", photos.footballer, "topwear", "a plain white shirt",
         change=(FOOTBALL_SHIRT,), keep=(FOOTBALL_SHORTS, FOOTBALL_CROWD, FOOTBALL_FACE, FOOTBALL_GRASS),
         note="striped shirt, a crowd behind"),
    Case("footballer", photos.footballer, "bottomwear", "black shorts",
         change=(FOOTBALL_SHORTS,), keep=(FOOTBALL_SHIRT, FOOTBALL_CROWD, FOOTBALL_FACE, FOOTBALL_GRASS)),
    Case("two people", photos.two_astronauts, "topwear", "a green shirt",
         change=((300, 420, 30, 200),), keep=((312, 512, 312, 512), (75, 175, 89, 169)),
         note="only the prominent person"),
    Case("basketball both", photos.basketball_both, "topwear", "a red t-shirt", either=True,
         keep=((140, 215, 50, 85),),
         note="a small man with the ball, a bigger one at the right: refuse, or edit the bigger one only"),
    Case("pedestrians", photos.pedestrians, "topwear", "a red jacket", refuse=True, note="people far away"),
    Case("cat", photos.chelsea, "topwear", "a red shirt", refuse=True, note="no person"),
]


@dataclass
class Outcome:
    kind: str  # correct, honest, cautious, wrong
    detail: str
    edit_ms: float = 0.0
    edit_cpu_ms: float = 0.0
    preview_ms: float = 0.0
    preview_cpu_ms: float = 0.0


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: {"correct": 0, "honest": 0, "cautious": 0, "wrong": 0})
    edit_ms: list[float] = field(default_factory=list)
    edit_cpu_ms: list[float] = field(default_factory=list)
    preview_ms: list[float] = field(default_factory=list)
    preview_cpu_ms: list[float] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.kind] += 1
        if outcome.edit_ms:
            self.edit_ms.append(outcome.edit_ms)
            self.edit_cpu_ms.append(outcome.edit_cpu_ms)
        if outcome.preview_ms:
            self.preview_ms.append(outcome.preview_ms)
            self.preview_cpu_ms.append(outcome.preview_cpu_ms)


def _mirror(box: Box) -> Box:
    y0, y1, x0, x1 = box
    return y0, y1, photos.SIZE - x1, photos.SIZE - x0


def _jpeg(rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.uint8).copy()


def _diff(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    y0, y1, x0, x1 = box
    return float(np.abs(a[y0:y1, x0:x1].astype(np.int16) - b[y0:y1, x0:x1].astype(np.int16)).mean())


def run_case(case: Case, rgb: np.ndarray, change: tuple[Box, ...], keep: tuple[Box, ...],
             save: Path | None, label: str) -> Outcome:
    from fashionai import engine, regions
    from fashionai.regions import _dilate

    started, started_cpu = time.perf_counter(), time.process_time()
    shown = engine.preview(rgb, case.clothing, case.prompt)
    preview_ms = (time.perf_counter() - started) * 1000
    preview_cpu = (time.process_time() - started_cpu) * 1000
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = engine.recolor(rgb, case.prompt, case.clothing)
    except engine.EngineFailure as exc:
        if shown.verdict["ok"]:
            return Outcome("wrong", f"the preview said ok but the edit refused: {exc}",
                           preview_ms=preview_ms, preview_cpu_ms=preview_cpu)
        kind = "honest" if case.refuse or case.either else "cautious"
        return Outcome(kind, f"refused: {exc}", preview_ms=preview_ms, preview_cpu_ms=preview_cpu)
    edit_ms, cpu_ms = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    out = result.image
    problems: list[str] = []
    if case.refuse:
        problems.append("edited where a refusal was expected")
    problems += [f"box {b} unchanged ({_diff(out, rgb, b):.1f})" for b in change if _diff(out, rgb, b) < CHANGED]
    problems += [f"box {b} changed ({_diff(out, rgb, b):.1f})" for b in keep if _diff(out, rgb, b) > UNCHANGED]
    person = regions.find_region(rgb, case.clothing).person
    changed = np.abs(out.astype(np.int16) - rgb.astype(np.int16)).max(axis=2) > 0
    outside = int((changed & ~_dilate(person, FEATHER)).sum())
    if outside:
        problems.append(f"{outside} px changed outside the person")
    if result.meta["mask_digest"] != shown.meta["mask_digest"]:
        problems.append("the preview's mask differs from the edit's")
    if save is not None:
        overlay = rgb.copy()
        overlay[shown.mask] = (overlay[shown.mask] * 0.4 + np.array([236, 32, 196]) * 0.6).astype(np.uint8)
        panel = np.hstack([rgb, out, overlay])
        for boxes, colour in ((change, (0, 255, 0)), (keep, (255, 255, 0))):
            for y0, y1, x0, x1 in boxes:
                for offset in (0, photos.SIZE, 2 * photos.SIZE):
                    panel[y0:y1, [x0 + offset, x1 - 1 + offset]] = colour
                    panel[[y0, y1 - 1], x0 + offset : x1 + offset] = colour
        Image.fromarray(panel).save(save / f"{label}.png")
    detail = "; ".join(problems) or f"ok (score {result.meta['quality']['score']:.2f})"
    return Outcome("wrong" if problems else "correct", detail, edit_ms, cpu_ms, preview_ms, preview_cpu)


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms, max {ordered[-1]:.0f} ms (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=3, choices=(1, 2, 3), help="as is, + JPEG 85, + mirrored")
    parser.add_argument("--save", type=Path, help="write before|after|region panels here")
    parser.add_argument("--http", action="store_true",
                        help="also time POST /v2/fashion-ai/preview on a real service, as the site calls it")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's start-up chatter is not part of the scorecard
    import cv2

    from fashionai import engine

    cv2.setNumThreads(1)  # as in a pool worker: one process per core
    engine.warm_up()
    engine.recolor(photos.astronaut(), "a red shirt", "topwear")  # first-call costs out of the figures
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    total = Tally()
    print(f"{'photo':<12} {'clothing':<10} {'variant':<8} {'outcome':<9} {'edit ms':>8} {'cpu ms':>7} "
          f"{'preview':>7}  detail")
    for case in CASES:
        try:
            original = case.load()
        except photos.MissingSample as exc:
            print(f"{case.photo:<12} missing: {exc}")
            total.counts["wrong"] += 1  # a scorecard with photos left out is not a clean one
            continue
        variants = [("as is", original, case.change, case.keep),
                    ("jpeg85", _jpeg(original), case.change, case.keep),
                    ("mirror", np.ascontiguousarray(original[:, ::-1]),
                     tuple(map(_mirror, case.change)), tuple(map(_mirror, case.keep)))][: args.variants]
        for name, rgb, change, keep in variants:
            label = f"{case.photo}-{case.clothing}-{name}".replace(" ", "_")
            outcome = run_case(case, rgb, change, keep, args.save, label)
            total.add(outcome)
            times = (f"{outcome.edit_ms:8.0f} {outcome.edit_cpu_ms:7.0f}" if outcome.edit_ms else f"{'-':>8} {'-':>7}")
            print(f"{case.photo:<12} {case.clothing:<10} {name:<8} {outcome.kind:<9} {times} "
                  f"{outcome.preview_ms:7.0f}  {outcome.detail[:150]}", flush=True)
    c = total.counts
    print(f"\ntotal: {sum(c.values())} runs: {c['correct']} correct edits, {c['honest']} honest refusals, "
          f"{c['cautious']} cautious refusals (an edit was expected), {c['wrong']} wrong edits")
    print(f"edit (region + gate + recolour), wall: {_stats(total.edit_ms)}")
    print(f"edit, CPU: {_stats(total.edit_cpu_ms)}")
    print(f"preview (region + gate), wall: {_stats(total.preview_ms)}")
    print(f"preview, CPU: {_stats(total.preview_cpu_ms)}")
    if args.http:
        print(f"preview over HTTP (service --engine recolor, the site's client, 3 calls a case): "
              f"{_stats(http_preview_ms())}")
    print(f"load average while it ran: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 1 if c["wrong"] else 0


def http_preview_ms(calls_per_case: int = 3) -> list[float]:
    """Wall time of the preview endpoint as the site calls it (a base64 JPEG square in JSON, one httpx request),
    on a real `python -m fashionai serve --engine recolor`: what the 150 ms budget is about."""
    import base64

    import httpx

    from devservices.fashionai import run_fashionai

    times: list[float] = []
    with run_fashionai(engine="recolor") as fai, httpx.Client(timeout=10) as client:
        url = f"{fai.root_url}/v2/fashion-ai/preview"
        headers = {"x-api-key": fai.api_key}
        squares = []
        for case in CASES:
            try:
                squares.append((_jpeg_bytes(case.load()), case.clothing))
            except photos.MissingSample:
                continue
        client.post(url, json={"image": base64.b64encode(squares[0][0]).decode()}, headers=headers)  # warm-up
        for data, clothing in squares:
            body = {"image": base64.b64encode(data).decode(), "clothing": clothing, "prompt": "a red shirt"}
            for _ in range(calls_per_case):
                start = time.perf_counter()
                response = client.post(url, json=body, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
    return times


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
