"""docker/Dockerfile without a Docker engine: static checks, then its COPY/ENV/RUN steps replayed on this host.

The replay gives each image its own root folder R and maps the image's absolute paths (/opt/venv, /app, /tmp)
under R, builds the build context as Docker would (honouring .dockerignore), then runs the RUN commands with
the stage's ENV in a clean virtualenv. System-level steps (apt-get, useradd/groupadd, chown to the image user)
cannot run on a shared host and are skipped; docs/deploy.md lists them as untested here.
"""
from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devservices.net import free_port, wait_until
from tests.deploy.conftest import PRODUCTION_SECRET_KEY, REPO, http_get

DOCKERFILE = REPO / "docker" / "Dockerfile"
SYSTEM_STEP_RE = re.compile(r"\b(apt-get|useradd|groupadd|chown)\b")
BUILD_TOOLS_RE = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|libpq-dev|python3-dev)\b")
MAPPED_PREFIXES = ("/opt/venv", "/app", "/tmp/")
_PREFIX_RE = re.compile(r"(?<![\w./-])(?:" + "|".join(re.escape(p) for p in MAPPED_PREFIXES) + ")")


@dataclass
class Step:
    kind: str
    args: str


@dataclass
class Stage:
    name: str
    base: str
    steps: list[Step] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Stages with their instructions (continuation lines joined, comments dropped) and the global ARGs."""
    joined = re.sub(r"\\\n\s*", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        kind = kind.upper()
        if kind == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", rest.strip(), flags=re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            stages.append(Stage(name=match.group(2), base=match.group(1)))
        elif kind == "ARG" and not stages:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip()
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1].steps.append(Step(kind, rest.strip()))
    return args, stages


def dockerignore_patterns() -> tuple[list[str], list[str]]:
    excludes, includes = [], []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        (includes if line.startswith("!") else excludes).append(line.lstrip("!"))
    return excludes, includes


def ignored(relative: str) -> bool:
    excludes, includes = _PATTERNS

    def matches(pattern: str) -> bool:
        pattern = pattern.removeprefix("**/")
        parts = relative.split("/")
        # A pattern matches the path itself, any parent folder, or (for **/ patterns) any path component.
        return any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)) or any(
            fnmatch.fnmatch(part, pattern) for part in parts)

    return any(matches(p) for p in excludes) and not any(fnmatch.fnmatch(relative, p) for p in includes)


_PATTERNS = dockerignore_patterns()


def build_context(target: Path) -> Path:
    """The files `docker build .` would send, copied to target (ignored folders are not even walked)."""
    for folder, subfolders, files in os.walk(REPO):
        base = Path(folder).relative_to(REPO).as_posix()
        prefix = "" if base == "." else base + "/"
        subfolders[:] = [name for name in subfolders if not ignored(prefix + name)]
        for name in files:
            relative = prefix + name
            if ignored(relative):
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, destination)
    return target


def chain(stages: list[Stage], name: str) -> list[Stage]:
    by_name = {stage.name: stage for stage in stages}
    result = [by_name[name]]
    while result[0].base in by_name:
        result.insert(0, by_name[result[0].base])
    return result


def stages_needed(stages: list[Stage], target: str) -> list[Stage]:
    """The target's chain plus the chains of the stages it copies from, builders first."""
    order: list[Stage] = []
    for stage in chain(stages, target):
        for step in stage.steps:
            source = re.search(r"--from=(\S+)", step.args) if step.kind == "COPY" else None
            if source:
                order += [s for s in chain(stages, source.group(1)) if s not in order]
        if stage not in order:
            order.append(stage)
    return order


def replay_cache_dir() -> Path | None:
    """Where builder stages' virtualenvs are kept between runs (FAI_DOCKER_REPLAY_CACHE=off: always rebuild)."""
    configured = os.environ.get("FAI_DOCKER_REPLAY_CACHE", "")
    if configured.lower() in ("off", "0", "no"):
        return None
    return Path(configured) if configured else Path.home() / ".cache" / "fashion-ai-studio" / "docker-replay"


