"""Service settings: command-line flags override FASHIONAI_* environment variables, which override defaults.

Parsing is strict: a malformed value stops the service with a message naming the variable, rather than silently
running with a default nobody asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from fashionai import safety as content_safety

# "generative": the recolour plus a generative provider's habits (new pattern, moved edge, shift, noise).
ENGINES = ("recolor", "passthrough", "generative")
# Content screening: on, off, or auto (on for the engines that edit, off for passthrough, which serves load tests).
SAFETY_MODES = ("auto", "on", "off")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    engine: str = "recolor"
    delay: float = 0.0  # extra simulated processing seconds per job (does not hold an engine worker)
    engine_hold: float = 0.0  # seconds each job holds its engine worker before the edit (a slow engine; tests)
    status_delay: float = 0.0  # seconds every status/result call waits before answering (a slow provider)
    fail_rate: float = 0.0  # fraction of jobs that end FAILED
    error_rate: float = 0.0  # fraction of API calls answered 500/502/429
    retention: float = 3600.0  # seconds a finished request (and its image) is kept
    seed: int | None = None  # makes the fault knobs reproducible
    # key -> credits (None: unlimited). Empty dict: the service refuses to start without keys.
    api_keys: dict[str, int | None] = field(default_factory=dict)
    rate_limit: int = 1200  # submits per key per minute, 0 = off
    max_queue: int = 10000  # jobs waiting for an engine worker before submits get 429
    # Compressed input bytes the queue may hold (memory, not a job count, is what runs out) before submits get 429.
    max_queue_bytes: int = 256 * 1024 * 1024
    max_inflight_per_key: int = 1000  # jobs not yet finished per API key before its submits get 429, 0 = off
    max_body_bytes: int = 20 * 1024 * 1024
    max_image_bytes: int = 15 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    fetch_timeout: float = 15.0
    # Hosts image URLs may come from ("*.example.com" allowed, "*" for any); empty: image URLs are refused. Never
    # from loopback/private/link-local/metadata addresses, also after redirects (fashionai/fetch.py).
    fetch_allow_hosts: tuple[str, ...] = ()
    # Exact (host, port) pairs fetched even though they resolve to internal addresses: your own object store.
    fetch_allow_internal: frozenset[tuple[str, int]] = frozenset()
    public_url: str | None = None  # base for absolute URLs when behind a proxy; default: the request's own host
    # Ours, webhooks (fashionai/webhooks.py): attempts per delivery, the first retry's wait (doubling, capped at
    # 300 s), the per-attempt timeout, and exact host:port pairs deliveries may reach despite internal addresses.
    webhook_attempts: int = 8
    webhook_backoff: float = 1.0
    webhook_timeout: float = 10.0
    webhook_allow_internal: frozenset[tuple[str, int]] = frozenset()
    safety: str = "auto"  # content screening of inputs and results (fashionai/safety.py)
    safety_threshold: float = content_safety.DEFAULT_THRESHOLD  # detector score from which a blocked class refuses
    safety_block: tuple[str, ...] = content_safety.DEFAULT_BLOCK  # NudeNet classes that refuse a job
    # Durable mode (fashionai/durable.py): job state, queue, idempotency keys and credits in this Redis; empty keeps
    # everything in this one process's memory. `redis_prefix` namespaces the keys (several services on one Redis).
    redis_url: str = ""
    redis_prefix: str = "fashionai:"
    # Seconds an engine process may go without renewing its hold on a job before another engine takes it over.
    lease: float = 30.0
    # Durable mode without S3: the folder every API and engine process shares for result PNGs (NFS across machines).
    output_dir: str = ""
    # Durable mode: result PNGs in this S3 bucket (any S3-compatible store), served as presigned GET URLs.
    output_s3_bucket: str = ""
    output_s3_prefix: str = "fashionai/"
    output_s3_endpoint_url: str = ""
    output_s3_region: str = ""

    def safety_policy(self) -> content_safety.SafetyPolicy:
        enabled = self.safety == "on" or (self.safety == "auto" and self.engine in ("recolor", "generative"))
        return content_safety.SafetyPolicy(enabled=enabled, threshold=self.safety_threshold, block=self.safety_block)


def _float(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r} must be between {lo} and {hi}")
    return value


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r} must be between {lo} and {hi}")
    return value


def parse_api_keys(raw: str, default_credits: int | None = None) -> dict[str, int | None]:
    """`key1,key2:100` -> {key1: default_credits, key2: 100}. `:N` gives that key N credits."""
    keys: dict[str, int | None] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, credits = item.partition(":")
        key = key.strip()
        if not key:
            raise ConfigError(f"FASHIONAI_API_KEYS has an empty key in {item!r}")
        keys[key] = _int("FASHIONAI_API_KEYS credits", credits.strip(), 0, 10**12) if sep else default_credits
    return keys


def parse_host_ports(name: str, raw: str) -> frozenset[tuple[str, int]]:
    """`s3.internal:8333,[fd00::5]:9000` -> {("s3.internal", 8333), ("fd00::5", 9000)}; the port is required."""
    pairs: set[tuple[str, int]] = set()
    for item in raw.split(","):
        item = item.strip().lower()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]").rstrip(".")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name} entry {item!r} must be host:port (the exact port of the internal service)")
        pairs.add((host, int(port)))
    return frozenset(pairs)


NUMERIC: dict[str, tuple[str, float, float]] = {
    # attribute: (kind, min, max)
    "port": ("int", 0, 65535),
    "workers": ("int", 1, 64),
    "delay": ("float", 0, 86400),
    "engine_hold": ("float", 0, 3600),
    "status_delay": ("float", 0, 3600),
    "fail_rate": ("float", 0, 1),
    "error_rate": ("float", 0, 1),
    "retention": ("float", 0.05, 30 * 86400),
    "seed": ("int", 0, 2**63),
    "rate_limit": ("int", 0, 10**9),
    "max_queue": ("int", 1, 10**7),
    "max_queue_bytes": ("int", 1024 * 1024, 2**40),
    "max_inflight_per_key": ("int", 0, 10**7),
    "max_body_bytes": ("int", 1024, 2**31),
    "max_image_bytes": ("int", 1024, 2**31),
    "max_image_pixels": ("int", 1, 10**9),
    "fetch_timeout": ("float", 0.1, 600),
    "safety_threshold": ("float", 0.2, 1),  # NudeNet drops detections under 0.2 itself
    "webhook_attempts": ("int", 1, 30),
    "webhook_backoff": ("float", 0.01, 3600),
    "webhook_timeout": ("float", 0.1, 120),
    "lease": ("float", 0.5, 3600),
}


def load(env: Mapping[str, str] | None = None, *, role: str = "serve", **overrides: object) -> Settings:
    """Build settings from the environment, then apply non-None overrides (command-line flags). The engine role
    (`role="engine"`) needs no API keys but does need Redis."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for attr, (kind, lo, hi) in NUMERIC.items():
        name = "FASHIONAI_" + attr.upper()
        raw = env.get(name, "").strip()
        if raw:
            values[attr] = _int(name, raw, int(lo), int(hi)) if kind == "int" else _float(name, raw, lo, hi)
    for attr in (
        "host", "engine", "public_url", "safety", "redis_url", "redis_prefix", "output_dir",
        "output_s3_bucket", "output_s3_prefix", "output_s3_endpoint_url", "output_s3_region",
    ):
        raw = env.get("FASHIONAI_" + attr.upper(), "").strip()
        if raw:
            values[attr] = raw
    credits_raw = env.get("FASHIONAI_CREDITS", "").strip()
    default_credits = _int("FASHIONAI_CREDITS", credits_raw, 0, 10**12) if credits_raw else None
    keys_raw = str(overrides.pop("api_keys", None) or env.get("FASHIONAI_API_KEYS", ""))
    credits_override = overrides.pop("credits", None)
    if credits_override is not None:
        default_credits = int(str(credits_override))
    values["api_keys"] = parse_api_keys(keys_raw, default_credits)
    hosts_raw = overrides.pop("fetch_allow_hosts", None) or env.get("FASHIONAI_FETCH_ALLOW_HOSTS", "")
    values["fetch_allow_hosts"] = tuple(h.strip().lower() for h in str(hosts_raw).split(",") if h.strip())
    internal_raw = overrides.pop("fetch_allow_internal", None) or env.get("FASHIONAI_FETCH_ALLOW_INTERNAL", "")
    values["fetch_allow_internal"] = parse_host_ports("FASHIONAI_FETCH_ALLOW_INTERNAL", str(internal_raw))
    block_raw = overrides.pop("safety_block", None) or env.get("FASHIONAI_SAFETY_BLOCK", "")
    if str(block_raw).strip():
        try:
            values["safety_block"] = content_safety.parse_labels(str(block_raw))
        except ValueError as exc:
            raise ConfigError(f"FASHIONAI_SAFETY_BLOCK: {exc}") from None
    hooks_raw = overrides.pop("webhook_allow_internal", None) or env.get("FASHIONAI_WEBHOOK_ALLOW_INTERNAL", "")
    values["webhook_allow_internal"] = parse_host_ports("FASHIONAI_WEBHOOK_ALLOW_INTERNAL", str(hooks_raw))
    for attr, value in overrides.items():
        if value is not None:
            values[attr] = value
    settings = Settings(**values)  # type: ignore[arg-type]
    validate(settings, role=role)
    return settings


