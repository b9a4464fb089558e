"""`make bench`: every benchmark under bench/, one after the other, each in its own process.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/run_all.py            # the documented runs
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/run_all.py --quick    # smoke-sized runs

Runs under scripts/testenv.py (PostgreSQL, Redis and S3 in the environment). Stops at the first benchmark that
fails (non-zero exit) and exits with its status; prints how long each took. The list is explicit: a new bench
script must be added here.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# (name, command, extra arguments for --quick)
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("Fashion AI service", [PY, "-m", "bench.bench_fashionai"], ["--runs", "10"]),
    ("engine quality scorecard", [PY, "-m", "bench.bench_engine_quality"], ["--variants", "1"]),
    ("content screening", [PY, "-m", "bench.bench_content_safety"], ["--runs", "5"]),
    ("provenance", [PY, "-m", "bench.bench_provenance"], ["--runs", "3"]),
    ("edit jobs", [PY, "bench/bench_jobs.py"], ["--quick"]),
    ("full-resolution compose", [PY, "-m", "bench.bench_compose"], ["--runs", "1", "--sizes", "2048x1536"]),
    ("dashboard", [PY, "bench/bench_dashboard.py"], ["--jobs", "10000", "--users", "100", "--runs", "3"]),
    ("site load", [PY, "bench/bench_load.py"], ["--quick"]),
    ("developer API", [PY, "bench/bench_api.py"], ["--quick"]),
    ("soak", [PY, "bench/soak.py"], ["--jobs", "200", "--users", "10"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs of every benchmark")
    args = parser.parse_args()
    timings: list[tuple[str, float]] = []
    for name, command, quick in BENCHES:
        command = command + (quick if args.quick else [])
        print(f"\n=== {name}: {' '.join(Path(c).name if c == PY else c for c in command)}", flush=True)
        started = time.monotonic()
        status = subprocess.run(command, cwd=ROOT).returncode
        timings.append((name, time.monotonic() - started))
        if status != 0:
            print(f"\n=== {name} FAILED (exit {status})", flush=True)
            return status
    print("\n=== all benchmarks passed: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
