"""How long each test tier takes on this machine (issue 17: the quick run under 2 minutes, the default run
under 10; the heavy tier is CI's second step). Runs pytest once per tier and prints its wall time, the count
of tests and the slowest ones, so the numbers in a closing note can be measured again.

    python benchmarks/tier_times.py [--tiers quick default heavy] [--slowest 8]

Run it on an idle machine: on 2 cores, anything else running makes every number meaningless. It takes as
long as the tiers it runs (about 2 + 9 + 11 minutes for all three, measured on 2026-12-02).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIERS = {
    "quick": ["-m", "not slow"],
    "default": [],
    "heavy": ["--heavy", "-m", "heavy"],
}


def run_tier(name: str, slowest: int) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--durations={slowest}", *TIERS[name]]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = done.stdout.splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "(no summary)")
    print(f"{name:8s} {seconds:7.1f} s wall  exit {done.returncode}  {summary.strip('= ')}")
    for line in lines:
        if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line):
            print(f"           {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="+", choices=list(TIERS), default=list(TIERS))
    parser.add_argument("--slowest", type=int, default=8)
    arguments = parser.parse_args()
    for name in arguments.tiers:
        run_tier(name, arguments.slowest)


if __name__ == "__main__":
    main()
