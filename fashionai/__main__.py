"""`python -m fashionai serve ...` runs the service (the API role); `python -m fashionai engine ...` runs an engine
process of a durable (Redis) deployment; `python -m fashionai edit IN PROMPT CLOTHING OUT` edits a file."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fashionai import config
from fashionai.redact import redact_urls


class _RedactUrls(logging.Filter):
    """Every log line the service writes (uvicorn's and libraries' included) has its URLs' queries and userinfo
    removed: presigned input URLs carry a signature that would let a log reader fetch the photo."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the formatter report it
            return True
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactUrls())
    # httpx logs every request URL at INFO, httpcore every connection step at DEBUG: neither belongs in our log.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _uvicorn_log_config() -> dict[str, object]:
    import uvicorn.config  # lazy: only `serve` needs uvicorn

    config = dict(uvicorn.config.LOGGING_CONFIG)
    filters = {"redact_urls": {"()": _RedactUrls}}
    handlers = {name: {**handler, "filters": ["redact_urls"]} for name, handler in config["handlers"].items()}
    return {**config, "filters": filters, "handlers": handlers}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # lazy: `edit` does not need the web stack

    from fashionai.app import create_app  # lazy: imports FastAPI and the engine pool

    try:
        settings = config.load(
            host=args.host,
            port=args.port,
            workers=args.workers,
            engine=args.engine,
            delay=args.delay,
            status_delay=args.status_delay,
            fail_rate=args.fail_rate,
            error_rate=args.error_rate,
            retention=args.retention,
            seed=args.seed,
            rate_limit=args.rate_limit,
            max_queue=args.max_queue,
            max_inflight_per_key=args.max_inflight_per_key,
            credits=args.credits,
            api_keys=args.api_keys,
            fetch_allow_hosts=args.fetch_allow_hosts,
            fetch_allow_internal=args.fetch_allow_internal,
            public_url=args.public_url,
            safety=args.safety,
            safety_threshold=args.safety_threshold,
            safety_block=args.safety_block,
            redis_url=args.redis_url,
            output_dir=args.output_dir,
        )
    except config.ConfigError as exc:
        print(f"fashionai: configuration error: {exc}", file=sys.stderr)
        return 2
    _configure_logging()
    if not settings.fetch_allow_hosts and not settings.fetch_allow_internal:
        logging.getLogger("fashionai").warning(
            "image URLs are refused (FASHIONAI_FETCH_ALLOW_HOSTS is empty); only data: URIs and base64 work"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=args.access_log,
        log_level="info",
        log_config=_uvicorn_log_config(),
        timeout_graceful_shutdown=5,
    )
    return 0


def _engine(args: argparse.Namespace) -> int:
    from fashionai import engine_role  # lazy: only this role consumes the job stream

    try:
        settings = config.load(
            role="engine",
            workers=args.workers,
            engine=args.engine,
            delay=args.delay,
            retention=args.retention,
            redis_url=args.redis_url,
            output_dir=args.output_dir,
            lease=args.lease,
            safety=args.safety,
        )
    except config.ConfigError as exc:
        print(f"fashionai: configuration error: {exc}", file=sys.stderr)
        return 2
    _configure_logging()
    engine_role.run(settings)
    return 0


def _edit(args: argparse.Namespace) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    from fashionai import engine, images  # lazy: OpenCV/mediapipe only for this command

    rgb = images.load_rgb_512(Path(args.input).read_bytes(), max_pixels=100_000_000)
    try:
        result, seconds = engine.edit(rgb, args.prompt, args.clothing)
    except engine.EngineFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    Path(args.output).write_bytes(images.encode_png(result.image))
    print(f"{args.output}: {result.meta.get('applied')} on {args.clothing} in {seconds * 1000:.0f} ms")
    print(result.meta["limitations"])
    return 0