def validate(settings: Settings, *, role: str = "serve") -> None:
    if settings.engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, not {settings.engine!r}")
    if settings.safety not in SAFETY_MODES:
        raise ConfigError(f"FASHIONAI_SAFETY must be one of {', '.join(SAFETY_MODES)}, not {settings.safety!r}")
    if role == "engine" and not settings.redis_url:
        raise ConfigError("the engine role takes its jobs from Redis: set FASHIONAI_REDIS_URL (or --redis-url)")
    if role == "serve" and not settings.api_keys:
        raise ConfigError("FASHIONAI_API_KEYS is empty: set at least one API key (comma-separated)")
    for attr, (_kind, lo, hi) in NUMERIC.items():
        value = getattr(settings, attr)
        if value is not None and not lo <= float(value) <= hi:
            raise ConfigError(f"{attr}={value!r} must be between {lo:g} and {hi:g}")
    if settings.redis_url and not (settings.output_dir or settings.output_s3_bucket):
        raise ConfigError(
            "FASHIONAI_REDIS_URL needs somewhere every process can read results: set FASHIONAI_OUTPUT_DIR (a shared "
            "folder) or FASHIONAI_OUTPUT_S3_BUCKET"
        )
    if (settings.output_dir or settings.output_s3_bucket) and not settings.redis_url:
        raise ConfigError("FASHIONAI_OUTPUT_DIR and FASHIONAI_OUTPUT_S3_BUCKET apply only with FASHIONAI_REDIS_URL")
