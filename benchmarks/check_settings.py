"""How many random orders, and up to which removed area? The deletion check's settings, measured (issue 13).

Runs the analysis once with generous settings (``--orders`` random orders per image, curves up to the
whole image), keeps every image's deletion record, and then reads the same records with fewer orders
and smaller area limits: for each setting, the area between the curves with its 95% interval, the
interval's width, the verdict, and the forward passes per image it would have cost. Also times the two
checks (deletion curves, randomisation cascade) in CPU seconds.

    python benchmarks/check_settings.py --tutorial ../shared/tutorial [--method gradcam] [--check-images 64]
    python benchmarks/check_settings.py --known forehead [--kind softmax]   # a known-answer case (made here)
    python benchmarks/check_settings.py --known forehead --saturate 8       # its classifier scaled up 8x
    python benchmarks/check_settings.py --case /tmp/cases/both_eyes          # a case made before

CPU times are process times (both threads); the machine's load changes wall time, not these much.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from reportgen import analysis
from reportgen.explain import check_passes
from reportgen.inputs.config import make_config
from reportgen.results.checks import area_grid, faithfulness_summary, image_curves, mean_over_area, sanity_summary

LIMITS = (0.1, 0.25, 0.5, 1.0)
ORDERS = (1, 2, 4, 8)


def passes_per_image(records: list[dict], limit: float, orders: int) -> float:
    """Forward passes per image the deletion curves cost with these settings (the untouched image included)."""
    def steps(curve):
        areas = np.asarray(curve["area"])
        reached = np.flatnonzero(areas >= limit - 1e-9)
        return reached[0] + 1 if len(reached) else len(areas)
    return float(np.mean([1 + steps(r["ranked"]) + sum(steps(c) for c in r["random"][:orders]) for r in records]))


def within_and_between(records: list[dict], limit: float) -> tuple[float, float]:
    """Variance of an image's difference (ranked minus one random order, mean over the area range) between
    random orders of the same image, and between images (of their mean over orders)."""
    grid = area_grid(limit)
    per_order = []
    for r in records:
        ranked, _ = image_curves(r, grid)
        per_order.append([mean_over_area(ranked - image_curves(dict(r, random=[c]), grid)[1], grid)
                          for c in r["random"]])
    per_order = np.array(per_order)
    return float(per_order.var(1, ddof=1).mean()), float(per_order.mean(1).var(ddof=1))


def measure(config, orders: int, largest: float = 1.0) -> dict:
    timing = {"deletion": 0.0, "checks": 0.0}
    curves = functools.partial(check_passes.deletion_curves, orders=orders, limit=largest)

    def deletion(*args, **kwargs):
        started = time.process_time()
        try:
            return curves(*args, **kwargs)
        finally:
            timing["deletion"] += time.process_time() - started

    original = analysis.Explainer._check

    def check(self, *args, **kwargs):
        started = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            timing["checks"] += time.process_time() - started

    analysis.deletion_curves, analysis.Explainer._check = deletion, check
    try:
        started = time.process_time()
        state, context = analysis.run_analysis(config)
        total = time.process_time() - started
    finally:
        analysis.deletion_curves, analysis.Explainer._check = check_passes.deletion_curves, original
    records = state.faithfulness
    rows = []
    for limit in [limit for limit in LIMITS if limit <= largest]:
        between = within_and_between(records, limit)
        for k in ORDERS:
            if k > orders:
                continue
            summary = faithfulness_summary(records, config.baseline, limit=limit, orders=k)
            low, high = summary["difference_ci"]
            rows.append({"limit": limit, "orders": k, "difference": summary["difference"], "ci": [low, high],
                         "width": high - low, "faithful": summary["faithful"],
                         "passes_per_image": passes_per_image(records, limit, k),
                         "variance_within": between[0], "variance_between": between[1]})
    sanity = sanity_summary(state.sanity)
    results = state.results(context)
    return {"images": len(records), "cpu_seconds": {"run": total, "checks": timing["checks"],
                                                    "deletion_at_full_settings": timing["deletion"],
                                                    "cascade": timing["checks"] - timing["deletion"]},
            "mean_probability": (results.get("predictions") or {}).get("mean_probability"),
            "face_area": {g["id"]: g.get("area") for g in results.get("region_groups") or []
                          if g.get("id") in ("inner_face", "outside_face")},
            "ranking": [r["id"] for r in results["regions"]][:4], "settings": rows,
            "sanity": {k: sanity[k] for k in ("rank_correlation", "rank_correlation_ci", "verdict")},
            "sanity_steps": [(s["randomised"], s["rank_correlation"], s["images"], s["zero_maps"])
                             for s in sanity["steps"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path)
    parser.add_argument("--known", help="a planted region (or a multi-region cue such as both_eyes)")
    parser.add_argument("--case", type=Path, help="an existing known-answer case folder (make_known_answer_case)")
    parser.add_argument("--kind", default="softmax")
    parser.add_argument("--saturate", type=float, default=0.0, help="scale the known-answer classifier by this")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--check-images", type=int, default=64)
    parser.add_argument("--orders", type=int, default=8)
    parser.add_argument("--largest-limit", type=float, default=1.0, help="curves are measured up to this area")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.tutorial:
            t = args.tutorial
            config = make_config(images=t / "images", annotations=t / "annotations_all.csv", target="task",
                                 model_file=t / "model.py", weights=t / "weights.pt", transform=t / "transform.py",
                                 layer="layer4", target_class=1, protected=["protected"], method=args.method,
                                 check_images=args.check_images, cache_dir=Path(folder) / "cache", workers=0)
        else:
            from reportgen.synthetic import make_known_answer_case

            if args.case:
                case = {"images": args.case / "images", "annotations": args.case / "annotations.csv",
                        **{name: args.case / f"{name.split('_')[0]}.py" for name in ("model_file", "transform")},
                        "weights": args.case / "weights.pt"}
                if args.saturate:
                    import shutil

                    shutil.copy(case["weights"], Path(folder) / "weights.pt")
                    case["weights"] = Path(folder) / "weights.pt"
            else:
                case = make_known_answer_case(Path(folder) / "case", args.known, count=96, seed=0, kind=args.kind)
            if args.saturate:
                import torch

                weights = torch.load(case["weights"])
                for name in ("classifier.weight", "classifier.bias"):
                    weights[name] = weights[name] * args.saturate
                torch.save(weights, case["weights"])
            config = make_config(images=case["images"], annotations=case["annotations"], target="task",
                                 model_file=case["model_file"], weights=case["weights"],
                                 transform=case["transform"], target_class=1, method=args.method,
                                 check_images=args.check_images, cache_dir=Path(folder) / "cache", workers=0)
        report = measure(config, args.orders, args.largest_limit)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(json.dumps({k: v for k, v in report.items() if k != "settings"}, indent=1))
    print("| limit | orders | difference (log-odds) | 95% CI | width | passes | forward passes / image |")
    print("|---|---|---|---|---|---|---|")
    for row in report["settings"]:
        print(f"| {row['limit']} | {row['orders']} | {row['difference']:.3f} | {row['ci'][0]:.3f} to {row['ci'][1]:.3f} "
              f"| {row['width']:.3f} | {'yes' if row['faithful'] else 'NO'} | {row['passes_per_image']:.1f} |")
    for limit in sorted({r["limit"] for r in report["settings"]}):
        row = next(r for r in report["settings"] if r["limit"] == limit)
        print(f"limit {limit}: variance of an image's difference between random orders "
              f"{row['variance_within']:.3f}, between images {row['variance_between']:.3f}")


if __name__ == "__main__":
    main()
