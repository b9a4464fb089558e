"""Give builds inside containers the host's pip configuration: `host_pip_config.py OUT_DIR` prints podman `-v` args.

The host's effective settings (`pip config list`: its config files and PIP_* variables) are written as one
OUT_DIR/pip.conf, mounted read-only at /etc/pip.conf inside the build, and every local path they name (a CA
bundle, a constraints file, find-links folders, file:// indexes) is mounted read-only at the same path. Nothing is
copied into an image: the mounts exist only while a RUN step runs. No index host is named here; whatever the host
uses, the build uses.
"""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

# Values that may name local files or folders.
PATH_OPTIONS = {"cert", "client-cert", "constraint", "requirement", "find-links", "index-url", "extra-index-url"}


def host_settings() -> dict[str, str]:
    """`pip config list` lines look like `global.cert='/path'` or `:env:.find-links='/path'` (env wins)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], check=True, capture_output=True, text=True
    ).stdout
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if not option or section not in {"global", "install", ":env:"}:
            continue
        (env if section == ":env:" else files)[option] = value.strip().strip("'\"")
    return {**files, **env}


def local_paths(option: str, value: str) -> list[Path]:
    paths = []
    for token in value.split():
        parts = urlsplit(token)
        if parts.scheme == "file":
            path = Path(parts.path)
            # A simple index's pages link to files relative to the index root's parent (../../files/...).
            paths.append(path.parent if option.endswith("index-url") else path)
        elif not parts.scheme and token.startswith("/"):
            paths.append(Path(token))
    return [p for p in paths if p.exists()]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = host_settings()
    config = configparser.ConfigParser(interpolation=None)
    config["global"] = settings
    with (out_dir / "pip.conf").open("w") as fh:
        config.write(fh)
    mounts = {out_dir / "pip.conf": Path("/etc/pip.conf")}
    for option, value in settings.items():
        if option in PATH_OPTIONS:
            for path in local_paths(option, value):
                mounts[path] = path
    print(" ".join(f"-v {src}:{dst}:ro" for src, dst in mounts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
