"""Slow clients through the deployment's proxy: anonymous clients trickle large request bodies while signed-in
users poll their job's status once a second (issue 13 item 1).

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_slow_clients.py          # before / after
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_slow_clients.py --quick  # 50 users, 15 s
    .venv/bin/python bench/bench_slow_clients.py --url https://studio.localhost:8443 --ca-file root.crt \
        --resolve studio.localhost:127.0.0.1 [--session ID --job ID] [--errors-only]

Without --url it runs the stack side by side on the same seeded database: real Caddy (Debian's package) with
docker/Caddyfile in front of gunicorn with docker/gunicorn.conf.py (9 x 2 gthread, as in the container) and
production settings over PostgreSQL, Redis and S3 from scripts/testenv.py; once with the Caddyfile as shipped
("after") and once with its body buffering and read timeouts taken out, Caddy's defaults ("before"); with
--baseline first as shipped without slow clients. Plain HTTP on loopback: no TLS, so DJANGO_SECURE_SSL_REDIRECT
is off.

With --url (or --target) it runs once against a proxy and site already running, over http or https (e.g.
compose's "proxy" profile). The users are: accounts seeded through Django when DATABASE_URL is set (it and the
AWS_* variables and DJANGO_SECRET_KEY must be the target site's); else, with --session and --job, one signed-in
session that every user shares, polling that job; else anonymous visitors loading the login page.

Each slow client POSTs /accounts/login/ with a 1 MB Content-Length and a made-up CSRF cookie (so Django reads
the body before refusing it), sends one byte a second, and reconnects when the server cuts it off. The users are
bench/bench_load.py's (bench/loadgen.py, a poll a second from a random phase; a request unanswered after
--timeout seconds counts as an error). Prints job-status p50/p95/p99 and errors per run; exits 1 when the run with
the fix (or the target) misses job-status p95 < 50 ms or has errors (--errors-only: errors alone).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import ssl
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
ANONYMOUS = "login page (anonymous)"


@dataclass
class SlowStats:
    connections: int = 0
    cut_off: int = 0  # the server answered or closed while the body was still coming
    bytes_sent: int = 0
    sending_at_end: int = 0


async def slow_client(host: str, port: int, host_header: str, stats: SlowStats,
                      tls: ssl.SSLContext | None = None) -> None:
    head = (f"POST /accounts/login/ HTTP/1.1\r\nHost: {host_header}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {DECLARED_BYTES}\r\n"
            f"Cookie: csrftoken={'x' * 32}\r\n\r\n").encode()
    while True:  # until cancelled: a sustained attack reconnects at once
        writer = None
        sending = False
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host_header.rsplit(":", 1)[0] if tls else None)
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


async def drive(host: str, port: int, host_header: str, people: list[Any], args: argparse.Namespace,
                tls: ssl.SSLContext | None = None,
                probe: Any = None) -> tuple[loadgen.Stats, SlowStats]:
    slow = SlowStats()
    attackers = [asyncio.create_task(slow_client(host, port, host_header, slow, tls))
                 for _ in range(args.slow_clients)]
    await asyncio.sleep(2)  # every slow client in place before the first user joins
    try:
        stats = await loadgen.run(host, port, people, spawn_rate=args.spawn_rate, duration=args.duration,
                                  timeout=args.timeout, host_header=host_header, tls=tls, probe=probe)
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
        """The job-status row (or, against a target without accounts, the anonymous page's)."""
        return next((row for row in self.rows if row[0] in ("job status poll", ANONYMOUS)), None)

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
        probe = bench_load.CpuProbe(server_root=gunicorn.pid)  # Caddy counts with the services
        try:
            stats, slow = asyncio.run(drive("127.0.0.1", caddy.port, f"127.0.0.1:{caddy.port}", people, args,
                                            probe=probe.read))
        finally:
            caddy.stop()
            bench_load.stop_gunicorn(gunicorn)
        server_errors = [line for line in log.read_text(errors="replace").splitlines()
                         if "ERROR" in line or "Traceback" in line]
    rows, failures = bench_load.lean_rows(stats, args.duration)
    print(f"{name}: " + bench_load.CpuProbe.summary(stats.probed, sum(row[1] for row in rows if row[0] != "all"))
          + " (services include Caddy)")
    return Run(name, rows, failures, slow, len(server_errors))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", "--url", dest="target",
                        help="base URL (http or https) of a running proxy + site (default: start both here)")
    parser.add_argument("--host-header", help="Host header for --target (default: the URL's host:port)")
    parser.add_argument("--resolve", help="NAME:ADDRESS: connect to ADDRESS for the URL's host NAME (as curl)")
    parser.add_argument("--ca-file", help="CA certificate(s) to check an https --target with")
    parser.add_argument("--session", help="--target without DATABASE_URL: a signed-in session id all users share")
    parser.add_argument("--job", help="with --session: the id of one of that user's edits, which everyone polls")
    parser.add_argument("--errors-only", action="store_true",
                        help="exit 1 only on errors, not on a missed p95 (a loaded or emulated machine)")
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

    runs: list[Run] = []
    if args.target:
        url = urlsplit(args.target)
        if url.scheme not in ("http", "https") or not url.hostname:
            parser.error("--target must be an http:// or https:// URL")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = url.hostname
        if args.resolve:
            name, _, address = args.resolve.partition(":")
            if name != url.hostname or not address:
                parser.error("--resolve must be the URL's host name, a colon and an address")
        tls = ssl.create_default_context(cafile=args.ca_file) if url.scheme == "https" else None
        people = target_people(args, env)
        stats, slow = asyncio.run(drive(address, port, args.host_header or url.netloc, people, args, tls))
        rows, failures = bench_load.lean_rows(stats, args.duration)
        if not rows:  # the anonymous page: lean_rows knows only the signed-in endpoints
            rows, failures = anonymous_rows(stats, args.duration)
        runs.append(Run(f"target {args.target}", rows, failures, slow, 0))
    else:
        people = seeded_people(args, env, migrate=True)
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
    if args.errors_only:
        return 0 if fixed.errors() == 0 else 1
    return 0 if fixed.met() else 1


