"""The developer API under 200 clients that create edits and wait with `Prefer: wait`.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_api.py            # 200 clients
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_api.py --quick    # 20 clients

Needs what scripts/testenv.py provides (PostgreSQL, Redis, S3). Starts the local Fashion AI service (passthrough
engine, --delay D), a real Celery worker (-c 2, with beat) and the API as production runs it
(`docker/entrypoint.sh api`: uvicorn, --api-workers processes). Each client is its own user with its own key. It
posts an edit with `Prefer: wait=60` (again with GET + wait while still running), then reads it --gets times
without waiting.

Prints: the p95 (and median) of the plain GETs, taken while the other clients are still holding their waits;
errors (any non-2xx answer or transport error); how long the create-and-wait took; and, sampled during the run,
the API processes' thread count and the database connections open (what a waiting request does not hold).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservices.celery_worker import CeleryWorker, worker_env  # noqa: E402
from devservices.fashionai import run_fashionai  # noqa: E402
from devservices.net import free_port, port_answers, wait_until  # noqa: E402
from devservices.samples import astronaut_png  # noqa: E402


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")
    os.environ["STARTER_CREDITS"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def make_clients(count: int) -> list[str]:
    from django.contrib.auth import get_user_model

    from editor.services.api_keys import api_key_create
    from editor.services.credits import credits_grant

    keys = []
    stamp = time.time_ns()
    for n in range(count):
        user = get_user_model().objects.create_user(username=f"bench-api-{stamp}-{n}", password="x")
        credits_grant(user=user, amount=5, reason="bench")
        keys.append(api_key_create(user=user, name="bench", scopes=["edits:read", "edits:write"]).plaintext)
    return keys


def threads_of(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                total += int(line.split()[1])
    return total


def api_pids(root_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(root_pid)], capture_output=True, text=True).stdout.split()
    return [root_pid, *map(int, out)]


def db_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            return -1
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        row = cursor.fetchone()
    connection.close()
    return int(row[0]) if row else -1


async def client(base: str, key: str, gets: int, png: bytes, out: dict[str, Any]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
        try:
            began = time.monotonic()
            answer = await http.post("/api/v1/edits", headers={"Prefer": "wait=60"},
                                     data={"prompt": "a person wearing a red hoodie", "clothing": "topwear"},
                                     files={"image": ("photo.png", png, "image/png")})
            if answer.status_code != 201:
                out["errors"].append(f"POST {answer.status_code} {answer.text[:120]}")
                return
            edit = answer.json()
            while edit["state"] in ("created", "submitted"):
                again = await http.get(f"/api/v1/edits/{edit['id']}", headers={"Prefer": "wait=60"})
                if again.status_code != 200:
                    out["errors"].append(f"GET wait {again.status_code}")
                    return
                edit = again.json()
            out["create_wait"].append(time.monotonic() - began)
            out["states"].append(edit["state"])
            for _ in range(gets):
                t0 = time.monotonic()
                plain = await http.get(f"/api/v1/edits/{edit['id']}")
                took = time.monotonic() - t0
                if plain.status_code != 200:
                    out["errors"].append(f"GET {plain.status_code}")
                    continue
                # Only GETs answered while others still wait count: that is the load the target is about.
                (out["gets_under_load"] if out["waiting"] > 0 else out["gets_after"]).append(took)
                out["gets_at"].append((t0 - out["began"], took))
                await asyncio.sleep(0.2)
        except httpx.HTTPError as exc:
            out["errors"].append(f"{type(exc).__name__}: {exc}"[:160])


async def run_clients(base: str, keys: list[str], gets: int) -> dict[str, Any]:
    png = astronaut_png()
    out: dict[str, Any] = {"errors": [], "create_wait": [], "states": [], "gets_under_load": [], "gets_after": [],
                           "waiting": len(keys), "gets_at": [], "began": time.monotonic()}

    async def one(key: str) -> None:
        try:
            await client(base, key, gets, png, out)
        finally:
            out["waiting"] -= 1

    # Readers of `waiting` see it drop as each client finishes its whole run; GETs before that are under load.
    out["waiting"] = len(keys)
    await asyncio.gather(*(one(k) for k in keys))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--gets", type=int, default=10, help="plain GETs per client after its edit is final")
    parser.add_argument("--delay", type=float, default=5.0, help="provider seconds per job")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--quick", action="store_true", help="20 clients")
    args = parser.parse_args()
    if args.quick:
        args.clients = 20
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from devservices.celery_worker import database_url

    call_command("migrate", verbosity=0)
    keys = make_clients(args.clients)
    url = database_url(connection.settings_dict)
    with run_fashionai(engine="passthrough", delay=args.delay, workers=1, retention=3600) as fai:
        env = worker_env(database_url=url, fashionai=fai, extra={
            "FASHION_AI_EXPECTED_SECONDS": str(args.delay), "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_PER_MINUTE": "10000", "MAX_JOBS_IN_FLIGHT_PER_USER": "5"})
        worker = CeleryWorker(env, beat=True, concurrency=2).start()
        port = free_port()
        api = subprocess.Popen([str(ROOT / "docker" / "entrypoint.sh"), "api"], cwd=ROOT, start_new_session=True,
                               env={**env, "API_LISTEN_HOST": "127.0.0.1", "API_LISTEN_PORT": str(port),
                                    "API_WORKERS": str(args.api_workers),
                                    # As production runs it: DEBUG would also keep every SQL query in memory.
                                    "DJANGO_DEBUG": "false",
                                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
        samples: list[tuple[int, int]] = []
        stop = threading.Event()
        try:
            wait_until(lambda: port_answers(port), timeout=60, what="uvicorn")
            time.sleep(2)  # its worker processes import Django

            def sample() -> None:
                while not stop.wait(1.0):
                    try:
                        samples.append((threads_of(api_pids(api.pid)), db_connections()))
                    except (OSError, ValueError):
                        pass

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            began = time.monotonic()
            out = asyncio.run(run_clients(f"http://127.0.0.1:{port}", keys, args.gets))
            wall = time.monotonic() - began
        finally:
            stop.set()
            api.terminate()
            api.wait(20)
            worker.stop()

    under, after = out["gets_under_load"], out["gets_after"]
    every = under + after
    print(f"\nAPI: {args.clients} clients, each POST /api/v1/edits with Prefer: wait=60 then {args.gets} plain GETs; "
          f"provider delay {args.delay:g} s; uvicorn x{args.api_workers}, Celery -c 2; 2 cores, measured on a "
          "loaded machine\n")
    print(f"wall time                          {wall:8.1f} s")
    print(f"edits final                        {len(out['states']):8d}  ({out['states'].count('succeeded')} succeeded)")
    print(f"errors                             {len(out['errors']):8d}  {sorted(set(out['errors']))[:5]}")
    waits = out['create_wait']
    print(f"create + wait, median / p95        {pct(waits, .5):8.2f} / {pct(waits, .95):.2f} s")
    print(f"GET while others wait, n / median / p95   {len(under):5d} / {pct(under, .5) * 1000:6.1f} / "
          f"{pct(under, .95) * 1000:6.1f} ms")
    print(f"GET, all, n / median / p95                {len(every):5d} / {pct(every, .5) * 1000:6.1f} / "
          f"{pct(every, .95) * 1000:6.1f} ms")
    # When the slow GETs happen: the first windows overlap the 200 uploads being decoded.
    windows: dict[int, list[float]] = {}
    for at, took in out["gets_at"]:
        windows.setdefault(int(at // 10) * 10, []).append(took)
    for start in sorted(windows):
        got = windows[start]
        print(f"  GETs begun {start:3d}-{start + 10:3d} s: n {len(got):5d}, median {pct(got, .5) * 1000:6.1f}, "
              f"p95 {pct(got, .95) * 1000:6.1f} ms")
    if samples:
        print(f"API threads (all uvicorn processes), max  {max(s[0] for s in samples):5d}")
        print(f"database connections open, max            {max(s[1] for s in samples):5d}")
    return 0 if not out["errors"] and len(out["states"]) == args.clients else 1


if __name__ == "__main__":
    sys.exit(main())
