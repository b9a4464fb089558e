"""Gunicorn settings for the web container (`gunicorn -c docker/gunicorn.conf.py fashionsite.wsgi`).

Every value can be overridden from the environment (gunicorn also reads GUNICORN_CMD_ARGS). Logs, including the
access log, go through the site's redacting JSON formatter: a request line carrying `?api_key=...` or a presigned
signature is logged with the value replaced.
"""
from __future__ import annotations

import ipaddress
import multiprocessing
import os
import socket
import time
from typing import Any

from fashionsite.logging import logging_config

# All interfaces inside the container, so the proxy container reaches it; compose publishes the port on the host's
# loopback only, and nothing but the proxy may reach it (docs/deploy.md).
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Processes plus two threads each: requests are short (uploads are capped, edits run in Celery), so threads cover
# slow clients without an async worker. More processes with fewer threads than gunicorn's usual 2 x cores + 1
# with 4 threads: a process's threads share one GIL, so a status poll waited behind an upload's Python code in a
# sibling thread. Measured with bench/bench_load.py on 2 cores (docs/performance.md "Load"): 9 x 2 gave job-status
# p95 17-20 ms under the full mix where 5 x 4 gave 26-55 ms, for the same number of database connections.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 4 + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 2)
worker_class = "gthread"
# A thread reads its request's body as it arrives, so a client trickling a large body would hold one for as long
# as it likes: docker/Caddyfile buffers every body whole (and cuts off slow senders) before a request comes here.
# The timeout is gunicorn's worker heartbeat, above the provider timeout.
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
# The proxy sets X-Forwarded-Proto/For, which the site trusts (SECURE_PROXY_SSL_HEADER, the login rate limit's
# client address). From anyone else they are forged: pre_request below drops them. GUNICORN_FORWARDED_ALLOW_IPS
# names the proxy: addresses, networks or host names (compose: the proxy service's name), comma-separated; by
# default loopback. gunicorn's own setting takes the literal addresses; names are resolved by pre_request.
_TRUSTED_PROXIES = [entry.strip() for entry in
                    os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1").split(",") if entry.strip()]
if "*" in _TRUSTED_PROXIES:
    raise RuntimeError("GUNICORN_FORWARDED_ALLOW_IPS must name the proxy: '*' would trust forged client addresses")
_TRUSTED_NETWORKS: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
_TRUSTED_NAMES: list[str] = []
for _entry in _TRUSTED_PROXIES:
    try:
        _TRUSTED_NETWORKS.append(ipaddress.ip_network(_entry))
    except ValueError:
        _TRUSTED_NAMES.append(_entry)
forwarded_allow_ips = ",".join(str(network) for network in _TRUSTED_NETWORKS)
# Headers that speak for the client; what arrives in them from outside the proxy is dropped before Django sees it.
_FORWARDING_HEADERS = frozenset({
    "X-FORWARDED-FOR", "X-FORWARDED-PROTO", "X-FORWARDED-HOST", "X-FORWARDED-PORT", "X-FORWARDED-PROTOCOL",
    "X-FORWARDED-SSL", "X-REAL-IP", "FORWARDED",
})
_NAME_TTL_SECONDS = 30.0
_resolved: tuple[float, frozenset[str]] = (float("-inf"), frozenset())

_log_format = os.environ.get("LOG_FORMAT") or "json"
logconfig_dict = logging_config(level=os.environ.get("LOG_LEVEL") or "INFO", fmt=_log_format)
# The access line is method, path (never the query string: it may carry a poll token or a filter), status,
# size, time and user agent, so it has nothing to redact; its own handler skips the redaction, which cost 0.6 ms
# of CPU per line, a third of what a status poll costs (docs/performance.md "Load").
logconfig_dict["handlers"]["access"] = {**logconfig_dict["handlers"]["console"], "filters": [],
                                        "formatter": "access_" + _log_format}
logconfig_dict["formatters"].update({
    "access_json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s",
                    "timestamp": "timestamp", "rename_fields": {"levelname": "level", "name": "logger"}},
    "access_plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
})
logconfig_dict["loggers"].update({
    # Own handlers, no propagation: Django's root handler would print every line twice.
    "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
    "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
})
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'


def post_fork(server: object, worker: object) -> None:
    # A worker's threads share one GIL. A thread waiting on PostgreSQL or Redis must win the GIL back after every
    # reply, and with an upload's Python code running in a sibling thread that wait is up to the switch interval
    # (5 ms by default) each time: a status poll makes about six such waits. 1 ms keeps polls quick beside uploads.
    import sys

    sys.setswitchinterval(float(os.environ.get("GUNICORN_SWITCH_INTERVAL_MS") or 1) / 1000)


def _is_trusted_proxy(peer: object) -> bool:
    if isinstance(peer, (str, bytes)):
        return True  # a Unix socket (gunicorn's rule too): only local processes can connect
    if not isinstance(peer, tuple):
        return False
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    if any(address in network for network in _TRUSTED_NETWORKS):
        return True
    return bool(_TRUSTED_NAMES) and str(address) in _proxy_name_addresses()


def _proxy_name_addresses() -> frozenset[str]:
    # Resolved again every 30 s: a recreated proxy container gets a new address under the same name.
    global _resolved
    expires, addresses = _resolved
    if time.monotonic() < expires:
        return addresses
    found: set[str] = set()
    for name in _TRUSTED_NAMES:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            pass  # not resolvable (yet): nobody is trusted under that name
    _resolved = (time.monotonic() + _NAME_TTL_SECONDS, frozenset(found))
    return _resolved[1]


def pre_request(worker: Any, req: Any) -> None:
    if not _is_trusted_proxy(getattr(req, "peer_addr", None)):
        req.headers = [(name, value) for name, value in req.headers if name not in _FORWARDING_HEADERS]
    worker.log.debug("%s %s", req.method, req.path)
