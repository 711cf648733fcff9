"""Agreement of reportgen's landmark regions with face-parsing masks (issue 3's quality measure).

Reads ../shared/tutorial: for each photo that has segmentation masks (CelebAMask-HQ style
``<stem>_<class>.png``), builds reportgen's region label image and prints the per-region IoU, one row
per photo (with its detection path and estimated head turn), then the mean per region.

    python benchmarks/region_iou.py [--tutorial ../shared/tutorial]

Class matching: eyes = l_eye + r_eye, brows = l_brow + r_brow, lips = u_lip + l_lip, nose, hair,
neck, skin = forehead + cheeks + chin, background = background + cloth (reportgen has no clothing
region: clothes fall into its background or neck), ears = l_ear + r_ear. Eyes are scored only on
photos whose masks show eyes (glasses hide them from the parser). Two rows have no target and are for
reading only: ears, and "head top" = reportgen's hair against the parser's hair + hat (a hat covers
the part of the head that reportgen's hair region estimates).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from reportgen.faces.landmarks import detect_face, estimate_yaw
from reportgen.faces.regions import REGION_IDS, label_image

OURS = {
    "eyes": ("left_eye", "right_eye"), "brows": ("left_brow", "right_brow"), "nose": ("nose",),
    "lips": ("upper_lip", "lower_lip"), "skin": ("forehead", "left_cheek", "right_cheek", "chin"),
    "hair": ("hair",), "neck": ("neck",), "background": ("background",), "ears": ("left_ear", "right_ear"),
    "head top": ("hair",),
}
THEIRS = {
    "eyes": ("l_eye", "r_eye"), "brows": ("l_brow", "r_brow"), "nose": ("nose",), "lips": ("u_lip", "l_lip"),
    "skin": ("skin",), "hair": ("hair",), "neck": ("neck",), "background": ("background", "cloth"),
    "ears": ("l_ear", "r_ear", "ear_r"), "head top": ("hair", "hat"),
}
TARGETS = {"eyes": 0.5, "brows": 0.5, "nose": 0.5, "lips": 0.5, "skin": 0.6, "hair": 0.6, "background": 0.6}


def segmentation(folder: Path, stem: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Masks by class name, resized to the photo; a mask whose shape is not the photo's is broken."""
    masks = {}
    for path in folder.glob(f"{stem}_*.png"):
        name = path.stem[len(stem) + 1:]
        mask = Image.open(path).convert("L")
        if abs(mask.width / mask.height - size[0] / size[1]) > 0.05:
            raise ValueError(f"{path.name} is {mask.width}x{mask.height}, the photo {size[0]}x{size[1]}")
        masks[name] = np.asarray(mask.resize(size, Image.NEAREST)) > 127
    return masks


def photo_scores(labels: np.ndarray, theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """IoU per compared region for one photo; regions the parser has no mask for are left out."""
    row = {}
    for name, ours_ids in OURS.items():
        parts = [theirs[c] for c in THEIRS[name] if c in theirs]
        if not parts or (name == "eyes" and not any(c in theirs for c in ("l_eye", "r_eye"))):
            continue
        truth = np.logical_or.reduce(parts)
        mine = np.isin(labels, [REGION_IDS.index(r) for r in ours_ids])
        row[name] = float((truth & mine).sum() / max((truth | mine).sum(), 1))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "tutorial")
    args = parser.parse_args()
    scores: dict[str, list[float]] = defaultdict(list)
    header = f"{'photo':<24} {'path':<6} {'turn':>5}  " + " ".join(f"{name[:6]:>6}" for name in OURS)
    print(header)
    for folder in sorted((args.tutorial / "masks").glob("*/*")):
        stems = sorted({p.name.split("_align_")[0] + "_align" for p in folder.glob("*_align_*.png")})
        for stem in stems:
            photo = f"{folder.parent.name[:4]}/{stem}"
            image_path = args.tutorial / "images" / folder.relative_to(args.tutorial / "masks") / f"{stem}.jpg"
            image = Image.open(image_path).convert("RGB")
            face = detect_face(image)
            if face is None:
                print(f"{photo:<24} no face found")
                continue
            try:
                theirs = segmentation(folder, stem, image.size)
            except ValueError as error:
                print(f"{photo:<24} skipped, broken mask ({error})")
                continue
            row = photo_scores(label_image(face.landmarks, image.width, image.height), theirs)
            for name, value in row.items():
                scores[name].append(value)
            cells = " ".join(f"{row[name]:>6.2f}" if name in row else f"{'-':>6}" for name in OURS)
            print(f"{photo:<24} {face.detection:<6} {estimate_yaw(face.landmarks):>+5.0f}  {cells}")
    print("\nregion       mean IoU   n   target")
    for name in OURS:
        values = scores[name]
        target = TARGETS.get(name)
        verdict = "" if target is None or not values else ("ok" if np.mean(values) >= target else "BELOW")
        mean = f"{np.mean(values):.3f}" if values else "  -  "
        print(f"{name:<12} {mean:>8} {len(values):>3}   {target if target else '':<5} {verdict}")


if __name__ == "__main__":
    main()
