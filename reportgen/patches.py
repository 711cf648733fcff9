"""The examples the report shows: top image patches per region, and a few whole images.

Only a bounded number of pictures is kept however many images the run has (heaps of size K), and a
picture is encoded only when it enters a heap.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
from PIL import Image

from .drawing import attribution_overlay, data_uri, region_overlay
from .regions import REGION_IDS

PATCH_SIZE = 96
EXAMPLE_SIZE = 192


def _crop_box(mask: np.ndarray, margin: float = 0.3, minimum: int = 12) -> tuple[int, int, int, int] | None:
    """A square box around a boolean mask (H, W), enlarged by ``margin`` on each side and moved
    (never past the picture's edge) so the patch shows picture, not padding."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    height, width = mask.shape
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, minimum) * (1 + 2 * margin)
    side = min(side, width, height)
    left = min(max(cx - side / 2, 0), width - side)
    top = min(max(cy - side / 2, 0), height - side)
    return (int(round(left)), int(round(top)), int(round(left + side)), int(round(top + side)))


class TopPatches:
    """For each region, the K image patches with the highest share of attention in that region."""

    def __init__(self, per_region: int = 12):
        self.per_region = per_region
        self.heaps: dict[str, list] = {rid: [] for rid in REGION_IDS}
        self._tiebreak = itertools.count()

    def wants(self, region_id: str, score: float) -> bool:
        heap = self.heaps[region_id]
        return self.per_region > 0 and (len(heap) < self.per_region or score > heap[0][0])

    def offer(self, seen: Image.Image, attribution: np.ndarray, labels: np.ndarray, shares: np.ndarray,
              info: dict) -> None:
        """seen: what the model saw (RGB, model-input size); attribution/labels (H, W) in the same pixels;
        shares: per-region shares in ``REGION_IDS`` order; info: image name, label, prediction, probability."""
        overlay = None
        for index, rid in enumerate(REGION_IDS):
            score = float(shares[index])
            if score <= 0 or not self.wants(rid, score):
                continue
            box = _crop_box(labels == index)
            if box is None:
                continue
            if overlay is None:
                overlay = attribution_overlay(seen, attribution, alpha=0.4)
            patch = overlay.crop(box).resize((PATCH_SIZE, PATCH_SIZE), Image.BILINEAR)
            record = dict(info, score=round(score, 4), uri=data_uri(patch, quality=80))
            entry = (score, next(self._tiebreak), record)
            heap = self.heaps[rid]
            if len(heap) < self.per_region:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)

    def merge(self, other: "TopPatches") -> None:
        for rid, heap in other.heaps.items():
            for score, _, record in heap:
                if self.wants(rid, score):
                    entry = (score, next(self._tiebreak), record)
                    if len(self.heaps[rid]) < self.per_region:
                        heapq.heappush(self.heaps[rid], entry)
                    else:
                        heapq.heapreplace(self.heaps[rid], entry)

    def summary(self) -> dict[str, list[dict]]:
        return {rid: [record for _, _, record in sorted(heap, key=lambda e: (-e[0], e[1]))]
                for rid, heap in self.heaps.items()}


class Examples:
    """Whole images for the report: the most and the least confident predictions."""

    def __init__(self, each: int = 3):
        self.each = each
        self.most: list = []   # min-heap on confidence: keeps the highest
        self.least: list = []  # min-heap on -confidence: keeps the lowest
        self._tiebreak = itertools.count()

    def offer(self, seen: Image.Image, attribution: np.ndarray, labels: np.ndarray, landmarks: np.ndarray,
              info: dict) -> None:
        confidence = float(info["probability"])
        for heap, key, why in ((self.most, confidence, "most confident"), (self.least, -confidence, "least confident")):
            if len(heap) >= self.each and key <= heap[0][0]:
                continue
            size = (EXAMPLE_SIZE, round(EXAMPLE_SIZE * seen.height / seen.width))
            record = dict(info, why=why,
                          uri=data_uri(attribution_overlay(seen, attribution).resize(size, Image.BILINEAR)),
                          regions_uri=data_uri(region_overlay(seen, labels, landmarks).resize(size, Image.BILINEAR)))
            entry = (key, next(self._tiebreak), record)
            if len(heap) < self.each:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)

    def summary(self) -> list[dict]:
        most = [r for _, _, r in sorted(self.most, key=lambda e: -e[0])]
        chosen = {r["image"] for r in most}
        least = [r for _, _, r in sorted(self.least, key=lambda e: -e[0]) if r["image"] not in chosen]
        return most + least
