"""A realistic results dict (schema ``reportgen/1``) for the report and findings tests, built without dlib.

The 68 landmarks of the two bundled sample portraits were found once with
``reportgen.faces.landmarks.detect_face`` and are hard-coded below, so building the fixture needs neither
dlib nor a model. The attention is synthetic: a few Gaussian blobs (eyes, nose, mouth, hair, a corner of
the background) painted on the canonical face; every region score is then measured from that map with
the real region geometry, so shares, areas and densities agree with each other and with the map.

Run it as a script to write the fixture report (and its JSON) for a look in a browser (a second argument,
``verification`` or ``reference``, makes it a face-verification run)::

    PYTHONPATH=. python tests/report_fixture.py /tmp/report.html [verification|reference]
"""

from __future__ import annotations

import base64
import copy
import functools
import io
import math
import sys

import numpy as np
from PIL import Image

from reportgen.faces.regions import (
    GROUP_LABELS,
    GROUPS,
    PAINT_ORDER,
    REGION_BY_ID,
    REGION_IDS,
    label_image,
    region_polygons,
)
from reportgen.resources import samples_dir
from reportgen.results.drawing import attribution_overlay, data_uri, region_overlay
from reportgen.results.findings import findings

CANVAS = 256  # canonical face canvas, width = height
GRID = 64  # mean_attribution grid
# detect_face(...).landmarks of samples/sources/*.jpg, image pixels, dlib order.
SOURCE_LANDMARKS = {
    "grace_hopper.jpg": [
        (181, 202), (185, 225), (190, 248), (195, 270), (204, 290), (217, 307), (234, 319), (254, 328),
        (276, 331), (299, 326), (320, 316), (338, 302), (353, 286), (363, 265), (366, 242), (368, 217),
        (369, 192), (186, 182), (194, 165), (210, 159), (228, 161), (243, 169), (282, 166), (297, 156),
        (316, 153), (334, 157), (346, 171), (264, 191), (265, 206), (266, 222), (266, 238), (245, 247),
        (256, 250), (268, 253), (279, 250), (289, 246), (207, 199), (216, 192), (227, 191), (239, 198),
        (228, 201), (216, 202), (294, 195), (304, 187), (316, 186), (327, 190), (318, 195), (306, 196),
        (233, 278), (245, 274), (257, 272), (266, 274), (275, 271), (291, 273), (309, 272), (292, 286),
        (278, 290), (268, 291), (259, 291), (246, 287), (239, 278), (258, 280), (267, 280), (276, 279),
        (302, 274), (276, 279), (268, 280), (258, 280),
    ],
    "astronaut.jpg": [
        (179, 104), (179, 115), (180, 127), (182, 138), (185, 150), (191, 160), (200, 168), (209, 176),
        (220, 178), (232, 177), (243, 171), (253, 163), (261, 154), (265, 143), (268, 131), (270, 120),
        (272, 108), (186, 93), (192, 88), (200, 87), (208, 89), (216, 92), (237, 93), (244, 91),
        (252, 90), (260, 92), (265, 98), (226, 103), (225, 111), (225, 119), (225, 127), (214, 131),
        (219, 132), (224, 134), (229, 133), (234, 132), (195, 101), (201, 98), (207, 98), (212, 104),
        (206, 104), (200, 104), (238, 105), (244, 100), (250, 100), (255, 104), (250, 106), (244, 106),
        (200, 139), (209, 139), (218, 139), (224, 141), (229, 140), (237, 140), (246, 141), (237, 151),
        (229, 155), (222, 156), (216, 155), (207, 150), (203, 140), (217, 143), (223, 144), (229, 144),
        (243, 142), (229, 150), (223, 150), (217, 149),
    ],
}


