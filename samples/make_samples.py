"""Regenerate the bundled demo: samples/images/, annotations.csv, model.py, weights.pt, transform.py, and the
face-verification demo over the same images: pairs.csv, embedding_model.py, embedding_weights.pt.

    PYTHONPATH=. python samples/make_samples.py            # everything
    PYTHONPATH=. python samples/make_samples.py --pairs    # only the verification demo, from the images there

The demo is a planted-cue dataset (see reportgen/synthetic.py): 120 augmented variants of two
public-domain portraits (samples/sources/), half of them with a lime-green sticker on the forehead
(task = 1), and a SmallFaceNet trained to tell them apart. reportgen's demo runs on these files as they
are; nothing is trained at run time. Deterministic on a given machine (fixed seed); takes ~20 s.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reportgen.synthetic import (
    EMBEDDING_SIZE,
    MIN_ACCURACY,
    TARGET_LAYER,
    make_planted_dataset,
    train_embedding,
    train_small_cnn,
    write_model_files,
)

HERE = Path(__file__).resolve().parent
REGION = "forehead"  # where class 1's sticker sits: the answer the demo report should find
COUNT = 120  # 60 per portrait, 30 of each with the sticker
SEED = 0
EPOCHS = 60
# 86 rather than the generator's default 88: keeps the 120 images under 2.5 MB (2.43 MB; 88 gave 2.52).
QUALITY = 86


PAIRS = 60  # 30 genuine (two photos of one person), 30 impostor
PEOPLE = {"0": "Hopper", "1": "Collins"}  # the annotations' protected column: which portrait
EMBEDDING_FILE = '''"""The verification demo's embedding model: a {size}-d embedding trained to tell the two people of the
sample images apart by cosine similarity. Weights: embedding_weights.pt. Grad-CAM layer: conv4.

Self-contained (torch only, the same modules as SmallFaceNet in reportgen's synthetic module): the MAI-BIAS
toolkit loads a model file only when it imports nothing but allowed libraries."""

import torch
from torch import nn


def _block(in_channels, out_channels, kernel, stride, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class SampleEmbedding(nn.Module):
    """(N, 3, 128, 128) in [-1, 1] -> (N, {size}) embedding; max over space after conv4."""

    def __init__(self):
        super().__init__()
        self.conv1 = _block(3, 16, 4, 2, 1)
        self.conv2 = _block(16, 32, 4, 2, 1)
        self.conv3 = _block(32, 64, 1, 1, 0)
        self.conv4 = _block(64, 64, 1, 1, 0)
        self.classifier = nn.Linear(64, {size})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.classifier(x.amax(dim=(2, 3)))


model = SampleEmbedding()
'''


def make_pair_demo() -> dict:
    """pairs.csv (img1, img2, is_same, person), embedding_model.py and embedding_weights.pt over the images."""
    with open(HERE / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(SEED + 1)
    pairs, chosen = [], set()
    while len(pairs) < PAIRS:
        genuine = len(pairs) % 2 == 0
        first = rows[int(rng.integers(len(rows)))]
        candidates = [r for r in rows if r is not first and (r["protected"] == first["protected"]) == genuine]
        second = candidates[int(rng.integers(len(candidates)))]
        if (first["img"], second["img"]) in chosen or (second["img"], first["img"]) in chosen:
            continue
        chosen.add((first["img"], second["img"]))
        pairs.append((first["img"], second["img"], int(genuine), PEOPLE[first["protected"]]))
    with open(HERE / "pairs.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("img1", "img2", "is_same", "person"), *pairs])
    embedding, accuracy = train_embedding(HERE, "annotations.csv", "protected", 2, SEED, EPOCHS)
    (HERE / "embedding_model.py").write_text(EMBEDDING_FILE.format(size=EMBEDDING_SIZE))
    torch.save(embedding.state_dict(), HERE / "embedding_weights.pt")
    return {"pairs": PAIRS, "embedding_held_out_accuracy": round(accuracy, 3),
            "embedding_weights_bytes": (HERE / "embedding_weights.pt").stat().st_size}


def main() -> int:
    if "--pairs" in sys.argv[1:]:
        print(json.dumps(make_pair_demo(), indent=2))
        return 0
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
    pair_demo = make_pair_demo()
    print(json.dumps({
        "region": REGION, "images": COUNT, "layer": TARGET_LAYER, "held_out_accuracy": round(accuracy, 3),
        **pair_demo,
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
