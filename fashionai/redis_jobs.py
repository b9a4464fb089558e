"""Durable mode's shared state in Redis: job records, the job queue (a Redis stream with a consumer group),
idempotency keys, credits, in-flight counts and rate windows. Every API and engine process of one deployment talks
to the same Redis (keys under `Settings.redis_prefix`) and keeps nothing another process needs.

Keys (P = the prefix):
- `P job:{id}` hash: the job record. No expiry while it runs; on finish it expires at the retention window, with
  its `P out:{output name}` -> id and its idempotency key, and leaves `P gone:{id}` (a tombstone: 410, not 404).
- `P input:{id}`: the compressed input bytes, deleted when the job finishes.
- `P stream` with group `engines`: one entry per accepted job. An engine process reads it (XREADGROUP), renews
  its hold while it works (XCLAIM of its own entry: the lease) and acknowledges it in the same script that finishes
  the job. An entry whose holder stopped renewing for `lease` seconds (a SIGKILLed engine, a lost machine) is taken
  over by the next engine that asks (XAUTOCLAIM) and the job runs again.
- `P queued` sorted set (seq -> id): the jobs not yet started, for queue_position; `P queued_bytes` their inputs.
- `P idem:{key hash}:{Idempotency-Key}`: `pending <fingerprint>` while the first submit fetches its image (SET NX,
  short TTL), then `job <fingerprint> <id>`.
- `P credits:{key hash}` (absent: unlimited), `P inflight:{key hash}`, `P rate:{key hash}:{minute}`: integers.
- `P expiring` sorted set (expires_at -> output name): result files still to delete once their job expired.
- `P webhooks` hash (key hash -> endpoint JSON); `P finished` stream with group `announcers`: a finished job whose
  key has an endpoint, added by the finishing script itself, so no webhook is lost with the engine that finished
  it; an API process delivers it. `P deliveries:{id}`: a job's delivery log (JSON), expiring with the job.

Every state change of a job goes through one Lua function (`finish`, guarded on the current state), so a cancel and
an engine's completion, or two engines that both ran a job after a lease ran out, can't both move it. The scripts
build key names from the prefix, so this needs one Redis (with replicas if you like), not Redis Cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from fashionai.jobs import FAILED, PROCESSING, QUEUED, Job

GROUP = "engines"
# The finished stream: one entry per finished job whose key has a webhook endpoint, read by the API processes
# (group `announcers`), which deliver the webhook; same lease rules as the job stream.
ANNOUNCERS = "announcers"
TOMBSTONE_SECONDS = 86400.0  # an expired id answers 410 (rather than 404) this long after its retention ended
PENDING_SECONDS = 120.0  # a first submit still fetching its image holds its Idempotency-Key at most this long
MAX_RUNS = 3  # engine runs of one job (re-runs after a lease ran out or an engine worker died) before it fails
_WALL_FIELDS = ("created", "finished", "expires_at", "started", "start_by")

# The one transition function: QUEUED/PROCESSING -> COMPLETED/FAILED, with everything that goes with it. Returns
# 'moved', or the state that stopped it. ARGV of the callers start with: prefix, id, state, error, code, now,
# retention ms, cost, inference_time, meta, tombstone ms.
_FINISH = """
local function finish(P, id, state, err, code, now, retention_ms, cost, itime, meta, tombstone_ms)
  local jk = P .. 'job:' .. id
  local cur = redis.call('HGET', jk, 'state')
  if cur ~= 'QUEUED' and cur ~= 'PROCESSING' then return cur or '' end
  local f = redis.call('HMGET', jk, 'kh', 'idem', 'output_name', 'api_key')
  if cur == 'QUEUED' then
    redis.call('ZREM', P .. 'queued', id)
    redis.call('DECRBY', P .. 'queued_bytes', redis.call('STRLEN', P .. 'input:' .. id))
  end
  redis.call('DEL', P .. 'input:' .. id)
  if redis.call('DECR', P .. 'inflight:' .. f[1]) <= 0 then redis.call('DEL', P .. 'inflight:' .. f[1]) end
  if state == 'FAILED' and redis.call('EXISTS', P .. 'credits:' .. f[1]) == 1 then
    redis.call('INCRBY', P .. 'credits:' .. f[1], cost)
  end
  local expires = tonumber(now) + tonumber(retention_ms) / 1000
  redis.call('HSET', jk, 'state', state, 'error', err, 'error_code', code, 'finished', now,
             'expires_at', string.format('%.3f', expires), 'inference_time', itime, 'meta', meta)
  redis.call('PEXPIRE', jk, retention_ms)
  redis.call('PEXPIRE', P .. 'out:' .. f[3], retention_ms)
  if f[2] ~= '' then redis.call('PEXPIRE', f[2], retention_ms) end
  redis.call('SET', P .. 'gone:' .. id, f[4], 'PX', tonumber(retention_ms) + tonumber(tombstone_ms))
  redis.call('ZADD', P .. 'expiring', expires, f[3])
  if redis.call('HEXISTS', P .. 'webhooks', f[1]) == 1 then redis.call('XADD', P .. 'finished', '*', 'job', id) end
  return 'moved'
