"""Regenerate docs/screenshots/*.png: the main pages at desktop (1280) and phone (390) widths.

    .venv/bin/python scripts/screenshots.py

Runs the website's browser tests (real worker, Redis, S3, PostgreSQL, the local Fashion AI service) and the first
user's journey (home, sign-up, check your email, the gallery with a failed edit) through scripts/testenv.py with
FAI_SCREENSHOTS_DIR set, so the pictures show exactly what the tests check.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    env = {**os.environ, "FAI_SCREENSHOTS_DIR": str(REPO / "docs" / "screenshots")}
    command = [
        sys.executable, str(REPO / "scripts" / "testenv.py"), "--",
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/web/test_web_browser.py",
        "tests/servers/test_first_user_journey.py", "-k", "not sqlite",
    ]
    code = subprocess.call(command, cwd=REPO, env=env)
    for path in sorted((REPO / "docs" / "screenshots").glob("*.png")):
        print(f"{path.relative_to(REPO)}  {path.stat().st_size // 1024} KB")
    return code


if __name__ == "__main__":
    sys.exit(main())
