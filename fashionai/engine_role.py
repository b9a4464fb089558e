"""Durable mode's engine role (`python -m fashionai engine`): takes jobs from the Redis stream, runs them on its
engine pool (fashionai/pool.py), writes the result where every API process can serve it, and finishes the job.

Run as many as you like, on as many machines: the stream's consumer group hands each job to one of them. While it
works on a job an engine renews its lease every lease/3 seconds; if it stops (SIGKILL, lost machine) another engine
takes the job over once the lease has run out (XAUTOCLAIM) and runs it again. Finishing a job and acknowledging its
entry are one Redis script, and finishing is guarded on the job's state, so a job is finished exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
import uuid
from typing import Any

from fashionai.config import Settings
from fashionai.durable import make_outputs
from fashionai.jobs import COMPLETED, FAILED, Job
from fashionai.outputs import S3Outputs
from fashionai.pool import EnginePool
from fashionai.redis_jobs import RedisJobs, consumer_name
from fashionai.service import COST_PER_JOB

log = logging.getLogger("fashionai.engine")

READ_BLOCK_SECONDS = 1.0  # an idle engine asks for a new job (and for lapsed leases) this often
DRAIN_SECONDS = 30.0  # on SIGTERM, how long running jobs may take to finish; the rest are re-run elsewhere
READY_LINE = "fashionai engine ready"


class EngineRole:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = RedisJobs(
            settings.redis_url, settings.redis_prefix, retention=settings.retention, output_dir=settings.output_dir
        )
        self.outputs = make_outputs(settings)
        self.pool = EnginePool(settings.workers, settings.engine, settings.safety_policy())
        self.consumer = consumer_name()
        self.free = asyncio.Semaphore(settings.workers)  # engine workers not busy
        self.running: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.jobs.setup({})
        await self.pool.start()
        background = [asyncio.create_task(self._report()), asyncio.create_task(self._sweep_outputs())]
        log.info("%s: %s, engine=%s workers=%d lease=%gs", READY_LINE, self.consumer, self.settings.engine,
                 self.settings.workers, self.settings.lease)
        try:
            await self._consume()
        finally:
            if self.running:  # let the jobs in hand finish; whatever does not is re-run by another engine
                await asyncio.wait(self.running, timeout=DRAIN_SECONDS)
            for task in [*background, *self.running]:
                task.cancel()
            await asyncio.gather(*background, *self.running, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.jobs.forget_engine(self.consumer)
            await self.jobs.close()
            await asyncio.to_thread(self.pool.shutdown)
            if isinstance(self.outputs, S3Outputs):
                self.outputs.remove_scratch()

    async def _consume(self) -> None:
        while not self.stopping.is_set():
            await self.free.acquire()
            try:
                entry = await self.jobs.next_entry(self.consumer, lease=self.settings.lease, block=READ_BLOCK_SECONDS)
            except Exception:
                self.free.release()
                log.exception("could not read the job stream; retrying")
                await asyncio.sleep(1.0)
                continue
            if entry is None:
                self.free.release()
                continue
            task = asyncio.create_task(self._run(*entry))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _run(self, entry_id: str, job_id: str) -> None:
        holding_worker = True
        renewing = asyncio.create_task(self._renew(entry_id))
        try:
            taken = await self.jobs.start(job_id, entry_id, cost=COST_PER_JOB)
            if taken is None:
                return  # already finished, or past its start deadline (failed by the start script)
            job, data = taken
            attempt = self.outputs.attempt_path(job.output_name, uuid.uuid4().hex[:8])
            started = time.monotonic()
            outcome = await self._engine(job, data, attempt)
            self.free.release()
            holding_worker = False
            if outcome.get("code") == "engine_crashed":
                # The engine worker died on it (killed, out of memory; the pool is replaced): the entry is left
                # unacknowledged, so the job runs again after the lease, here or elsewhere, at most MAX_RUNS times.
                log.error("job %s: engine worker died; it runs again once its lease runs out", job.id)
                await self.outputs.discard(attempt)
                return
            # --delay is simulated after the engine has released its worker, like the in-memory service does.
            remaining = self.settings.delay - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            await self._finish(job, outcome, entry_id, attempt)
        except Exception:
            log.exception("job %s: not finished here; it is re-run once its lease runs out", job_id)
        finally:
            renewing.cancel()
            if holding_worker:
                self.free.release()

    async def _engine(self, job: Job, data: bytes | None, attempt: str) -> dict[str, Any]:
        if job.simulate_failure:
            return {"ok": False, "error": "Simulated failure (--fail-rate)", "code": "simulated_failure"}
        if data is None:
            return {"ok": False, "error": "The request's input was lost.", "code": "engine_error"}
        return await self.pool.run(
            data, job.prompt, job.clothing, attempt, self.settings.max_image_pixels, self.settings.engine_hold
        )

    async def _finish(self, job: Job, outcome: dict[str, Any], entry_id: str, attempt: str) -> None:
        if outcome.get("ok"):
            await self.outputs.publish(job.output_name, attempt)
            inference_time = float(outcome["inference_time"])
            moved = await self.jobs.finish(
                job, COMPLETED, inference_time=inference_time, meta=dict(outcome.get("meta") or {}),
                entry_id=entry_id,
            )
            if moved:
                await self.jobs.record_time(inference_time)
            elif job.state != COMPLETED:  # cancelled while the engine worked: the result is dropped
                await self.outputs.delete([job.output_name])
            return
        await self.outputs.discard(attempt)
        code = str(outcome.get("code") or "engine_error")
        error = str(outcome.get("error") or "The edit failed.")
        if await self.jobs.finish(job, FAILED, error=error, code=code, cost=COST_PER_JOB, entry_id=entry_id):
            log.info("request %s failed: %s", job.id, error)

    async def _renew(self, entry_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            with contextlib.suppress(Exception):  # one missed renewal is fine: the lease is three of them
                await self.jobs.renew(self.consumer, entry_id)

    async def _report(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.jobs.report_engine(self.consumer, self.settings.workers)
            await asyncio.sleep(max(0.5, self.settings.lease / 3))

    async def _sweep_outputs(self) -> None:
        """Deletes result files whose job has expired (any engine may: deleting twice is harmless)."""
        interval = min(max(self.settings.retention / 4, 0.05), 30.0) * (1 + random.random() / 4)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                names = await self.jobs.expired_outputs()
                await self.outputs.delete(names)
                await self.jobs.forget_outputs(names)


def run(settings: Settings) -> None:
    asyncio.run(EngineRole(settings).run())