def _add_durable_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url",
                        help="durable mode: jobs, queue and keys in this Redis (FASHIONAI_REDIS_URL; default: memory)")
    parser.add_argument("--output-dir",
                        help="durable mode: the results folder every process shares (FASHIONAI_OUTPUT_DIR)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fashionai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service (flags override FASHIONAI_* env variables)")
    serve.add_argument("--host", help="bind address (FASHIONAI_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (FASHIONAI_PORT, default 8765)")
    serve.add_argument("--workers", type=int, help="engine worker processes (FASHIONAI_WORKERS, default 1)")
    serve.add_argument("--engine", choices=config.ENGINES,
                       help="recolor (default), passthrough (load tests) or generative (recolor plus a generative "
                       "provider's shift, noise, new pattern and moved edge)")
    serve.add_argument("--delay", type=float, help="extra simulated seconds per job (FASHIONAI_DELAY)")
    serve.add_argument("--status-delay", type=float,
                       help="seconds each status/result call waits before answering (FASHIONAI_STATUS_DELAY)")
    serve.add_argument("--fail-rate", type=float, help="fraction of jobs that end FAILED (FASHIONAI_FAIL_RATE)")
    serve.add_argument("--error-rate", type=float, help="fraction of API calls answered 500/502/429")
    serve.add_argument("--retention", type=float, help="seconds results are kept (FASHIONAI_RETENTION, 3600)")
    serve.add_argument("--seed", type=int, help="seed for the fault knobs, for reproducible runs")
    serve.add_argument("--rate-limit", type=int,
                       help="submits per key per minute, 0 = off (FASHIONAI_RATE_LIMIT, 1200)")
    serve.add_argument("--max-queue", type=int, help="jobs waiting for a worker before 429 (FASHIONAI_MAX_QUEUE)")
    serve.add_argument("--max-inflight-per-key", type=int,
                       help="unfinished jobs per key before 429, 0 = off (FASHIONAI_MAX_INFLIGHT_PER_KEY, 1000)")
    serve.add_argument("--credits", type=int, help="credits per key (FASHIONAI_CREDITS; default unlimited)")
    serve.add_argument("--api-keys", help="comma-separated keys, key:credits allowed (FASHIONAI_API_KEYS)")
    serve.add_argument("--fetch-allow-hosts",
                       help="hosts image URLs may come from, * for any public host (FASHIONAI_FETCH_ALLOW_HOSTS)")
    serve.add_argument("--fetch-allow-internal",
                       help="host:port pairs fetched despite internal addresses (FASHIONAI_FETCH_ALLOW_INTERNAL)")
    serve.add_argument("--public-url", help="base URL for absolute links when behind a proxy (FASHIONAI_PUBLIC_URL)")
    serve.add_argument("--safety", choices=config.SAFETY_MODES,
                       help="screen inputs and results: auto (on for recolor), on, off (FASHIONAI_SAFETY)")
    serve.add_argument("--safety-threshold", type=float,
                       help="detector score from which a class refuses, 0.2-1 (FASHIONAI_SAFETY_THRESHOLD, 0.5)")
    serve.add_argument("--safety-block",
                       help="comma-separated NudeNet classes that refuse a job (FASHIONAI_SAFETY_BLOCK)")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=_serve)

    _add_durable_flags(serve)

    engine = sub.add_parser("engine",
                            help="durable mode: run jobs from the Redis queue (flags override FASHIONAI_* variables)")
    engine.add_argument("--workers", type=int, help="engine worker processes (FASHIONAI_WORKERS, default 1)")
    engine.add_argument("--engine", choices=config.ENGINES, help="recolor (default), passthrough or generative")
    engine.add_argument("--delay", type=float, help="extra simulated seconds per job (FASHIONAI_DELAY)")
    engine.add_argument("--retention", type=float,
                        help="seconds results are kept; must match the API's (FASHIONAI_RETENTION, 3600)")
    engine.add_argument("--lease", type=float,
                        help="seconds without renewal before another engine re-runs a job (FASHIONAI_LEASE, 30)")
    engine.add_argument("--safety", choices=config.SAFETY_MODES, help="content screening (FASHIONAI_SAFETY)")
    _add_durable_flags(engine)
    engine.set_defaults(func=_engine)

    edit = sub.add_parser("edit", help="edit one image file and write a PNG")
    edit.add_argument("input")
    edit.add_argument("prompt")
    edit.add_argument("clothing", choices=("topwear", "bottomwear"))
    edit.add_argument("output")
    edit.set_defaults(func=_edit)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
