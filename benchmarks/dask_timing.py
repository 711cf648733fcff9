"""A run on a local Dask cluster (--dask local) against a single run, on the demo and the tutorial.

    python benchmarks/dask_timing.py [--tutorial ../shared/tutorial] [--repeat 2] [--shards 2 4]

Each run is a fresh `reportgen run` process (what a user types), timed by wall clock and by CPU
seconds (the process and all its children, Dask's worker processes included). For each dataset:
first runs (empty landmark cache) and re-runs (cache filled), single and on Dask with each shard
count (none = reportgen's default: 2 per worker thread). It also prints run.seconds (compute time
summed over the shards, set-up of each shard included) and run.dask.seconds (from connecting to the
cluster to the merged results), and checks that the Dask run's regions equal the single run's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(arguments: list[str], out: Path) -> dict:
    cpu, started = _cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reportgen.cli", "run", *arguments, "--out", str(out),
                           "--json", str(out.with_suffix(".json"))], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    results = json.loads(out.with_suffix(".json").read_text())
    return {"wall": time.perf_counter() - started, "cpu": _cpu() - cpu, "compute": results["run"]["seconds"],
            "dask": (results["run"].get("dask") or {}).get("seconds"), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=ROOT.parent / "shared" / "tutorial")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--shards", type=int, nargs="*", default=[], help="shard counts besides the default")
    args = parser.parse_args()
    t = args.tutorial.resolve()
    datasets = {
        "demo (120 images)": ["--config", str(ROOT / "samples" / "demo.toml")],
        "tutorial (128 images)": ["--images", str(t / "images"), "--annotations", str(t / "annotations_all.csv"),
                                  "--target", "task", "--model-file", str(t / "model.py"), "--weights",
                                  str(t / "weights.pt"), "--transform", str(t / "transform.py"), "--layer", "layer4",
                                  "--target-class", "1", "--protected", "protected"],
    }
    ways = {"single": []} | {"dask local": ["--dask", "local"]} | {
        f"dask local, {n} shards": ["--dask", "local", "--shards", str(n)] for n in args.shards}
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    print("| dataset | run | cache | wall s | CPU s | run.seconds | run.dask.seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, arguments in datasets.items():
        for _repeat in range(args.repeat):
            for way, extra in ways.items():
                with tempfile.TemporaryDirectory() as folder:
                    folder = Path(folder)
                    cache = ["--cache-dir", str(folder / "cache")]
                    for kind in ("first run", "re-run"):
                        timing = run(arguments + extra + cache, folder / "report.html")
                        dask = "" if timing["dask"] is None else f"{timing['dask']:.1f}"
                        print(f"| {name} | {way} | {kind} | {timing['wall']:.1f} | {timing['cpu']:.1f} | "
                              f"{timing['compute']:.1f} | {dask} |", flush=True)
                        if way == "single":
                            reference = timing["results"]["regions"]
                        elif any(r["id"] != s["id"] or abs(r["density"] - s["density"]) > 1e-6
                                 for r, s in zip(timing["results"]["regions"], reference)):
                            print("  (the regions differ from the single run's beyond rounding)")
                    shutil.rmtree(folder / "cache", ignore_errors=True)


if __name__ == "__main__":
    main()
