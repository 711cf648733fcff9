"""The canonical face: one frame where every analysed face is aligned, to draw and average attention.

Each face is mapped onto a fixed canvas by the similarity transform (rotation, uniform scale,
shift) that best places its eye centres, nose tip and mouth corners on a reference layout. Its
attribution map is warped with the same transform and averaged; its landmarks are averaged into the
mean face whose regions the report draws.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .regions import PAINT_ORDER, region_polygons

CANVAS = (256, 256)  # width, height
GRID = 64  # the mean attention map is stored at GRID x GRID for the report
# Reference positions of (right eye centre, left eye centre, nose tip, right / left mouth corner):
# the widely used 112x112 face-alignment layout, scaled by 1.6 and placed so the face sits in the
# middle with room for hair above and the neck below.
_REFERENCE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                           [41.5493, 92.3655], [70.7299, 92.2041]])
REFERENCE = (_REFERENCE_112 - [56.0, 51.6]) * 1.6 + [128.0, 100.0]


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The five alignment points from 68 dlib landmarks, in ``REFERENCE`` order."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])


def similarity_to_canvas(landmarks: np.ndarray) -> np.ndarray:
    """2x3 matrix taking the face's pixels to canvas pixels (least-squares similarity, Umeyama)."""
    source, target = anchor_points(landmarks), REFERENCE
    source_mean, target_mean = source.mean(0), target.mean(0)
    s, t = source - source_mean, target - target_mean
    covariance = t.T @ s / len(s)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])  # no reflections
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / (s ** 2).sum(1).mean()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = target_mean - matrix[:, :2] @ source_mean
    return matrix


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


class CanonicalFace:
    """Running sums of aligned attention and aligned landmarks."""

    def __init__(self):
        self.attention = np.zeros((CANVAS[1], CANVAS[0]))
        self.coverage = np.zeros((CANVAS[1], CANVAS[0]))
        self.landmark_sum = np.zeros((68, 2))
        self.faces = 0

    @staticmethod
    def align(attribution: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One face on the canvas: (warped attention, warped coverage, aligned landmarks).

        attribution: float (H, W) >= 0 and landmarks (68, 2), both in model-input pixels. Warp once and
        ``add_aligned`` the result to every accumulator the image belongs to (overall, its groups).
        """
        matrix = similarity_to_canvas(landmarks)
        square = np.vstack([matrix, [0, 0, 1]])
        coefficients = tuple(np.linalg.inv(square)[:2].reshape(-1))  # PIL wants canvas -> source
        # Each map is normalised to sum to the number of its pixels: 1.0 everywhere = an even spread.
        normalised = attribution * (attribution.size / attribution.sum())
        warped = Image.fromarray(normalised.astype(np.float32), "F").transform(
            CANVAS, Image.AFFINE, coefficients, resample=Image.BILINEAR)
        inside = Image.fromarray(np.ones_like(attribution, dtype=np.float32), "F").transform(
            CANVAS, Image.AFFINE, coefficients, resample=Image.BILINEAR)
        return np.asarray(warped), np.asarray(inside), _apply(matrix, landmarks)

    def add_aligned(self, aligned: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        warped, inside, landmarks = aligned
        self.attention += warped
        self.coverage += inside
        self.landmark_sum += landmarks
        self.faces += 1

    def add(self, attribution: np.ndarray, landmarks: np.ndarray) -> None:
        """attribution: float (H, W) >= 0 and landmarks (68, 2), both in model-input pixels."""
        self.add_aligned(self.align(attribution, landmarks))

    def merge(self, other: "CanonicalFace") -> None:
        self.attention += other.attention
        self.coverage += other.coverage
        self.landmark_sum += other.landmark_sum
        self.faces += other.faces

    def mean_map(self) -> list[list[float]] | None:
        """Mean attention on a GRID x GRID grid (rows top to bottom); 1.0 = an even spread."""
        if self.faces == 0:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(self.coverage > 0.5, self.attention / np.maximum(self.coverage, 1e-9), np.nan)
        block = CANVAS[0] // GRID
        grid = np.nanmean(mean.reshape(GRID, block, GRID, block), axis=(1, 3)) if np.isfinite(mean).any() else mean
        return [[None if not np.isfinite(v) else round(float(v), 4) for v in row] for row in grid]

    def summary(self, fallback_landmarks: np.ndarray | None = None) -> dict:
        """The canonical face for the report: canvas size, mean landmarks, region polygons, mean map."""
        if self.faces:
            landmarks = self.landmark_sum / self.faces
        else:
            landmarks = fallback_landmarks
        polygons = {}
        if landmarks is not None:
            polygons = {rid: [np.round(p, 2).tolist() for p in shapes]
                        for rid, shapes in region_polygons(landmarks).items()}
        return {
            "size": list(CANVAS),
            "landmarks": None if landmarks is None else np.round(landmarks, 2).tolist(),
            "polygons": polygons,
            "paint_order": list(PAINT_ORDER),
            "mean_attribution": self.mean_map(),
        }
