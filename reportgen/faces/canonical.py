"""The canonical face: one frame where every analysed face is aligned, to draw and average attention.

Each face is mapped onto a fixed canvas in two steps. A similarity transform (rotation, uniform scale,
shift) places its eye centres, nose tip and mouth corners on a reference layout; this fixes where the
face sits on the canvas. Then a piecewise-affine warp over a triangulation of the 68 landmarks moves
every landmark exactly onto ``MEAN_FACE``, so that eyes, lips and jaw line of faces with other poses,
expressions and proportions land on the regions the report draws; beyond the face (a ring around it
and the canvas border) the warp is the similarity again. Each attribution map is warped this way and
averaged.

Does the piecewise-affine step pay? Measured (benchmarks/canonical_warp.py, docs/regions.md): on the
128 tutorial photos (real, with head turns and expressions), a map that is exactly each image's own
left-eye mask puts 43% of the canonical mean inside the drawn left eye after the similarity alone and
67% after the warp (lower lip 48% -> 78%, chin 79% -> 97%). Region ablation's maps are such masks,
and integrated gradients' are pixel-sharp too. Coarse maps gain little (the same masks blurred by 3% of
the image width: 18% -> 18%), and so do faces that differ only by a similarity (the planted-cue demo
and known-answer cases with Grad-CAM: density of the planted region 4.90 -> 4.96, 27.5 -> 29.2). It
costs about 0.25 ms more per image than the similarity alone (0.75 against 0.50 ms for a 400x400 map).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .regions import PAINT_ORDER, region_polygons

if TYPE_CHECKING:  # types only: the faces stage does not depend on the results stage
    from ..results import schema

CANVAS = (256, 256)  # width, height: the frame of MEAN_FACE and of the region polygons the report draws
# The warped maps are sampled at this many points per side (one per SAMPLE_STEP canvas pixels) and summed
# there. The report shows the mean at GRID x GRID; sampling all 256 x 256 canvas pixels made each warp
# 2.7 times dearer (2.05 against 0.75 ms per 400-px map) for a mean that differs, on the tutorial's 128
# faces, by 0.1-0.2% (L1) for smooth maps such as Grad-CAM's and by 1-3% for sharp region masks.
SAMPLES = 128
SAMPLE_STEP = CANVAS[0] // SAMPLES
GRID = 64  # the mean attention map is stored at GRID x GRID for the report
MIN_COVERAGE = 0.2  # the mean map shows points that at least this share of the faces reach
# The mean face every face is warped onto (canvas pixels, dlib order). Made from the 61 near-frontal
# photos (estimated turn under 15 degrees) among the tutorial's 128: each placed by the similarity that
# puts its eye centres, nose tip and mouth corners on the widely used 112x112 face-alignment layout
# (scaled by 1.6, the face in the middle with room for hair above and the neck below), averaged, and
# made left-right symmetric (averaged with its mirror image).
MEAN_FACE = np.array([
    [65.0, 105.8], [65.6, 122.8], [67.3, 139.8], [70.2, 156.3], [76.0, 172.1], [85.4, 186.0], [97.4, 197.6],
    [111.6, 206.7], [128.0, 209.1], [144.4, 206.7], [158.6, 197.6], [170.6, 186.0], [180.0, 172.1],
    [185.8, 156.3], [188.7, 139.8], [190.4, 122.8], [191.0, 105.8], [75.7, 94.2], [83.9, 86.8], [95.6, 84.5],
    [107.6, 85.7], [119.0, 89.9], [137.0, 89.9], [148.4, 85.7], [160.4, 84.5], [172.1, 86.8], [180.3, 94.2],
    [128.0, 100.4], [128.0, 111.4], [128.0, 122.3], [128.0, 133.6], [113.9, 140.6], [120.6, 143.1],
    [128.0, 145.2], [135.4, 143.1], [142.1, 140.6], [88.4, 103.0], [95.3, 99.3], [103.3, 99.4], [110.7, 104.0],
    [103.0, 105.3], [95.0, 105.4], [145.3, 104.0], [152.7, 99.4], [160.7, 99.3], [167.6, 103.0],
    [161.0, 105.4], [153.0, 105.3], [101.3, 161.7], [110.7, 156.9], [120.6, 154.9], [128.0, 156.6],
    [135.4, 154.9], [145.3, 156.9], [154.7, 161.7], [145.7, 172.3], [135.9, 177.1], [128.0, 177.9],
    [120.1, 177.1], [110.3, 172.3], [105.2, 162.1], [120.6, 160.2], [128.0, 161.0], [135.4, 160.2],
    [150.8, 162.1], [135.6, 167.8], [128.0, 168.9], [120.4, 167.8]
])
# The warp is computed exactly on a grid of canvas points this far apart and linearly in between.
MESH_CELL = 4


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The five alignment points from 68 dlib landmarks, in ``REFERENCE`` order."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])


# Where the similarity puts (right eye centre, left eye centre, nose tip, right / left mouth corner): the
# mean face's own, so a face of exactly the mean shape is placed by the similarity alone.
REFERENCE = anchor_points(MEAN_FACE)


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


def _inverse(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (int (T, 3) indices into ``points``) by Bowyer-Watson: fine for the hundred or
    so control points here, and no dependency."""
    points = np.asarray(points, dtype=np.float64)
    centre, span = points.mean(0), float(np.ptp(points, axis=0).max()) * 20 + 1
    everything = np.concatenate([points, centre + span * np.array([[-2.0, -1.5], [2.0, -1.5], [0.0, 2.5]])])
    count = len(points)
    triangles = [(count, count + 1, count + 2)]

    def circle(triangle):
        (ax, ay), (bx, by), (cx, cy) = everything[list(triangle)]
        d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
        ux = ((ax * ax + ay * ay) * (by - cy) + (bx * bx + by * by) * (cy - ay) + (cx * cx + cy * cy) * (ay - by)) / d
        uy = ((ax * ax + ay * ay) * (cx - bx) + (bx * bx + by * by) * (ax - cx) + (cx * cx + cy * cy) * (bx - ax)) / d
        return ux, uy, (ax - ux) ** 2 + (ay - uy) ** 2

    circles = {triangles[0]: circle(triangles[0])}
    for index, (x, y) in enumerate(points):
        bad = [t for t in triangles if (x - circles[t][0]) ** 2 + (y - circles[t][1]) ** 2 < circles[t][2] * (1 - 1e-12)]
        edges: dict[tuple[int, int], int] = {}
        for t in bad:
            for edge in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
                key = (min(edge), max(edge))
                edges[key] = edges.get(key, 0) + 1
        bad_set = set(bad)
        triangles = [t for t in triangles if t not in bad_set]
        for (a, b), seen in edges.items():
            if seen == 1:
                triangle = (a, b, index)
                triangles.append(triangle)
                circles[triangle] = circle(triangle)
    return np.array([t for t in triangles if max(t) < count], dtype=np.int64)


