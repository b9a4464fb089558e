"""Gunicorn settings for the web container (`gunicorn -c docker/gunicorn.conf.py fashionsite.wsgi`).

Every value can be overridden from the environment (gunicorn also reads GUNICORN_CMD_ARGS). Logs, including the
access log, go through the site's redacting JSON formatter: a request line carrying `?api_key=...` or a presigned
signature is logged with the value replaced.
"""
from __future__ import annotations

import multiprocessing
import os

from fashionsite.logging import logging_config

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Processes plus two threads each: requests are short (uploads are capped, edits run in Celery), so threads cover
# slow clients without an async worker. More processes with fewer threads than gunicorn's usual 2 x cores + 1
# with 4 threads: a process's threads share one GIL, so a status poll waited behind an upload's Python code in a
# sibling thread. Measured with bench/bench_load.py on 2 cores (docs/performance.md "Load"): 9 x 2 gave job-status
# p95 17-20 ms under the full mix where 5 x 4 gave 26-55 ms, for the same number of database connections.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 4 + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 2)
worker_class = "gthread"
# Above the provider timeout and the largest upload on a slow link; the TLS proxy in front buffers requests.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 60)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never takes the container down. Not often: every open job page
# polls once a second, so 200 people are ~200 requests/s, and a fresh worker reconnects to the database and builds
# an S3 client per thread (up to a second each). At 2,000 that happened every ~50 s per worker and showed as
# seconds-long stalls in bench/bench_load.py; 100,000 is every ~40 min per worker at that rate.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS") or 100_000)
max_requests_jitter = max_requests // 10
# Import the app once in the master: faster forks, and a broken settings module fails the container at start.
preload_app = True
# /dev/shm is memory-backed in containers; the default temp dir may be a slow overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# The TLS proxy sets X-Forwarded-Proto/For; trust it from any address inside the private network.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "*")

_log_format = os.environ.get("LOG_FORMAT") or "json"
logconfig_dict = logging_config(level=os.environ.get("LOG_LEVEL") or "INFO", fmt=_log_format)
logconfig_dict["loggers"].update({
    # Own handlers, no propagation: Django's root handler would print every line twice.
    "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
    "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
})
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'


def post_fork(server: object, worker: object) -> None:
    # A worker's threads share one GIL. A thread waiting on PostgreSQL or Redis must win the GIL back after every
    # reply, and with an upload's Python code running in a sibling thread that wait is up to the switch interval
    # (5 ms by default) each time: a status poll makes about six such waits. 1 ms keeps polls quick beside uploads.
    import sys

    sys.setswitchinterval(float(os.environ.get("GUNICORN_SWITCH_INTERVAL_MS") or 1) / 1000)