end
"""

FINISH_SCRIPT = _FINISH + """
return finish(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
"""

# An engine's end of a job: finish it and acknowledge (and drop) its stream entry, atomically, so a job is never
# finished but still handed to another engine, nor acknowledged but unfinished. ARGV[12]: the entry id.
COMPLETE_SCRIPT = _FINISH + """
local moved = finish(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10],
                     ARGV[11])
redis.call('XACK', ARGV[1] .. 'stream', 'engines', ARGV[12])
redis.call('XDEL', ARGV[1] .. 'stream', ARGV[12])
return moved
"""

# Accept a job: every limit checked and every counter moved in one step, so a refused submit leaves nothing and an
# API process killed mid-submit leaves either a whole job or none. ARGV: prefix, id, key hash, cost, in-flight
# limit, max queue, max queue bytes, input bytes, idempotency key name ('' for none), its value, then the job's
# fields as name, value pairs. Returns {'ok', remaining credits ('' when unlimited), seq} or {refusal}.
SUBMIT_SCRIPT = """
local P, id, kh = ARGV[1], ARGV[2], ARGV[3]
local credits = redis.call('GET', P .. 'credits:' .. kh)
if credits and tonumber(credits) < tonumber(ARGV[4]) then return {'credits'} end
local limit = tonumber(ARGV[5])
if limit > 0 and tonumber(redis.call('GET', P .. 'inflight:' .. kh) or '0') >= limit then return {'inflight'} end
local nbytes = string.len(ARGV[8])
if redis.call('ZCARD', P .. 'queued') >= tonumber(ARGV[6])
   or tonumber(redis.call('GET', P .. 'queued_bytes') or '0') + nbytes > tonumber(ARGV[7]) then
  return {'queue'}
