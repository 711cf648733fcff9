"""Method x planted region: does each attribution method rank the planted region first? (issue 5)

For each planted region, a small CNN is trained on a dataset where a sticker in that region decides
the class (``reportgen.synthetic.make_known_answer_case``); then reportgen runs with every method and
the rank of the planted region (by density, 1 = first) is printed with the run time, the faithfulness
check (top vs random deletion drop) and the sanity check (rank correlation with a randomised model).

    python benchmarks/known_answers.py [--regions background left_eye forehead nose] [--count 96]

Needs nothing from ../shared. The tests (tests/test_methods.py) assert the same on the same cases.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import reportgen
from reportgen.attribution import METHODS
from reportgen.synthetic import make_known_answer_case

DEFAULT_REGIONS = ("background", "left_eye", "forehead", "nose")


def run_case(case: dict, method: str, cache: Path, **options) -> tuple[dict, float]:
    started = time.time()
    results = reportgen.analyze(images=case["images"], annotations=case["annotations"], target="task",
                                model_file=case["model_file"], weights=case["weights"], transform=case["transform"],
                                target_class=1, method=method, cache_dir=cache, workers=0, **options)
    return results, time.time() - started


def rank_of(results: dict, region: str) -> int:
    return [row["id"] for row in results["regions"]].index(region) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=list(DEFAULT_REGIONS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--count", type=int, default=96)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for region in args.regions:
            started = time.time()
            case = make_known_answer_case(root / region, region, count=args.count, seed=0)
            print(f"{region}: case made and model trained in {time.time() - started:.1f} s", flush=True)
            for method in args.methods:
                results, seconds = run_case(case, method, root / "cache")
                faith, sanity = results["faithfulness"], results["sanity"]
                rows.append((method, region, rank_of(results, region), results["regions"][0]["id"], seconds,
                             faith["top_drop"], faith["random_drop"], faith["faithful"],
                             sanity["rank_correlation"], sanity["top_region_randomised"]))
                print("  " + " | ".join(str(v) for v in rows[-1]), flush=True)
    print("\n| method | planted region | rank | first | seconds | top drop | random drop | faithful "
          "| sanity rho | randomised model's first |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method, region, rank, first, seconds, top, random, faithful, rho, first_random in rows:
        print(f"| {method} | {region} | {rank} | {first} | {seconds:.1f} | {top:.3f} | {random:.3f} | "
              f"{'yes' if faithful else 'NO'} | {rho:.2f} | {first_random} |")


if __name__ == "__main__":
    main()
