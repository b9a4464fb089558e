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

from tests.support.services import free_port  # noqa: E402

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
        accounts.append({"session": session.session_key, "job": str(running.pk)})
    return accounts


def _photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((800, 800)).save(out, format="JPEG", quality=88)
    return out.getvalue()


def start_gunicorn(port: int, workers: int, threads: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "fashionsite.wsgi",
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
    process.send_signal(signal.SIGINT)  # quick shutdown: keep-alive connections need not drain
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load after the ramp-up")
    parser.add_argument("--spawn-rate", type=float, default=5, help="users joining per second (the warm-up)")
    parser.add_argument("--workers", type=int, default=5,
                        help="gunicorn processes (docker/gunicorn.conf.py: 2 x cores + 1)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process (gthread)")
    parser.add_argument("--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE for gunicorn")
    parser.add_argument("--mix", default="status,gallery,submit",
                        help="which requests the users make (locust tags), e.g. 'status' for polling alone")
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
    os.environ.update({k: env[k] for k in ("DJANGO_DEBUG", "FAI_IGNORE_DOTENV", "LOG_LEVEL", "LOG_FORMAT")})
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
    with tempfile.TemporaryDirectory() as folder:
        accounts_file = Path(folder) / "accounts.json"
        accounts_file.write_text(json.dumps(accounts))
        photo_file = Path(folder) / "photo.jpg"
        photo_file.write_bytes(_photo_bytes())
        gunicorn_log = Path(folder) / "gunicorn.log"
        gunicorn = start_gunicorn(port, args.workers, args.threads, env, gunicorn_log)
        try:
            ramp = args.users / args.spawn_rate
            locust_env = {**env, "LOAD_ACCOUNTS": str(accounts_file), "LOAD_PHOTO": str(photo_file)}

            def locust(seconds: float, csv_prefix: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [sys.executable, "-m", "locust", "-f", str(ROOT / "bench/locustfile.py"), "--headless",
                     "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{int(seconds)}s",
                     "--host", f"http://127.0.0.1:{port}", "--csv", str(Path(folder) / csv_prefix),
                     "--only-summary", "--loglevel", "WARNING", "--reset-stats", "--tags", *args.mix.split(",")],
                    cwd=ROOT, env=locust_env, capture_output=True, text=True,
                )

            # The ramp is the warm-up: users join a few a second while every gunicorn thread opens its database
            # connection and builds its S3 client (boto3 takes up to a second for its first client), as on a
            # long-running server; statistics restart once all users run (--reset-stats).
            result = locust(ramp + args.duration, "load")
            stats = Path(folder) / "load_stats.csv"
            rows = list(csv.DictReader(stats.open())) if stats.exists() else []
            server_errors = [line for line in gunicorn_log.read_text(errors="replace").splitlines()
                             if "ERROR" in line or "Traceback" in line]
        finally:
            stop_gunicorn(gunicorn)
    if not rows:
        print(result.stdout[-3000:], result.stderr[-3000:])
        return 1

    print(f"\n{args.users} users, {args.duration} s after a {args.users / args.spawn_rate:.0f} s ramp (stats reset "
          f"when all users run); gunicorn gthread {args.workers} x {args.threads}, "
          f"DATABASE_CONN_MAX_AGE={args.conn_max_age}, mix {args.mix}")
    print(f"{'endpoint':<20} {'requests':>9} {'fails':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    failures = 0
    status_p95 = float("nan")
    for row in rows:
        name = "all" if row["Name"] == "Aggregated" else row["Name"]
        failures += int(row["Failure Count"]) if name != "all" else 0
        print(f"{name:<20} {row['Request Count']:>9} {row['Failure Count']:>6} {float(row['Requests/s']):>7.1f} "
              f"{row['50%']:>7} {row['95%']:>7} {row['99%']:>7}")
        if name == "job status poll":
            status_p95 = float(row["95%"])
    verdict = "met" if status_p95 < STATUS_TARGET_P95_MS and failures == 0 else "NOT met"
    print(f"\ntarget (job status p95 < {STATUS_TARGET_P95_MS:.0f} ms, no errors): {verdict}")
    if failures:
        print(result.stderr[-3000:])
    if server_errors:
        print(f"server log: {len(server_errors)} error lines, e.g. {server_errors[:3]}")
    return 1 if failures or server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
