"""Pictures for the report: region colouring, attribution overlays, and images as data URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

from ..faces.regions import ESTIMATED, REGION_BY_ID, REGION_IDS, label_image, region_polygons

# One distinct colour per region (background transparent), for region overlays.
REGION_COLOURS = {
    "background": (0, 0, 0), "hair": (140, 86, 75), "neck": (188, 189, 34), "right_ear": (23, 190, 207),
    "left_ear": (23, 190, 207), "forehead": (255, 187, 120), "right_cheek": (152, 223, 138),
    "left_cheek": (152, 223, 138), "chin": (197, 176, 213), "nose": (255, 127, 14),
    "right_brow": (148, 103, 189), "left_brow": (148, 103, 189), "right_eye": (31, 119, 180),
    "left_eye": (31, 119, 180), "upper_lip": (214, 39, 40), "lower_lip": (227, 119, 194),
    "mouth": (127, 127, 127),
}


def _heat_table(levels: int = 256) -> np.ndarray:
    v = np.linspace(0.0, 1.0, levels)[:, None]
    blue, white, red = np.array([33, 102, 172.0]), np.array([247, 247, 247.0]), np.array([178, 24, 43.0])
    low = blue + (white - blue) * (v / 0.5)
    high = white + (red - white) * ((v - 0.5) / 0.5)
    return np.where(v < 0.5, low, high).round().astype(np.uint8)


# The colour scale as a 256-entry table: a lookup per pixel instead of arithmetic on every one.
HEAT_TABLE = _heat_table()


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 on a blue (low) - white - red (high) scale, shape (..., 3)."""
    index = (np.clip(values, 0.0, 1.0) * (len(HEAT_TABLE) - 1) + 0.5).astype(np.intp)
    return HEAT_TABLE[index]


def attribution_overlay(image: Image.Image, attribution: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The image with its attribution map (float (H, W), same pixels, non-negative) blended on top."""
    peak = float(attribution.max())
    scaled = attribution / peak if peak > 0 else attribution
    heat = Image.fromarray(heat_colours(scaled), "RGB").resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image.convert("RGB"), heat, alpha)


def region_overlay(image: Image.Image, labels: np.ndarray | None, landmarks: np.ndarray | None,
                   alpha: float = 0.4, outline: bool = True) -> Image.Image:
    """The image with region colours (labels: uint8 (H, W) in ``REGION_IDS`` order) and landmark dots."""
    picture = image.convert("RGB")
    if labels is not None:
        palette = np.array([REGION_COLOURS[r] for r in REGION_IDS], dtype=np.uint8)
        colours = Image.fromarray(palette[labels], "RGB")
        mask = Image.fromarray(np.where(labels > 0, int(255 * alpha), 0).astype(np.uint8), "L")
        picture.paste(colours, (0, 0), mask)
    if landmarks is not None:
        draw = ImageDraw.Draw(picture)
        if outline:
            for polygons in region_polygons(landmarks).values():
                for polygon in polygons:
                    draw.line([tuple(pt) for pt in np.vstack([polygon, polygon[:1]])], fill=(255, 255, 255), width=1)
        radius = max(1.0, image.width / 400)
        for x, y in landmarks:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 0))
    return picture


def data_uri(image: Image.Image, quality: int = 82) -> str:
    """A JPEG data URI of an RGB image: compact enough to inline hundreds of thumbnails."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def region_sheet(image: Image.Image, face) -> Image.Image:
    """The image with its region masks and landmarks, and a legend naming each region's colour."""
    labels = label_image(face.landmarks, image.width, image.height)
    picture = region_overlay(image, labels, face.landmarks, alpha=0.45)
    scale = max(1.0, 600 / max(picture.size))
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BILINEAR)
    shown = [rid for rid in REGION_IDS if rid != "background" and (labels == REGION_IDS.index(rid)).any()]
    legend_width, row = 190, 18
    sheet = Image.new("RGB", (picture.width + legend_width, max(picture.height, row * (len(shown) + 3))), "white")
    sheet.paste(picture, (0, 0))
    draw = ImageDraw.Draw(sheet)
    x = picture.width + 10
    draw.text((x, 6), f"found by: {face.detection}", fill=(0, 0, 0))
    for k, rid in enumerate(shown):
        y = 6 + row * (k + 1)
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=REGION_COLOURS[rid])
        draw.text((x + 18, y + 2), REGION_BY_ID[rid].label + (" *" if rid in ESTIMATED else ""), fill=(0, 0, 0))
    draw.text((x, 6 + row * (len(shown) + 1) + 4), "* estimated from face size", fill=(90, 90, 90))
    return sheet