class Replay:
    """Replays one image's stages. /opt/venv lives in `venv_root` (cached builder output, keyed by the builder
    stage's instructions and the files it copies); /app and /tmp in a fresh `root` every time."""

    def __init__(self, root: Path, context: Path, *, venv_root: Path | None = None) -> None:
        self.root = root
        self.venv_root = venv_root or root
        self.context = context
        self.skipped: list[str] = []
        self.timings: list[tuple[str, float]] = []
        self.cached: list[str] = []

    def map(self, text: str) -> str:
        # One pass, so a mapped path (itself under /tmp) is never mapped again.
        def mapped(match: re.Match[str]) -> str:
            root = self.venv_root if match.group(0) == "/opt/venv" else self.root
            return str(root) + match.group(0)

        return _PREFIX_RE.sub(mapped, text)

    def stage_key(self, stage: Stage) -> str:
        digest = hashlib.sha256(f"{sys.version}|{stage.base}|".encode())
        for step in stage.steps:
            digest.update(f"{step.kind} {step.args}\n".encode())
            if step.kind == "COPY" and "--from=" not in step.args:
                for source in [p for p in step.args.split() if not p.startswith("--")][:-1]:
                    digest.update((self.context / source).read_bytes())
        return digest.hexdigest()[:16]

    def run_stage(self, stage: Stage, env: dict[str, str], workdir: Path, *,
                  execute: bool = True) -> tuple[dict[str, str], Path]:
        for step in stage.steps:
            if step.kind == "ENV":
                for name, value in re.findall(r"(\w+)=(\S+)", step.args):
                    env[name] = self.map(value).replace("$PATH", env["PATH"])
            elif step.kind == "WORKDIR":
                workdir = Path(self.map(step.args))
                workdir.mkdir(parents=True, exist_ok=True)
            elif not execute:
                continue
            elif step.kind == "COPY":
                parts = [p for p in step.args.split() if not p.startswith("--")]
                *sources, destination = parts
                if "--from=" in step.args:
                    # Same root for every stage of one image: the builder already put it in place.
                    assert all(Path(self.map(s)).exists() for s in sources), step.args
                    continue
                for source in sources:
                    self.copy(source, Path(self.map(destination)))
            elif step.kind == "RUN":
                if SYSTEM_STEP_RE.search(step.args):
                    self.skipped.append(step.args)
                    continue
                begun = time.monotonic()
                result = subprocess.run(["/bin/sh", "-c", self.map(step.args)], cwd=workdir, env=env,
                                        capture_output=True, text=True, timeout=300)
                self.timings.append((step.args[:40], round(time.monotonic() - begun, 1)))
                assert result.returncode == 0, f"RUN {step.args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return env, workdir

    def copy(self, source: str, destination: Path) -> None:
        origin = self.context / source
        assert origin.exists(), f"COPY source {source} is not in the build context"
        if origin.is_dir():
            shutil.copytree(origin, destination, dirs_exist_ok=True, symlinks=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)

    def run_builder(self, stage: Stage, env: dict[str, str], workdir: Path) -> tuple[dict[str, str], Path]:
        """A builder stage only makes /opt/venv: reuse it when nothing it depends on changed."""
        if self.venv_root == self.root:
            return self.run_stage(stage, env, workdir)
        self.venv_root.mkdir(parents=True, exist_ok=True)
        stamp = self.venv_root / f".built-{stage.name}-{self.stage_key(stage)}"
        with (self.venv_root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs on one machine share the cache
            if stamp.exists():
                self.cached.append(stage.name)
                return self.run_stage(stage, env, workdir, execute=False)
            shutil.rmtree(self.venv_root / "opt", ignore_errors=True)
            for old in self.venv_root.glob(f".built-{stage.name}-*"):
                old.unlink()
            result = self.run_stage(stage, env, workdir)
            stamp.touch()
            return result

    def build(self, stages: list[Stage], target: str) -> dict[str, str]:
        host_env = {"PATH": os.environ["PATH"], "HOME": str(self.root), "LANG": "C.UTF-8"}
        # ENV and WORKDIR carry over from a stage to the stages built FROM it.
        states: dict[str, tuple[dict[str, str], Path]] = {}
        for stage in stages_needed(stages, target):
            env, workdir = states.get(stage.base, (host_env, self.root))
            run = self.run_builder if stage.name.endswith("builder") else self.run_stage
            states[stage.name] = run(stage, dict(env), workdir)
        return states[target][0]


def replay(stages: list[Stage], target: str, tmp_path: Path) -> tuple[Replay, dict[str, str]]:
    context = build_context(tmp_path / "context")
    cache = replay_cache_dir()
    replayer = Replay(tmp_path / "image", context, venv_root=cache / target if cache else None)
    started = time.monotonic()
    env = replayer.build(stages, target)
    print(f"\n{target} image replay: {time.monotonic() - started:.1f} s; cached builder stages: {replayer.cached}; "
          f"RUN timings: {replayer.timings}")
    return replayer, env


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.mark.smoke
def test_dockerfile_structure(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = dockerfile
    names = [stage.name for stage in stages]
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert names[-1] == "web", "the default target (last stage) is the site"
    for stage in stages:
        for step in stage.steps:
            if step.kind == "COPY" and "--from=" not in step.args:
                for source in [p for p in step.args.split() if not p.startswith("--")][:-1]:
                    assert (REPO / source).exists(), f"COPY {source} does not exist"
                    assert source == "." or not ignored(source), f"COPY {source} is excluded by .dockerignore"
            if step.kind == "COPY" and "--from=" in step.args:
                source_stage = re.search(r"--from=(\S+)", step.args).group(1)  # type: ignore[union-attr]
                assert source_stage in names[: names.index(stage.name)], step.args
    for runtime in ("web", "fashionai"):
        steps = [step for stage in chain(stages, runtime) for step in stage.steps]
        users = [step.args for step in steps if step.kind == "USER"]
        assert users and users[-1] not in ("root", "0"), f"{runtime} must run as a non-root user"
        for step in steps:
            if step.kind == "RUN":
                assert not BUILD_TOOLS_RE.search(step.args), f"build tools in the {runtime} image: {step.args}"
    web_steps = [step for step in chain(stages, "web")[-1].steps]
    assert any(s.kind == "RUN" and "collectstatic" in s.args for s in web_steps)
    entrypoint = next(s.args for s in web_steps if s.kind == "ENTRYPOINT")
    assert os.access(REPO / entrypoint.strip('[]"').removeprefix("/app/"), os.X_OK)


def test_site_image_steps_run_in_a_clean_venv(dockerfile: tuple[dict[str, str], list[Stage]],
                                             tmp_path: Path) -> None:
    """Builder + web stages replayed: pip install into a new venv, collectstatic, then the image's app passes
    `check --deploy` and serves /health/live/ through the entrypoint."""
    _, stages = dockerfile
    replayer, env = replay(stages, "web", tmp_path)
    context = replayer.context
    assert not (context / ".env").exists() and not (context / ".venv").exists() and not (context / "tests").exists()
    app = tmp_path / "image" / "app"
    python = replayer.venv_root / "opt" / "venv" / "bin" / "python"
    assert python.exists() and str(python.parent) in env["PATH"].split(os.pathsep)[0]
    assert (app / "staticfiles" / "staticfiles.json").is_file(), "collectstatic wrote no manifest"
    assert any(replayer.skipped), "the system steps were recognised"

    runtime = {**env, "DJANGO_SECRET_KEY": PRODUCTION_SECRET_KEY, "DJANGO_ALLOWED_HOSTS": "studio.example.com",
               "FAI_IGNORE_DOTENV": "1", "MEDIA_ROOT": str(tmp_path / "media"),
               "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")}
    check = subprocess.run([str(app / "docker" / "entrypoint.sh"), "manage", "check", "--deploy",
                            "--fail-level", "WARNING"], cwd=app, env=runtime, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    runtime.update({"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "HEALTHCHECK_PORT": str(port)})
    web = subprocess.Popen([str(app / "docker" / "entrypoint.sh")], cwd=app, env=runtime,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: subprocess.run([str(python), "docker/healthcheck.py", "live"], cwd=app, env=runtime,
                                          capture_output=True).returncode == 0, timeout=60,
                   what="the replayed image's web role")
        # Static files come from the collected, hashed set (whitenoise), not from the source folder.
        css = http_get(f"http://127.0.0.1:{port}/static/css/app.css", headers={"Host": "studio.example.com",
                                                                               "X-Forwarded-Proto": "https"})
        assert css.status == 200 and b"{" in css.body
    finally:
        web.terminate()
        web.wait(20)


def test_engine_image_steps_run_in_a_clean_venv(dockerfile: tuple[dict[str, str], list[Stage]],
                                               tmp_path: Path) -> None:
    """fashionai-builder + fashionai stages replayed; the image's CMD serves /health and its health check passes."""
    _, stages = dockerfile
    _, env = replay(stages, "fashionai", tmp_path)
    app = tmp_path / "image" / "app"
    assert not (app / "fashionsite").exists(), "the engine image carries only the engine"
    cmd = next(s.args for s in stages[[s.name for s in stages].index("fashionai")].steps if s.kind == "CMD")
    argv = [part.strip(' "') for part in cmd.strip("[]").split(",")]
    port = free_port()
    runtime = {**env, "FASHIONAI_HOST": "127.0.0.1", "FASHIONAI_PORT": str(port), "FASHIONAI_API_KEYS": "k-123456"}
    engine = subprocess.Popen(argv, cwd=app, env=runtime, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: subprocess.run(["python", "docker/healthcheck.py", "fashionai"], cwd=app, env=runtime,
                                          capture_output=True).returncode == 0, timeout=60,
                   what="the replayed engine image")
        # mediapipe (installed --no-deps) imports with only what fashionai/requirements.txt pins.
        probe = subprocess.run(["python", "-c", "import mediapipe, cv2, numpy; print(numpy.__version__)"],
                               cwd=app, env=runtime, capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0 and probe.stdout.startswith("1."), probe.stderr[-2000:]
    finally:
        engine.terminate()
        engine.wait(20)

