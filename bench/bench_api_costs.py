"""What one API request costs, in one uvicorn process, split between the API and PostgreSQL.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_api_costs.py

No Celery worker runs, so the edits stay running and every `Prefer: wait` is held. Phases: 10 creates one at a
time, PROBE_CREATES (40) at once, plain GETs from PROBE_CLIENTS (20) clients for 8 s, and the same while
PROBE_WAITERS (200) requests wait. Each prints the client latency, the uvicorn process' CPU per request, the
PostgreSQL server's CPU per request (the postmaster's children, running and exited), the new PostgreSQL
connections per request (pg_stat_database.sessions) and the process' thread count. The client runs on the same
cores: latencies are its view, the CPU figures are the server's own.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")
os.environ["STARTER_CREDITS"] = "0"
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"  # the counters query from the event loop
os.environ.setdefault("LOG_LEVEL", "WARNING")
import django  # noqa: E402

django.setup()
import httpx  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from devservices.net import free_port, port_answers, wait_until  # noqa: E402
from devservices.samples import astronaut_png  # noqa: E402
from editor.services.api_keys import api_key_create  # noqa: E402
from editor.services.credits import credits_grant  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int, children: bool = False) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    t = int(f[11]) + int(f[12])
    if children:
        t += int(f[13]) + int(f[14])
    return t / TICK


def pg_cpu() -> float:
    with connection.cursor() as c:
        c.execute("select pg_backend_pid()")
        me = c.fetchone()[0]
    ppid = int(Path(f"/proc/{me}/stat").read_text().rsplit(")", 1)[1].split()[1])
    total = cpu_of(ppid, children=True)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                f = (p / "stat").read_text().rsplit(")", 1)[1].split()
                if int(f[1]) == ppid:
                    total += (int(f[11]) + int(f[12])) / TICK
            except OSError:
                pass
    return total


def pg_sessions() -> int:
    with connection.cursor() as c:
        c.execute("select sessions from pg_stat_database where datname = current_database()")
        return int(c.fetchone()[0])


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def pct(v: list[float], q: float) -> float:
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


async def main() -> None:
    call_command("migrate", verbosity=0)
    clients = int(os.environ.get("PROBE_CLIENTS", "20"))
    waiters = int(os.environ.get("PROBE_WAITERS", "200"))
    creates = int(os.environ.get("PROBE_CREATES", "40"))
    stamp = time.time_ns()
    keys = []
    for n in range(max(clients, waiters, creates)):
        user = get_user_model().objects.create_user(username=f"probe-{stamp}-{n}", password="x")
        credits_grant(user=user, amount=20, reason="probe")
        keys.append(api_key_create(user=user, name="p", scopes=["edits:read", "edits:write"]).plaintext)
    connection.close()
    port = free_port()
    env = {**os.environ, "API_RATE_LIMIT_PER_MINUTE": "100000", "MAX_JOBS_IN_FLIGHT_PER_USER": "50",
           "CELERY_TASK_ALWAYS_EAGER": "false"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "fashionsite.asgi:application", "--port", str(port),
                            "--no-access-log", "--workers", "1"], env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    png = astronaut_png()
    try:
        wait_until(lambda: port_answers(port), timeout=60, what="uvicorn")
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
            # one edit per key (no Celery runs: they stay unfinished)
            async def create(key: str) -> tuple[float, str]:
                t0 = time.perf_counter()
                r = await http.post("/api/v1/edits", headers={"Authorization": f"Bearer {key}"},
                                    data={"prompt": "a person wearing a red hoodie", "clothing": "topwear"},
                                    files={"image": ("p.png", png, "image/png")})
                assert r.status_code == 201, r.text
                return time.perf_counter() - t0, r.json()["id"]

            await create(keys[0])  # warm
            for label, n in (("creates, sequential x10", 10),):
                c0, p0, s0 = cpu_of(api.pid), pg_cpu(), pg_sessions()
                lat = [(await create(keys[i % len(keys)]))[0] for i in range(n)]
                c1, p1, s1 = cpu_of(api.pid), pg_cpu(), pg_sessions()
                print(f"{label}: p50 {pct(lat,.5)*1e3:.1f} ms; uvicorn CPU {(c1-c0)/n*1e3:.1f} ms/req; "
                      f"pg CPU {(p1-p0)/n*1e3:.1f} ms/req; pg sessions {(s1-s0)/n:.1f}/req")
            c0, p0, s0 = cpu_of(api.pid), pg_cpu(), pg_sessions()
            t0 = time.perf_counter()
            made = await asyncio.gather(*(create(keys[i]) for i in range(creates)))
            wall = time.perf_counter() - t0
            c1, p1, s1 = cpu_of(api.pid), pg_cpu(), pg_sessions()
            lat = [m[0] for m in made]
            print(f"creates, {creates} at once: wall {wall:.2f} s, p50 {pct(lat,.5)*1e3:.0f} "
                  f"p95 {pct(lat,.95)*1e3:.0f} ms; "
                  f"uvicorn CPU {(c1-c0)/creates*1e3:.1f} ms/req; pg CPU {(p1-p0)/creates*1e3:.1f} ms/req; "
                  f"pg sessions {(s1-s0)/creates:.1f}/req")
            ids = {keys[i]: made[i][1] for i in range(creates)}

            async def gets(seconds: float, nclients: int) -> list[float]:
                out: list[float] = []
                end = time.perf_counter() + seconds

                async def one(i: int) -> None:
                    k = keys[i % creates]
                    while time.perf_counter() < end:
                        t = time.perf_counter()
                        r = await http.get(f"/api/v1/edits/{ids[k]}", headers={"Authorization": f"Bearer {k}"})
                        assert r.status_code == 200, r.text
                        out.append(time.perf_counter() - t)
                        await asyncio.sleep(0.05)
                await asyncio.gather(*(one(i) for i in range(nclients)))
                return out

            async def measured(label: str, coro_factory) -> None:
                c0, p0, s0 = cpu_of(api.pid), pg_cpu(), pg_sessions()
                lat = await coro_factory()
                c1, p1, s1 = cpu_of(api.pid), pg_cpu(), pg_sessions()
                n = len(lat)
                print(f"{label}: n {n} ({n/8:.0f}/s), p50 {pct(lat,.5)*1e3:.1f} p95 {pct(lat,.95)*1e3:.1f} ms; "
                      f"uvicorn CPU {(c1-c0)/n*1e3:.2f} ms/req; pg CPU {(p1-p0)/n*1e3:.2f} ms/req; "
                      f"pg sessions {(s1-s0)/n:.2f}/req; threads {threads(api.pid)}")

            await measured(f"plain GET, {clients} clients", lambda: gets(8, clients))
            # waiters: GET with Prefer: wait=60 on unfinished edits (the first key's edit for keys past `creates`)
            def waiter(k: str) -> tuple[str, str]:
                return (k, ids[k]) if k in ids else (keys[0], ids[keys[0]])

            hold = [asyncio.create_task(http.get(f"/api/v1/edits/{waiter(k)[1]}",
                                                 headers={"Authorization": f"Bearer {waiter(k)[0]}",
                                                          "Prefer": "wait=60"})) for k in keys[:waiters]]
            await asyncio.sleep(4)
            print(f"  with {waiters} waiting: threads {threads(api.pid)}")
            await measured(f"plain GET, {clients} clients, {waiters} waiting", lambda: gets(8, clients))
            for t in hold:
                t.cancel()
    finally:
        api.terminate()
        api.wait(20)


asyncio.run(main())
