"""Does the piecewise-affine warp to the canonical face pay, against the similarity alone?

Reads ../shared/tutorial/images (128 real photos: head turns, expressions). For each of a few regions,
each photo's "attribution" is its own region mask (what a perfectly region-locked map looks like;
region ablation's maps are such masks), optionally blurred like a coarse Grad-CAM map. The masks are
averaged on the canonical face both ways; the better alignment puts more of the mean inside the region
as the report draws it. Also prints the cost per image.

    python benchmarks/canonical_warp.py [--tutorial ../shared/tutorial] [--blur 0 12]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from reportgen.faces.canonical import SAMPLE_STEP, SAMPLES, CanonicalFace, similarity_align
from reportgen.faces.landmarks import detect_face
from reportgen.faces.regions import REGION_IDS, label_image

REGIONS = ("left_eye", "lower_lip", "nose", "chin", "left_cheek")


def share_inside(align, maps, region: str) -> tuple[float, float]:
    """(share of the canonical mean inside the drawn region, median ms per image)."""
    attention, coverage, landmark_sum, seconds = 0.0, 0.0, 0.0, []
    for values, landmarks in maps:
        started = time.perf_counter()
        warped, inside, aligned = align(values, landmarks)
        seconds.append(time.perf_counter() - started)
        attention, coverage, landmark_sum = attention + warped, coverage + inside, landmark_sum + aligned
    mean = np.where(coverage > 0.5 * len(maps), attention / np.maximum(coverage, 1e-9), 0.0)
    drawn = label_image(landmark_sum / len(maps) / SAMPLE_STEP, SAMPLES, SAMPLES) == REGION_IDS.index(region)
    return float(mean[drawn].sum() / mean.sum()), 1000 * float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "tutorial")
    parser.add_argument("--blur", type=float, nargs="+", default=[0, 12], help="Gaussian blur sigmas in pixels")
    args = parser.parse_args()
    faces = []
    for path in sorted((args.tutorial / "images").glob("*/*/*.jpg")):
        image = Image.open(path).convert("RGB")
        face = detect_face(image)
        if face is not None:
            faces.append((image.size, face.landmarks))
    print(f"{len(faces)} faces; share of the canonical mean inside the drawn region (1.0 = perfect)")
    print(f"{'region':<11} {'blur':>4}  {'similarity':>10}  {'piecewise':>9}")
    times = {"similarity": [], "piecewise": []}
    for region in REGIONS:
        for blur in args.blur:
            maps = []
            for (width, height), landmarks in faces:
                mask = (label_image(landmarks, width, height) == REGION_IDS.index(region)).astype(np.float32) + 1e-3
                if blur:
                    mask = _blur(mask, blur)
                maps.append((mask.astype(np.float64), landmarks))
            plain, plain_ms = share_inside(similarity_align, maps, region)
            warped, warped_ms = share_inside(CanonicalFace.align, maps, region)
            times["similarity"].append(plain_ms)
            times["piecewise"].append(warped_ms)
            print(f"{region:<11} {blur:>4g}  {plain:>10.2f}  {warped:>9.2f}")
    print(f"cost per image (median, {faces[0][0][0]}x{faces[0][0][1]} map): similarity "
          f"{np.median(times['similarity']):.2f} ms, piecewise-affine {np.median(times['piecewise']):.2f} ms")


def _blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (separable, edges padded with the edge values)."""
    offsets = np.arange(-int(3 * sigma), int(3 * sigma) + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    pad = len(offsets) // 2
    for axis in (0, 1):
        padded = np.pad(values, [(pad, pad) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        values = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), axis, padded)
    return values


if __name__ == "__main__":
    main()
