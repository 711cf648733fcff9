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


# Geometry of the estimated parts, in units of the face's own size. "third" is the brow-to-nose-base
# height (faces are roughly three such thirds: hairline-brow, brow-nose base, nose base-chin).
# Values measured against face-parsing masks of real photos (benchmarks/region_iou.py).
BROW_THICKNESS = 0.16      # x eye distance
BROW_ABOVE = 0.2           # fraction of the brow band above dlib's brow points
EYE_SCALE = (1.1, 1.4)     # eye polygon dilation along / across the eye
FOREHEAD_HEIGHT = 0.95     # hairline above the brows, x third
HAIR_HEIGHT = 1.8          # top of the head above the brows, x third
HAIR_HALF_WIDTH = 0.7      # x face width
HAIR_SIDE = 0.12           # hair beside the temples, x face width
NECK_BELOW_CHIN = 0.45     # x third


def _scaled(points: np.ndarray, factor_x: float, factor_y: float, axes: np.ndarray) -> np.ndarray:
    """Scale points about their centroid along the face's own axes (so tilted faces scale correctly)."""
    centre = points.mean(0)
    local = (points - centre) @ axes.T
    local *= (factor_x, factor_y)
    return centre + local @ axes


def _ellipse(centre: np.ndarray, radius_x: float, radius_y: float, axes: np.ndarray, start: float,
             stop: float, count: int = 32) -> np.ndarray:
    angles = np.linspace(start, stop, count)
    local = np.stack([radius_x * np.cos(angles), radius_y * np.sin(angles)], axis=1)
    return centre + local @ axes


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
    brow_thickness = BROW_THICKNESS * eye_distance

    def shift(points, distance, direction):
        return points + distance * direction

    # dlib's brow points run along the brow's upper edge, so the band hangs mostly below them.
    def brow_band(points):
        return np.concatenate([shift(points, BROW_ABOVE * brow_thickness, up),
                               shift(points, (1 - BROW_ABOVE) * brow_thickness, down)[::-1]])

    brow_top_right = shift(p[17:22], BROW_ABOVE * brow_thickness, up)
    brow_top_left = shift(p[22:27], BROW_ABOVE * brow_thickness, up)
    # Forehead: from the brows (and temples, at jaw points 0/16) up to an arc at the estimated hairline.
    midline = brow_mid + np.dot((p[27] - brow_mid), x_axis) * x_axis
    arc = _ellipse(midline, 0.5 * face_width, FOREHEAD_HEIGHT * third, axes, 2 * np.pi, np.pi, 24)
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

    # Hair: the top of an ellipse around the head, above the eyes, a little wider than the face.
    hair = np.concatenate([[p[0] - HAIR_SIDE * face_width * x_axis],
                           _ellipse(midline + 0.1 * third * up, HAIR_HALF_WIDTH * face_width,
                                    HAIR_HEIGHT * third, axes, np.pi, 2 * np.pi, 40),
                           [p[16] + HAIR_SIDE * face_width * x_axis]])
    # Ears: beside the jaw from eye height (jaw point 0/16) to nose-base height (point 3/13).
    ear_width = 0.16 * face_width
    right_ear = np.stack([p[0], p[3], p[3] - ear_width * x_axis, p[0] - ear_width * x_axis + 0.1 * third * up])
    left_ear = np.stack([p[16], p[13], p[13] + ear_width * x_axis, p[16] + ear_width * x_axis + 0.1 * third * up])
    # Neck: below the jaw, as wide as the lower jaw, down to where clothing usually starts.
    chin_level = np.dot(p[8], down)
    depth_4 = (chin_level - np.dot(p[4], down)) + NECK_BELOW_CHIN * third
    depth_12 = (chin_level - np.dot(p[12], down)) + NECK_BELOW_CHIN * third
    neck = np.concatenate([p[4:13], [p[12] + depth_12 * down, p[4] + depth_4 * down]])

    return {
        "hair": [hair], "neck": [neck], "right_ear": [right_ear], "left_ear": [left_ear],
        "forehead": [forehead], "right_cheek": [right_cheek], "left_cheek": [left_cheek], "chin": [chin],
        "nose": [nose], "right_brow": [brow_band(p[17:22])], "left_brow": [brow_band(p[22:27])],
        "right_eye": [_scaled(p[36:42], EYE_SCALE[0], EYE_SCALE[1], axes)],
        "left_eye": [_scaled(p[42:48], EYE_SCALE[0], EYE_SCALE[1], axes)],
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
            draw.polygon([tuple(point) for point in polygon], fill=index)
    return np.asarray(canvas).copy()


def region_masks(labels: np.ndarray) -> np.ndarray:
    """Boolean (R, H, W) masks from a label image, in ``REGION_IDS`` order."""
    return labels[None, :, :] == np.arange(len(REGION_IDS), dtype=labels.dtype)[:, None, None]