@functools.lru_cache(maxsize=1)
def _control() -> tuple[np.ndarray, np.ndarray]:
    """The warp's control points on the canvas beyond MEAN_FACE, and the triangles over all of them.

    Beyond the face: a ring of 16 around it and the canvas border (corners and edge midpoints). They
    are mapped by each face's similarity alone, so the warp hands over to it outside the face.
    """
    width, height = CANVAS
    centre = MEAN_FACE.mean(0)
    reach = np.abs(MEAN_FACE - centre).max(0)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = centre + np.stack([1.35 * reach[0] * np.cos(angles), 1.5 * reach[1] * np.sin(angles)], axis=1)
    border = np.array([[x, y] for x in (0.0, width / 2, width) for y in (0.0, height / 2, height)
                       if (x, y) != (width / 2, height / 2)])
    extra = np.concatenate([ring, border])
    return extra, delaunay(np.concatenate([MEAN_FACE, extra]))


def _barycentric(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For canvas points (N, 2): the control points of the triangle each lies in (N, 3) and its
    barycentric weights there (N, 3). A point on an edge shared by two triangles takes either."""
    extra, triangles = _control()
    corners = np.concatenate([MEAN_FACE, extra])[triangles]  # (T, 3, 2)
    v0, v1 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    offset = points[:, None, :] - corners[None, :, 0]  # (N, T, 2)
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    b1 = (offset[..., 0] * v1[:, 1] - offset[..., 1] * v1[:, 0]) / det
    b2 = (v0[:, 0] * offset[..., 1] - v0[:, 1] * offset[..., 0]) / det
    weights = np.stack([1 - b1 - b2, b1, b2], axis=-1)  # (N, T, 3)
    best = weights.min(-1).argmax(1)  # the triangle the point is most inside of
    chosen = weights[np.arange(len(points)), best]
    if (chosen.min(1) < -1e-6).any():
        raise ValueError("points outside the canvas lie in no triangle")
    return triangles[best], chosen


def face_control(landmarks: np.ndarray) -> np.ndarray:
    """The warp's control points in the face's pixels, float (C, 2): its 68 landmarks, then the extra ones
    (``_control``) placed by the face's similarity. All a face's warp needs (``sample_points``); the prepare
    stage computes them per image, so the model's process only does the batch arithmetic."""
    back = _inverse(similarity_to_canvas(landmarks))
    return np.concatenate([np.asarray(landmarks, dtype=np.float64), _apply(back, _control()[0])])



def canvas_to_face(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Where canvas points (N, 2) come from in the pixels of a face with these ``landmarks``: the
    inverse of the piecewise-affine map that takes ``landmarks`` onto MEAN_FACE (and of the similarity
    beyond the face)."""
    corners, weights = _barycentric(np.asarray(points, dtype=np.float64))
    return np.einsum("nk,nkd->nd", weights, face_control(landmarks)[corners])


@functools.lru_cache(maxsize=1)
def _node_plan() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The mesh nodes' triangle corners and weights (see ``_barycentric``), and the node grid's shape."""
    ys, xs = np.mgrid[0:CANVAS[1] + 1:MESH_CELL, 0:CANVAS[0] + 1:MESH_CELL]
    corners, weights = _barycentric(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64))
    return corners, weights, xs.shape


def warp_to_canvas(landmarks: np.ndarray) -> np.ndarray:
    """``canvas_to_face`` at the mesh nodes: float (rows, cols, 2), the face's pixel each node comes from."""
    corners, weights, shape = _node_plan()
    return np.einsum("nk,nkd->nd", weights, face_control(landmarks)[corners]).reshape(*shape, 2)


@functools.lru_cache(maxsize=1)
def _node_interpolation() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """For the sample points along each axis (rows, then columns; the centres of SAMPLES x SAMPLES cells
    that tile the canvas): the node before each and the weight of the node after it, to interpolate
    node values linearly."""
    def axis(pixels: int) -> tuple[np.ndarray, np.ndarray]:
        at = (np.arange(SAMPLES) + 0.5) * (pixels / SAMPLES) / MESH_CELL
        before = np.minimum(at.astype(np.intp), pixels // MESH_CELL - 1)
        return before, at - before

    return axis(CANVAS[1]), axis(CANVAS[0])


def _warp(values: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (H, W) resampled at the canvas's SAMPLES x SAMPLES points (bilinear, as PIL's transforms
    do: pixel i spans [i, i + 1)): (warped values, coverage), coverage 1 where the point comes from
    inside the image and 0 elsewhere, where the warped values are 0 too."""
    (row, row_weight), (col, col_weight) = _node_interpolation()
    # Linear between nodes, one axis after the other (plain numpy: BLAS threads cost more than they save).
    between_rows = nodes[row] * (1 - row_weight)[:, None, None] + nodes[row + 1] * row_weight[:, None, None]
    source = between_rows[:, col] * (1 - col_weight)[None, :, None] + between_rows[:, col + 1] * col_weight[None, :, None]
    source_x, source_y = source[..., 0], source[..., 1]
    height, width = values.shape
    inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
    x, y = source_x - 0.5, source_y - 0.5
    left, top = np.floor(x), np.floor(y)
    dx, dy = x - left, y - top
    x0, x1 = np.clip(left, 0, width - 1).astype(np.intp), np.clip(left + 1, 0, width - 1).astype(np.intp)
    y0, y1 = (np.clip(top, 0, height - 1).astype(np.intp) * width,
              np.clip(top + 1, 0, height - 1).astype(np.intp) * width)
    flat = values.ravel()
    warped = ((flat[y0 + x0] * (1 - dx) + flat[y0 + x1] * dx) * (1 - dy)
              + (flat[y1 + x0] * (1 - dx) + flat[y1 + x1] * dx) * dy)
    return np.where(inside, warped, 0.0), inside.astype(np.float64)


@functools.lru_cache(maxsize=1)
def _sample_plan() -> np.ndarray:
    """The whole warp as one matrix, float64 (SAMPLES * SAMPLES, C): row s holds the weights of the C control
    points (``face_control``) whose sum is where sample point s (row-major) comes from in the face's pixels.

    It is ``warp_to_canvas`` (each mesh node a weighted sum of three control points) followed by ``_warp``'s
    linear interpolation between nodes, both linear, multiplied out once. Each row sums to 1."""
    corners, weights, (rows, cols) = _node_plan()
    count = len(MEAN_FACE) + len(_control()[0])
    nodes = np.zeros((rows * cols, count))
    np.add.at(nodes, (np.arange(len(corners))[:, None], corners), weights)
    grid = nodes.reshape(rows, cols, count)
    (row, row_weight), (col, col_weight) = _node_interpolation()
    between_rows = grid[row] * (1 - row_weight)[:, None, None] + grid[row + 1] * row_weight[:, None, None]
    plan = between_rows[:, col] * (1 - col_weight)[None, :, None] + between_rows[:, col + 1] * col_weight[None, :, None]
    return plan.reshape(SAMPLES * SAMPLES, count)


@functools.lru_cache(maxsize=4)
def _device_plan(device: str):
    import torch

    return torch.as_tensor(_sample_plan(), dtype=torch.float64, device=device)


def sample_points(controls):
    """Where each canvas sample point comes from in each face's pixels: float64 tensor (SAMPLES, SAMPLES, B, 2)
    of (x, y) (faces in the third place: the layout the product gives), on the device of ``controls`` (the
    faces' control points, float (B, C, 2), ``face_control``).

    The same numbers as ``warp_to_canvas`` and ``_warp``'s interpolation between mesh nodes (to rounding), for
    a whole batch in one matrix product (16384 x C times C x 2B: 2 ms for 16 faces on one CPU core, against
    0.4 ms per face done node by node in numpy)."""
    import torch

    count, points = len(controls), controls.shape[1]
    flat = controls.to(torch.float64).permute(1, 0, 2).reshape(points, 2 * count)
    return (_device_plan(str(controls.device)) @ flat).reshape(SAMPLES, SAMPLES, count, 2)


def warp_batch(maps, controls, totals=None):
    """A batch of maps on the canvas, on the maps' device: (warped (B, SAMPLES, SAMPLES) float64, inside
    (B, SAMPLES, SAMPLES) bool), per image what ``CanonicalFace.align`` gives (warped values and coverage;
    0 for a map with nothing in it).

    maps: float tensor (B, H, W) >= 0 in model-input pixels; controls: (B, C, 2) from ``face_control`` in
    the same pixels, on the same device; totals: (B,) the maps' float64 sums when known (the region scores
    add them up anyway), else they are summed here. One ``grid_sample`` (bilinear; a pixel spans [i, i + 1), as in
    ``_warp``) for the whole batch.

    Precision: the sample points and the inside test are float64, so a point near an image's edge falls on
    the same side as in ``_warp``. The bilinear sampling runs in the maps' own precision (float32 for every
    method: captum's maps are float32, and float64 sampling costs 5x more on the CPU and far more on most
    GPUs), and each map's scale (mean 1.0) is applied in float64 afterwards (sampling is linear, so scaling
    before or after is the same). A warped value then differs from ``CanonicalFace.align``'s by about 1e-5
    of the map's largest value at worst (pixel noise, where a float32 position error of 1e-5 pixels
    matters most), far less for smooth maps; the running sums are float64.
    """
    import torch
    import torch.nn.functional as F

    height, width = maps.shape[-2:]
    # grid_sample's coordinates: -1 and 1 are the outer edges of the first and last pixels (align_corners
    # False). Each plan row sums to 1, so scaling the control points scales the sample points.
    scale = torch.tensor([2 / width, 2 / height], dtype=torch.float64, device=maps.device)
    points = sample_points(controls.to(torch.float64) * scale - 1)  # (S, S, B, 2)
    within = (points >= -1) & (points < 1)  # 0 <= x < width, 0 <= y < height, as in _warp
    inside = (within[..., 0] & within[..., 1]).permute(2, 0, 1)  # (1.6x faster than .all(-1))
    # "border" repeats the edge pixels, as _warp's clamped indices do, for points half a pixel inside the
    # edge; points outside the image are zeroed below, as in _warp.
    sampled = F.grid_sample(maps[:, None], points.permute(2, 0, 1, 3).to(maps.dtype), mode="bilinear",
                            padding_mode="border", align_corners=False)[:, 0]
    if totals is None:
        totals = maps.sum((1, 2), dtype=torch.float64)
    totals = totals.to(torch.float64)
    spread = torch.where(totals > 0, (height * width) / totals, torch.zeros_like(totals))  # mean 1.0
    warped = sampled.to(torch.float64).mul_(spread[:, None, None]).masked_fill_(~inside, 0.0)
    return warped, inside


def similarity_align(attribution: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like ``CanonicalFace.align`` but with the similarity transform alone (PIL's affine warp): the
    reference the piecewise-affine warp refines, kept for its test and benchmarks/canonical_warp.py.
    Returns (warped attention, warped coverage, the landmarks moved by the similarity)."""
    matrix = similarity_to_canvas(landmarks)
    # PIL wants sample grid -> source: canvas = SAMPLE_STEP x sample point, then the inverse similarity.
    inverse = _inverse(matrix)
    coefficients = tuple(np.c_[inverse[:, :2] * SAMPLE_STEP, inverse[:, 2]].reshape(-1))
    size = (SAMPLES, SAMPLES)
    normalised = attribution * (attribution.size / attribution.sum())
    warped = Image.fromarray(normalised.astype(np.float32), "F").transform(
        size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR)
    inside = Image.fromarray(np.ones_like(attribution, dtype=np.float32), "F").transform(
        size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR)
    return np.asarray(warped), np.asarray(inside), _apply(matrix, landmarks)


