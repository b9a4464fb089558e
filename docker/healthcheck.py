"""Container health checks without curl (the slim images have none): `python docker/healthcheck.py ROLE`.

    web        GET http://127.0.0.1:8000/health/ready/  -> healthy on 200 (database, Redis and storage answer)
    live       GET http://127.0.0.1:8000/health/live/   -> healthy on 200 (the process answers)
    worker     a Celery worker in this container wrote a heartbeat to Redis recently
    fashionai  GET http://127.0.0.1:8765/health         -> healthy on 200
    database   the site's database accepts a connection (`database --wait SECONDS` retries until then)

Exit 0 when healthy, 1 otherwise, with the reason on stderr (`docker inspect` shows it).
"""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

URLS = {
    "web": "http://127.0.0.1:{port}/health/ready/",
    "live": "http://127.0.0.1:{port}/health/live/",
    "fashionai": "http://127.0.0.1:{port}/health",
}
PORTS = {"web": "HEALTHCHECK_PORT", "live": "HEALTHCHECK_PORT", "fashionai": "FASHIONAI_PORT"}
DEFAULT_PORTS = {"web": "8000", "live": "8000", "fashionai": "8765"}


def check_http(role: str) -> tuple[bool, str]:
    url = URLS[role].format(port=os.environ.get(PORTS[role]) or DEFAULT_PORTS[role])
    try:
        with urllib.request.urlopen(url, timeout=8) as response:  # noqa: S310 (fixed loopback http URL)
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code} {exc.read(500).decode(errors='replace')}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def check_worker() -> tuple[bool, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings_production")
    from fashionsite.heartbeat import HeartbeatsUnavailable, check_local_worker

    try:
        return (True, "heartbeat ok") if check_local_worker() else (False, "no recent heartbeat from this host")
    except HeartbeatsUnavailable as exc:
        return False, str(exc)


def check_database(wait_seconds: float) -> tuple[bool, str]:
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashionsite.settings_production")
    import django

    django.setup()
    from django.db import connection

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            connection.ensure_connection()
            return True, "database ok"
        except Exception as exc:  # noqa: BLE001 (any driver error means: not reachable yet)
            if time.monotonic() >= deadline:
                return False, f"database: {type(exc).__name__}: {exc}"
            time.sleep(1)


def main(argv: list[str]) -> int:
    wait = 0.0
    if len(argv) == 3 and argv[0] == "database" and argv[1] == "--wait":
        wait, argv = float(argv[2]), argv[:1]
    if len(argv) != 1 or argv[0] not in (*URLS, "worker", "database"):
        sys.stderr.write(__doc__ or "")
        return 2
    if argv[0] == "database":
        healthy, reason = check_database(wait)
    else:
        healthy, reason = check_worker() if argv[0] == "worker" else check_http(argv[0])
    (sys.stdout if healthy else sys.stderr).write(reason + "\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