def seeded_people(args: argparse.Namespace, env: dict[str, str], *, migrate: bool) -> list[Any]:
    """Accounts seeded through Django into the database and storage the environment names (bench_load's)."""
    # The seeding runs in this process with the base settings, signing sessions with the server's key.
    os.environ.update({k: env[k] for k in ("FAI_IGNORE_DOTENV", "DJANGO_SECRET_KEY", "LOG_LEVEL", "LOG_FORMAT")})
    os.environ["DJANGO_DEBUG"] = "false"
    if "CACHE_URL" in env:
        os.environ["CACHE_URL"] = env["CACHE_URL"]
    bench_load.setup_django()
    from django.core.management import call_command
    from django.db import connections

    if migrate:
        call_command("migrate", verbosity=0)
        call_command("collectstatic", verbosity=0, interactive=False)
    started = time.monotonic()
    accounts = bench_load.seed(args.users)
    print(f"seeded {len(accounts)} accounts in {time.monotonic() - started:.1f} s")
    connections.close_all()
    return bench_load.lean_people(accounts, bench_load._photo_bytes(), args.mix)


def target_people(args: argparse.Namespace, env: dict[str, str]) -> list[Any]:
    """Users for --target: seeded when DATABASE_URL names the target's database; else all sharing --session and
    polling --job; else anonymous visitors loading the login page."""
    if os.environ.get("DATABASE_URL"):
        return seeded_people(args, env, migrate=False)
    if args.session and args.job:
        accounts = [{"session": args.session, "job": args.job}] * args.users
        return bench_load.lean_people(accounts, b"", "status")
    print("no DATABASE_URL and no --session/--job: the users load the login page anonymously")
    page = loadgen.Request(ANONYMOUS, "GET", "/accounts/login/")
    return [(lambda rng, page=page: page, None)] * args.users


def anonymous_rows(stats: loadgen.Stats, duration: float) -> tuple[list[bench_load.Row], str]:
    values = stats.latencies_ms.get(ANONYMOUS, [])
    failed = len(stats.failures.get(ANONYMOUS, []))
    rows: list[bench_load.Row] = [(ANONYMOUS, len(values), failed, len(values) / duration,
                                   loadgen.percentile(values, 0.5), loadgen.percentile(values, 0.95),
                                   loadgen.percentile(values, 0.99))] if values else []
    samples = {name: failures[:3] for name, failures in stats.failures.items()}
    return rows, f"failures: {samples}" if samples else ""


if __name__ == "__main__":
    sys.exit(main())
