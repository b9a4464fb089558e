"""Slow clients through the deployment's proxy: anonymous clients trickle large request bodies while signed-in
users poll their job's status once a second (issue 13 item 1).

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_slow_clients.py          # before / after
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_slow_clients.py --quick  # 50 users, 15 s
    .venv/bin/python bench/bench_slow_clients.py --target http://127.0.0.1:8080 [--host-header studio.example.com]

Without --target it runs the stack twice, side by side, on the same seeded database: real Caddy (Debian's
package) with docker/Caddyfile in front of gunicorn with docker/gunicorn.conf.py (9 x 2 gthread, as in the
container) and production settings over PostgreSQL, Redis and S3 from scripts/testenv.py; once with the
Caddyfile as shipped ("after") and once with its body buffering and read timeouts taken out, Caddy's defaults
("before"). Plain HTTP on loopback: no TLS, so DJANGO_SECURE_SSL_REDIRECT is off.

With --target it runs once against a proxy and site already running (e.g. compose's "proxy" profile): accounts
are seeded through Django into the database and storage that this process' environment names (DATABASE_URL,
the AWS_* variables), which must be the target site's, with its DJANGO_SECRET_KEY (sessions are signed with it).

Each slow client POSTs /accounts/login/ with a 1 MB Content-Length and a made-up CSRF cookie (so Django reads
the body before refusing it), sends one byte a second, and reconnects when the server cuts it off. The users are
bench/bench_load.py's (bench/loadgen.py, a poll a second from a random phase; a request unanswered after
--timeout seconds counts as an error). Prints job-status p50/p95/p99 and errors per run; exits 1 when the run with
the fix (or the target) misses job-status p95 < 50 ms or has errors.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bench_load, loadgen  # noqa: E402
from devservices.caddy import CADDYFILE, Caddy, unfixed_caddyfile  # noqa: E402
from devservices.net import free_port  # noqa: E402

SECRET_KEY = "bench-" + "s1Ow" * 15  # the seeding process and gunicorn must sign sessions alike
DECLARED_BYTES = 1_000_000


@dataclass
class SlowStats:
    connections: int = 0
    cut_off: int = 0  # the server answered or closed while the body was still coming
    bytes_sent: int = 0
    sending_at_end: int = 0


async def slow_client(host: str, port: int, host_header: str, stats: SlowStats) -> None:
    head = (f"POST /accounts/login/ HTTP/1.1\r\nHost: {host_header}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {DECLARED_BYTES}\r\n"
            f"Cookie: csrftoken={'x' * 32}\r\n\r\n").encode()
    while True:  # until cancelled: a sustained attack reconnects at once
        writer = None
        sending = False
        try:
            reader, writer = await asyncio.open_connection(host, port)
            stats.connections += 1
            writer.write(head)
            answer = asyncio.ensure_future(reader.read(4096))
            sending = True
            stats.sending_at_end += 1
            try:
                while True:
                    done, _ = await asyncio.wait({answer}, timeout=1.0)
                    if done:
                        break
                    writer.write(b"a")
                    await writer.drain()
                    stats.bytes_sent += 1
            finally:
                answer.cancel()
        except (OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.1)
        finally:
            if sending:
                stats.sending_at_end -= 1
            if writer is not None:
                writer.close()
        if sending:
            stats.cut_off += 1


async def drive(host: str, port: int, host_header: str, people: list[Any],
                args: argparse.Namespace) -> tuple[loadgen.Stats, SlowStats]:
    slow = SlowStats()
    attackers = [asyncio.create_task(slow_client(host, port, host_header, slow)) for _ in range(args.slow_clients)]
    await asyncio.sleep(2)  # every slow client in place before the first user joins
    try:
        stats = await loadgen.run(host, port, people, spawn_rate=args.spawn_rate, duration=args.duration,
                                  timeout=args.timeout, host_header=host_header)
    finally:
        # Counted before the cancellation below ends them.
        still_sending = slow.sending_at_end
        for task in attackers:
            task.cancel()
        await asyncio.gather(*attackers, return_exceptions=True)
        slow.sending_at_end = still_sending
    return stats, slow


@dataclass
class Run:
    name: str
    rows: list[bench_load.Row]
    failures: str
    slow: SlowStats
    server_errors: int

    def status(self) -> bench_load.Row | None:
        return next((row for row in self.rows if row[0] == "job status poll"), None)

    def errors(self) -> int:
        return sum(row[2] for row in self.rows if row[0] != "all")

    def met(self) -> bool:
        row = self.status()
        return row is not None and row[5] < bench_load.STATUS_TARGET_P95_MS and self.errors() == 0


def run_local(name: str, caddyfile_text: str | None, people: list[Any], env: dict[str, str],
              args: argparse.Namespace) -> Run:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "gunicorn.log"
        gunicorn = bench_load.start_gunicorn(port, args.workers, args.threads, env, log)
        caddy_env = {"CADDY_READ_BODY_TIMEOUT": args.read_body_timeout} if args.read_body_timeout else {}
        caddy = Caddy(f"127.0.0.1:{port}", caddyfile_text=caddyfile_text, env=caddy_env).start()
        try:
            stats, slow = asyncio.run(drive("127.0.0.1", caddy.port, f"127.0.0.1:{caddy.port}", people, args))
        finally:
            caddy.stop()
            bench_load.stop_gunicorn(gunicorn)
        server_errors = [line for line in log.read_text(errors="replace").splitlines()
                         if "ERROR" in line or "Traceback" in line]
    rows, failures = bench_load.lean_rows(stats, args.duration)
    return Run(name, rows, failures, slow, len(server_errors))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", help="base URL of a running proxy + site (default: start both here, twice)")
    parser.add_argument("--host-header", help="Host header for --target (default: the URL's host:port)")
    parser.add_argument("--users", type=int, help="default 200 (--quick: 50)")
    parser.add_argument("--slow-clients", type=int, help="default 100 (--quick: 25)")
    parser.add_argument("--duration", type=int, help="seconds recorded after the users' ramp-up (60; --quick: 15)")
    parser.add_argument("--spawn-rate", type=float, help="users joining per second, not recorded (5; --quick: 10)")
    parser.add_argument("--mix", default="status", help="the users' requests (bench/bench_load.py's tags)")
    parser.add_argument("--timeout", type=float, default=10, help="seconds before an unanswered request is an error")
    parser.add_argument("--workers", type=int, default=9, help="gunicorn processes (the container: 4 x cores + 1)")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn process (the container: 2)")
    parser.add_argument("--read-body-timeout", help="CADDY_READ_BODY_TIMEOUT, e.g. 20s (default: the Caddyfile's)")
    parser.add_argument("--only-fixed", action="store_true", help="skip the run without the fix")
    parser.add_argument("--baseline", action="store_true",
                        help="first a run with the fix and no slow clients: what the machine gives without attack")
    parser.add_argument("--quick", action="store_true", help="50 users and 25 slow clients for 15 s")
    args = parser.parse_args()
    defaults = {"users": 200, "slow_clients": 100, "duration": 60, "spawn_rate": 5.0}
    quick = {"users": 50, "slow_clients": 25, "duration": 15, "spawn_rate": 10.0}
    for name, value in (quick if args.quick else defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "fashionsite.settings_production", "FAI_IGNORE_DOTENV": "1",
        "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY") or SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING", "LOG_FORMAT": "plain", "DATABASE_CONN_MAX_AGE": "60",
        "MAX_JOBS_IN_FLIGHT_PER_USER": "1000000", "PYTHONPATH": str(ROOT),
    })
    if "REDIS_URL" in env and not args.target:
        env["CACHE_URL"] = env["REDIS_URL"].rsplit("/", 1)[0] + "/1"  # as compose runs it
    # The seeding below runs in this process with the base settings, signing sessions with the same key.
    os.environ.update({k: env[k] for k in ("FAI_IGNORE_DOTENV", "DJANGO_SECRET_KEY", "LOG_LEVEL", "LOG_FORMAT")})
    os.environ["DJANGO_DEBUG"] = "false"
    if "CACHE_URL" in env:
        os.environ["CACHE_URL"] = env["CACHE_URL"]
    bench_load.setup_django()
    from django.core.management import call_command
    from django.db import connections

    if not args.target:
        call_command("migrate", verbosity=0)
        call_command("collectstatic", verbosity=0, interactive=False)
    started = time.monotonic()
    accounts = bench_load.seed(args.users)
    print(f"seeded {len(accounts)} accounts in {time.monotonic() - started:.1f} s")
    connections.close_all()
    people = bench_load.lean_people(accounts, bench_load._photo_bytes(), args.mix)

    runs: list[Run] = []
    if args.target:
        url = urlsplit(args.target)
        if url.scheme != "http" or not url.hostname:
            parser.error("--target must be a plain http:// URL (bench/loadgen.py speaks no TLS)")
        port = url.port or 80
        stats, slow = asyncio.run(drive(url.hostname, port, args.host_header or url.netloc, people, args))
        rows, failures = bench_load.lean_rows(stats, args.duration)
        runs.append(Run(f"target {args.target}", rows, failures, slow, 0))
    else:
        if args.baseline:
            attack, args.slow_clients = args.slow_clients, 0
            runs.append(run_local("baseline: docker/Caddyfile, no slow clients", None, people, env, args))
            args.slow_clients = attack
        if not args.only_fixed:
            runs.append(run_local("before: no buffering, no read timeouts", unfixed_caddyfile(CADDYFILE.read_text()),
                                  people, env, args))
        runs.append(run_local("after: docker/Caddyfile", None, people, env, args))

    print(f"\n{args.users} users ({args.mix}), {args.slow_clients} slow clients (1 byte/s, {DECLARED_BYTES:,} bytes "
          f"declared), {args.duration} s recorded after a {args.users / args.spawn_rate:.0f} s ramp; request "
          f"timeout {args.timeout:.0f} s" + ("" if args.target else f"; gunicorn gthread {args.workers} x "
                                             f"{args.threads}, production settings, behind Caddy"))
    print(f"{'run':<42} {'polls':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'slow conns':>10} {'cut off':>8} {'sending':>8} {'srv errs':>8}")
    for run in runs:
        row = run.status()
        polls, p50, p95, p99 = (row[1], row[4], row[5], row[6]) if row else (0, float("nan"), float("nan"),
                                                                            float("nan"))
        print(f"{run.name:<42} {polls:>7} {run.errors():>7} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} "
              f"{run.slow.connections:>10} {run.slow.cut_off:>8} {run.slow.sending_at_end:>8} "
              f"{run.server_errors:>8}")
    fixed = runs[-1]
    verdict = "met" if fixed.met() else "NOT met"
    print(f"\ntarget ({fixed.name}: job status p95 < {bench_load.STATUS_TARGET_P95_MS:.0f} ms, no errors): {verdict}")
    for run in runs:
        if run.failures:
            print(f"{run.name}: {run.failures[:600]}")
    return 0 if fixed.met() else 1


if __name__ == "__main__":
    sys.exit(main())
