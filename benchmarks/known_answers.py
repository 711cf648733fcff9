"""Method x known-answer case: does each attribution method rank the planted cue first, and do the checks
agree? (issues 5 and 13)

For each case, a small CNN is trained on a dataset where a sticker decides the class
(``reportgen.synthetic.make_known_answer_case``): a sticker in one region, or one sticker over several
regions (``both_eyes``, ``lips_and_mouth``); ``saturated`` is the forehead case with its classifier scaled
up until its mean probability exceeds 0.999. Then reportgen runs with every method and prints the rank of
the cue (1 = first; for a multi-region cue, whether its regions come first), the deletion check (the area
between the ranked and random deletion curves in log-odds, its 95% interval, the verdict, and the single
top region's probability drop that the old check read), the sanity check (rank correlation after the
output layer and after every layer is randomised) and the run time.

    python benchmarks/known_answers.py [--cases left_eye forehead both_eyes saturated] [--methods gradcam]
                                       [--count 96] [--keep DIR]

``--keep DIR`` keeps the cases (and reuses those already there). Needs nothing from ../shared. The tests
(tests/test_methods.py) assert the same on the same cases.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import reportgen
from reportgen.explain.attribution import METHODS
from reportgen.synthetic import cue_regions, make_known_answer_case

DEFAULT_CASES = ("background", "left_eye", "forehead", "nose", "chin", "both_eyes", "lips_and_mouth", "saturated")
# The saturated case: the forehead model's classifier (weights and bias) times this.
SATURATION = 8.0


def run_case(case: dict, method: str, cache: Path, **options) -> tuple[dict, float]:
    started = time.time()
    options = {"check_images": 32, **options}
    results = reportgen.analyze(images=case["images"], annotations=case["annotations"], target="task",
                                model_file=case["model_file"], weights=case["weights"], transform=case["transform"],
                                target_class=1, method=method, cache_dir=cache, workers=0, **options)
    return results, time.time() - started


def rank_of(results: dict, cue: str) -> str:
    """The planted region's rank (1 = first); for a multi-region cue, the ranks of its regions."""
    ranking = [row["id"] for row in results["regions"]]
    return ",".join(str(ranking.index(region) + 1) for region in cue_regions(cue))


def make_case(root: Path, name: str, count: int) -> dict:
    region = "forehead" if name == "saturated" else name
    folder = root / region
    if (folder / "weights.pt").exists() and (folder / "training.json").exists():
        case = {"images": folder / "images", "annotations": folder / "annotations.csv",
                "model_file": folder / "model.py", "weights": folder / "weights.pt", "transform": folder / "transform.py"}
    else:
        case = make_known_answer_case(folder, region, count=count, seed=0)
    if name == "saturated":
        import torch

        weights = torch.load(case["weights"], weights_only=True)
        for key in ("classifier.weight", "classifier.bias"):
            weights[key] = weights[key] * SATURATION
        (root / "saturated").mkdir(exist_ok=True)
        torch.save(weights, root / "saturated" / "weights.pt")
        case = dict(case, weights=root / "saturated" / "weights.pt")
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--count", type=int, default=96)
    parser.add_argument("--keep", type=Path, help="keep the cases here (and reuse those already made)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = args.keep or Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        for name in args.cases:
            started = time.time()
            case = make_case(root, name, args.count)
            print(f"{name}: case ready in {time.time() - started:.1f} s", flush=True)
            cue = "forehead" if name == "saturated" else name
            for method in args.methods:
                results, seconds = run_case(case, method, root / "cache")
                faith, sanity = results["faithfulness"], results["sanity"]
                steps = sanity["steps"]
                rows.append((method, name, rank_of(results, cue), results["regions"][0]["id"], seconds,
                             results["predictions"]["mean_probability"], faith["difference"],
                             faith["difference_ci"], faith["faithful"],
                             faith["single_region"].get("top_drop_probability"), steps[0]["rank_correlation"],
                             sanity["rank_correlation"], sanity["verdict"]))
                print("  " + " | ".join(str(v) for v in rows[-1]), flush=True)
    print("\n| method | case | rank | first | seconds | mean probability | deletion: difference, log-odds (95% CI) "
          "| verdict | top region alone, probability points | sanity rho: output layer / every layer | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for method, name, rank, first, seconds, probability, difference, ci, faithful, top_points, rho_head, rho, verdict in rows:
        top_text = "–" if top_points is None else f"{100 * top_points:.1f}"
        print(f"| {method} | {name} | {rank} | {first} | {seconds:.1f} | {probability:.4f} | "
              f"{difference:.2f} ({ci[0]:.2f} to {ci[1]:.2f}) | {'passed' if faithful else 'NOT PASSED'} | "
              f"{top_text} | {rho_head:.2f} / {rho:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