end
local remaining = ''
if credits then remaining = tostring(redis.call('DECRBY', P .. 'credits:' .. kh, ARGV[4])) end
redis.call('INCR', P .. 'inflight:' .. kh)
redis.call('INCRBY', P .. 'queued_bytes', nbytes)
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', P .. 'job:' .. id, 'seq', seq, unpack(ARGV, 11))
redis.call('SET', P .. 'input:' .. id, ARGV[8])
redis.call('ZADD', P .. 'queued', seq, id)
redis.call('SET', P .. 'out:' .. redis.call('HGET', P .. 'job:' .. id, 'output_name'), id)
if ARGV[9] ~= '' then redis.call('SET', ARGV[9], ARGV[10]) end
redis.call('XADD', P .. 'stream', '*', 'job', id)
return {'ok', remaining, seq}
"""

# An engine takes a job: QUEUED -> PROCESSING (a PROCESSING job is one whose engine's lease ran out: it runs
# again). Returns the record and the input, or nothing when the job has already finished (cancelled, or finished
# by an engine killed before it could acknowledge), has just missed its start deadline, or has been taken more than
# MAX_RUNS times (a job that kills its engine would otherwise go round them all forever): then it is failed here.
# ARGV: prefix, id, now, retention ms, cost, tombstone ms, entry id, max runs.
START_SCRIPT = _FINISH + """
local P, id, now = ARGV[1], ARGV[2], ARGV[3]
local jk = P .. 'job:' .. id
local state = redis.call('HGET', jk, 'state')
local taken = state == 'QUEUED' or state == 'PROCESSING'
if state == 'QUEUED' then
  local start_by = redis.call('HGET', jk, 'start_by')
  if start_by and start_by ~= '' and tonumber(start_by) <= tonumber(now) then
    finish(P, id, 'FAILED', 'Not started before its start deadline.', 'start_deadline_exceeded', now, ARGV[4],
           ARGV[5], '', '{}', ARGV[6])
    taken = false
  end
end
if taken and redis.call('HINCRBY', jk, 'runs', 1) > tonumber(ARGV[8]) then
  finish(P, id, 'FAILED', 'The engine stopped unexpectedly every time it ran this request.', 'engine_crashed', now,
         ARGV[4], ARGV[5], '', '{}', ARGV[6])
  taken = false
end
if not taken then
  redis.call('XACK', P .. 'stream', 'engines', ARGV[7])
  redis.call('XDEL', P .. 'stream', ARGV[7])
  return false
end
if state == 'QUEUED' then
  redis.call('ZREM', P .. 'queued', id)
  redis.call('DECRBY', P .. 'queued_bytes', redis.call('STRLEN', P .. 'input:' .. id))
  redis.call('HSET', jk, 'state', 'PROCESSING', 'started', now)
end
redis.call('INCR', P .. 'engine_runs')
return {redis.call('HGETALL', jk), redis.call('GET', P .. 'input:' .. id) or false}
"""


# Compare and delete: only the submit that set a pending mark removes it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def key_hash(api_key: str) -> str:
    """API keys never appear in Redis key names (MONITOR, SCAN, slow logs): a short hash does."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _wall_to_monotonic(raw: str, *, now_wall: float, now_mono: float) -> float | None:
    # Records hold wall-clock seconds (they cross machines); a Job holds monotonic ones (this process's clock).
    return None if raw == "" else now_mono - (now_wall - float(raw))


def job_from_record(record: dict[str, str], output_dir: str) -> Job:
    now_wall, now_mono = time.time(), time.monotonic()
    times = {name: _wall_to_monotonic(record.get(name, ""), now_wall=now_wall, now_mono=now_mono)
             for name in _WALL_FIELDS}
    idem_key, idem_name = record.get("idem_api_key", ""), record.get("idem_name", "")
    inference = record.get("inference_time", "")
    return Job(
        id=record["id"],
        prompt=record.get("prompt", ""),
        clothing=record.get("clothing", ""),
        api_key=record.get("api_key", ""),
        output_name=record.get("output_name", ""),
        output_path=os.path.join(output_dir, record.get("output_name", "")) if output_dir else "",
        state=record.get("state", QUEUED),
        created=times["created"] or now_mono,
        finished=times["finished"],
        expires_at=times["expires_at"],
        started=times["started"],
        start_by=times["start_by"],
        error=record.get("error") or None,
        error_code=record.get("error_code") or None,
        seq=int(record.get("seq") or 0),
        base_url=record.get("base_url", ""),
        inference_time=float(inference) if inference else None,
        meta=json.loads(record.get("meta") or "{}"),
        simulate_failure=record.get("simulate_failure") == "1",
        idempotency=(idem_key, idem_name) if idem_name else None,
        fingerprint=record.get("fingerprint", ""),
    )


