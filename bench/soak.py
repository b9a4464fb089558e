"""Soak: thousands of edits over mixed outcomes while faults are injected, then a consistency report.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/soak.py              # 2,000 edits
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/soak.py --jobs 200   # a shorter run

Needs what scripts/testenv.py provides (PostgreSQL, Redis, S3). Real parts throughout: the Fashion AI service
(passthrough engine, `--delay`, `--fail-rate 0.1` for real FAILED jobs, `--error-rate 0.05` for 429/500/502
flapping), a Celery worker subprocess with its beat sweeper, a throwaway Redis as the broker, the session's S3 and
PostgreSQL. Edits are submitted in waves by several users through `edit_job_submit` (the service the website
calls). A fault loop takes turns, each for a few seconds: the provider unreachable, S3 unreachable for the worker,
PostgreSQL unreachable for the worker (TCP proxies cut: devservices/tcpproxy.py), Redis killed and restarted
(everything in it lost), the worker SIGKILLed. Like the deployment's supervisor, the soak restarts a worker that
exits. When every edit is final it prints the report of tests/faults/consistency.py (jobs per final state, balance
vs ledger for every user, charges and refunds per job, missing result files, orphan files in the bucket) and exits
1 if there is any inconsistency.
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devservices.celery_worker import FAST_WORKER_ENV, CeleryWorker  # noqa: E402
from devservices.fashionai import run_fashionai  # noqa: E402
from devservices.samples import astronaut_png  # noqa: E402
from devservices.servers import RedisServer  # noqa: E402
from devservices.tcpproxy import TcpProxy  # noqa: E402

FAULTS = ("provider down", "S3 down", "PostgreSQL down", "Redis restarted", "worker SIGKILLed")


def setup_django(broker_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "fashionsite.settings"
    os.environ["FAI_IGNORE_DOTENV"] = "1"
    os.environ["STARTER_CREDITS"] = "0"
    os.environ["MAX_JOBS_IN_FLIGHT_PER_USER"] = "1000000"
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"] = broker_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.faults: Counter[str] = Counter()
        self.worker_restarts = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()  # the fault loop and the supervisor both start workers

    def worker_env(self, fai_url: str, api_key: str, s3: TcpProxy, db: TcpProxy, redis: RedisServer) -> dict[str, str]:
        from django.db import connection

        data = connection.settings_dict
        auth = data["USER"] + (f":{data['PASSWORD']}" if data.get("PASSWORD") else "")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONAI_")}
        env.update(FAST_WORKER_ENV)
        env.update({
            "DATABASE_URL": f"postgres://{auth}@127.0.0.1:{db.port}/{data['NAME']}",
            "AWS_S3_ENDPOINT_URL": s3.url(),
            "CELERY_BROKER_URL": redis.url, "REDIS_URL": redis.url,
            "FASHION_AI_BASE_URL": f"{fai_url}/v1", "FASHION_AI_API_KEY": api_key,
            "FASHION_AI_EXPECTED_SECONDS": str(self.args.delay), "FASHION_AI_TIMEOUT_SECONDS": "5",
            "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING",
        })
        return env

    def supervise(self, worker: CeleryWorker) -> None:
        while not self.stop.is_set():
            with self.lock:
                if worker.process is None or worker.process.poll() is not None:
                    self.worker_restarts += 1
                    worker.start()
            time.sleep(0.5)

    def inject(self, worker: CeleryWorker, proxies: dict[str, TcpProxy], redis: RedisServer) -> None:
        for fault in itertools.cycle(FAULTS):
            if self.stop.wait(self.args.fault_every):
                return
            outage = self.rng.uniform(2, self.args.max_outage)
            self.faults[fault] += 1
            print(f"  fault: {fault} ({outage:.1f} s)", flush=True)
            if fault == "Redis restarted":
                redis.kill()
                time.sleep(outage)
                redis.start()
            elif fault == "worker SIGKILLed":
                with self.lock:
                    worker.kill()
                    worker.start()
            else:
                proxy = proxies[fault]
                proxy.cut()
                time.sleep(outage)
                proxy.restore()

    def run(self) -> int:
        from django.core.files.base import ContentFile
        from django.core.management import call_command

        from editor.models import EditJob, Photo
        from editor.services.credits import credits_grant
        from editor.services.edit_commands import edit_job_submit
        from tests.faults.consistency import consistency_report

        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model

        run = os.urandom(3).hex()
        users = [get_user_model().objects.create(username=f"soak-{run}-{n}", email=f"soak-{run}-{n}@example.com")
                 for n in range(self.args.users)]
        photos = {}
        image = astronaut_png(256)
        for user in users:
            credits_grant(user=user, amount=self.args.jobs, reason="soak")
            photo = Photo(owner=user, original_name="astronaut.png", size_bytes=len(image))
            photo.image.save("soak.png", ContentFile(image), save=False)
            photo.width = photo.height = 256
            photo.save()
            photos[user.pk] = photo

        s3_port = int(os.environ["AWS_S3_ENDPOINT_URL"].rsplit(":", 1)[1])
        from django.db import connection

        db_port = int(connection.settings_dict["PORT"] or 5432)
        redis = self.redis
        with run_fashionai(delay=self.args.delay, fail_rate=0.1, error_rate=0.05, workers=1,
                           extra_args=["--seed", str(self.args.seed)]) as fai:
            proxies = {
                "provider down": TcpProxy(fai.port).start(),
                "S3 down": TcpProxy(s3_port).start(),
                "PostgreSQL down": TcpProxy(db_port).start(),
            }
            env = self.worker_env(proxies["provider down"].url(), fai.api_key, proxies["S3 down"],
                                  proxies["PostgreSQL down"], redis)
            worker = CeleryWorker(env, beat=True, concurrency=self.args.concurrency).start()
            threads = [threading.Thread(target=self.supervise, args=(worker,), daemon=True),
                       threading.Thread(target=self.inject, args=(worker, proxies, redis), daemon=True)]
            for thread in threads:
                thread.start()
            started = time.monotonic()
            ids: list[Any] = []
            try:
                prompts = ("a red shirt", "a navy striped shirt", "blue jeans", "a green checked skirt")
                final = ("succeeded", "failed", "expired")
                while len(ids) < self.args.jobs:
                    # Keep about --in-flight edits open, like a steady stream of users: a backlog far beyond what
                    # the worker can poll would only measure queueing.
                    open_now = EditJob.objects.filter(pk__in=ids).exclude(state__in=final).count()
                    for _ in range(min(self.args.wave, self.args.jobs - len(ids),
                                       max(0, self.args.in_flight - open_now))):
                        user = self.rng.choice(users)
                        clothing = self.rng.choice(("topwear", "bottomwear"))
                        ids.append(edit_job_submit(user=user, photo=photos[user.pk], clothing=clothing,
                                                   prompt=self.rng.choice(prompts)).pk)
                    if len(ids) % 200 < self.args.wave:
                        print(f"  submitted {len(ids)}/{self.args.jobs}; open {open_now}", flush=True)
                    time.sleep(self.args.wave_every)
                deadline = time.monotonic() + self.args.timeout
                while time.monotonic() < deadline:
                    left = EditJob.objects.filter(pk__in=ids).exclude(state__in=("succeeded", "failed", "expired"))
                    if not left.exists():
                        break
                    if int(time.monotonic()) % 10 == 0:
                        print(f"  waiting for {left.count()} edits", flush=True)
                    time.sleep(1)
            finally:
                self.stop.set()
                for thread in threads:
                    thread.join(30)
                with self.lock:
                    worker.stop()
                for proxy in proxies.values():
                    proxy.cut()
            elapsed = time.monotonic() - started
        report = consistency_report(user_ids=[u.pk for u in users])
        print(f"\nsoak: {len(ids)} edits by {len(users)} users in {elapsed:.0f} s "
              f"({len(ids) / elapsed * 60:.0f} edits/min) with provider --delay {self.args.delay} --fail-rate 0.1 "
              f"--error-rate 0.05")
        print(f"faults injected: {dict(self.faults)}; worker restarts by the supervisor: {self.worker_restarts}")
        reasons = Counter(EditJob.objects.filter(pk__in=ids).exclude(state="succeeded")
                          .values_list("state", "error_code"))
        print("why edits did not succeed: " + ", ".join(f"{s}/{c or '-'}: {n}" for (s, c), n in reasons.most_common()))
        for (state, code), _n in reasons.most_common(4):
            sample = EditJob.objects.filter(pk__in=ids, state=state, error_code=code).first()
            print(f"  e.g. {state}/{code}: {sample.error_detail if sample else ''}")
        print(report.summary())
        return 1 if report.inconsistencies else 0

    def __enter__(self) -> Soak:
        self.redis = RedisServer().start()
        setup_django(self.redis.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="edits to submit")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--delay", type=float, default=1.0, help="provider seconds per job")
    parser.add_argument("--wave", type=int, default=25, help="most edits submitted per wave")
    parser.add_argument("--in-flight", type=int, default=150, help="edits kept open at once")
    parser.add_argument("--wave-every", type=float, default=2.0, help="seconds between waves")
    parser.add_argument("--fault-every", type=float, default=12.0, help="seconds between faults")
    parser.add_argument("--max-outage", type=float, default=6.0, help="longest outage, seconds")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the last edits")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    with Soak(args) as soak:
        return soak.run()


if __name__ == "__main__":
    sys.exit(main())
