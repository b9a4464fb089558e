"""Run a command with throwaway Redis, SeaweedFS S3 and PostgreSQL, then stop them all.

    python scripts/testenv.py [--no-s3] [--no-postgres] -- COMMAND...

The services listen on free loopback ports; their addresses reach the command as DATABASE_URL,
REDIS_URL and the AWS_* variables the settings read. Whatever happens, everything started here is
stopped and its temporary folder removed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devservices.servers import PostgresServer, RedisServer, SeaweedS3  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-s3", action="store_true", help="keep media on the local filesystem")
    parser.add_argument("--no-postgres", action="store_true", help="use the embedded SQLite default")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")

    env = dict(os.environ)
    # A developer's .env must not leak into the tests: the tests say what they need.
    env["FAI_IGNORE_DOTENV"] = "1"
    for name in ("DATABASE_URL", "AWS_STORAGE_BUCKET_NAME", "SEGMIND_API_KEY", "FASHION_AI_BASE_URL"):
        env.pop(name, None)
    with ExitStack() as stack:
        redis = RedisServer().start()
        stack.callback(redis.stop)
        env["REDIS_URL"] = env["CELERY_BROKER_URL"] = redis.url
        env["TEST_REDIS_PORT"] = str(redis.port)
        if not args.no_s3:
            s3 = SeaweedS3().start()
            stack.callback(s3.stop)
            env.update(s3.env())
        if not args.no_postgres:
            postgres = PostgresServer().start()
            stack.callback(postgres.stop)
            env["DATABASE_URL"] = postgres.url
        print(
            "testenv: redis", env["REDIS_URL"],
            "| s3", env.get("AWS_S3_ENDPOINT_URL", "off (local files)"),
            "| database", env.get("DATABASE_URL", "SQLite"),
            flush=True,
        )
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
