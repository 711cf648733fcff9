"""Regenerate the bundled demo: samples/images/, annotations.csv, model.py, weights.pt, transform.py.

    PYTHONPATH=. python samples/make_samples.py

The demo is a planted-cue dataset (see reportgen/synthetic.py): 120 augmented variants of two
public-domain portraits (samples/sources/), half of them with a lime-green sticker on the forehead
(task = 1), and a SmallFaceNet trained to tell them apart. reportgen's demo runs on these files as they
are; nothing is trained at run time. Deterministic on a given machine (fixed seed); takes ~20 s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from reportgen.synthetic import (
    MIN_ACCURACY, TARGET_LAYER, make_planted_dataset, train_small_cnn, write_model_files,
)

HERE = Path(__file__).resolve().parent
REGION = "forehead"  # where class 1's sticker sits: the answer the demo report should find
COUNT = 120  # 60 per portrait, 30 of each with the sticker
SEED = 0
EPOCHS = 60
# 86 rather than the generator's default 88: keeps the 120 images under 2.5 MB (2.43 MB; 88 gave 2.52).
QUALITY = 86


def main() -> int:
    # Old images go first, so a smaller COUNT leaves no stray files behind.
    images = HERE / "images"
    for old in images.glob("*.jpg") if images.is_dir() else ():
        old.unlink()
    started = time.perf_counter()
    make_planted_dataset(HERE, REGION, COUNT, SEED, size=256, quality=QUALITY)
    generated = time.perf_counter()
    model, accuracy = train_small_cnn(HERE, EPOCHS, SEED)
    trained = time.perf_counter()
    write_model_files(HERE, model, REGION)
    total = sum(path.stat().st_size for path in images.glob("*.jpg"))
    print(json.dumps({
        "region": REGION, "images": COUNT, "layer": TARGET_LAYER, "held_out_accuracy": round(accuracy, 3),
        "generation_seconds": round(generated - started, 1),
        "training_seconds": round(trained - generated, 1),
        "images_bytes": total, "weights_bytes": (HERE / "weights.pt").stat().st_size,
    }, indent=2))
    if accuracy < MIN_ACCURACY:
        print(f"held-out accuracy {accuracy:.3f} is below {MIN_ACCURACY}; do not commit these files",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