class CanonicalFace:
    """Running sums of aligned attention and aligned landmarks."""

    def __init__(self):
        self.attention = np.zeros((SAMPLES, SAMPLES))  # summed warped maps at the sample points
        self.coverage = np.zeros((SAMPLES, SAMPLES))
        self.landmark_sum = np.zeros((68, 2))
        self.faces = 0

    @staticmethod
    def align(attribution: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One face on the canvas: (warped attention, warped coverage, aligned landmarks = MEAN_FACE).

        attribution: float (H, W) >= 0 and landmarks (68, 2), both in model-input pixels. Warp once and
        ``add_aligned`` the result to every accumulator the image belongs to (overall, its groups).
        """
        # Each map is normalised to sum to the number of its pixels: 1.0 everywhere = an even spread.
        normalised = np.asarray(attribution, dtype=np.float64) * (attribution.size / attribution.sum())
        warped, inside = _warp(normalised, warp_to_canvas(landmarks))
        return warped, inside, MEAN_FACE.copy()

    def add_aligned(self, aligned: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        warped, inside, landmarks = aligned
        self.attention += warped
        self.coverage += inside
        self.landmark_sum += landmarks
        self.faces += 1

    def add_batch(self, warped: np.ndarray, inside: np.ndarray) -> None:
        """Several faces at once: warped (k, SAMPLES, SAMPLES) and inside (k, SAMPLES, SAMPLES) from
        ``warp_batch``, for the k faces of a batch that belong to this accumulator."""
        count = len(warped)
        if count:
            self.attention += warped.sum(0, dtype=np.float64)
            self.coverage += inside.sum(0, dtype=np.float64)
            for _ in range(count):  # one at a time, as add_aligned does: the same sum to the last bit
                self.landmark_sum += MEAN_FACE
            self.faces += count

    def add(self, attribution: np.ndarray, landmarks: np.ndarray) -> None:
        """attribution: float (H, W) >= 0 and landmarks (68, 2), both in model-input pixels."""
        self.add_aligned(self.align(attribution, landmarks))

    def merge(self, other: CanonicalFace) -> None:
        self.attention += other.attention
        self.coverage += other.coverage
        self.landmark_sum += other.landmark_sum
        self.faces += other.faces

    def mean_map(self) -> list[list[float | None]] | None:
        """Mean attention on a GRID x GRID grid (rows top to bottom); 1.0 = an even spread."""
        if self.faces == 0:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            # Only where a fifth of the faces reach: at the canvas edges a mean of one or two faces is noise.
            reached = self.coverage > max(0.5, MIN_COVERAGE * self.faces)
            mean = np.where(reached, self.attention / np.maximum(self.coverage, 1e-9), np.nan)
        block = SAMPLES // GRID
        # Mean of the covered points in each block; a block with none stays empty (None in the report).
        blocks = mean.reshape(GRID, block, GRID, block)
        covered = np.isfinite(blocks).sum(axis=(1, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            grid = np.where(covered > 0, np.nansum(blocks, axis=(1, 3)) / np.maximum(covered, 1), np.nan)
        return [[None if not np.isfinite(v) else round(float(v), 4) for v in row] for row in grid]

    def summary(self) -> schema.CanonicalFace:
        """The canonical face for the report: canvas size, mean landmarks, region polygons, mean map
        (landmarks None and no polygons when no face was aligned)."""
        landmarks = self.landmark_sum / self.faces if self.faces else None
        polygons: dict[str, list[schema.Polygon]] = {}
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
