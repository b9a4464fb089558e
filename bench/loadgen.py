"""A lean asyncio load generator for bench/bench_load.py: simulated people on keep-alive HTTP/1.1 connections.

Why not locust: on this 2-core machine the load generator shares the cores with the server, and locust's own
per-request cost queues inside its single gevent loop. Against a trivial WSGI app under the same gunicorn, locust
(FastHttpUser, constant pacing, random start offsets) reported p50 7 ms at 20 users, 26 ms at 100 and 34 ms at 200
(p95 49 ms), for a server that answers in under 1 ms: the generator alone would eat the whole 50 ms budget. An
httpx AsyncClient per user was worse (p50 135 ms). This client writes each request with one `write` and parses the
answer with a few `readuntil`/`readexactly` calls; `bench_load.py --calibrate` measures its own floor the same way.

Each person polls once a second (the job page's htmx `every 1s`) from a random phase, because people open their
job pages at unrelated moments; the request they make at each tick is drawn from the mix's weights. A person whose
previous request is still running when the next tick comes skips that tick, as htmx does.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    name: str  # the endpoint's row in the report
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    expect: Callable[[int, dict[str, str]], bool] = lambda status, headers: status == 200


@dataclass
class Stats:
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    recording: bool = False
    # What `probe` (see run) read when recording started and when it ended, e.g. CPU seconds per process group.
    probed: list[dict[str, float]] = field(default_factory=list)

    def record(self, name: str, elapsed_ms: float, failure: str = "") -> None:
        if not self.recording:
            return
        self.latencies_ms.setdefault(name, []).append(elapsed_ms)
        if failure:
            self.failures.setdefault(name, []).append(failure)


class Connection:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, host: str, port: int, host_header: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.host_header = host_header or f"{host}:{port}"  # a proxy routes by it
        self.tls = tls  # HTTPS, with the Host header's name for SNI and the certificate check
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> tuple[int, dict[str, str]]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.tls,
                server_hostname=self.host_header.rsplit(":", 1)[0] if self.tls else None)
        head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {self.host_header}"]
        head += [f"{name}: {value}" for name, value in request.headers.items()]
        if request.body or request.method == "POST":
            head.append(f"Content-Length: {len(request.body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        try:
            status, headers = await self._read_response(self.reader, request.method)
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, dict[str, str]]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)  # the chunk and its CRLF
                if size == 0:
                    break
        elif "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        else:
            await reader.read()  # delimited by the server closing the connection
            headers["connection"] = "close"
        return status, headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def person(
    host: str, port: int, choose: Callable[[random.Random], Request], stats: Stats, stop_at: float, seed: int,
    first: Request | None = None, timeout: float | None = None, host_header: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    rng = random.Random(seed)
    connection = Connection(host, port, host_header, tls)
    await asyncio.sleep(rng.random())  # a random phase within the second
    tick = time.monotonic()
    pending = [first] if first else []
    try:
        while time.monotonic() < stop_at:
            request = pending.pop() if pending else choose(rng)
            started = time.perf_counter()
            failure = ""
            try:
                status, headers = await asyncio.wait_for(connection.send(request), timeout)
                if not request.expect(status, headers):
                    failure = f"HTTP {status}"
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failure = type(exc).__name__  # TimeoutError: no answer within `timeout`
            stats.record(request.name, (time.perf_counter() - started) * 1000, failure)
            tick += 1.0
            now = time.monotonic()
            while tick < now:  # still busy when the next poll was due: that one is skipped, as in the browser
                tick += 1.0
            await asyncio.sleep(tick - now)
    finally:
        connection.close()


async def run(
    host: str, port: int, people: Sequence[tuple[Callable[[random.Random], Request], Request | None]],
    *, spawn_rate: float, duration: float, timeout: float | None = None, host_header: str | None = None,
    tls: ssl.SSLContext | None = None, probe: Callable[[], dict[str, float]] | None = None,
) -> Stats:
    """Start people at `spawn_rate` a second (the warm-up, not recorded), then record `duration` seconds.

    `timeout` (seconds) makes a request that gets no answer in time a failure instead of a wait."""
    stats = Stats()
    ramp = len(people) / spawn_rate
    stop_at = time.monotonic() + ramp + duration
    tasks = []
    for n, (choose, first) in enumerate(people):
        tasks.append(asyncio.create_task(person(host, port, choose, stats, stop_at, seed=n, first=first,
                                                timeout=timeout, host_header=host_header, tls=tls)))
        await asyncio.sleep(1.0 / spawn_rate)
    stats.recording = True
    if probe:
        stats.probed.append(probe())
    await asyncio.gather(*tasks)
    if probe:
        stats.probed.append(probe())
    return stats


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def trivial_app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    """`bench_load.py --calibrate` serves this under the same gunicorn: what is left is the generator's own cost."""
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
