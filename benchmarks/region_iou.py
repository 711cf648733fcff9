"""Agreement of reportgen's landmark regions with face-parsing masks (issue 3's quality measure).

Reads ../shared/tutorial: for each photo that has segmentation masks (CelebAMask-HQ style
``<stem>_<class>.png``), builds reportgen's region label image and prints the per-region IoU.

    python benchmarks/region_iou.py [--tutorial ../shared/tutorial]

Class matching: eyes = l_eye + r_eye, brows = l_brow + r_brow, lips = u_lip + l_lip, nose, hair,
neck, skin = forehead + cheeks + chin, background = background + cloth (reportgen has no clothing
region: clothes fall into its background or neck). Eyes are scored only on photos whose masks
show eyes (glasses hide them from the parser).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from reportgen.landmarks import detect_face
from reportgen.regions import REGION_IDS, label_image

OURS = {
    "eyes": ("left_eye", "right_eye"), "brows": ("left_brow", "right_brow"), "nose": ("nose",),
    "lips": ("upper_lip", "lower_lip"), "skin": ("forehead", "left_cheek", "right_cheek", "chin"),
    "hair": ("hair",), "neck": ("neck",), "background": ("background",),
}
THEIRS = {
    "eyes": ("l_eye", "r_eye"), "brows": ("l_brow", "r_brow"), "nose": ("nose",), "lips": ("u_lip", "l_lip"),
    "skin": ("skin",), "hair": ("hair",), "neck": ("neck",), "background": ("background", "cloth"),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "tutorial")
    args = parser.parse_args()
    scores: dict[str, list[float]] = defaultdict(list)
    for folder in sorted((args.tutorial / "masks").glob("*/*")):
        stems = sorted({p.name.split("_align_")[0] + "_align" for p in folder.glob("*_align_*.png")})
        for stem in stems:
            image_path = args.tutorial / "images" / folder.relative_to(args.tutorial / "masks") / f"{stem}.jpg"
            image = Image.open(image_path).convert("RGB")
            face = detect_face(image)
            if face is None:
                print(f"{image_path.name}: no face found")
                continue
            labels = label_image(face.landmarks, image.width, image.height)
            try:
                theirs = segmentation(folder, stem, image.size)
            except ValueError as error:
                print(f"{folder.name}/{stem}: skipped, broken mask ({error})")
                continue
            row = []
            for name, ours_ids in OURS.items():
                parts = [theirs[c] for c in THEIRS[name] if c in theirs]
                if not parts or (name == "eyes" and not any(c in theirs for c in ("l_eye", "r_eye"))):
                    row.append(f"{name}=  -  ")
                    continue
                truth = np.logical_or.reduce(parts)
                mine = np.isin(labels, [REGION_IDS.index(r) for r in ours_ids])
                iou = (truth & mine).sum() / max((truth | mine).sum(), 1)
                scores[name].append(iou)
                row.append(f"{name}={iou:.2f}")
            print(f"{folder.name}/{stem} [{face.detection}]: " + " ".join(row))
    print("\nregion       mean IoU   n   target")
    for name in OURS:
        values = scores[name]
        target = TARGETS.get(name)
        verdict = "" if target is None or not values else ("ok" if np.mean(values) >= target else "BELOW")
        mean = f"{np.mean(values):.3f}" if values else "  -  "
        print(f"{name:<12} {mean:>8} {len(values):>3}   {target if target else '':<5} {verdict}")


if __name__ == "__main__":
    main()
