"""The deployment journey: the compose stack as a self-hoster runs it, driven from outside through Caddy only.

    make test-deploy               (builds the images first: scripts/build-images.sh)
    .venv/bin/python scripts/test_deploy.py [--keep] [--skip STEP ...]

It copies docker/ into a fresh project directory with a production-like .env (profiles s3, proxy and fashionai,
SITE_DOMAIN=studio.localhost and MEDIA_DOMAIN=media.localhost, so Caddy serves both with its internal CA),
starts the stack with podman-compose, waits on the containers' own health checks and then walks the site with
an HTTPS client that reaches nothing but Caddy's published port 443: sign-up with the confirmation e-mail read
from the web container's log, an edit, its result (a presigned URL on the media domain, through Caddy), the
gallery and the staff dashboard. Then the faults: kill -9 of the worker container's process in the middle of an
edit (the restart policy brings it back and the edit still finishes), a restart of Redis and one of PostgreSQL
(nothing lost, new edits still finish), and the slow-client attack through the real Caddy. Everything is torn
down at the end, also on failure (`--keep` leaves it up for a look).

Any failing step ends the run with exit status 1 and the step's name. Figures (time to healthy per service,
image sizes, step times) are printed and written to $FAI_IMAGES_DIR/journey-last.json.

What the test adds to the shipped files, and why (docker/compose.yaml and the Caddyfile are used unchanged):
  - a compose override that publishes PostgreSQL on a loopback port (the slow-client bench seeds its 200 users
    straight into the database, as bench/bench_slow_clients.py --target requires), gives the proxy the
    network aliases studio.localhost/media.localhost (the containers' way to "reach the server's own public
    name", docs/deploy.md), mounts Caddy's root certificate into the site
    containers (AWS_CA_BUNDLE: boto then trusts the bucket's internal-CA certificate, as it would trust a public
    one) and slows the engine (FASHIONAI_DELAY) so the worker can be killed while an edit is running;
  - Caddy's local CA is made by this script (openssl) and put in the caddy-data volume before the first start,
    so the client and the containers know the root before Caddy issues anything;
  - *.localhost names resolve to 127.0.0.1 in this process (glibc here does not do that by itself).
Podman 4.3 (Debian 12) has no `podman wait --condition=healthy`, so podman-compose skips `service_healthy`
conditions (it says so in a warning; the migrate role waits for the database itself), and without systemd
nothing runs HEALTHCHECKs on a timer: the journey runs each container's own health check with
`podman healthcheck run`, which is what the timer would do.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGES_DIR = Path(os.environ.get("FAI_IMAGES_DIR", "/var/tmp/fai-images"))
PROJECT = "fashion-ai-studio"  # the compose file's `name:`
SITE = "studio.localhost"
MEDIA = "media.localhost"
ORIGIN = f"https://{SITE}"
HTTPS_PORT = 443  # the compose file publishes 443:443; the presigned URLs carry no port
STATEFUL = ["postgres", "redis", "s3"]
ALL_WITH_HEALTH = ["postgres", "redis", "s3", "web", "worker", "fashionai", "proxy"]
ENGINE_DELAY_SECONDS = 6
# The slow-client bench of issue 13 item 1, run through the real Caddy (see step_slow_clients).
SLOW_CLIENT_BENCH = REPO / "bench" / "bench_slow_clients.py"


class StepFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def log(message: str) -> None:
    print(f"[deploy] {message}", flush=True)


# --- podman and podman-compose --------------------------------------------------------------------------------

def podman_env() -> dict[str, str]:
    """The private podman configuration of scripts/podman-env.sh (runc, vfs, ulimits, netavark)."""
    out = subprocess.run(
        ["bash", "-c", "source scripts/podman-env.sh && env -0"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode()
    env = dict(line.split("=", 1) for line in out.split("\0") if "=" in line)
    return {**os.environ, **{k: v for k, v in env.items() if k.startswith(("CONTAINERS_", "FAI_IMAGES_DIR"))}}


ENV: dict[str, str] = {}


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 600, check_rc: bool = True,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, input=input_text)
    if check_rc and proc.returncode != 0:
        raise StepFailed(f"`{' '.join(cmd)}` exited {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
    return proc


def podman(*args: str, timeout: float = 120, check_rc: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], timeout=timeout, check_rc=check_rc)


@dataclass
class Stack:
    root: Path
    started_at: float = 0.0
    healthy_after: dict[str, float] = field(default_factory=dict)

    @property
    def compose_cmd(self) -> list[str]:
        exe = Path(sys.executable).with_name("podman-compose")
        return [str(exe) if exe.exists() else "podman-compose", "--env-file", ".env",
                "-f", "docker/compose.yaml", "-f", "docker/journey.override.yaml"]

    def compose(self, *args: str, timeout: float = 900, check_rc: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.compose_cmd, *args], cwd=self.root, timeout=timeout, check_rc=check_rc)

    def containers(self) -> dict[str, dict[str, Any]]:
        out = podman("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "json").stdout
        found: dict[str, dict[str, Any]] = {}
        for item in json.loads(out or "[]"):
            service = (item.get("Labels") or {}).get("com.docker.compose.service")
            if service:
                found[service] = item
        return found

    def container(self, service: str) -> str:
        found = self.containers().get(service)
        check(found, f"no container for service {service}")
        assert found is not None
        return str(found["Names"][0])

    def inspect(self, service: str, fmt: str) -> str:
        return podman("inspect", "--format", fmt, self.container(service)).stdout.strip()

    def logs(self, service: str, tail: int | None = None) -> str:
        args = ["logs", *(["--tail", str(tail)] if tail else []), self.container(service)]
        proc = podman(*args, check_rc=False)
        return proc.stdout + proc.stderr

    def healthcheck(self, service: str) -> tuple[bool, str]:
        """Run the container's own HEALTHCHECK now, as podman's systemd timer would."""
        proc = podman("healthcheck", "run", self.container(service), check_rc=False, timeout=60)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def wait_healthy(self, services: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(services)
        last: dict[str, str] = {}
        while pending:
            for service in list(pending):
                state = self.containers().get(service, {}).get("State", "missing")
                if state != "running":
                    last[service] = f"container {state}"
                    continue
                ok, reason = self.healthcheck(service)
                if ok:
                    pending.remove(service)
                    self.healthy_after.setdefault(service, round(time.monotonic() - self.started_at, 1))
                else:
                    last[service] = reason or "unhealthy"
            if pending and time.monotonic() > deadline:
                reasons = "; ".join(f"{s}: {last.get(s, '?')[-300:]}" for s in pending)
                raise StepFailed(f"not healthy after {timeout:.0f} s: {reasons}")
            if pending:
                time.sleep(2)


# --- the project directory and its .env -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(root: Path) -> dict[str, str]:
    if root.exists():
        shutil.rmtree(root)
    (root / "docker").mkdir(parents=True)
    for name in ("compose.yaml", "Caddyfile"):
        shutil.copy2(REPO / "docker" / name, root / "docker" / name)
    # Caddy's local CA, known before Caddy starts (see the module docstring).
    ca = root / "ca"
    ca.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(ca / "root.key"), "-out", str(ca / "root.crt"), "-days", "30",
         "-subj", "/CN=Fashion AI Studio deploy journey root",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True,
    )
    shutil.copy2(ca / "root.crt", root / "docker" / "journey-ca.crt")
    api_key = secrets.token_hex(24)
    env = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": SITE,
        "DJANGO_CSRF_TRUSTED_ORIGINS": ORIGIN,
        "SITE_URL": ORIGIN,
        "DEFAULT_FROM_EMAIL": "Fashion AI Studio <noreply@studio.localhost>",
        # Account e-mails go to the web container's log, where the journey reads the confirmation link.
        "EMAIL_URL": "consolemail://",
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "COMPOSE_PROFILES": "s3,proxy,fashionai",
        "SITE_DOMAIN": SITE,
        "MEDIA_DOMAIN": MEDIA,
        "AWS_STORAGE_BUCKET_NAME": "media",
        "AWS_S3_ENDPOINT_URL": f"https://{MEDIA}",
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": secrets.token_hex(12),
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(24),
        "AWS_CA_BUNDLE": "/run/journey/ca.crt",
        "FASHION_AI_BASE_URL": "http://fashionai:8765/v1",
        "FASHION_AI_API_KEY": api_key,
        "FASHIONAI_API_KEYS": api_key,
        "FASHION_AI_SEND_DATA_URI": "true",
        "FASHIONAI_WORKERS": "1",
        # 2 shared cores: fewer processes than the 4 x cores + 1 default.
        "WEB_CONCURRENCY": "3",
        "CELERY_WORKER_CONCURRENCY": "2",
        # Loopback ports for a host proxy; free ones, so a developer's `make run` on 8000 does not collide.
        "WEB_PORT": str(free_port()),
        "S3_PORT": str(free_port()),
        # Not a compose variable: the override publishes PostgreSQL here for the slow-client bench's seeding.
        "JOURNEY_POSTGRES_PORT": str(free_port()),
        "POSTGRES_IMAGE": "localhost/fai-postgres:local",
        "REDIS_IMAGE": "localhost/fai-redis:local",
        "CADDY_IMAGE": "localhost/fai-caddy:local",
        "SEAWEEDFS_IMAGE": "localhost/fai-seaweedfs:local",
    }
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    (root / ".env").chmod(0o600)
    site_extra = {"volumes": ["./journey-ca.crt:/run/journey/ca.crt:ro"]}
    override = {
        "services": {
            **{name: site_extra for name in ("migrate", "web", "worker", "beat")},
            "fashionai": {"environment": {"FASHIONAI_DELAY": str(ENGINE_DELAY_SECONDS)}},
            "proxy": {"networks": {"default": {"aliases": [SITE, MEDIA]}}},
            "postgres": {"ports": [f"127.0.0.1:{env['JOURNEY_POSTGRES_PORT']}:5432"]},
        }
    }
    (root / "docker" / "journey.override.yaml").write_text(json.dumps(override, indent=2))
    return env


def seed_caddy_ca(root: Path) -> None:
    volume = f"{PROJECT}_caddy-data"
    podman("volume", "create", volume, check_rc=False)
    mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())
    target = mountpoint / "caddy" / "pki" / "authorities" / "local"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("root.crt", "root.key"):
        shutil.copy2(root / "ca" / name, target / name)
    (target / "root.key").chmod(0o600)


# --- the outside client ------------------------------------------------------------------------------------------

_getaddrinfo = socket.getaddrinfo


def _resolve_localhost(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


class Browser:
    """An HTTPS client that talks to Caddy only, trusts only the journey's CA and keeps cookies like a browser."""

    def __init__(self, ca_file: Path) -> None:
        import httpx

        socket.getaddrinfo = _resolve_localhost
        context = ssl.create_default_context(cafile=str(ca_file))
        self.http = httpx.Client(verify=context, follow_redirects=True, timeout=30,
                                 headers={"User-Agent": "deploy-journey/1"})

    def get(self, path: str, expect: int = 200) -> Any:
        response = self.http.get(path if path.startswith("https://") else ORIGIN + path)
        check(response.status_code == expect, f"GET {path}: HTTP {response.status_code}, expected {expect}")
        return response

    def csrf(self, html: str) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        check(match, "no CSRF token in the form")
        assert match is not None
        return match.group(1)

    def post_form(self, path: str, data: dict[str, str], files: dict[str, Any] | None = None,
                  form_path: str | None = None) -> Any:
        page = self.get(form_path or path)
        data = {"csrfmiddlewaretoken": self.csrf(page.text), **data}
        url = str(page.url) if form_path is None else ORIGIN + path
        response = self.http.post(url, data=data, files=files, headers={"Referer": str(page.url), "Origin": ORIGIN})
        check(response.status_code == 200, f"POST {path}: HTTP {response.status_code}")
        return response


def photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    out = io.BytesIO()
    astronaut = data.astronaut()  # type: ignore[no-untyped-call]
    Image.fromarray(astronaut).resize((512, 512)).save(out, format="JPEG", quality=90)
    return out.getvalue()


# --- the journey ------------------------------------------------------------------------------------------------

@dataclass
class Journey:
    stack: Stack
    env: dict[str, str]
    browser: Browser | None = None
    email: str = ""
    password: str = ""
    jobs: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def web(self) -> Browser:
        assert self.browser is not None
        return self.browser

    # each step_* is one named step; the docstring's first line is its name in the report
    def step_up(self) -> None:
        """start the stack with podman-compose and wait on the health checks"""
        stack = self.stack
        stack.started_at = time.monotonic()
        # --no-deps: podman 4.3 cannot start a container whose --requires chain is longer than one (web -> migrate
        # -> postgres: "generating dependency graph ... not found in input list"); the start order stays.
        stack.compose("up", "-d", "--no-deps")
        stack.wait_healthy(STATEFUL, timeout=300)
        deadline = time.monotonic() + 300
        while True:
            migrate = stack.containers().get("migrate", {})
            if migrate.get("State") == "exited":
                break
            check(time.monotonic() < deadline, "migrate did not finish in 300 s")
            time.sleep(2)
        check(migrate.get("ExitCode") == 0, f"migrate exited {migrate.get('ExitCode')}: "
                                            f"{stack.logs('migrate', tail=30)}")
        stack.healthy_after["migrate (exited 0)"] = round(time.monotonic() - stack.started_at, 1)
        stack.wait_healthy([s for s in ALL_WITH_HEALTH if s not in STATEFUL], timeout=300)
        check(stack.containers().get("beat", {}).get("State") == "running", "beat is not running")
        self.figures["healthy_after_seconds"] = stack.healthy_after

    def step_non_root(self) -> None:
        """site and engine containers run as a non-root user"""
        for service in ("web", "worker", "beat", "fashionai"):
            uid = podman("exec", self.stack.container(service), "id", "-u").stdout.strip()
            check(uid not in ("", "0"), f"{service} runs as uid {uid or '?'}")

    def step_outside_only(self) -> None:
        """only Caddy answers from outside; TLS with the internal CA; /health/ is closed"""
        self.browser = Browser(self.stack.root / "ca" / "root.crt")
        response = self.web.get("/")
        check(response.url.scheme == "https", "not HTTPS")
        check("strict-transport-security" in response.headers, "no HSTS header through Caddy")
        self.web.get("/health/ready/", expect=404)
        import httpx

        plain = httpx.get(f"http://{SITE}/", follow_redirects=False, timeout=10)
        check(plain.status_code in (301, 308) and plain.headers.get("location", "").startswith("https://"),
              f"plain HTTP is not redirected to HTTPS (HTTP {plain.status_code})")

    def step_signup(self) -> None:
        """sign up, confirm with the link from the web container's log"""
        self.email = f"journey-{secrets.token_hex(4)}@example.com"
        self.password = "Journey-" + secrets.token_urlsafe(12)
        response = self.web.post_form("/accounts/signup/", {
            "email": self.email, "password1": self.password, "password2": self.password})
        check("/accounts/confirm-email/" in str(response.url), f"sign-up ended at {response.url}")
        link = None
        for _ in range(30):
            found = re.findall(r"https://studio\.localhost/accounts/confirm-email/[^\s\"<>]+", self.stack.logs("web"))
            if found:
                link = found[-1]
                break
            time.sleep(1)
        check(link, "no confirmation link in the web container's log")
        assert link is not None
        page = self.web.get(link)
        confirmed = self.web.http.post(str(page.url), data={"csrfmiddlewaretoken": self.web.csrf(page.text)},
                                       headers={"Referer": str(page.url), "Origin": ORIGIN})
        check(confirmed.status_code == 200, f"confirming: HTTP {confirmed.status_code}")
        balance = re.search(r'data-testid="home-balance">(\d+)<', confirmed.text)
        check(balance, f"not logged in with a balance after confirming (at {confirmed.url})")
        assert balance is not None
        self.figures["starter_credits"] = int(balance.group(1))

    def balance(self) -> int:
        match = re.search(r'data-testid="home-balance">(\d+)<', self.web.get("/").text)
        check(match, "no balance on the home page")
        assert match is not None
        return int(match.group(1))

    def submit_edit(self, prompt: str) -> str:
        response = self.web.post_form("/edit/new/", {"prompt": prompt, "clothing": "topwear"},
                                      files={"image": ("me.jpg", photo_bytes(), "image/jpeg")})
        match = re.search(r"/edits/([0-9a-f-]{36})/", str(response.url))
        check(match, f"the edit form did not lead to an edit page (at {response.url}): "
                     f"{re.findall(r'role=.alert.[^>]*>([^<]+)', response.text)[:3]}")
        assert match is not None
        self.jobs.append(match.group(1))
        return match.group(1)

    def phase(self, job: str) -> tuple[str, str]:
        html = self.web.get(f"/edits/{job}/").text
        match = re.search(r'data-testid="job-panel" data-phase="([a-z_]+)"', html)
        check(match, f"no job panel on /edits/{job}/")
        assert match is not None
        return match.group(1), html

    def wait_done(self, job: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            phase, html = self.phase(job)
            if phase == "done":
                return html
            check(phase not in ("failed", "expired"), f"edit {job} ended {phase}: "
                                                      f"{re.findall(r'failure-reason.>([^<]+)', html)}")
            check(time.monotonic() < deadline, f"edit {job} still {phase} after {timeout:.0f} s")
            time.sleep(1)

    def step_edit(self) -> None:
        """make an edit and see its result, served from the bucket through Caddy"""
        start = time.monotonic()
        job = self.submit_edit("a person wearing a red hoodie")
        html = self.wait_done(job, timeout=120)
        self.figures["first_edit_seconds"] = round(time.monotonic() - start, 1)
        after = re.search(r'class="compare-after" src="([^"]+)"', html)
        check(after, "no result image on the finished edit")
        assert after is not None
        url = after.group(1).replace("&amp;", "&")
        check(url.startswith(f"https://{MEDIA}/"), f"result URL is not on the media domain: {url[:80]}")
        image = self.web.get(url)
        check(image.content[:3] == b"\xff\xd8\xff" or image.content[:8] == b"\x89PNG\r\n\x1a\n",
              "the result is not an image")
        download = self.web.get(f"/edits/{job}/download/")
        check(len(download.content) > 1000, "download is empty")

    def step_gallery(self) -> None:
        """the gallery lists the edit"""
        html = self.web.get("/gallery/").text
        check(self.jobs[0] in html, "the edit is not in the gallery")

    def step_staff(self) -> None:
        """an operator makes the user staff; the staff dashboard opens"""
        self.stack.compose("exec", "-T", "web", "python", "manage.py", "shell", "-c",
                           "from django.contrib.auth import get_user_model; "
                           f"get_user_model().objects.filter(email='{self.email}')"
                           ".update(is_staff=True, is_superuser=True)")
        html = self.web.get("/staff/dashboard/").text
        check('data-testid="kpi-jobs"' in html, "the staff dashboard has no jobs figure")

    def step_kill_worker(self) -> None:
        """kill -9 the worker in the middle of an edit: it comes back and the edit finishes"""
        before_balance = self.balance()
        restarts = int(self.stack.inspect("worker", "{{.RestartCount}}") or 0)
        job = self.submit_edit("a person wearing a green jacket")
        deadline = time.monotonic() + 30
        while self.phase(job)[0] in ("queued", "created"):
            check(time.monotonic() < deadline, "the edit never started")
            time.sleep(0.5)
        pid = int(self.stack.inspect("worker", "{{.State.Pid}}"))
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while int(self.stack.inspect("worker", "{{.RestartCount}}") or 0) <= restarts or \
                self.stack.inspect("worker", "{{.State.Status}}") != "running":
            check(time.monotonic() < deadline, "the restart policy did not bring the worker back in 60 s")
            time.sleep(1)
        self.stack.wait_healthy(["worker"], timeout=120)
        self.wait_done(job, timeout=300)
        self.figures["edit_done_after_worker_kill_seconds"] = round(time.monotonic() - killed_at, 1)
        check(self.balance() == before_balance - 1, "the killed edit was not charged exactly once")

    def _restart(self, service: str) -> None:
        balance, jobs = self.balance(), list(self.jobs)
        start = time.monotonic()
        self.stack.compose("restart", service)
        self.stack.wait_healthy([service, "web"], timeout=180)
        self.figures[f"{service}_restart_to_healthy_seconds"] = round(time.monotonic() - start, 1)
        check(self.balance() == balance, f"balance changed across the {service} restart")
        gallery = self.web.get("/gallery/").text
        check(all(job in gallery for job in jobs), f"edits missing from the gallery after the {service} restart")
        job = self.submit_edit(f"a person wearing a blue shirt after {service} restarted")
        self.wait_done(job, timeout=180)

    def step_restart_redis(self) -> None:
        """restart Redis: the session, the edits and the balance stay, a new edit finishes"""
        self._restart("redis")

    def step_restart_postgres(self) -> None:
        """restart PostgreSQL: the session, the edits and the balance stay, a new edit finishes"""
        self._restart("postgres")

    def step_slow_clients(self) -> None:
        """the slow-client attack (issue 13 item 1) through the real Caddy"""
        check(SLOW_CLIENT_BENCH.exists(), f"NOT RUN: {SLOW_CLIENT_BENCH.relative_to(REPO)} is not in this checkout")
        env = {**os.environ,
               # The bench seeds its users straight into the stack's database and bucket, signing their sessions
               # with the stack's key (the journey's override publishes PostgreSQL on loopback for this).
               "DATABASE_URL": f"postgres://fashion:{self.env['POSTGRES_PASSWORD']}@127.0.0.1:"
                               f"{self.env['JOURNEY_POSTGRES_PORT']}/fashion",
               "DJANGO_SECRET_KEY": self.env["DJANGO_SECRET_KEY"],
               "AWS_STORAGE_BUCKET_NAME": self.env["AWS_STORAGE_BUCKET_NAME"],
               "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.env['S3_PORT']}",
               "AWS_S3_REGION_NAME": self.env["AWS_S3_REGION_NAME"],
               "AWS_ACCESS_KEY_ID": self.env["AWS_ACCESS_KEY_ID"],
               "AWS_SECRET_ACCESS_KEY": self.env["AWS_SECRET_ACCESS_KEY"]}
        proc = subprocess.run(
            [sys.executable, str(SLOW_CLIENT_BENCH), "--url", ORIGIN, "--ca-file", str(self.stack.root / "ca/root.crt"),
             "--resolve", f"{SITE}:127.0.0.1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        print(proc.stdout[-4000:], flush=True)
        self.figures["slow_clients_output"] = proc.stdout[-4000:]
        check(proc.returncode == 0, f"slow-client bench through Caddy exited {proc.returncode}: "
                                    f"{(proc.stdout[-800:] + proc.stderr[-1500:])}")


STEPS = ["up", "non_root", "outside_only", "signup", "edit", "gallery", "staff", "kill_worker",
         "restart_redis", "restart_postgres", "slow_clients"]


def image_sizes() -> dict[str, str]:
    sizes = {}
    for image in ("fashion-ai-studio:local", "fashion-ai-engine:local", "fai-postgres:local", "fai-redis:local",
                  "fai-caddy:local", "fai-seaweedfs:local"):
        proc = podman("image", "inspect", "--format", "{{.Size}}", image, check_rc=False)
        sizes[image] = f"{int(proc.stdout.strip()) / 1e6:.0f} MB" if proc.returncode == 0 else "missing"
    return sizes


@contextlib.contextmanager
def timed(name: str, results: list[dict[str, Any]]) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        results.append({"step": name, "seconds": round(time.monotonic() - start, 1)})


def teardown(stack: Stack) -> None:
    log("teardown: podman-compose down -v")
    if (stack.root / ".env").exists():
        stack.compose("--profile", "s3", "--profile", "proxy", "--profile", "fashionai", "down", "-v", "-t", "10",
                      check_rc=False)
    for item in stack.containers().values():
        podman("rm", "-f", str(item["Names"][0]), check_rc=False)
    volumes = podman("volume", "ls", "--format", "{{.Name}}", check_rc=False).stdout.split()
    for volume in volumes:
        if volume.startswith(f"{PROJECT}_"):
            podman("volume", "rm", "-f", volume, check_rc=False)


def diagnostics(stack: Stack) -> None:
    for service, item in sorted(stack.containers().items()):
        print(f"----- {service}: {item.get('State')} (exit {item.get('ExitCode')}) -----", flush=True)
        print(stack.logs(service, tail=25)[-3000:], flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the stack running at the end")
    parser.add_argument("--skip", action="append", default=[], choices=STEPS, help="leave a step out (debugging)")
    args = parser.parse_args(argv)
    ENV.update(podman_env())
    stack = Stack(root=IMAGES_DIR / "journey")
    teardown(stack)  # a stack left over from an interrupted run
    env = write_project(stack.root)
    seed_caddy_ca(stack.root)
    journey = Journey(stack=stack, env=env)
    journey.figures["image_sizes"] = image_sizes()
    results: list[dict[str, Any]] = []
    failed: str | None = None
    started = time.monotonic()
    steps = [s for s in STEPS if s not in args.skip]
    try:
        for number, name in enumerate(steps, 1):
            step: Callable[[], None] = getattr(journey, f"step_{name}")
            title = (step.__doc__ or name).strip()
            log(f"step {number}/{len(steps)} {name}: {title}")
            try:
                with timed(name, results):
                    step()
            except Exception as exc:  # noqa: BLE001 (any failure is reported with its step)
                failed = name
                log(f"FAILED at step {name} ({title}): {exc}")
                if not isinstance(exc, StepFailed):
                    traceback.print_exc()
                diagnostics(stack)
                break
            log(f"ok {name} ({results[-1]['seconds']} s)")
    finally:
        journey.figures["steps"] = results
        journey.figures["total_seconds"] = round(time.monotonic() - started, 1)
        journey.figures["failed_step"] = failed
        journey.figures["skipped_steps"] = args.skip
        (IMAGES_DIR / "journey-last.json").write_text(json.dumps(journey.figures, indent=2))
        if not args.keep:
            teardown(stack)
    log(json.dumps({k: v for k, v in journey.figures.items() if k != "slow_clients_output"}, indent=2))
    if failed:
        log(f"deployment journey FAILED at step: {failed}")
        return 1
    if args.skip:
        log(f"deployment journey passed WITH STEPS LEFT OUT: {', '.join(args.skip)}")
        return 1
    log("deployment journey passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
