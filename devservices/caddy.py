"""The deployment's proxy, docker/Caddyfile, run by Debian's caddy on free loopback ports (tests and benches).

The Caddyfile is used as it is; only its variables change (plain-HTTP site addresses on free ports instead of the
domains, upstream addresses, the admin endpoint). `scripts/ensure-system-packages.sh test` installs caddy.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from devservices.net import find_binary, free_port, port_answers, wait_until

REPO = Path(__file__).resolve().parents[1]
CADDYFILE = REPO / "docker" / "Caddyfile"


def caddy_binary() -> str:
    return find_binary("caddy")


def unfixed_caddyfile(text: str) -> str:
    """The Caddyfile without its body buffering and read timeouts: Caddy's defaults, as shipped before the fix.

    For the side-by-side bench only. Fails loudly when the lines it removes are no longer there."""
    without_timeouts, timeouts = re.subn(r"\n\t\ttimeouts \{.*?\n\t\t\}", "", text, flags=re.DOTALL)
    without_buffering, buffering = re.subn(r"\n\t\t(buffer_requests|max_buffer_size [^\n]*)(?=\n)", "",
                                           without_timeouts)
    if (timeouts, buffering) != (1, 2):
        raise ValueError("docker/Caddyfile changed: update unfixed_caddyfile()")
    return without_buffering


class Caddy:
    """`caddy run` with docker/Caddyfile (or another Caddyfile's text) in front of `upstream` (host:port)."""

    def __init__(self, upstream: str, *, caddyfile_text: str | None = None, media_upstream: str = "127.0.0.1:9",
                 env: dict[str, str] | None = None) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fai-caddy-"))
        self.caddyfile = CADDYFILE
        if caddyfile_text is not None:
            self.caddyfile = self.dir / "Caddyfile"
            self.caddyfile.write_text(caddyfile_text)
        self.log_path = self.dir / "caddy.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CADDY_", "SITE_", "MEDIA_"))},
            # Certificates and autosaved config stay in the private folder.
            "HOME": str(self.dir), "XDG_DATA_HOME": str(self.dir / "data"), "XDG_CONFIG_HOME": str(self.dir / "config"),
            "SITE_DOMAIN": f"http://127.0.0.1:{self.port}",
            "MEDIA_DOMAIN": f"http://127.0.0.1:{free_port()}",
            "SITE_UPSTREAM": upstream,
            "MEDIA_UPSTREAM": media_upstream,
            "CADDY_ADMIN": f"127.0.0.1:{free_port()}",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Caddy:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [caddy_binary(), "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"],
                cwd=self.dir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            return port_answers(self.port)

        wait_until(up, timeout=30, what="caddy")
        return self

    def stop(self) -> str:
        """Stop caddy, remove its folder and return what it logged."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        return log