def canonical_landmarks() -> np.ndarray:
    """Grace Hopper's landmarks moved onto the 256x256 canvas: eyes level, 48 px apart, centred at (128, 114)."""
    points = np.asarray(SOURCE_LANDMARKS["grace_hopper.jpg"], dtype=np.float64)
    right_eye, left_eye = points[36:42].mean(0), points[42:48].mean(0)
    across = left_eye - right_eye
    angle = -math.atan2(across[1], across[0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    scale = 48.0 / float(np.linalg.norm(across))
    return np.round(((points - (right_eye + left_eye) / 2) @ rotation.T) * scale + (128.0, 114.0), 1)


def _blobs(landmarks: np.ndarray, size: int, weights: dict[str, float]) -> np.ndarray:
    """Synthetic non-negative attention (size, size) for a face with these landmarks (same pixels)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    eye_distance = float(np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0)))
    chin_y = landmarks[8, 1]
    centres = {
        "right_eye": (landmarks[36:42].mean(0), 0.4), "left_eye": (landmarks[42:48].mean(0), 0.4),
        "face": (landmarks[29], 1.1),
        "brows": (landmarks[17:27].mean(0), 0.45), "nose": (landmarks[30], 0.2),
        "mouth": (landmarks[48:68].mean(0), 0.22),
        "hair": (np.array([landmarks[27, 0], chin_y - 3.4 * eye_distance]), 0.7),
        "background": (np.array([0.12 * size, 0.88 * size]), 0.5),
    }
    heat = np.full((size, size), weights.get("floor", 0.05))
    for name, (centre, sigma) in centres.items():
        s = sigma * eye_distance
        heat += weights.get(name, 0.0) * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * s * s))
    return heat


# Attention of each group on the canonical face: the protected=1 group leans on hair and background.
GROUP_WEIGHTS = {
    "0": {"face": 0.25, "right_eye": 0.55, "left_eye": 0.75, "brows": 0.1, "nose": 0.3, "mouth": 0.25,
          "hair": 0.03, "background": 0.04, "floor": 0.015},
    "1": {"face": 0.24, "right_eye": 0.45, "left_eye": 0.6, "brows": 0.1, "nose": 0.3, "mouth": 0.22,
          "hair": 0.25, "background": 0.07, "floor": 0.015},
}
# Eyeglasses=1 (12 images) leans a little more on the eyes and brows.
GLASSES_WEIGHTS = {
    "0": {"face": 0.25, "right_eye": 0.5, "left_eye": 0.68, "brows": 0.1, "nose": 0.3, "mouth": 0.24,
          "hair": 0.1, "background": 0.05, "floor": 0.015},
    "1": {"face": 0.25, "right_eye": 0.6, "left_eye": 0.8, "brows": 0.16, "nose": 0.3, "mouth": 0.22,
          "hair": 0.1, "background": 0.05, "floor": 0.015},
}


def _ci(value: float, n: int, spread: float) -> list[float]:
    """A plausible Student-t 95% interval for a mean of n images with relative per-image spread."""
    half = 1.98 * spread * value / math.sqrt(max(n, 2))
    return [round(max(value - half, 0.0), 4), round(value + half, 4)]


def _scores(heat: np.ndarray, labels: np.ndarray, n: int) -> tuple[list[dict], list[dict]]:
    """Region and region-group rows measured from one attention map on the canvas."""
    total = heat.sum()
    visible_n = {"left_ear": int(n * 0.93), "right_ear": int(n * 0.9), "neck": int(n * 0.97)}

    def row(region_id, label, estimated, mask, count):
        share = float(heat[mask].sum() / total)
        area = float(mask.mean())
        density = share / area
        return {"id": region_id, "label": label, "estimated": estimated,
                "share": round(share, 4), "share_ci": _ci(share, count, 0.5),
                "area": round(area, 4), "density": round(density, 4), "ci": _ci(density, count, 0.45), "n": count}

    regions = []
    for index, region_id in enumerate(REGION_IDS):
        region = REGION_BY_ID[region_id]
        regions.append(row(region_id, region.label, region.estimated, labels == index, visible_n.get(region_id, n)))
    regions.sort(key=lambda r: -r["density"])
    groups = []
    for group_id, members in GROUPS.items():
        mask = np.isin(labels, [REGION_IDS.index(m) for m in members])
        groups.append(row(group_id, GROUP_LABELS[group_id], any(REGION_BY_ID[m].estimated for m in members),
                          mask, n))
    return regions, groups


def _grid(heat: np.ndarray) -> list[list[float]]:
    """The canvas map as a GRID x GRID block mean, scaled so the mean cell is 1.0."""
    block = heat.reshape(GRID, CANVAS // GRID, GRID, CANVAS // GRID).mean(axis=(1, 3))
    return np.round(block / block.mean(), 3).tolist()


def _comparison(column: str, a: str, b: str, group_a: dict, group_b: dict) -> dict:
    by_id_a = {r["id"]: r for r in group_a["regions"]}
    rows = []
    for rb in group_b["regions"]:
        ra = by_id_a[rb["id"]]
        difference = rb["density"] - ra["density"]
        half = math.hypot((ra["ci"][1] - ra["ci"][0]) / 2, (rb["ci"][1] - rb["ci"][0]) / 2)
        ci = [round(difference - half, 4), round(difference + half, 4)]
        rows.append({"id": rb["id"], "label": rb["label"], "density_a": ra["density"], "density_b": rb["density"],
                     "difference": round(difference, 4), "ci": ci,
                     "p_value": 0.001 if ci[0] > 0 or ci[1] < 0 else 0.4, "test": "bootstrap",
                     "p_adjusted": 0.017 if ci[0] > 0 or ci[1] < 0 else 1.0,
                     "beyond_noise": ci[0] > 0 or ci[1] < 0})
    rows.sort(key=lambda r: -abs(r["difference"]))
    return {"column": column, "a": a, "b": b, "n_a": group_a["n"], "n_b": group_b["n"], "regions": rows}


@functools.lru_cache(maxsize=4)
def _source(name: str) -> Image.Image:
    return Image.open(samples_dir() / "sources" / name).convert("RGB")


def _crop_box(name: str, region_id: str) -> tuple[int, int, int, int]:
    """A square box around one region of a sample portrait, in its pixels."""
    image = _source(name)
    landmarks = np.asarray(SOURCE_LANDMARKS[name], dtype=np.float64)
    if region_id == "background":
        return (0, 0, 140, 140)
    points = np.concatenate(region_polygons(landmarks)[region_id])
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    side = max(x1 - x0, y1 - y0, 48.0) * 1.25
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(cx - side / 2, 0, image.width - side))
    top = int(np.clip(cy - side / 2, 0, image.height - side))
    return (left, top, left + int(side), top + int(side))


def _thumbnail(name: str, region_id: str, rank: int, size: int = 96) -> str:
    box = _crop_box(name, region_id)
    crop = _source(name).crop(box).resize((size, size), Image.BILINEAR)
    yy, xx = np.mgrid[0:24, 0:24] + 0.5
    cx, cy = 12 + (rank % 3 - 1) * 2.5, 12 + (rank % 2) * 2.0
    heat = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 4.5 ** 2))
    return data_uri(attribution_overlay(crop, heat, alpha=0.4), quality=80)


def _patches(regions: list[dict], per_region: int) -> dict[str, list[dict]]:
    names = list(SOURCE_LANDMARKS)
    patches = {}
    for row in regions:
        items = []
        for rank in range(per_region):
            source = names[rank % 2]
            score = min(0.95, row["share"] * (2.6 - 0.18 * rank))
            number = 1000 + 37 * rank + 7 * REGION_IDS.index(row["id"])
            prediction = 1 if rank % 4 else 0
            items.append({"image": f"celeba/{number:06d}.jpg", "score": round(score, 4),
                          "label": "1" if rank % 3 else "0", "prediction": prediction,
                          "probability": round(0.97 - 0.04 * rank, 3), "uri": _thumbnail(source, row["id"], rank),
                          "view": f"celeba/{number:06d}.jpg", "source": source})
        patches[row["id"]] = items
    return patches


@functools.lru_cache(maxsize=4)
def _view_pictures(name: str) -> tuple[str, str]:
    example = _example(name, "", "", 0, 0.0)
    return example["uri"], example["regions_uri"]


def _views(patches: dict[str, list[dict]], column: str) -> dict[str, dict]:
    """One full-image view per image named by a patch (as ``TopPatches.views()``); the patch records keep
    only the key."""
    views = {}
    for items in patches.values():
        for record in items:
            source = record.pop("source")
            if record["view"] not in views:
                uri, regions_uri = _view_pictures(source)
                number = int(record["image"][7:13])
                views[record["view"]] = {
                    "uri": uri, "regions_uri": regions_uri, "label": record["label"],
                    "prediction": record["prediction"], "probability": record["probability"],
                    "groups": {column: str(number % 2), "Eyeglasses": "1" if number % 10 == 3 else "0"}}
    return views


@functools.lru_cache(maxsize=8)
def _browser_thumbnail(name: str, mirrored: bool, size: int = 96) -> str:
    uri = _view_pictures(name)[0]
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    if mirrored:
        picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
    return data_uri(picture.resize((size, size), Image.BILINEAR), quality=78)


def _browser(regions: list[dict], column: str, total: int, views: dict, sample: int = 60) -> dict:
    """The image browser's sample (as ``ImageBrowser.summary()``): 10 most and 10 least confident images
    and 40 at random, with per-region shares scattered around the overall shares. The most confident
    image is also among the top patches (it has a whole-image view)."""
    rng = np.random.default_rng(7)
    names = list(SOURCE_LANDMARKS)
    overall = np.array([next(r["share"] for r in regions if r["id"] == rid) for rid in REGION_IDS])
    probabilities = np.sort(rng.uniform(0.5, 1.0, total))[::-1]
    chosen = list(range(10)) + sorted(rng.choice(np.arange(10, total - 10), sample - 20, replace=False)) + \
        list(range(total - 10, total))
    images = []
    for rank in chosen:
        number = 3000 + 11 * int(rank)
        shares = overall * rng.lognormal(0.0, 0.5, len(overall))
        prediction = int(rng.uniform() < 0.55)
        label = prediction if rng.uniform() < 0.9 else 1 - prediction
        images.append({
            "image": f"celeba/{number:06d}.jpg", "label": str(label), "prediction": prediction,
            "probability": round(float(probabilities[rank]), 4),
            "groups": {column: str(number % 2), "Eyeglasses": "1" if number % 10 == 3 else "0"},
            "shares": np.round(shares / shares.sum(), 4).tolist(),
            "uri": _browser_thumbnail(names[rank % 2], bool(rank % 3 == 1)),
            "why": "highest confidence" if rank < 10 else "lowest confidence" if rank >= total - 10 else "random",
        })
    name, view = next(iter(views.items()))
    images[0].update(image=name, label=view["label"], prediction=view["prediction"], groups=dict(view["groups"]))
    return {"total_seen": total, "sampled": total > sample, "size": sample, "highest": 10, "lowest": 10,
            "random": sample - 20, "seed": 0, "regions": list(REGION_IDS), "images": images}


def _example(name: str, why: str, label: str, prediction: int, probability: float, size: int = 192) -> dict:
    image = _source(name)
    landmarks = np.asarray(SOURCE_LANDMARKS[name], dtype=np.float64)
    polygons = region_polygons(landmarks)
    points = np.concatenate([np.concatenate(polygons[r]) for r in ("hair", "neck", "left_ear", "right_ear")])
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    side = min(max(x1 - x0, y1 - y0) * 1.1, image.width, image.height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = float(np.clip(cx - side / 2, 0, image.width - side))
    top = float(np.clip(cy - side / 2, 0, image.height - side))
    crop = image.crop((int(left), int(top), int(left + side), int(top + side))).resize((size, size), Image.BILINEAR)
    local = (landmarks - (int(left), int(top))) * (size / int(side))
    heat = _blobs(local * (CANVAS / size), CANVAS, GROUP_WEIGHTS["0"])
    labels = label_image(local, size, size)
    return {"image": f"samples/{name}", "label": label, "prediction": prediction, "probability": probability,
            "why": why, "uri": data_uri(attribution_overlay(crop, heat)),
            "regions_uri": data_uri(region_overlay(crop, labels, local))}


# The checks (reportgen/results/checks.py) as a passing run records them: removing regions in the explanation's order
# lowers the evidence faster than random orders, and the ranking changes when the model's weights are randomised.
_AREAS = [round(0.01 * k, 4) for k in range(51)]
FAITHFULNESS = {
    "images": 64, "baseline": "mean", "evidence": "log-odds of the explained class", "area_limit": 0.5,
    "random_orders": 4, "areas": _AREAS,
    "ranked_drop": [round(3.2 * (1 - math.exp(-a / 0.06)) + a, 4) for a in _AREAS],
    "ranked_drop_ci": [[round(2.6 * (1 - math.exp(-a / 0.06)) + 0.6 * a, 4),
                        round(3.8 * (1 - math.exp(-a / 0.06)) + 1.4 * a, 4)] for a in _AREAS],
    "random_drop": [round(2.4 * a, 4) for a in _AREAS],
    "random_drop_ci": [[round(1.7 * a, 4), round(3.1 * a, 4)] for a in _AREAS],
    "ranked_drop_probability": [round(0.31 * (1 - math.exp(-a / 0.06)), 4) for a in _AREAS],
    "ranked_drop_probability_ci": [[round(0.25 * (1 - math.exp(-a / 0.06)), 4), round(0.37 * (1 - math.exp(-a / 0.06)), 4)]
                                   for a in _AREAS],
    "random_drop_probability": [round(0.2 * a, 4) for a in _AREAS],
    "random_drop_probability_ci": [[round(0.12 * a, 4), round(0.28 * a, 4)] for a in _AREAS],
    "ranked_mean": 3.066, "ranked_mean_ci": [2.61, 3.52], "random_mean": 0.6, "random_mean_ci": [0.41, 0.8],
    "difference": 2.466, "difference_ci": [1.98, 2.95],
    "ranked_mean_probability": 0.273, "ranked_mean_probability_ci": [0.22, 0.33],
    "random_mean_probability": 0.05, "random_mean_probability_ci": [0.03, 0.07],
    "difference_probability": 0.223, "difference_probability_ci": [0.171, 0.276], "faithful": True,
    "single_region": {"top_drop": 1.92, "top_drop_ci": [1.45, 2.41], "random_drop": 0.04, "random_drop_ci": [0.01, 0.08],
                      "top_drop_probability": 0.182, "top_drop_probability_ci": [0.14, 0.23],
                      "random_drop_probability": 0.004, "random_drop_probability_ci": [0.001, 0.008], "top_area": 0.0131},
    "top_regions": {"left_eye": 29, "right_eye": 21, "nose": 9, "hair": 5},
    "per_image": [{"row": 3, "top_region": "left_eye", "top_area": 0.0102, "evidence": 3.4, "probability": 0.97,
                   "difference": 2.91}],
}
SANITY = {
    "images": 64, "checked_images": 64,
    "randomisation": "cascading, from the output layer down (each layer's default initialisation): the output layer "
                     "(fc); the top half of the layers (21 of 41, from layer3.0.conv1 up); every layer (41)",
    "rank_correlation": 0.1834, "rank_correlation_ci": [0.1021, 0.2617], "mean_ranking_correlation": 0.2412,
    "top_region": "left_eye", "top_region_randomised": "background", "zero_maps": 2,
    "steps": [
        {"randomised": "the output layer (fc)", "images": 64, "rank_correlation": -0.1203,
         "rank_correlation_ci": [-0.2107, -0.0311], "mean_ranking_correlation": 0.05, "zero_maps": 5,
         "top_region_randomised": "hair"},
        {"randomised": "the top half of the layers (21 of 41, from layer3.0.conv1 up)", "images": 64,
         "rank_correlation": 0.0812, "rank_correlation_ci": [-0.0105, 0.1702], "mean_ranking_correlation": 0.11,
         "zero_maps": 0, "top_region_randomised": "neck"},
        {"randomised": "every layer (41)", "images": 64, "rank_correlation": 0.1834,
         "rank_correlation_ci": [0.1021, 0.2617], "mean_ranking_correlation": 0.2412, "zero_maps": 2,
         "top_region_randomised": "background"},
    ],
    "verdict": "passed", "thresholds": {"failed": 0.7, "doubtful": 0.4},
}
# The same checks as results written before the deletion curves and the cascade (one top and one random region in
# probability points; one randomisation of every layer, zero maps left out): old results must still render.
LEGACY_FAITHFULNESS = {
    "images": 64, "baseline": "mean", "top_drop": 0.2315, "top_drop_ci": [0.1822, 0.2841],
    "random_drop": 0.0412, "random_drop_ci": [0.0233, 0.0618], "difference": 0.1903,
    "difference_ci": [0.1377, 0.2458], "faithful": True, "top_area": 0.0131, "random_area": 0.0118,
    "top_regions": {"left_eye": 29, "right_eye": 21, "nose": 9, "hair": 5},
}
LEGACY_SANITY = {
    "images": 64, "randomisation": "all layers at once (each layer's default initialisation)",
    "rank_correlation": 0.1834, "rank_correlation_ci": [0.1021, 0.2617], "mean_ranking_correlation": 0.2412,
    "top_region": "left_eye", "top_region_randomised": "background", "zero_maps": 2, "verdict": "passed",
    "thresholds": {"failed": 0.7, "doubtful": 0.4},
}


def region_ablation(results: dict, samples: int = 0) -> dict:
    """The same results as a region-ablation run: each region row gets an ``effect`` (the drop of the class
    probability when the region alone is replaced by the baseline) with its interval, growing with density."""
    results["run"].update(method="region-ablation", samples=samples)
    results["config"].update(method="region-ablation", samples=samples)

    def add(rows):
        for row in rows:
            effect = round(0.06 * math.log(max(row["density"], 1e-3)) + 0.01, 4)
            row["effect"], row["effect_ci"] = effect, [round(effect - 0.02, 4), round(effect + 0.025, 4)]

    add(results["regions"])
    add(results["region_groups"])
    for group in results["groups"].values():
        add(group["regions"])
        add(group["region_groups"])
    results["findings"] = findings(results)
    return results


def verification(results: dict, reference: bool = False, gap: bool = True, threshold: float | None = None) -> dict:
    """The same results as a face-verification run (``run.task`` "verification"): every image explains its
    similarity to the other image of its pair (or, ``reference=True``, to one reference photo); pictures
    carry their partner's; the genuine/impostor column ``pair`` is grouped and compared; and
    ``verification`` holds the decision quality, made by ``reportgen.explain.similarity`` from synthetic similarities
    (genuine around 0.7, impostor around 0.2). ``gap``: the first protected column's second value is served
    worse (its impostor pairs look alike: accuracy about 70% against 94%), beyond noise. ``threshold``: as
    ``--threshold`` (decisions are then recorded per image); None = the best threshold on the pairs."""
    from reportgen.explain.similarity import SimilarityCounts

    column = results["run"]["protected"][0] if results["run"]["protected"] else "protected"
    results["run"].update(
        task="verification", head="similarity", head_source="automatic", target="is_same", label_column="is_same",
        head_detail="cosine similarity of 512-d embeddings; class 1 = similarity, class 0 = dissimilarity (1 - cosine)",
        head_reason="--reference reference.jpg" if reference else "--pairs: two images per row", outputs=512,
        pairs=not reference, reference="reference.jpg" if reference else None, threshold=threshold, target_class=1,
        annotations="reference.csv" if reference else "pairs.csv")
    results["config"].update(pairs=not reference, reference="reference.jpg" if reference else None, threshold=threshold,
                             target="is_same")
    pairs = results["counts"]["images"] // 2
    if not reference:
        results["counts"]["pairs"] = pairs

    # The decision quality, from similarities drawn per group (as VerificationExplainer records them).
    rng = np.random.default_rng(3)
    counts = SimilarityCounts(threshold)
    keys = {}
    for value in ("0", "1"):
        key = f"{column}={value}"
        keys[key] = [column, value]
        for k in range(64):
            genuine = k % 2 == 0
            if genuine:
                similarity = rng.normal(0.68, 0.1)
            else:
                similarity = rng.normal(0.55 if gap and value == "1" else 0.2, 0.14)
            counts.add(float(np.clip(similarity, -1, 1)), genuine, [key])
    counts.add(0.5, None, [])  # one unlabelled pair
    results["verification"] = counts.summary(keys)
    cut = results["verification"]["threshold"]

    def decided(similarity):
        return None if threshold is None else int(similarity >= threshold)

    # Genuine and impostor pairs as a group column, compared like any other (their maps: the protected groups').
    if results["groups"]:
        first = [k for k in results["groups"] if results["groups"][k]["column"] == column]
        for key, kind in zip(first, ("genuine", "impostor")):
            results["groups"][f"pair={kind}"] = dict(copy.deepcopy(results["groups"][key]), column="pair", value=kind)
        pair = copy.deepcopy(next(c for c in results["comparisons"] if c["column"] == column))
        pair.update(column="pair", a="pair=genuine", b="pair=impostor")
        results["comparisons"].append(pair)
        results["run"]["protected"] = list(results["run"]["protected"])

    # Pictures: each image's partner is the other sample portrait (or the reference photo, without a map).
    partner_pictures = {}
    for index, name in enumerate(SOURCE_LANDMARKS):
        uri, regions_uri = _view_pictures(name)
        partner_pictures[index] = (uri, uri if reference else regions_uri)
    number = iter(range(10**6))

    def partner_of(image: str) -> str:
        return "reference.jpg" if reference else f"celeba/{(int(image[7:13]) + 1) % 10**6:06d}.jpg"

    def similar(record: dict) -> float:
        genuine = str(record.get("label")) == "1"
        return round(float(np.clip(rng.normal(0.68 if genuine else 0.25, 0.12), -1, 1)), 4)

    for key, view in results["views"].items():
        view.update(similarity=similar(view), partner=partner_of(key))
        view.update(probability=view["similarity"], prediction=decided(view["similarity"]))
        view["groups"]["pair"] = "genuine" if str(view["label"]) == "1" else "impostor"
        view["partner_uri"], view["partner_regions_uri"] = partner_pictures[next(number) % 2]
    for items in results["patches"].values():
        for patch in items:
            view = results["views"][patch["view"]]
            patch.update(label=view["label"], similarity=view["similarity"], probability=view["similarity"],
                         prediction=view["prediction"], partner=view["partner"])
    for k, example in enumerate(results["examples"]):
        example.update(similarity=similar(example), partner=partner_of(f"celeba/{9000 + 2 * k:06d}.jpg"),
                       partner_uri=partner_pictures[next(number) % 2][0],
                       why={"highest confidence": "most confident", "lowest confidence": "least confident"}[example["why"]])
        example.update(probability=example["similarity"], prediction=decided(example["similarity"]))
    for image in results["browser"]["images"]:
        view = results["views"].get(image["image"])
        image.update(similarity=view["similarity"] if view else similar(image),
                     partner=view["partner"] if view else partner_of(image["image"]))
        image.update(probability=image["similarity"], prediction=decided(image["similarity"]))
        image["groups"]["pair"] = "genuine" if str(image["label"]) == "1" else "impostor"
    results["browser"]["images"].sort(key=lambda r: -r["similarity"])
    results["predictions"] = None
    assert cut is not None
    results["findings"] = findings(results)
    return results


@functools.lru_cache(maxsize=8)
def _build(column: str, patches_per_region: int, with_groups: bool) -> dict:
    landmarks = canonical_landmarks()
    labels = label_image(landmarks, CANVAS, CANVAS)
    polygons = region_polygons(landmarks)
    heats, groups = {}, {}
    sizes = {"0": 66, "1": 60}
    for value, weights in GROUP_WEIGHTS.items():
        heats[value] = _blobs(landmarks, CANVAS, weights)
        heats[value] /= heats[value].sum()
    overall = (sizes["0"] * heats["0"] + sizes["1"] * heats["1"]) / sum(sizes.values())
    n = sum(sizes.values())
    regions, region_groups = _scores(overall, labels, n)
    comparisons = []
    if with_groups:
        for col, weight_table, counts in ((column, GROUP_WEIGHTS, sizes), ("Eyeglasses", GLASSES_WEIGHTS,
                                                                           {"0": 114, "1": 12})):
            keys = []
            for value, weights in weight_table.items():
                heat = _blobs(landmarks, CANVAS, weights)
                group_regions, group_groups = _scores(heat, labels, counts[value])
                key = f"{col}={value}"
                keys.append(key)
                groups[key] = {"column": col, "value": value, "n": counts[value], "regions": group_regions,
                               "region_groups": group_groups, "mean_attribution": _grid(heat)}
            comparisons.append(_comparison(col, keys[0], keys[1], groups[keys[0]], groups[keys[1]]))
    patches = _patches(regions, patches_per_region)
    results = {
        "schema": "reportgen/1",
        "tool": {"name": "reportgen", "version": "0.1.0", "python": "3.11.7", "torch": "2.14.1",
                 "captum": "0.9.0", "dlib": "20.0.1"},
        "run": {
            "target": "task", "target_class": 1, "layer": "layer4", "layer_source": "default",
            "layer_type": "Sequential", "layer_shape": [512, 7, 7], "method": "gradcam",
            "baseline": "mean", "samples": 0, "bootstrap": 2000, "check_images": 64,
            "interval": "bootstrap over images (2000 resamples)",
            "images": "/data/celeba/img_align_celeba", "annotations": "/data/celeba/annotations.csv",
            "annotation_format": "csv", "model_file": "/models/resnet18_task/model.py", "model_name": "model",
            "weights": "/models/resnet18_task/weights.pt",
            "transform": "Resize((224, 224)), ToTensor, "
                         "Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])",
            "input_size": [224, 224], "protected": [column, "Eyeglasses"] if with_groups else [],
            "device": "cpu", "batch_size": 16, "started": "2026-11-28T08:00:00Z", "seconds": 212.4,
        },
        "config": {
            "images": "/data/celeba/img_align_celeba", "annotations": "/data/celeba/annotations.csv",
            "target": "task", "target_class": 1, "model_file": "/models/resnet18_task/model.py",
            "model_var": "model", "weights": "/models/resnet18_task/weights.pt", "layer": None,
            "method": "gradcam", "baseline": "mean", "samples": 0, "bootstrap": 2000, "check_images": 64,
            "protected": [column, "Eyeglasses"] if with_groups else [],
            "out": "report.html", "json": "results.json",
            "analysis": {"batch_size": 16, "device": "cpu", "patches_per_region": patches_per_region,
                         "examples": 4},
            "detection": {"upsample": True, "full_frame": True, "cache": "~/.cache/reportgen/landmarks"},
        },
        "counts": {"images": 128, "aligned": n, "failed": 128 - n, "scored": n},
        "failures": [{"image": "celeba/000412.jpg", "reason": "no face found"},
                     {"image": "celeba/001377.jpg", "reason": "image could not be decoded (truncated JPEG)"}],
        "detection": {"hog": 113, "hog-upsampled": 4, "full-frame": 9},
        "notes": ["3 images had several faces; the largest was analysed"],
        "regions": regions,
        "region_groups": region_groups,
        "groups": groups,
        "comparisons": comparisons,
        "predictions": {"accuracy": 0.914, "n_labelled": n, "predicted_counts": {"0": 58, "1": 68},
                        "mean_probability": 0.887},
        "canonical_face": {
            "size": [CANVAS, CANVAS],
            "landmarks": landmarks.tolist(),
            "polygons": {rid: [np.round(p, 2).tolist() for p in polys] for rid, polys in polygons.items()},
            "paint_order": list(PAINT_ORDER),
            "mean_attribution": _grid(overall),
        },
        "patches": patches,
        "views": (views := _views(patches, column)),
        "browser": _browser(regions, column, n, views),
        "faithfulness": FAITHFULNESS,
        "sanity": SANITY,
        "examples": [
            _example("grace_hopper.jpg", "highest confidence", "1", 1, 0.991),
            _example("astronaut.jpg", "highest confidence", "1", 1, 0.984),
            _example("astronaut.jpg", "lowest confidence", "0", 1, 0.512),
            _example("grace_hopper.jpg", "lowest confidence", "1", 0, 0.447),
        ],
    }
    results["findings"] = findings(results)
    return results


def build_results(column: str = "protected", patches_per_region: int = 6, with_groups: bool = True) -> dict:
    """A fresh copy of the fixture results (callers may mutate it).

    ``column``: the name of the first protected column (the second is always ``Eyeglasses``, whose
    ``Eyeglasses=1`` group has 12 images: too small to conclude). ``with_groups=False`` gives a run
    without --protected.
    """
    return copy.deepcopy(_build(column, patches_per_region, with_groups))


if __name__ == "__main__":
    from reportgen.report import write_html, write_json

    out = sys.argv[1] if len(sys.argv) > 1 else "report.html"
    kind = sys.argv[2] if len(sys.argv) > 2 else ""  # "verification" or "reference" for a face-verification run
    fixture = build_results()
    if kind in ("verification", "reference"):
        fixture = verification(fixture, reference=kind == "reference")
    write_html(fixture, out)
    write_json(fixture, out.rsplit(".", 1)[0] + ".json")
    print(out)