def _decode(raw: dict[bytes, bytes] | list[bytes]) -> dict[str, str]:
    if isinstance(raw, list):  # a Lua script's HGETALL: a flat list
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    return {_text(k): _text(v) for k, v in raw.items()}


class RedisJobs:
    """The Redis side of durable mode, shared by the API role (fashionai/durable.py) and the engine role
    (fashionai/engine_role.py)."""

    def __init__(self, url: str, prefix: str, *, retention: float, output_dir: str = "") -> None:
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url)
        self.prefix = prefix
        self.retention = retention
        self.output_dir = output_dir
        self.stream = prefix + "stream"
        self.finished = prefix + "finished"
        self._finish = self.redis.register_script(FINISH_SCRIPT)
        self._complete = self.redis.register_script(COMPLETE_SCRIPT)
        self._submit = self.redis.register_script(SUBMIT_SCRIPT)
        self._start = self.redis.register_script(START_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)

    def k(self, name: str) -> str:
        return self.prefix + name

    async def close(self) -> None:
        await self.redis.aclose()

    async def setup(self, api_keys: dict[str, int | None]) -> None:
        """The stream's consumer group, and each limited key's starting credits (the first process to start sets
        them; later ones, and restarts, keep the balance). An unlimited key has no counter."""
        for stream, group in ((self.stream, GROUP), (self.finished, ANNOUNCERS)):
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        for key, credits in api_keys.items():
            name = self.k("credits:" + key_hash(key))
            if credits is None:
                await self.redis.delete(name)
            else:
                await self.redis.set(name, credits, nx=True)

    # ------------------------------------------------------------------------------------------ the API side

    async def credits(self, api_key: str) -> int | None:
        raw = await self.redis.get(self.k("credits:" + key_hash(api_key)))
        return None if raw is None else int(raw)

    async def inflight(self, api_key: str) -> int:
        return int(await self.redis.get(self.k("inflight:" + key_hash(api_key))) or 0)

    async def count_submit(self, api_key: str) -> tuple[int, float]:
        """This key's submits in the current minute, this one included, and seconds until the minute ends."""
        now = time.time()
        minute = int(now // 60)
        name = self.k(f"rate:{key_hash(api_key)}:{minute}")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 120)
            count, _ = await pipe.execute()
        return int(count), (minute + 1) * 60 - now

    def idempotency_name(self, api_key: str, idempotency_key: str) -> str:
        return self.k(f"idem:{key_hash(api_key)}:{idempotency_key}")

    async def idempotency_claim(self, name: str, fingerprint: str) -> str | None:
        """None: this submit holds the key now (it is the first). Otherwise the key's value: `pending <fp>` or
        `job <fp> <id>`."""
        if await self.redis.set(name, f"pending {fingerprint}", nx=True, px=int(PENDING_SECONDS * 1000)):
            return None
        value = await self.redis.get(name)
        return _text(value) if value is not None else "retry"

    async def idempotency_release(self, name: str, fingerprint: str) -> None:
        """A refused first submit leaves no key behind (only its own pending mark is removed)."""
        await self._release(keys=[name], args=[f"pending {fingerprint}"])

    async def create(
        self, job: Job, data: bytes, *, cost: int, inflight_limit: int, max_queue: int, max_queue_bytes: int,
        idempotency_name: str = "",
    ) -> tuple[str, int | None]:
        """Accept the job: ('ok', remaining credits or None) or (refusal, None): 'credits', 'inflight', 'queue'."""
        now_wall, now_mono = time.time(), time.monotonic()
        fields: dict[str, str] = {
            "id": job.id,
            "api_key": job.api_key,
            "kh": key_hash(job.api_key),
            "prompt": job.prompt,
            "clothing": job.clothing,
            "output_name": job.output_name,
            "state": QUEUED,
            "created": f"{now_wall:.3f}",
            "start_by": "" if job.start_by is None else f"{now_wall + (job.start_by - now_mono):.3f}",
            "base_url": job.base_url,
            "simulate_failure": "1" if job.simulate_failure else "0",
            "idem": idempotency_name,
            "idem_api_key": job.idempotency[0] if job.idempotency else "",
            "idem_name": job.idempotency[1] if job.idempotency else "",
            "fingerprint": job.fingerprint,
        }
        pairs = [item for pair in fields.items() for item in pair]
        answer = await self._submit(args=[
            self.prefix, job.id, key_hash(job.api_key), cost, inflight_limit, max_queue, max_queue_bytes, data,
            idempotency_name, f"job {job.fingerprint} {job.id}" if idempotency_name else "", *pairs,
        ])
        verdict = _text(answer[0])
        if verdict != "ok":
            return verdict, None
        remaining = _text(answer[1])
        job.seq = int(answer[2])
        return "ok", int(remaining) if remaining else None

    async def get(self, job_id: str) -> Job | None:
        raw: Any = await self.redis.hgetall(self.k("job:" + job_id))
        record = _decode(raw)
        if "id" not in record:
            return None
        job = job_from_record(record, self.output_dir)
        return None if job.expires_at is not None and job.expires_at <= time.monotonic() else job

    async def get_by_output(self, name: str) -> Job | None:
        job_id = await self.redis.get(self.k("out:" + name))
        return None if job_id is None else await self.get(_text(job_id))

    async def tombstone(self, job_id: str) -> str | None:
        """The API key of a job past its retention, if we still remember it."""
        raw = await self.redis.get(self.k("gone:" + job_id))
        return None if raw is None else _text(raw)

    async def queue_position(self, job_id: str) -> int | None:
        rank: Any = await self.redis.zrank(self.k("queued"), job_id)
        return None if rank is None else int(rank)

    async def finish(self, job: Job, state: str, *, error: str = "", code: str = "", cost: int = 0,
                     inference_time: float | None = None, meta: dict[str, Any] | None = None,
                     entry_id: str | None = None) -> bool:
        """Move the job to `state` if it is still QUEUED or PROCESSING (True), and update `job` to match; with
        `entry_id` (an engine) also acknowledge its stream entry."""
        args: list[Any] = [
            self.prefix, job.id, state, error, code if state == FAILED else "", f"{time.time():.3f}",
            max(1, int(self.retention * 1000)), cost, "" if inference_time is None else f"{inference_time:.6f}",
            json.dumps(meta or {}), int(TOMBSTONE_SECONDS * 1000),
        ]
        if entry_id is None:
            moved = await self._finish(args=args)
        else:
            moved = await self._complete(args=[*args, entry_id])
        fresh = await self.get(job.id)
        if fresh is not None:
            job.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "done"})
        return _text(moved) == "moved"

    async def stats(self) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.k("queued"))
            pipe.get(self.k("queued_bytes"))
            pipe.get(self.k("engine_runs"))
            pipe.xpending(self.stream, GROUP)
            answers: list[Any] = await pipe.execute()
            queued, queued_bytes, runs, pending = answers
        return {"queued": int(queued), "queued_bytes": int(queued_bytes or 0), "engine_runs": int(runs or 0),
                "taken": int(pending["pending"]) if isinstance(pending, dict) else 0}

    async def recent_times(self) -> list[float]:
        return [float(v) for v in await self.redis.lrange(self.k("recent_times"), 0, -1)]

    async def engine_slots(self, *, fresh_within: float) -> int:
        """Engine worker slots of the engine processes that reported in the last `fresh_within` seconds."""
        now = time.time()
        slots = 0
        for raw in (await self.redis.hgetall(self.k("engines"))).values():
            count, _sep, seen = _text(raw).partition(" ")
            if now - float(seen) <= fresh_within:
                slots += int(count)
        return slots

    # ------------------------------------------------------------------------------------------ the engine side

    async def report_engine(self, consumer: str, slots: int) -> None:
        await self.redis.hset(self.k("engines"), consumer, f"{slots} {time.time():.3f}")

    async def forget_engine(self, consumer: str) -> None:
        # Not XGROUP DELCONSUMER: that would drop the entries it still holds, and their jobs with them.
        await self.redis.hdel(self.k("engines"), consumer)

    def _queue(self, finished: bool) -> tuple[str, str]:
        return (self.finished, ANNOUNCERS) if finished else (self.stream, GROUP)

    async def next_entry(
        self, consumer: str, *, lease: float, block: float, finished: bool = False
    ) -> tuple[str, str] | None:
        """(entry id, job id): first an entry whose holder stopped renewing its lease, else a new one. From the job
        stream (engines), or with `finished` from the finished stream (API processes, for webhooks)."""
        stream, group = self._queue(finished)
        claimed: Any = await self.redis.xautoclaim(
            stream, group, consumer, min_idle_time=int(lease * 1000), start_id="0-0", count=1
        )
        entries = claimed[1] if claimed else []
        if not entries:
            read: Any = await self.redis.xreadgroup(group, consumer, {stream: ">"}, count=1, block=int(block * 1000))
            entries = read[0][1] if read else []
        for entry_id, fields in entries:
            if fields:  # an entry deleted meanwhile comes back with no fields
                return _text(entry_id), _text(fields.get(b"job"))
            await self.redis.xack(stream, group, entry_id)
        return None

    async def renew(self, consumer: str, entry_id: str, *, finished: bool = False) -> None:
        """Keep the lease: an entry this process still works on is not idle."""
        stream, group = self._queue(finished)
        await self.redis.xclaim(stream, group, consumer, 0, [entry_id], justid=True)

    async def drop_entry(self, entry_id: str, *, finished: bool = False) -> None:
        stream, group = self._queue(finished)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, group, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    # ------------------------------------------------------------------------------------------ webhooks

    async def webhook_endpoint(self, api_key: str) -> dict[str, str] | None:
        raw = await self.redis.hget(self.k("webhooks"), key_hash(api_key))
        return None if raw is None else dict(json.loads(raw))

    async def set_webhook_endpoint(self, api_key: str, endpoint: dict[str, str] | None) -> None:
        if endpoint is None:
            await self.redis.hdel(self.k("webhooks"), key_hash(api_key))
        else:
            await self.redis.hset(self.k("webhooks"), key_hash(api_key), json.dumps(endpoint))

    async def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.get(self.k("deliveries:" + job_id))
        return [] if raw is None else list(json.loads(raw))

    async def save_deliveries(self, job_id: str, log: list[dict[str, Any]], *, keep: float) -> None:
        await self.redis.set(self.k("deliveries:" + job_id), json.dumps(log), px=max(1000, int(keep * 1000)))

    async def start(self, job_id: str, entry_id: str, *, cost: int) -> tuple[Job, bytes | None] | None:
        """Take the job for an engine run: (job, input bytes), or None (its entry is acknowledged: nothing to do)."""
        answer = await self._start(args=[
            self.prefix, job_id, f"{time.time():.3f}", max(1, int(self.retention * 1000)), cost,
            int(TOMBSTONE_SECONDS * 1000), entry_id, MAX_RUNS,
        ])
        if not answer:
            return None
        record, data = answer
        return job_from_record(_decode(record), self.output_dir), data if data else None

    async def record_time(self, seconds: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(self.k("recent_times"), f"{seconds:.4f}")
            pipe.ltrim(self.k("recent_times"), 0, 49)
            await pipe.execute()

    async def expired_outputs(self, limit: int = 200) -> list[str]:
        names: Any = await self.redis.zrangebyscore(self.k("expiring"), "-inf", time.time(), start=0, num=limit)
        return [_text(name) for name in names]

    async def forget_outputs(self, names: list[str]) -> None:
        if names:
            await self.redis.zrem(self.k("expiring"), *names)


__all__ = ["PROCESSING", "PENDING_SECONDS", "RedisJobs", "consumer_name", "key_hash"]
