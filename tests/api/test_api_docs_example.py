"""docs/api.md's Python example, taken from the file, runs against the `web:` command of Procfile.dev (what
`make run` serves: runserver) on the test stack's database, worker and Fashion AI service."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devservices.net import free_port, port_answers, wait_until
from devservices.samples import astronaut_png
from tests.api.conftest import REPO, ApiStack
from tests.servers.conftest import procfile_web_command

pytestmark = pytest.mark.django_db(transaction=True)


def docs_example() -> str:
    text = (REPO / "docs" / "api.md").read_text()
    section = text.split("## An example against `make run`", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "docs/api.md has no Python example under its heading"
    return match[1]


@contextlib.contextmanager
def runserver(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(procfile_web_command(port), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: port_answers(port), timeout=60, what="runserver")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def test_the_python_example_in_docs_api_md_runs(api_stack: ApiStack, api_user: Callable[..., Any],
                                               tmp_path: Path) -> None:
    _, key = api_user(credits=5)
    script = tmp_path / "api_example.py"
    script.write_text(docs_example())
    photo = tmp_path / "photo.png"
    photo.write_bytes(astronaut_png())
    with runserver(api_stack.env) as url:
        result = subprocess.run([sys.executable, str(script), str(photo)], cwd=tmp_path, capture_output=True,
                                text=True, timeout=180, env={**os.environ, "FAI_API_KEY": key, "FAI_API_URL": url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "saved edited.png; 1 credit(s) charged" in result.stdout
    assert "balance: 4" in result.stdout
    assert (tmp_path / "edited.png").read_bytes()[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb",
                                                          b"\xff\xd8\xff\xe1")
