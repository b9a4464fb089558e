"""The bounded engine pool: N worker processes, each with its own mediapipe graph, fed one job at a time.

Processes (not threads) because the engine is CPU-bound Python/numpy/OpenCV work: the HTTP event loop must stay free
to answer submits and polls in milliseconds while every core is busy editing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fashionai.safety import INPUT_BLOCKED, OUTPUT_BLOCKED, SafetyPolicy, Screener

log = logging.getLogger("fashionai.pool")

_ENGINE_NAME = "recolor"
_SCREENER: Screener | None = None  # this worker's content screening (None: off)


def _worker_init(engine_name: str, safety: SafetyPolicy | None = None) -> None:
    global _ENGINE_NAME, _SCREENER
    _ENGINE_NAME = engine_name
    # mediapipe/TFLite chatter on stderr is noise in a service log.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Each process gets one core's worth of work; OpenCV's own thread pool would oversubscribe the machine.
    import cv2  # lazy: the HTTP process never needs OpenCV

    cv2.setNumThreads(1)
    if engine_name in ("recolor", "generative"):
        from fashionai import engine  # lazy: imports OpenCV, only engine workers load it

        engine.warm_up()
    _SCREENER = Screener(safety) if safety is not None and safety.enabled else None


def _ping() -> int:
    time.sleep(0.05)  # long enough that concurrent pings land on different processes
    return os.getpid()


def run_engine_job(
    data: bytes, prompt: str, clothing: str, out_path: str, max_pixels: int, hold: float = 0.0
) -> dict[str, Any]:
    """Runs inside a worker process: decodes the compressed input here (the queue holds only its bytes), edits,
    writes the PNG to `out_path`. Returns a small dict; the image never goes back through the pipe. `hold`
    (--engine-hold) keeps the worker busy that much longer: a slow engine, for tests of the queue."""
    if hold > 0:
        time.sleep(hold)
    import cv2  # lazy: see _worker_init

    from fashionai import engine, images  # lazy: engine imports OpenCV

    try:
        rgb = images.load_rgb_512(data, max_pixels=max_pixels)
    except images.ImageError as exc:
        return {"ok": False, "error": str(exc), "code": "input_unreadable"}
    del data
    if _SCREENER is not None and (verdict := _SCREENER.screen(rgb)).blocked:
        return {"ok": False, "error": INPUT_BLOCKED, "blocked": list(verdict.found), "code": "content_blocked"}
    try:
        result, seconds = engine.edit(rgb, prompt, clothing, _ENGINE_NAME)
    except engine.EngineFailure as exc:
        return {"ok": False, "error": str(exc), "code": "edit_not_possible"}
    except Exception:  # an engine bug must fail one job, not the worker
        log.exception("engine crashed on a job")
        return {"ok": False, "error": "The engine hit an internal error on this image.", "code": "engine_error"}
    if _SCREENER is not None:
        if (verdict := _SCREENER.screen(result.image)).blocked:
            return {"ok": False, "error": OUTPUT_BLOCKED, "blocked": list(verdict.found), "code": "content_blocked"}
        result.meta["content_screened"] = True
    ok, png = cv2.imencode(".png", cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        return {"ok": False, "error": "The engine could not encode the result image.", "code": "engine_error"}
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(png.tobytes())
    os.replace(tmp, out_path)  # readers never see a half-written file
    return {"ok": True, "inference_time": seconds, "meta": result.meta}


def run_preview_job(data: bytes, clothing: str, prompt: str, max_pixels: int) -> dict[str, Any]:
    """Runs inside a worker process: the region and the gate's verdict for the free preview (no recolour, no
    file). The mask comes back as a small 1-bit PNG."""
    import cv2  # lazy: see _worker_init

    from fashionai import engine, images  # lazy: engine imports OpenCV

    started = time.perf_counter()
    try:
        rgb = images.load_rgb_512(data, max_pixels=max_pixels)
    except images.ImageError as exc:
        return {"ok": False, "error": str(exc)}
    del data
    try:
        result = engine.preview(rgb, clothing, prompt)
    except engine.EngineFailure as exc:
        return {"ok": False, "error": str(exc)}
    except Exception:
        log.exception("engine crashed on a preview")
        return {"ok": False, "error": "The engine hit an internal error on this image."}
    ok, png = cv2.imencode(".png", result.mask.astype("uint8") * 255, [cv2.IMWRITE_PNG_BILEVEL, 1])
    if not ok:
        return {"ok": False, "error": "The engine could not encode the mask."}
    return {"ok": True, "verdict": result.verdict, "meta": result.meta, "mask_png": png.tobytes(),
            "seconds": time.perf_counter() - started}


class EnginePool:
    def __init__(self, workers: int, engine_name: str, safety: SafetyPolicy | None = None) -> None:
        self.workers = workers
        self.engine_name = engine_name
        self.safety = safety
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process that runs an event loop and threads is unsafe.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.engine_name, self.safety),
        )

    async def start(self) -> None:
        """Start every worker and load its model now, so the first request isn't slow."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _ping) for _ in range(self.workers)))

    async def run(
        self, data: bytes, prompt: str, clothing: str, out_path: str, max_pixels: int, hold: float = 0.0
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(
                executor, run_engine_job, data, prompt, clothing, out_path, max_pixels, hold
            )
        except BrokenProcessPool:
            # A worker died (killed, out of memory): fail this job and start a fresh pool for the next ones.
            if self._executor is executor:  # only the first job to notice replaces the pool
                log.error("engine worker died; restarting the pool")
                self._executor = self._new_executor()
                executor.shutdown(wait=False, cancel_futures=True)
            return {
                "ok": False,
                "error": "The engine worker stopped unexpectedly while processing this image.",
                "code": "engine_crashed",
            }

    async def preview(self, data: bytes, clothing: str, prompt: str, max_pixels: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, run_preview_job, data, clothing, prompt, max_pixels)
        except BrokenProcessPool:
            if self._executor is executor:
                log.error("engine worker died; restarting the pool")
                self._executor = self._new_executor()
                executor.shutdown(wait=False, cancel_futures=True)
            return {"ok": False, "error": "The engine worker stopped unexpectedly while processing this image."}

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
