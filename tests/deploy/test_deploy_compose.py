"""docker/compose.yaml without a Docker engine: it parses, references only what exists, and the parts that can run
on a host (the SeaweedFS command line, the health check script) do run."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservices.net import free_port, wait_until
from devservices.servers import SeaweedS3
from tests.deploy.conftest import REPO

COMPOSE_FILE = REPO / "docker" / "compose.yaml"
COMPOSE_DIR = COMPOSE_FILE.parent
SITE_SERVICES = ("migrate", "web", "worker", "worker-images", "beat")
LONG_RUNNING = ("postgres", "redis", "s3", "web", "worker", "fashionai", "proxy")
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$$` is a literal dollar for the container's shell.
VARIABLE_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def env_example_names() -> set[str]:
    names = set()
    for line in (REPO / ".env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def entrypoint_roles() -> set[str]:
    script = (REPO / "docker" / "entrypoint.sh").read_text()
    return set(re.findall(r"^\s{2}([a-z]+)\)$", script, flags=re.MULTILINE))


@pytest.mark.smoke
def test_every_interpolated_variable_is_in_env_example() -> None:
    used = set(VARIABLE_RE.findall(COMPOSE_FILE.read_text()))
    assert used, "the compose file should take its choices from .env"
    assert used - env_example_names() == set()


@pytest.mark.smoke
def test_site_services_use_the_env_file_and_the_built_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dockerfile_targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (REPO / "docker/Dockerfile").read_text(),
                                        flags=re.MULTILINE))
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert context == REPO, name
            assert (context / build["dockerfile"]).is_file(), name
            assert build["target"] in dockerfile_targets, name
        for env_file in service.get("env_file", []) if isinstance(service.get("env_file"), list) else \
                [service["env_file"]] if service.get("env_file") else []:
            # The real .env is the operator's copy of .env.example, next to it at the repository root.
            assert (COMPOSE_DIR / env_file).resolve() == REPO / ".env", name
    for name in SITE_SERVICES:
        service = services[name]
        assert service["build"]["target"] == "web"
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "fashionsite.settings_production"
        assert service["command"][0] in entrypoint_roles(), name
    assert services["fashionai"]["build"]["target"] == "fashionai"
    assert services["fashionai"]["profiles"] == ["fashionai"]


@pytest.mark.smoke
def test_migrations_run_once_before_the_site_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert "migrate" not in str(services[name]["command"]), name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.smoke
def test_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose["volumes"])
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
        if name in LONG_RUNNING:
            assert service.get("restart") == "unless-stopped", name
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        check = service.get("healthcheck", {}).get("test", [])
        if "docker/healthcheck.py" in check:
            # The role given must be one the script knows.
            role = check[check.index("docker/healthcheck.py") + 1]
            result = subprocess.run([sys.executable, str(REPO / "docker/healthcheck.py"), "--help"],
                                    capture_output=True, text=True)
            assert result.returncode == 2 and role in result.stderr, name
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_health_check_script_reports_unhealthy_and_healthy_web(tmp_path: Path) -> None:
    """docker/healthcheck.py against a tiny HTTP server standing in for nothing, then for a healthy endpoint."""
    port = free_port()
    env = {**os.environ, "HEALTHCHECK_PORT": str(port)}
    down = subprocess.run([sys.executable, "docker/healthcheck.py", "live"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "refused" in down.stderr.lower()
    (tmp_path / "health" / "live").mkdir(parents=True)
    (tmp_path / "health" / "live" / "index.html").write_text('{"status": "ok"}')
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def healthy() -> bool:
            return subprocess.run([sys.executable, "docker/healthcheck.py", "live"], cwd=REPO, env=env,
                                  capture_output=True, timeout=30).returncode == 0

        wait_until(healthy, timeout=20, what="healthcheck.py to see the server")
    finally:
        server.terminate()
        server.wait(10)


def _s3_argv(compose: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    service = compose["services"]["s3"]
    argv = [part.replace("$$", "$") for part in service["entrypoint"]] + list(service["command"])
    return argv, dict(service["environment"])


def test_s3_service_command_runs_a_working_bucket_and_refuses_to_run_open(compose: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """The s3 service's exact entrypoint and flags, run with the `weed` binary of the same SeaweedFS release."""
    argv, service_env = _s3_argv(compose)
    assert service_env["BUCKET"] == "${AWS_STORAGE_BUCKET_NAME:-}"
    weed_dir = str(Path(sys.executable).parent)
    base_env = {"PATH": f"{weed_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}

    refused = subprocess.run(argv, env={**base_env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                                        "BUCKET": "media"}, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in refused.stderr

    store = SeaweedS3(bucket="deploy-media")  # only for its client(): the server is the compose command below
    ports = {name: free_port() for name in ("master", "volume", "filer")}
    argv = [
        arg.replace("-dir=/data", f"-dir={tmp_path}").replace("-s3.port=8333", f"-s3.port={store.port}")
        for arg in argv
    ] + [f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}"]
    # Containers bind everything; on a shared host, bind loopback only.
    argv = [arg.replace("-ip.bind=0.0.0.0", "-ip.bind=127.0.0.1") for arg in argv]
    env = {**base_env, "AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key,
           "BUCKET": store.bucket}
    process = subprocess.Popen(argv, env=env, stdout=(tmp_path / "weed.log").open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    store.process = process
    try:
        def bucket_answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "weed.log").read_text()[-2000:])
            try:
                store.client().head_bucket(Bucket=store.bucket)  # created by the command's -bucket flag
                return True
            except Exception:
                return False

        wait_until(bucket_answers, timeout=60, what="the compose s3 command")
        client = store.client()
        client.put_object(Bucket=store.bucket, Key="probe.txt", Body=b"ok")
        assert client.get_object(Bucket=store.bucket, Key="probe.txt")["Body"].read() == b"ok"
        # The health check URL the compose file polls.
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{store.port}/healthz", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        # Wrong credentials are refused: the bucket is not open.
        import boto3
        from botocore.config import Config

        stranger = boto3.client("s3", endpoint_url=store.endpoint_url, region_name="us-east-1",
                                aws_access_key_id="someone", aws_secret_access_key="else",
                                config=Config(retries={"max_attempts": 1}))
        with pytest.raises(Exception, match="AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|403"):
            stranger.get_object(Bucket=store.bucket, Key="probe.txt")
    finally:
        store.stop()
