"""The throwaway-service package (devservices/) serves scripts/ and bench/ without the test framework."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Every module outside tests/ that starts throwaway services.
USERS = [
    "scripts/testenv.py", "scripts/dev.py",
    "bench/bench_jobs.py", "bench/bench_fashionai.py", "bench/bench_load.py", "bench/soak.py",
    "bench/bench_slow_clients.py",
]

LOAD_ALL = """
import importlib, importlib.util, pkgutil, sys
import devservices
for info in pkgutil.iter_modules(devservices.__path__, "devservices."):
    importlib.import_module(info.name)
for number, path in enumerate(sys.argv[1:]):
    spec = importlib.util.spec_from_file_location(f"user{number}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses look their module up
    spec.loader.exec_module(module)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("pytest", "_pytest", "tests"))
print(" ".join(loaded))
"""


def test_scripts_and_benchmarks_load_the_harness_without_pytest() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ALL, *USERS], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported from the test suite: {result.stdout}"
