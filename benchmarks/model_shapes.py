"""Model shape x known answer: for each kind of model reportgen reads (issue 12), is the planted cue ranked
first, does the deletion check pass, how is the model read, and what does an image cost?

Each case is a small model trained on a dataset where a sticker decides the answer
(``reportgen.synthetic``): a softmax classifier, a one-logit sigmoid classifier, a model returning
``(logits, embedding)``, a one-channel (grayscale) model, a small vision transformer, a multi-label
model with one output per attribute (CelebA format; each attribute explained in turn) and a
face-verification embedding model (pairs; the similarity of genuine pairs). Then reportgen runs with
Grad-CAM on its default layer and the default 64 checked images.

    python benchmarks/model_shapes.py [--kinds softmax sigmoid vit] [--keep DIR]

Prints one markdown table. Needs nothing from ../shared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import reportgen
from reportgen.synthetic import make_known_answer_case, make_multi_label_case, make_verification_case

KINDS = ("softmax", "sigmoid", "tuple", "gray", "vit", "multi-label", "verification")


def _runs(kind: str, root: Path):
    """(label, cue region, analyze keyword arguments) for one kind of model."""
    if kind == "multi-label":
        case = make_multi_label_case(root / kind)
        for attribute, region in (("Forehead_sticker", "forehead"), ("Chin_sticker", "chin")):
            yield f"multi-label: {attribute}", region, case, {"target": attribute, "target_class": None}
    elif kind == "verification":
        case = make_verification_case(root / kind, "forehead")
        yield "verification (pairs)", "forehead", case, {"annotations": case["pairs"], "pairs": True,
                                                         "target": "is_same", "protected": ["protected"]}
    else:
        data = root / ("forehead-gray" if kind == "gray" else "forehead")
        case = make_known_answer_case(root / kind, "forehead", count=96, seed=0, kind=kind, data_dir=data)
        yield kind, "forehead", case, {"target": "task", "target_class": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--keep", type=Path, help="keep the cases here (and reuse those already there)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        print("| model | read as | layer | cue rank | deletion: ranked − random, log-odds [95% CI] | verdict "
              "| failed | s / image |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in args.kinds:
            for label, region, case, options in _runs(kind, root):
                options = {"annotations": case.get("annotations"), "workers": 0, **options}
                started = time.time()
                results = reportgen.analyze(images=case["images"], model_file=case["model_file"],
                                            weights=case["weights"], transform=case["transform"],
                                            cache_dir=root / "cache", **options)
                seconds = time.time() - started
                run, check = results["run"], results["faithfulness"] or {}
                regions = (results["groups"]["pair=genuine"]["regions"] if run["task"] == "verification"
                           else results["regions"])
                rank = [r["id"] for r in regions].index(region) + 1
                low, high = check.get("difference_ci") or (float("nan"), float("nan"))
                verdict = "passed" if check.get("faithful") else "not confirmed"
                print(f"| {label} | {run['head']} | {run['layer']} | {rank} | {check.get('difference', float('nan')):.2f} "
                      f"[{low:.2f}, {high:.2f}] | {verdict} | {results['counts']['failed']} "
                      f"| {seconds / results['counts']['images']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
