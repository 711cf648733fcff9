"""Named face regions built from the 68 dlib landmarks: one source of truth for ids, geometry and groups.

Every region is a polygon computed from landmarks. Regions are painted in ``PAINT_ORDER`` onto a label
image (later regions cover earlier ones), so every pixel belongs to exactly one region and the
``background`` region is whatever is left. Left/right are the subject's own: dlib points 36-41 are the
subject's right eye, which sits on the image's left.

Regions outside the landmark hull (the top of the forehead, hair, ears, neck) are geometric estimates
scaled by the face's size; ``ESTIMATED`` lists them so the report can say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Region:
    id: str
    label: str  # in the user's words, for the report
    estimated: bool = False  # True when the region lies (partly) outside the landmark hull


REGIONS: tuple[Region, ...] = (
    Region("background", "Background", True),
    Region("hair", "Hair", True),
    Region("neck", "Neck", True),
    Region("right_ear", "Right ear", True),
    Region("left_ear", "Left ear", True),
    Region("forehead", "Forehead", True),
    Region("right_cheek", "Right cheek"),
    Region("left_cheek", "Left cheek"),
    Region("chin", "Chin"),
    Region("nose", "Nose"),
    Region("right_brow", "Right brow"),
    Region("left_brow", "Left brow"),
    Region("right_eye", "Right eye"),
    Region("left_eye", "Left eye"),
    Region("upper_lip", "Upper lip"),
    Region("lower_lip", "Lower lip"),
    Region("mouth", "Mouth (opening)"),
)
REGION_IDS: tuple[str, ...] = tuple(r.id for r in REGIONS)
# Label value of each region in a label image; background is 0 and everything is painted in this order.
PAINT_ORDER: tuple[str, ...] = REGION_IDS
REGION_BY_ID = {r.id: r for r in REGIONS}
ESTIMATED: tuple[str, ...] = tuple(r.id for r in REGIONS if r.estimated)

# Groups used by the summary and findings; each is the union of its regions.
GROUPS: dict[str, tuple[str, ...]] = {
    "eyes": ("left_eye", "right_eye"),
    "brows": ("left_brow", "right_brow"),
    "lips": ("upper_lip", "lower_lip", "mouth"),
    "skin": ("forehead", "left_cheek", "right_cheek", "chin"),
    "inner_face": ("left_eye", "right_eye", "left_brow", "right_brow", "nose", "upper_lip", "lower_lip",
                   "mouth", "forehead", "left_cheek", "right_cheek", "chin"),
    "outside_face": ("hair", "left_ear", "right_ear", "neck", "background"),
}
GROUP_LABELS = {
    "eyes": "Eyes", "brows": "Brows", "lips": "Lips and mouth", "skin": "Skin (forehead, cheeks, chin)",
    "inner_face": "Inner face", "outside_face": "Outside the face (hair, ears, neck, background)",
}


# Geometry, in units of the face's own size. "third" is the brow-to-nose-base height (faces are roughly
# three such thirds: hairline-brow, brow-nose base, nose base-chin); "face width" is the distance between
# the jaw line's ends (points 0 and 16, beside the eyes); "eye distance" is between the eye centres.
# Values measured against face-parsing masks of real photos (benchmarks/region_iou.py; docs/regions.md).
BROW_THICKNESS = 0.16      # brow height at its inner end (head), x eye distance
BROW_TAPER = 0.7           # brow height at its outer end (tail), x BROW_THICKNESS
BROW_ABOVE = 0.1           # fraction of the brow band above dlib's brow points (they run along its top)
EYE_GROW = 0.01            # margin around the eye opening, x eye distance
FOREHEAD_HEIGHT = 0.95     # hairline above the brows, x third
# The head: an ellipse centred between the jaw line's ends (where the skull is, even on a turned head),
# widest HEAD_WIDEST above the brows, reaching HAIR_HEIGHT above them. Hair is the part of it above the
# jaw ends' level that no face region covers.
HAIR_HEIGHT = 1.8          # top of the head above the brows, x third
HEAD_WIDEST = 0.5          # level of the head's widest point above the brows, x third
HAIR_HALF_WIDTH = 0.64     # half the head's widest width, x face width
EAR_BOTTOM = 0.75          # ears reach from brow height down this far, x third
EAR_WIDTH = 0.11           # how far ears stand out beside the jaw line, x face width
NECK_BELOW_CHIN = 0.45     # x third


def _lid_curve(points: np.ndarray, steps: int = 6) -> np.ndarray:
    """A smooth curve (Catmull-Rom) through ``points`` in order, without its last point."""
    p = np.asarray(points, dtype=np.float64)
    ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]
    # Every segment at once (segment, step, xy): the prepare stage draws four lids per image.
    p0, p1, p2, p3 = (ext[k:len(ext) - 3 + k, None] for k in range(4))
    pieces = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                    + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
    return pieces.reshape(-1, 2)


def _grown(polygon: np.ndarray, distance: float) -> np.ndarray:
    """``polygon`` (convex-ish, closed) with every vertex moved ``distance`` outwards along its normal."""
    tangent = np.roll(polygon, -1, 0) - np.roll(polygon, 1, 0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    outwards = np.sign(((polygon - polygon.mean(0)) * normal).sum(1, keepdims=True))
    return polygon + distance * np.where(outwards == 0, 1.0, outwards) * normal


def _eye_opening(points: np.ndarray, margin: float) -> np.ndarray:
    """The eye opening from its six dlib points (corner, two upper lid, corner, two lower lid): smooth
    lid curves through them, grown by ``margin`` pixels."""
    upper, lower = points[[0, 1, 2, 3]], points[[3, 4, 5, 0]]
    return _grown(np.concatenate([_lid_curve(upper), _lid_curve(lower)]), margin)


def _ellipse(centre: np.ndarray, radius_x: float, radius_y: float, axes: np.ndarray, start: float,
             stop: float, count: int = 32) -> np.ndarray:
    angles = np.linspace(start, stop, count)
    local = np.stack([radius_x * np.cos(angles), radius_y * np.sin(angles)], axis=1)
    return centre + local @ axes


def _inside_ellipse(points: np.ndarray, centre: np.ndarray, radius: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """``points`` with those outside the ellipse pulled in along the ray from its centre to its edge."""
    local = (points - centre) @ axes.T
    reach = np.sqrt(((local / radius) ** 2).sum(1, keepdims=True))
    return centre + (local / np.maximum(reach, 1.0)) @ axes


def _at_level(line: np.ndarray, level: float, down: np.ndarray) -> np.ndarray:
    """The point of the polyline ``line`` (running downwards) at height ``level`` (a coordinate along
    ``down``); beyond its ends, the line goes on straight up or down."""
    heights = line @ down
    if level <= heights[0]:
        return line[0] + (level - heights[0]) * down
    for i in range(len(line) - 1):
        if level <= heights[i + 1]:
            t = (level - heights[i]) / max(heights[i + 1] - heights[i], 1e-9)
            return line[i] + t * (line[i + 1] - line[i])
    return line[-1] + (level - heights[-1]) * down


def region_polygons(landmarks: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Polygons (float (N, 2) arrays in the landmarks' pixels) for every region except background.

    ``landmarks``: float (68, 2) in any pixel frame (image, model input, canonical face). The face's own
    axes come from the eyes, so the estimates (forehead top, hair, ears, neck) follow tilt and scale.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    right_eye_c, left_eye_c = p[36:42].mean(0), p[42:48].mean(0)
    across = left_eye_c - right_eye_c  # points to the image's right for an upright face
    eye_distance = float(np.linalg.norm(across))
    x_axis = across / eye_distance
    down = np.array([-x_axis[1], x_axis[0]])  # image y grows downwards
    axes = np.stack([x_axis, down])
    up = -down
    face_width = float(np.linalg.norm(p[16] - p[0]))
    brow_mid = p[17:27].mean(0)
    # Rule of thirds: hairline-to-brow is about brow-to-nose-base.
    third = float(np.dot(p[33] - brow_mid, down))

    # dlib's brow points run along the brow's upper edge, so the band hangs mostly below them. Brows
    # are thicker at the inner end (the head, points 21/22) than at the tail (17/26).
    def brow_band(points, tail_first):
        height = BROW_THICKNESS * eye_distance * np.linspace(BROW_TAPER, 1.0, len(points))[:, None]
        if not tail_first:
            height = height[::-1]
        top = points + BROW_ABOVE * height * up
        return top, np.concatenate([top, (points + (1 - BROW_ABOVE) * height * down)[::-1]])

    brow_top_right, right_brow = brow_band(p[17:22], tail_first=True)
    brow_top_left, left_brow = brow_band(p[22:27], tail_first=False)
    # The head: see HAIR_HEIGHT. Its centre sits between the jaw line's ends, not on the nose line: on a
    # turned head the nose moves towards one side of the skull.
    jaw_ends = (p[0] + p[16]) / 2
    head_radius = np.array([HAIR_HALF_WIDTH * face_width, (HAIR_HEIGHT - HEAD_WIDEST) * third])
    head_centre = brow_mid + np.dot(jaw_ends - brow_mid, x_axis) * x_axis + HEAD_WIDEST * third * up

    # Forehead: from the brows (and temples, at jaw points 0/16) up to an arc at the estimated hairline,
    # kept inside the head (on a turned head the arc would otherwise reach past the skull's far side).
    midline = brow_mid + np.dot((p[27] - brow_mid), x_axis) * x_axis
    arc = _inside_ellipse(_ellipse(midline, 0.5 * face_width, FOREHEAD_HEIGHT * third, axes, 2 * np.pi, np.pi, 24),
                          head_centre, head_radius, axes)
    # p[27] (top of the nose bridge) closes the gap between the inner brow ends (the glabella).
    forehead = np.concatenate([p[[0]], brow_top_right, p[[27]], brow_top_left, p[[16]], arc])
    nose_half = 0.18 * eye_distance
    nose = np.concatenate([
        [p[27] - nose_half * x_axis], p[[31]] - 0.1 * eye_distance * x_axis, p[32:35],
        p[[35]] + 0.1 * eye_distance * x_axis, [p[27] + nose_half * x_axis]])
    right_cheek = np.concatenate([p[0:6], p[48:52], p[[33, 30, 29, 28, 27]], p[21:16:-1]])
    left_cheek = np.concatenate([p[16:10:-1], p[54:50:-1], p[[33, 30, 29, 28, 27]], p[22:27]])
    chin = np.concatenate([p[5:12], p[54:60], p[[48]]])
    upper_lip = np.concatenate([p[48:55], p[[64, 63, 62, 61, 60]]])
    lower_lip = np.concatenate([p[54:60], p[[48, 60, 67, 66, 65, 64]]])
    mouth = p[60:68]

    # Hair: the head above the level of the jaw line's ends (about the tops of the ears); the face
    # regions painted later cover its lower middle.
    side = np.arcsin(np.clip(np.dot(jaw_ends - head_centre, down) / head_radius[1], -1.0, 1.0))
    hair = _ellipse(head_centre, head_radius[0], head_radius[1], axes, np.pi - side, 2 * np.pi + side, 48)
    # Ears: outside the jaw line, from brow height down to EAR_BOTTOM.
    brow_level = float(np.dot(brow_mid, down))

    def ear(jaw, outwards):
        ends = [_at_level(jaw, brow_level + level * third, down) for level in (0.0, EAR_BOTTOM)]
        return np.stack([ends[0], ends[1], ends[1] + EAR_WIDTH * face_width * outwards,
                         ends[0] + EAR_WIDTH * face_width * outwards])

    right_ear, left_ear = ear(p[0:5], -x_axis), ear(p[16:11:-1], x_axis)
    # Neck: below the jaw, as wide as the lower jaw, down to where clothing usually starts.
    chin_level = np.dot(p[8], down)
    depth_4 = (chin_level - np.dot(p[4], down)) + NECK_BELOW_CHIN * third
    depth_12 = (chin_level - np.dot(p[12], down)) + NECK_BELOW_CHIN * third
    neck = np.concatenate([p[4:13], [p[12] + depth_12 * down, p[4] + depth_4 * down]])
    eye_margin = EYE_GROW * eye_distance

    return {
        "hair": [hair], "neck": [neck], "right_ear": [right_ear], "left_ear": [left_ear],
        "forehead": [forehead], "right_cheek": [right_cheek], "left_cheek": [left_cheek], "chin": [chin],
        "nose": [nose], "right_brow": [right_brow], "left_brow": [left_brow],
        "right_eye": [_eye_opening(p[36:42], eye_margin)], "left_eye": [_eye_opening(p[42:48], eye_margin)],
        "upper_lip": [upper_lip], "lower_lip": [lower_lip], "mouth": [mouth],
    }


def label_image(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """A (height, width) uint8 image where each pixel holds its region's index in ``REGION_IDS``.

    ``landmarks`` are in the same pixels as the wanted label image (for scoring: model-input pixels),
    so the masks line up with the attribution map by construction.
    """
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    polygons = region_polygons(landmarks)
    for index, region_id in enumerate(PAINT_ORDER):
        for polygon in polygons.get(region_id, ()):
            draw.polygon(polygon.ravel().tolist(), fill=index)  # a flat list: 4x faster to hand over than tuples
    return np.asarray(canvas).copy()
