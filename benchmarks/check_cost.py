"""What the trust checks cost, per method, on the tutorial's model (issue 13).

Runs the analysis on the first ``--images`` rows of the tutorial with every one of them in the check sample,
and times (CPU seconds, process time) the deletion curves and the randomisation cascade apart from the
analysis itself. From the per-image numbers it projects the cost for the default 64 check images: deletion
curves (64 images), the cascade (64 images for the last step; the earlier steps on 64 for one-pass methods,
on ``checks.CASCADE_SUBSET`` for the others) and, for comparison, the single-region check and single
randomisation that came before (one explanation of each image with a randomised model, two forward passes).

    python benchmarks/check_cost.py --tutorial ../shared/tutorial [--methods gradcam occlusion] [--images 8]

A forward pass's cost is measured by timing 32 of them on the tutorial's input size.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import torch

from reportgen import analysis
from reportgen.explain import check_passes
from reportgen.explain.attribution import METHODS
from reportgen.inputs.config import make_config
from reportgen.results.checks import CASCADE, CASCADE_SUBSET

CHECK_IMAGES = 64


def timed(spent: dict, key: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.process_time() - started
    return wrapper


def forward_seconds(model_file: Path, weights: Path, size: int = 256, passes: int = 32) -> float:
    namespace: dict = {}
    exec(model_file.read_text(), namespace)
    model = namespace["model"]
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    batch = torch.randn(8, 3, size, size)
    with torch.no_grad():
        model(batch)
        started = time.process_time()
        for _ in range(passes // 8):
            model(batch)
    return (time.process_time() - started) / passes


def measure(tutorial: Path, method: str, images: int, folder: Path) -> dict:
    rows = (tutorial / "annotations_all.csv").read_text().splitlines()
    # an even mix of both classes: the file lists one identity, then the other
    half = images // 2
    body = rows[1:]
    chosen = body[:half] + body[len(body) // 2:len(body) // 2 + images - half]
    annotations = folder / f"first-{images}.csv"
    annotations.write_text("\n".join([rows[0], *chosen]) + "\n")
    config = make_config(images=tutorial / "images", annotations=annotations, target="task",
                         model_file=tutorial / "model.py", weights=tutorial / "weights.pt",
                         transform=tutorial / "transform.py", layer="layer4", target_class=1, method=method,
                         check_images=images, cache_dir=folder / "cache", workers=0, bootstrap=0)
    spent = {"deletion": 0.0, "checks": 0.0}
    original_curves, original_check = analysis.deletion_curves, analysis.Explainer._check
    analysis.deletion_curves = timed(spent, "deletion", check_passes.deletion_curves)
    analysis.Explainer._check = timed(spent, "checks", original_check)
    try:
        started = time.process_time()
        analysis.run_analysis(config)
        total = time.process_time() - started
    finally:
        analysis.deletion_curves, analysis.Explainer._check = original_curves, original_check
    cascade = spent["checks"] - spent["deletion"]
    explain_per_image = cascade / (len(CASCADE) * images)  # every step ran on every image here (images <= subset)
    deletion_per_image = spent["deletion"] / images
    single_forward = METHODS[method].single_forward
    earlier = CHECK_IMAGES if single_forward else min(CASCADE_SUBSET, CHECK_IMAGES)
    return {
        "method": method, "images": images, "cpu_run": total, "cpu_analysis_per_image": (total - spent["checks"]) / images,
        "cpu_deletion_per_image": deletion_per_image, "cpu_cascade_step_per_image": explain_per_image,
        "projected_64": {
            "deletion": deletion_per_image * CHECK_IMAGES,
            "cascade": explain_per_image * (CHECK_IMAGES + (len(CASCADE) - 1) * earlier),
            "before (one randomisation, two forward passes)": explain_per_image * CHECK_IMAGES,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    forward = forward_seconds(args.tutorial / "model.py", args.tutorial / "weights.pt")
    print(f"one forward pass of the tutorial model (256 px, batches of 8): {forward:.3f} CPU s per image", flush=True)
    report = []
    with tempfile.TemporaryDirectory() as folder:
        for method in args.methods:
            row = measure(args.tutorial, method, args.images, Path(folder))
            row["projected_64"]["before (one randomisation, two forward passes)"] += 2 * CHECK_IMAGES * forward
            report.append(row)
            print(json.dumps(row), flush=True)
    print("\n| method | analysis, CPU s / image | deletion curves, 64 images | cascade, 64 images | before: checks, 64 images |")
    print("|---|---|---|---|---|")
    for row in report:
        projected = row["projected_64"]
        print(f"| {row['method']} | {row['cpu_analysis_per_image']:.2f} | {projected['deletion']:.0f} | "
              f"{projected['cascade']:.0f} | {projected['before (one randomisation, two forward passes)']:.0f} |")


if __name__ == "__main__":
    main()
