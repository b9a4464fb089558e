"""Load test of the site on loopback: 200 signed-in users polling job status, browsing the gallery and submitting
edits, against gunicorn with the deployment's settings (docker/gunicorn.conf.py), driven by locust (headless).

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_load.py            # 200 users, 60 s
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_load.py --quick    # 50 users, 15 s

Needs what scripts/testenv.py provides (PostgreSQL, Redis, S3). Migrates the database, runs collectstatic, seeds
one account per simulated user (a session, 24 finished edits for the gallery, one edit in flight to poll, plenty
of credits), starts gunicorn on 127.0.0.1 (DEBUG off, `--workers/--threads` as given, persistent database
connections), then runs locust in the same 2-core machine. No Celery worker runs: submitted edits stay queued,
which is what the web side of a submit costs. Prints requests/s and p50/p95/p99 per endpoint; exits 1 on any
failed request.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservices.net import free_port  # noqa: E402

GALLERY_JOBS = 24
STATUS_TARGET_P95_MS = 50.0


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")
    os.environ["FAI_IGNORE_DOTENV"] = "1"
    import django

    django.setup()


def seed(users: int) -> list[dict[str, Any]]:
    """One account per simulated user, made directly in the database (no password hashing, no login form)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from editor.models import EditJob, Photo
    from editor.services.credits import credits_grant
    from editor.status_tokens import status_token_issue

    User = get_user_model()
    run = os.urandom(3).hex()
    password = make_password(None)  # unusable: these accounts only ever use their session
    photo_name = default_storage.save(f"bench/load-{run}.jpg", ContentFile(_photo_bytes()))
    accounts = []
    now = timezone.now()
    for n in range(users):
        user = User.objects.create(username=f"load-{run}-{n}", email=f"load-{run}-{n}@example.com", password=password)
        credits_grant(user=user, amount=1_000_000, reason="load test")
        photo = Photo.objects.create(owner=user, image=photo_name, thumbnail=photo_name, width=512, height=512,
                                     size_bytes=1, original_name="p.jpg")
        finished = [
            EditJob(owner=user, photo=photo, prompt=f"a shirt in colour {i}", clothing="topwear", state="succeeded",
                    cost_credits=1, result_image=photo_name, result_thumbnail=photo_name, submitted_at=now,
                    finished_at=now, provider_status="COMPLETED")
            for i in range(GALLERY_JOBS)
        ]
        running = EditJob(owner=user, photo=photo, prompt="a person wearing blue jeans", clothing="bottomwear",
                          state="submitted", cost_credits=1, request_id=f"load-{n}", provider_status="PROCESSING",
                          submitted_at=now, next_poll_at=now + timedelta(days=1))
        EditJob.objects.bulk_create([*finished, running])
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        # The poll URL the job page hands htmx, token included (editor/views/jobs.py renders the same).
        token = status_token_issue(job_id=running.pk, owner_id=user.pk, session_cookie=session.session_key or "")
        status_path = f"/edits/{running.pk}/status/?phase=processing&t={token}"
        accounts.append({"session": session.session_key, "job": str(running.pk), "status_path": status_path})
    return accounts


def _photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((800, 800)).save(out, format="JPEG", quality=88)
    return out.getvalue()


