"""Edit jobs, three designs side by side with the same number of Celery worker processes: (a) this design with
polling (submit + adaptive polling with countdowns), (b) this design with our service's completion webhooks
(polling only as a 30 s fallback), (c) the naive design (a task that blocks in the SDK's `submit_async(...).wait()`).
(a) and (b) run one I/O worker process on a thread pool (64 threads) and one images process (4 threads), as
docker/entrypoint.sh's worker and images roles; (c) two prefork processes.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_jobs.py            # D=60 s, 500 jobs
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_jobs.py --quick    # D=3 s, 20 jobs

Needs what scripts/testenv.py provides (PostgreSQL, Redis, S3). Starts the local Fashion AI service
(`--engine passthrough --delay D`), migrates the database, then:
  (a), (b) submit --jobs edits through `edit_job_submit` and let real `celery -A fashionsite worker`s (+ beat) run
      them to the end; for (b) this process serves the site's webhook endpoint on a free port;
  (c) queues --jobs naive tasks on a `celery -A bench.naive_app worker -c 2` for --naive-window seconds.
Prints jobs completed per minute, the most jobs in flight at the provider at once, how long jobs waited before
being submitted, status calls per job and the delay from the provider marking a job COMPLETED to our copy being
stored (median, p95). The provider's completion time is taken as our submit time + its metrics.total_time. Beside
it, from our own timestamps: from our seeing COMPLETED (a poll or the webhook) to stored, and the longest the
finish queue ("images") and the I/O queue ("celery", countdowns excluded: Celery holds those in the worker) got.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bench_jobs.py --flood 5000

instead runs N jobs at once through design (a) on the same 2 worker processes (provider D = --delay): how many
were at the provider at once, that none was lost, and each worker process's memory (RSS, sampled every second).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservices.celery_worker import CeleryWorker  # noqa: E402
from devservices.fashionai import run_fashionai  # noqa: E402
from devservices.samples import astronaut_png  # noqa: E402


def setup_django() -> None:
    """Only when run as a script: the test suite imports this module with Django already set up."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings")
    os.environ.setdefault("STARTER_CREDITS", "0")
    os.environ["MAX_JOBS_IN_FLIGHT_PER_USER"] = "1000000"
    os.environ["FASHION_AI_SEND_DATA_URI"] = "false"
    # This process serves the webhook endpoint for (b): it must know the secret the workers register.
    os.environ["FASHION_AI_WEBHOOK_URL"] = "http://127.0.0.1/provider/webhook/"
    os.environ["FASHION_AI_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    import django

    django.setup()


WEBHOOK_SECRET = "whsec_" + "YmVuY2gtb25seS13ZWJob29rLXNlY3JldC0zMmI="  # bench only


def serve_site() -> tuple[str, Any]:
    """The site's WSGI app on a free loopback port, in threads of this process (the webhook endpoint for (b))."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application

    class Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=Threading, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def worker_env(fai: Any, delay: float, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else os.environ)
    env.update(
        {
            "FASHION_AI_BASE_URL": fai.base_url,
            "FASHION_AI_API_KEY": fai.api_key,
            # A warmed-up system: the expected time is what recent inference times taught it.
            "FASHION_AI_EXPECTED_SECONDS": str(delay),
            "FAI_IGNORE_DOTENV": "1",
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            # As deployed (docs/deploy.md): DEBUG off (with it on, Django keeps every query of every task in
            # memory and wraps each cursor), and persistent database connections instead of one per task.
            "DJANGO_DEBUG": "false",
            "DATABASE_CONN_MAX_AGE": "60",
        }
    )
    return env


def rss_mb(pid: int) -> float:
    """Resident memory of one process (Linux /proc), MB; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(pid: int) -> list[int]:
    """A worker's main process and its children (the prefork pool, an embedded beat)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(child) for child in children)]


IMAGES_THREADS = 4  # as docker/entrypoint.sh's images role (CELERY_WORKER_CONCURRENCY)


def run_ours(
    fai: Any, *, jobs: int, delay: float, concurrency: int, env: dict[str, str] | None = None,
    webhook_url: str = "",
) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from editor.models import EditJob, Photo
    from editor.services.credits import credits_grant
    from editor.services.edit_commands import edit_job_submit

    user = get_user_model().objects.create_user(username=f"bench-{time.time_ns()}", password="x")
    credits_grant(user=user, amount=jobs, reason="bench")
    photo = Photo(owner=user, original_name="astronaut.png")
    photo.image.save("bench.png", ContentFile(astronaut_png()), save=False)
    photo.width = photo.height = 512
    photo.save()
    environment = worker_env(fai, delay, env)
    environment.update({"FASHION_AI_WEBHOOK_URL": webhook_url, "FASHION_AI_WEBHOOK_SECRET": WEBHOOK_SECRET})
    # One I/O process on threads and one images process on threads (docker/entrypoint.sh's worker and images
    # roles): `concurrency` (2) processes in all.
    workers = [
        CeleryWorker(environment, beat=True, concurrency=64, pool="threads", queues="celery").start(),
        CeleryWorker(
            environment, beat=False, concurrency=IMAGES_THREADS, pool="threads", queues="images,compose"
        ).start(),
    ]
    worker = workers[0]
    peak: dict[str, float] = {"submitted": 0, "images": 0, "celery": 0}
    memory: dict[str, float] = {}  # "<worker> pid <pid>" -> peak RSS MB
    stop = threading.Event()
    import redis

    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])

    def sample() -> None:
        from django.db import connection

        while not stop.is_set():
            n = EditJob.objects.filter(owner=user, state="submitted").count()
            peak["submitted"] = max(peak["submitted"], n)
            for queue in ("images", "celery"):
                peak[queue] = max(peak[queue], int(broker.llen(queue)))
            for name, each in zip(("I/O worker", "images worker"), workers, strict=True):
                if each.process is not None:
                    for pid in process_tree(each.process.pid):
                        key = f"{name} pid {pid}"
                        memory[key] = max(memory.get(key, 0.0), rss_mb(pid))
            time.sleep(0.5)
        connection.close()

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        started = time.time()
        ids = [
            edit_job_submit(user=user, photo=photo, prompt=f"a red shirt {n}", clothing="topwear").pk
            for n in range(jobs)
        ]
        sampler.start()
        deadline = time.time() + delay * 3 + 120 + jobs * 0.2  # a flood takes longer to drain
        while EditJob.objects.filter(pk__in=ids, state__in=EditJob.IN_FLIGHT_STATES).exists():
            if time.time() > deadline:
                print("ours: timed out; worker log tail:\n", worker.log()[-3000:])
                break
            time.sleep(0.5)
        stop.set()
        sampler.join(5)
    finally:
        for each in workers:
            each.stop()
    rows = list(EditJob.objects.filter(pk__in=ids))
    done = [j for j in rows if j.state == "succeeded"]
    elapsed = max((j.finished_at.timestamp() for j in done), default=started) - started
    store_delays = [
        j.finished_at.timestamp() - (j.submitted_at.timestamp() + float(j.provider_metrics.get("total_time", 0)))
        for j in done
    ]
    # Our own clock only: from the poll or webhook that saw COMPLETED to the 512 result stored.
    seen_delays = [(j.finished_at - j.provider_completed_at).total_seconds() for j in done if j.provider_completed_at]
    waits = [(j.submitted_at - j.created_at).total_seconds() for j in rows if j.submitted_at]
    return {
        "completed": len(done),
        "failed": len(rows) - len(done),
        "per_minute": len(done) / elapsed * 60 if elapsed > 0 else 0.0,
        "peak_in_flight": peak["submitted"],
        "wait_median": statistics.median(waits) if waits else float("nan"),
        "wait_max": max(waits) if waits else float("nan"),
        "calls": statistics.mean(j.poll_count for j in done) if done else float("nan"),
        "calls_max": max((j.poll_count for j in done), default=0),
        "store_median": statistics.median(store_delays) if store_delays else float("nan"),
        "store_p95": pct(store_delays, 0.95),
        "seen_median": statistics.median(seen_delays) if seen_delays else float("nan"),
        "images_queue_max": peak["images"],
        "celery_queue_max": peak["celery"],
        "lost": sum(1 for j in rows if j.state in EditJob.IN_FLIGHT_STATES),
        "memory": memory,
    }


def run_naive(fai: Any, *, jobs: int, delay: float, concurrency: int, window: float) -> dict[str, Any]:
    import redis
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from bench.naive_app import QUEUE, RESULTS_KEY, naive_edit

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    client.delete(RESULTS_KEY)
    name = default_storage.save("bench/naive-input.png", ContentFile(astronaut_png()))
    url = default_storage.url(name, expire=7200)  # type: ignore[call-arg]
    # Its own queue: CeleryWorker's default queue list is the site's, which the naive app never uses.
    worker = CeleryWorker(
        worker_env(fai, delay), beat=False, concurrency=concurrency, app="bench.naive_app", queues=QUEUE
    )
    worker.start()
    try:
        started = time.time()
        queued = {}
        for n in range(jobs):
            naive_edit.apply_async(args=(url, f"a red shirt {n}"))
            queued[n] = time.time()
        time.sleep(window)
    finally:
        worker.kill()  # the rest would take hours: stop counting here
        from bench.naive_app import app

        app.control.purge()
    records = [json.loads(raw) for raw in client.lrange(RESULTS_KEY, 0, -1)]
    elapsed = window
    store_delays = [r["stored"] - r["provider_done"] for r in records]
    waits = [r["started"] - started for r in records]
    return {
        "completed": len(records),
        "failed": 0,
        "per_minute": len(records) / elapsed * 60,
        "peak_in_flight": concurrency,  # one job per blocked worker process, by construction
        "wait_median": statistics.median(waits) if waits else float("nan"),
        "wait_max": max(waits) if waits else float("nan"),
        "calls": statistics.mean(r["status_calls"] for r in records) if records else float("nan"),
        "calls_max": max((r["status_calls"] for r in records), default=0),
        "store_median": statistics.median(store_delays) if store_delays else float("nan"),
        "store_p95": pct(store_delays, 0.95),
        "left_waiting": jobs - len(records),
        "seen_median": float("nan"),
        "images_queue_max": float("nan"),
        "celery_queue_max": float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=60.0, help="provider seconds per job (D)")
    parser.add_argument("--jobs", type=int, default=500, help="edits submitted at once")
    parser.add_argument("--processes", type=int, default=2, help="Celery worker processes for each design")
    parser.add_argument("--naive-window", type=float, default=None, help="seconds to run the naive design")
    parser.add_argument("--quick", action="store_true", help="D=3 s, 20 jobs: a smoke run")
    parser.add_argument("--flood", type=int, default=0, metavar="N",
                        help="only N jobs at once through (a): none lost, each worker's memory")
    args = parser.parse_args()
    if args.quick:
        args.delay, args.jobs = 3.0, 20
    window = args.naive_window or max(args.delay * 2.5, 10.0)
    setup_django()

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.flood:
        return flood(jobs=args.flood, delay=args.delay, processes=args.processes)
    site_url, site = serve_site()
    hooks = {"FASHIONAI_WEBHOOK_ALLOW_INTERNAL": site_url.removeprefix("http://")}
    with run_fashionai(engine="passthrough", delay=args.delay, workers=1, retention=3600, env=hooks) as fai:
        ours = run_ours(fai, jobs=args.jobs, delay=args.delay, concurrency=args.processes)
        hooked = run_ours(fai, jobs=args.jobs, delay=args.delay, concurrency=args.processes,
                          webhook_url=f"{site_url}/provider/webhook/")
        naive = run_naive(fai, jobs=args.jobs, delay=args.delay, concurrency=args.processes, window=window)
    site.shutdown()

    print(f"\nEdit jobs, {args.jobs} submitted at once, provider --engine passthrough --delay {args.delay:g}, "
          f"{args.processes} worker processes each (naive measured for {window:g} s)\n")
    rows = [
        ("jobs completed", "completed", "{:.0f}"),
        ("jobs failed", "failed", "{:.0f}"),
        ("jobs completed per minute", "per_minute", "{:.1f}"),
        ("most jobs in flight at once", "peak_in_flight", "{:.0f}"),
        ("wait before submit, median s", "wait_median", "{:.2f}"),
        ("wait before submit, max s", "wait_max", "{:.2f}"),
        ("status calls per job, mean", "calls", "{:.1f}"),
        ("status calls per job, max", "calls_max", "{:.0f}"),
        ("COMPLETED -> stored, median s", "store_median", "{:.2f}"),
        ("COMPLETED -> stored, p95 s", "store_p95", "{:.2f}"),
        ("COMPLETED seen -> stored, med s", "seen_median", "{:.2f}"),
        ("longest finish queue", "images_queue_max", "{:.0f}"),
        ("longest I/O queue", "celery_queue_max", "{:.0f}"),
    ]
    print(f"{'':32} {'(a) polling':>14} {'(b) webhooks':>14} {'(c) naive wait()':>18}")
    for label, key, fmt in rows:
        print(f"{label:32} {fmt.format(ours[key]):>14} {fmt.format(hooked[key]):>14} {fmt.format(naive[key]):>18}")
    print(f"{'naive jobs never started':32} {'':>14} {'':>14} {naive['left_waiting']:>18}")
    return 0 if ours["completed"] == args.jobs == hooked["completed"] else 1


def flood(*, jobs: int, delay: float, processes: int) -> int:
    """N jobs at once on the same worker processes: at the provider together, none lost, memory per process."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # The engine's passthrough runs one job at a time per engine worker: two keep the provider's queue moving. The
    # provider's per-key limits (1000 unfinished, 1200 submits a minute) and its 256 MiB queue would answer 429
    # long before 5,000: lifted, so the site's workers, not the provider, are what is measured.
    limits = {"FASHIONAI_MAX_INFLIGHT_PER_KEY": "0", "FASHIONAI_RATE_LIMIT": "0",
              "FASHIONAI_MAX_QUEUE_BYTES": str(4 * 1024**3), "FASHIONAI_MAX_QUEUE": str(max(10000, 2 * jobs))}
    with run_fashionai(engine="passthrough", delay=delay, workers=2, retention=3600, env=limits) as fai:
        result = run_ours(fai, jobs=jobs, delay=delay, concurrency=processes)
    print(f"\nEdit jobs, flood: {jobs} submitted at once, provider --engine passthrough --delay {delay:g}, design (a), "
          f"{processes} worker processes\n")
    print(f"{'jobs completed':40} {result['completed']:>8}")
    print(f"{'jobs failed':40} {result['failed']:>8}")
    print(f"{'jobs lost (still in flight at the end)':40} {result['lost']:>8}")
    print(f"{'most jobs in flight at once':40} {result['peak_in_flight']:>8.0f}")
    print(f"{'wait before submit, median / max s':40} {result['wait_median']:>8.2f} / {result['wait_max']:.2f}")
    print(f"{'status calls per job, mean / max':40} {result['calls']:>8.1f} / {result['calls_max']}")
    print(f"{'COMPLETED -> stored, median / p95 s':40} {result['store_median']:>8.2f} / {result['store_p95']:.2f}")
    print("peak resident memory (RSS) per worker process:")
    for name, mb in sorted(result["memory"].items()):
        print(f"  {name:38} {mb:>8.1f} MB")
    return 0 if result["completed"] == jobs and result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
