"""Throwaway real services: Redis, SeaweedFS (S3) and PostgreSQL on free loopback ports.

Each class starts its server in a private temporary folder and stops it (and removes the folder) on
`stop()`. `scripts/testenv.py` uses them for a whole test session or benchmark run; fault tests start
their own instances so they can kill and restart them without disturbing the rest of the suite.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from devservices.net import find_binary, free_port, port_answers, wait_until


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fai-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = find_binary("redis-server", "/usr/sbin", "/usr/bin")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_answers(self.port), timeout=15, what=f"redis on {self.port}")
        return self

    def stop(self, *, remove: bool = True) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop(remove=False)
        self.start()


class SeaweedS3:
    """SeaweedFS in `weed mini` mode: a real S3 API that checks signatures and POST policies."""

    def __init__(self, bucket: str = "media") -> None:
        self.bucket = bucket
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fai-s3-"))
        self.access_key = "fai-test-access"
        self.secret_key = "fai-test-secret-" + os.urandom(8).hex()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def start(self) -> SeaweedS3:
        weed = find_binary("weed", str(Path(sys.executable).parent))
        # weed mini opens several ports of its own; give each a free one so parallel runs never collide.
        ports = {name: free_port() for name in ("master", "volume", "filer", "grpc_m", "grpc_v", "grpc_f")}
        args = [
            weed, "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            f"-s3.port={self.port}", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-bucket={self.bucket}",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        ]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        self.process = subprocess.Popen(
            args, stdout=open(self.dir / "weed.log", "wb"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        wait_until(self._bucket_ready, timeout=60, what=f"SeaweedFS S3 on {self.port}")
        return self

    def client(self) -> Any:  # a boto3 S3 client (boto3 ships no types)
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )

    def _bucket_ready(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"weed exited: {(self.dir / 'weed.log').read_text()[-2000:]}")
        if not port_answers(self.port):
            return False
        try:
            client = self.client()
            names = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
            if self.bucket not in names:
                client.create_bucket(Bucket=self.bucket)
            client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
            client.delete_object(Bucket=self.bucket, Key=".ready")
            return True
        except Exception:  # not ready yet: any S3 error means "try again"
            return False

    def stop(self, *, remove: bool = True) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


class PostgresServer:
    """A throwaway PostgreSQL cluster. initdb refuses root, so as root it runs as the postgres user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fai-pg-"))
        self.data = self.dir / "data"
        self.running = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        return find_binary(name, *map(str, folders))

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.dir, user="postgres", group="postgres")
        if not self.data.exists():
            self._run(self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "pg.log"),
                  "-w", "-t", "60", "start")
        self.running = True
        return self

    def stop(self, *, remove: bool = True) -> None:
        if self.running:
            try:
                self._run(self._bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
            self.running = False
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