def start_gunicorn(port: int, workers: int, threads: int, env: dict[str, str], log: Path,
                   app: str = "fashionsite.wsgi") -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", app,
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live/", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start: " + log.read_text(errors="replace")[-3000:])


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    workers = _children(process.pid)
    process.send_signal(signal.SIGINT)  # quick shutdown: keep-alive connections need not drain
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # A gthread worker can outlive its master when the master exits first; it would skew the next run's figures.
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load after the ramp-up")
    parser.add_argument("--spawn-rate", type=float, default=5, help="users joining per second (the warm-up)")
    parser.add_argument("--workers", type=int, default=9,
                        help="gunicorn processes (docker/gunicorn.conf.py: 4 x cores + 1)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads per gunicorn process (gthread; docker/gunicorn.conf.py: 2)")
    parser.add_argument("--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE for gunicorn")
    parser.add_argument("--mix", default="status,gallery,submit",
                        help="which requests the users make, e.g. 'status' for polling alone")
    parser.add_argument("--cache", choices=("redis", "locmem"), default="redis",
                        help="CACHE_URL for gunicorn: redis as in compose (sessions read through it) or locmem")
    parser.add_argument("--client", choices=("lean", "locust"), default="lean",
                        help="load generator: bench/loadgen.py (default) or locust, its peer (bench/locustfile.py)")
    parser.add_argument("--calibrate", action="store_true",
                        help="serve a trivial WSGI app instead of the site: what the load generator itself adds")
    parser.add_argument("--no-poll-token", action="store_true",
                        help="poll without the job page's token: the session-checked path (editor/status_tokens.py)")
    parser.add_argument("--quick", action="store_true", help="50 users for 15 s: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.users, args.duration, args.spawn_rate = 50, 15, 10

    env = dict(os.environ)
    env.update({
        "DJANGO_DEBUG": "false", "FAI_IGNORE_DOTENV": "1", "LOG_LEVEL": "WARNING", "LOG_FORMAT": "plain",
        "DATABASE_CONN_MAX_AGE": str(args.conn_max_age), "MAX_JOBS_IN_FLIGHT_PER_USER": "1000000",
        "PYTHONPATH": str(ROOT),
    })
    if args.cache == "redis":
        # As docker/compose.yaml runs it: Redis holds the cache, so sessions are read from it (cached_db).
        env["CACHE_URL"] = env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
    else:
        env["CACHE_URL"] = "locmemcache://"
    os.environ.update({k: env[k] for k in ("DJANGO_DEBUG", "FAI_IGNORE_DOTENV", "LOG_LEVEL", "LOG_FORMAT",
                                           "CACHE_URL")})
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", verbosity=0, interactive=False)
    started = time.monotonic()
    accounts = seed(args.users)
    print(f"seeded {len(accounts)} accounts ({GALLERY_JOBS + 1} edits each) in {time.monotonic() - started:.1f} s")
    from django.db import connections

    connections.close_all()

    port = free_port()
    app = "bench.loadgen:trivial_app" if args.calibrate else "fashionsite.wsgi"
    photo = _photo_bytes()
    with tempfile.TemporaryDirectory() as folder:
        gunicorn_log = Path(folder) / "gunicorn.log"
        gunicorn = start_gunicorn(port, args.workers, args.threads, env, gunicorn_log, app=app)
        try:
            # The ramp is the warm-up: users join a few a second while every gunicorn thread opens its database
            # connection and builds its S3 client (boto3 takes up to a second for its first client), as on a
            # long-running server; statistics start once all users run.
            if args.client == "lean":
                rows, failure_samples = run_lean(port, accounts, photo, args, server_pid=gunicorn.pid)
            else:
                rows, failure_samples = run_locust(port, accounts, photo, args, env, Path(folder))
            server_errors = [line for line in gunicorn_log.read_text(errors="replace").splitlines()
                             if "ERROR" in line or "Traceback" in line]
        finally:
            stop_gunicorn(gunicorn)
    if not rows:
        print(failure_samples)
        return 1

    print(f"\n{args.users} users, {args.duration} s after a {args.users / args.spawn_rate:.0f} s ramp (recorded "
          f"once all users run); client {args.client}; gunicorn gthread {args.workers} x {args.threads}, "
          f"DATABASE_CONN_MAX_AGE={args.conn_max_age}, cache {args.cache}, mix {args.mix}"
          + (", polls without the page's token" if args.no_poll_token else "")
          + ("; CALIBRATION: a trivial WSGI app, not the site" if args.calibrate else ""))
    print(f"{'endpoint':<20} {'requests':>9} {'fails':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    failures = 0
    status_p95 = float("nan")
    for name, count, failed, rate, p50, p95, p99 in rows:
        failures += failed if name != "all" else 0
        print(f"{name:<20} {count:>9} {failed:>6} {rate:>7.1f} {p50:>7.1f} {p95:>7.1f} {p99:>7.1f}")
        if name == "job status poll":
            status_p95 = p95
    if not args.calibrate:
        verdict = "met" if status_p95 < STATUS_TARGET_P95_MS and failures == 0 else "NOT met"
        print(f"\ntarget (job status p95 < {STATUS_TARGET_P95_MS:.0f} ms, no errors): {verdict}")
    if failures:
        print(failure_samples)
    if server_errors:
        print(f"server log: {len(server_errors)} error lines, e.g. {server_errors[:3]}")
    return 1 if failures or server_errors else 0


Row = tuple[str, int, int, float, float, float, float]  # name, requests, failures, req/s, p50, p95, p99 (ms)
WEIGHTS = {"status": 55, "gallery": 3, "submit": 1}  # a minute of one person: see bench/locustfile.py


def run_lean(
    port: int, accounts: list[dict[str, Any]], photo: bytes, args: argparse.Namespace, server_pid: int | None = None,
) -> tuple[list[Row], str]:
    import asyncio

    from bench import loadgen

    if args.no_poll_token:
        accounts = [{key: value for key, value in account.items() if key != "status_path"} for account in accounts]
    people = lean_people(accounts, photo, args.mix)
    probe = CpuProbe(server_root=server_pid)
    stats = asyncio.run(loadgen.run("127.0.0.1", port, people, spawn_rate=args.spawn_rate, duration=args.duration,
                                    probe=probe.read))
    rows, samples = lean_rows(stats, args.duration)
    print(probe.summary(stats.probed, sum(row[1] for row in rows if row[0] != "all")))
    return rows, samples


class CpuProbe:
    """CPU seconds spent by the site (gunicorn and its workers), by the services started beside it (PostgreSQL,
    Redis, ...: the other descendants of scripts/testenv.py) and by this load generator. CPU time per request is
    what the machine pays for each request; unlike latency it hardly moves when other work shares the cores."""

    def __init__(self, server_root: int | None) -> None:
        import psutil

        self.me = psutil.Process()
        self.server = psutil.Process(server_root) if server_root else None
        self.services_root = self.me.parent()

    def read(self) -> dict[str, float]:
        import psutil

        def cpu(processes: list[Any]) -> float:
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            return total

        server = [self.server, *self.server.children(recursive=True)] if self.server else []
        skip = {process.pid for process in server} | {self.me.pid}
        services = [process for process in (self.services_root.children(recursive=True) if self.services_root
                                             else []) if process.pid not in skip]
        return {"site": cpu(server), "services": cpu(services), "client": cpu([self.me])}

    @staticmethod
    def summary(probed: list[dict[str, float]], requests: int) -> str:
        if len(probed) != 2 or not requests:
            return "cpu per request: not measured"
        start, end = probed
        parts = {name: (end[name] - start[name]) * 1000 / requests for name in start}
        return ("cpu per request (ms, recorded window): " + ", ".join(f"{name} {value:.2f}"
                                                                      for name, value in parts.items())
                + f"; site + services {parts['site'] + parts['services']:.2f}")


def lean_people(accounts: list[dict[str, Any]], photo: bytes, mix_tags: str) -> list[Any]:
    """One simulated person per seeded account for bench/loadgen.py, making the requests of `mix_tags`."""
    import random

    from urllib3 import encode_multipart_formdata

    from bench import loadgen

    def submitted(status: int, headers: dict[str, str]) -> bool:
        return status == 302 and "/edits/" in headers.get("location", "")

    mix = [tag for tag in mix_tags.split(",") if tag in WEIGHTS]
    people = []
    for account in accounts:
        csrf = os.urandom(16).hex()  # Django accepts the unmasked 32-character secret as the form token
        cookie = {"Cookie": f"sessionid={account['session']}; csrftoken={csrf}"}
        body, content_type = encode_multipart_formdata({
            "csrfmiddlewaretoken": csrf, "prompt": "a person wearing a red shirt", "clothing": "topwear",
            "image": ("photo.jpg", photo, "image/jpeg"),
        })
        requests = {
            # The URL the job page gives (seeded), else the poll without its token (the session-checked path).
            "status": loadgen.Request("job status poll", "GET",
                                      account.get("status_path") or f"/edits/{account['job']}/status/?phase=processing",
                                      cookie, expect=lambda status, headers: status in (200, 204)),
            "gallery": loadgen.Request("gallery", "GET", "/gallery/", cookie),
            "submit": loadgen.Request("submit edit", "POST", "/edit/new/",
                                      {**cookie, "Content-Type": content_type}, body, expect=submitted),
        }
        form = loadgen.Request("new edit form", "GET", "/edit/new/", cookie) if "submit" in mix else None

        def choose(rng: random.Random, requests: dict[str, loadgen.Request] = requests) -> loadgen.Request:
            return requests[rng.choices(mix, weights=[WEIGHTS[tag] for tag in mix])[0]]

        people.append((choose, form))
    return people


def lean_rows(stats: Any, duration: float) -> tuple[list[Row], str]:
    """Per-endpoint rows (and failure samples) from bench/loadgen.py's statistics."""
    from bench import loadgen

    rows: list[Row] = []
    everything: list[float] = []
    failed_total = 0
    for name in ("job status poll", "gallery", "submit edit", "new edit form"):
        values = stats.latencies_ms.get(name, [])
        if not values:
            continue
        failed = len(stats.failures.get(name, []))
        everything += values
        failed_total += failed
        rows.append((name, len(values), failed, len(values) / duration, loadgen.percentile(values, 0.5),
                     loadgen.percentile(values, 0.95), loadgen.percentile(values, 0.99)))
    if everything:
        rows.append(("all", len(everything), failed_total, len(everything) / duration,
                     loadgen.percentile(everything, 0.5), loadgen.percentile(everything, 0.95),
                     loadgen.percentile(everything, 0.99)))
    samples = {name: values[:3] for name, values in stats.failures.items()}
    return rows, f"failures: {samples}" if samples else ""


def run_locust(port: int, accounts: list[dict[str, Any]], photo: bytes, args: argparse.Namespace,
               env: dict[str, str], folder: Path) -> tuple[list[Row], str]:
    """The same mix with locust (bench/locustfile.py), for comparison: see bench/loadgen.py for its overhead."""
    accounts_file = folder / "accounts.json"
    accounts_file.write_text(json.dumps(accounts))
    photo_file = folder / "photo.jpg"
    photo_file.write_bytes(photo)
    seconds = int(args.users / args.spawn_rate + args.duration)
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "bench/locustfile.py"), "--headless",
         "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{seconds}s",
         "--host", f"http://127.0.0.1:{port}", "--csv", str(folder / "load"),
         "--only-summary", "--loglevel", "WARNING", "--reset-stats", "--tags", *args.mix.split(",")],
        cwd=ROOT, env={**env, "LOAD_ACCOUNTS": str(accounts_file), "LOAD_PHOTO": str(photo_file)},
        capture_output=True, text=True,
    )
    stats = folder / "load_stats.csv"
    rows: list[Row] = []
    for row in csv.DictReader(stats.open()) if stats.exists() else []:
        rows.append(("all" if row["Name"] == "Aggregated" else row["Name"], int(row["Request Count"]),
                     int(row["Failure Count"]), float(row["Requests/s"]), float(row["50%"]), float(row["95%"]),
                     float(row["99%"])))
    return rows, (result.stdout[-1500:] + result.stderr[-1500:]) if not rows or any(r[2] for r in rows) else ""

if __name__ == "__main__":
    sys.exit(main())
