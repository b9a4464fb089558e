"""Start the real self-hosted Fashion AI service as a subprocess, for tests and benchmarks.

    from devservices.fashionai import run_fashionai

    with run_fashionai(delay=0.5) as fai:
        client = SegmindClient(api_key=fai.api_key, base_url=fai.base_url)

It picks a free port, waits until `GET /health` answers (workers started, models loaded), and kills the process on
exit. Durable mode: `run_fashionai(redis_url=..., output_dir=...)` runs an API process on that Redis, and
`run_fashionai(role="engine", redis_url=..., output_dir=...)` an engine process (ready once it logs so).
Needs fashionai/requirements.txt (and mediapipe for engine="recolor") installed in the running interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devservices.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
ENGINE_READY_LINE = "fashionai engine ready"  # fashionai/engine_role.py READY_LINE


@dataclass
class FashionAIServer:
    port: int
    api_key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What `SegmindClient(base_url=...)` takes: the SDK derives /v2 from it."""
        return f"{self.root_url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the service and its engine workers at once, as a crash or a lost machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            # The service runs in its own process group (it has engine worker children): stop them all.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@contextlib.contextmanager
def run_fashionai(
    *,
    port: int | None = None,
    api_keys: str = "test-key",
    engine: str = "passthrough",
    delay: float = 0,
    fail_rate: float = 0,
    error_rate: float = 0,
    retention: float = 3600,
    workers: int = 1,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    role: str = "serve",
    redis_url: str | None = None,
    redis_prefix: str | None = None,
    output_dir: str | None = None,
    lease: float | None = None,
) -> Iterator[FashionAIServer]:
    """Run `python -m fashionai serve` (or `engine`) until the block exits. `api_key` on the result is the first
    key. An engine process has no port (`port` is 0)."""
    port = 0 if role == "engine" else (port or free_port())
    common = ["--engine", engine, "--workers", str(workers), "--delay", str(delay), "--retention", str(retention)]
    if role == "engine":
        args = [sys.executable, "-m", "fashionai", "engine", *common]
    else:
        args = [
            sys.executable, "-m", "fashionai", "serve", "--host", "127.0.0.1", "--port", str(port), *common,
            "--fail-rate", str(fail_rate), "--error-rate", str(error_rate),
        ]
    args += extra_args or []
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONAI_")}
    child_env.update({"FASHIONAI_API_KEYS": api_keys, "PYTHONUNBUFFERED": "1", "GLOG_minloglevel": "2"})
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH", "")]))
    # The test object store listens on loopback: the one internal address the service is allowed to fetch.
    store = urlsplit(os.environ.get("AWS_S3_ENDPOINT_URL", ""))
    if store.hostname and store.port:
        child_env["FASHIONAI_FETCH_ALLOW_INTERNAL"] = f"{store.hostname}:{store.port}"
    durable = {"FASHIONAI_REDIS_URL": redis_url, "FASHIONAI_REDIS_PREFIX": redis_prefix,
               "FASHIONAI_OUTPUT_DIR": output_dir, "FASHIONAI_LEASE": None if lease is None else str(lease)}
    child_env.update({name: value for name, value in durable.items() if value})
    child_env.update(env or {})
    log_file = tempfile.NamedTemporaryFile(prefix="fashionai-", suffix=".log", delete=False)  # noqa: SIM115
    log_path = Path(log_file.name)
    process = subprocess.Popen(
        args, cwd=REPO_ROOT, env=child_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    log_file.close()
    first_key = api_keys.split(",")[0].split(":")[0].strip()
    server = FashionAIServer(port=port, api_key=first_key, process=process, log_path=log_path)
    try:
        _wait_ready(server, engine_role=role == "engine")
        yield server
    finally:
        server.stop()
        log_path.unlink(missing_ok=True)


def _wait_ready(server: FashionAIServer, *, engine_role: bool = False) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"fashionai exited with {server.process.returncode}:\n{server.log()}")
        if engine_role:
            if ENGINE_READY_LINE in server.log():
                return
            time.sleep(0.05)
            continue
        try:
            with urllib.request.urlopen(f"{server.root_url}/health", timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"fashionai did not become ready in {STARTUP_TIMEOUT:.0f}s:\n{server.log()}")
