"""The pictures the report shows: top image patches per region (each with a full-image view), a few whole
images, and a bounded, representative sample of all images for the image browser.

Only a bounded number of pictures is kept however many images the run has (``best.Best``: the K best,
ties ranked by ``tie_order``, so the same records whatever the order, sharding or resuming). A
record carries its own pictures, so whatever moves records between heaps (merging shards, saving and
loading a partial state) moves their pictures with them, and an image that leaves every heap leaves
memory too. A picture is drawn only when it is needed (``Later``): the summaries and ``draw()``, which
saving a partial state calls, draw what is still pending, after which every record is a plain JSON-safe dict.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

import numpy as np
from PIL import Image

from ..faces.regions import REGION_IDS, label_image
from . import schema
from .best import Best
from .drawing import attribution_overlay, data_uri, region_overlay

PATCH_SIZE = 96
EXAMPLE_SIZE = 192
# Whole-image views a patch opens: one per image in a heap, so up to len(REGION_IDS) * per_region of them
# (204 with 12 patches per region): together the largest part of a report after plotly.js. Measured by
# benchmarks/report_size.py: about 6-7 kB for the attention view and 8-9 kB for the region view (a
# diagram, where JPEG artefacts matter less) at these settings.
VIEW_SIZE = 192
VIEW_QUALITY = 70
REGIONS_QUALITY = 55
BROWSER_SIZE = 96  # width of the image browser's thumbnails
BROWSER_QUALITY = 78
VIEW_FIELDS = ("label", "prediction", "probability", "groups", "similarity", "partner")
Record = TypeVar("Record")  # a record's type in results.json (schema.Patch, schema.View...)


class Later:
    """A picture drawn when it is first needed, once (``get``); arguments that are ``Later`` themselves (or
    tuples of them) are drawn first (the picture the model saw, say, which the prepare stage leaves undrawn).

    Why: while the heaps fill, most images that enter them are pushed out again before the end. Drawing
    and encoding at once cost 1.6 s of a 12 s run of 512 images (240 whole-image views drawn for the few
    dozen images that end in the report); drawing only the pictures still held at the end saves most of
    it. Until then it holds references to the image's arrays, so memory stays bounded by the heaps' sizes."""

    __slots__ = ("_make", "_args", "_value", "_lock")

    def __init__(self, make, *args):
        self._make, self._args, self._value = make, args, None
        self._lock = threading.Lock()  # drawn once even when two threads want it (draw_pictures)

    def get(self):
        if self._make is not None:
            with self._lock:
                if self._make is not None:
                    args = [_drawn_value(arg) for arg in self._args]
                    self._value = self._make(*args)
                    self._make, self._args = None, ()
        return self._value

    def __reduce__(self):
        # Sent to another process (a prepared image from a DataLoader worker): drawn here, sent drawn.
        return (_ready, (self.get(),))


def _drawn_value(value):
    """``value`` drawn if it is a ``Later``; a tuple (a verification partner's pictures) with its ``Later``
    members drawn."""
    if isinstance(value, Later):
        return value.get()
    if isinstance(value, tuple):
        return tuple(member.get() if isinstance(member, Later) else member for member in value)
    return value


def _ready(value) -> Later:
    later = Later(None)
    later._make, later._value = None, value
    return later


def drawn(record: dict) -> dict:
    """``record`` with every pending picture (a ``Later`` value) drawn, in place; returns it."""
    for key, value in record.items():
        if isinstance(value, Later):
            record[key] = value.get()
    return record


def _records(*heaps: Best) -> list[dict]:
    return [record for heap in heaps for record in heap]


def draw_pictures(*holders) -> None:
    """Draw every pending picture of the records that ``holders`` (TopPatches, Examples, ImageBrowser) keep,
    in a few threads: at the end of a run this is the only work left (about 1 s for a report's few hundred
    pictures on one core), and resizing, colour lookups and JPEG encoding release Python's lock."""
    pending = [value for holder in holders for record in holder.records() for value in record.values()
               if isinstance(value, Later)]
    if len(pending) > 1:
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="reportgen-draw") as pool:
            for _ in pool.map(Later.get, pending):
                pass
    for holder in holders:
        holder.draw()


def _patch_uri(overlay: Image.Image, labels: np.ndarray, index: int) -> str:
    # The region has attention, so it has pixels: its box exists (found only for the patches the report keeps).
    box = _crop_box(labels == index) or (0, 0, *overlay.size)
    return data_uri(overlay.crop(box).resize((PATCH_SIZE, PATCH_SIZE), Image.Resampling.BILINEAR), quality=80)


def _view(seen, attribution, labels, landmarks, fields: dict, partner: tuple | None = None) -> dict:
    view = dict(full_views(seen, attribution, labels, landmarks), **fields)
    if partner is not None:
        pictures = full_views(*partner)
        view.update(partner_uri=pictures["uri"], partner_regions_uri=pictures["regions_uri"])
    return view


def _example_uri(draw, seen: Image.Image, *arrays) -> str:
    size = (EXAMPLE_SIZE, round(EXAMPLE_SIZE * seen.height / seen.width))
    return data_uri(draw(seen, *arrays).resize(size, Image.Resampling.BILINEAR))


def _partner_uri(partner: tuple) -> str:
    """An example's partner (face verification) at the example's size, with its map when it has one."""
    seen, attribution = partner[0], partner[1]
    picture = seen if attribution is None else attribution_overlay(seen, attribution)
    return data_uri(picture.resize((EXAMPLE_SIZE, round(EXAMPLE_SIZE * seen.height / seen.width)), Image.Resampling.BILINEAR))


def _thumbnail_uri(seen: Image.Image, attribution: np.ndarray) -> str:
    width = BROWSER_SIZE
    thumbnail = attribution_overlay(seen, attribution).resize(
        (width, max(1, round(width * seen.height / seen.width))), Image.Resampling.BILINEAR)
    return data_uri(thumbnail, quality=BROWSER_QUALITY)


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


def full_views(seen: Image.Image, attribution: np.ndarray, labels: np.ndarray | None,
               landmarks: np.ndarray | None, size: int = VIEW_SIZE) -> dict[str, str]:
    """The whole image twice, ``size`` px wide, as JPEG data URIs: with the attention laid over it
    (``uri``) and with its face regions and landmarks (``regions_uri``).

    The picture is enlarged first and the regions are drawn at the view's own size, so their outlines
    stay sharp (landmarks are in ``seen``'s pixels, like ``labels`` and ``attribution``)."""
    width, height = size, max(1, round(size * seen.height / seen.width))
    picture = seen.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    # No map (a verification partner whose face was not found, or the reference photo): the picture alone.
    attention = picture if attribution is None else attribution_overlay(picture, attribution)
    if landmarks is not None:
        points = np.asarray(landmarks, dtype=np.float64) * (width / seen.width, height / seen.height)
        regions = region_overlay(picture, label_image(points, width, height), points)
    elif labels is not None:
        resized = np.asarray(Image.fromarray(np.asarray(labels, dtype=np.uint8)).resize((width, height),
                                                                                       Image.Resampling.NEAREST))
        regions = region_overlay(picture, resized, None)
    else:
        regions = picture
    return {"uri": data_uri(attention, quality=VIEW_QUALITY), "regions_uri": data_uri(regions, quality=REGIONS_QUALITY)}


class TopPatches:
    """For each region, the K image patches with the highest share of attention in that region.

    Each patch record names the full-image view it opens (``"view"``: the image name); ``views()`` gives
    those views, one per image, for the images that are still in some heap.
    """

    def __init__(self, per_region: int = 12):
        self.per_region = per_region
        self.heaps: dict[str, Best[dict]] = {rid: Best(per_region) for rid in REGION_IDS}

    def wants(self, region_id: str, score: float, order: tuple) -> bool:
        """Whether the region's heap would keep a patch with this share and ``tie_order``."""
        return self.heaps[region_id].wants(score, order)

    def offer(self, seen: Image.Image, attribution: np.ndarray, labels: np.ndarray, shares: np.ndarray,
              info: dict, landmarks: np.ndarray | None = None, partner: tuple | None = None) -> bool:
        """seen: what the model saw (RGB, model-input size, or a ``Later`` one); attribution/labels (H, W) in
        the same pixels; shares: per-region shares in ``REGION_IDS`` order; info: image name, label,
        prediction, probability (and optionally ``groups``: {column: value}); landmarks (68, 2) in the same
        pixels, for the region view's outlines and dots (without them the view shows the region colours
        only). True when a heap kept the image."""
        overlay = view = None
        order = tie_order(info)
        for index, rid in enumerate(REGION_IDS):
            score = float(shares[index])
            if score <= 0 or not self.wants(rid, score, order):
                continue
            if overlay is None:
                overlay = Later(attribution_overlay, seen, attribution, 0.4)
                # One view per image, shared by all of its patches (and so drawn once).
                view = Later(_view, seen, attribution, labels, landmarks,
                             {k: info[k] for k in VIEW_FIELDS if k in info}, partner)
            record = dict(info, score=round(score, 4), uri=Later(_patch_uri, overlay, labels, index),
                          view=info["image"])
            record["_view"] = view
            # An evicted record (and its view, if no other heap keeps the image) leaves memory.
            self.heaps[rid].offer(score, record, order)
        return overlay is not None

    def merge(self, other: TopPatches) -> None:
        for rid, heap in other.heaps.items():
            self.heaps[rid].merge(heap)

    def to_dict(self) -> dict:
        """JSON-safe state (for partial results; pictures drawn first): {"per_region", "heaps": {region id:
        [[share, record], ...]}}; ``from_dict`` restores it."""
        self.draw()
        return {"per_region": self.per_region, "heaps": {rid: heap.to_dict() for rid, heap in self.heaps.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> TopPatches:
        patches = cls(int(data["per_region"]))
        for rid, entries in data["heaps"].items():
            patches.heaps[rid] = Best.from_dict(patches.per_region, entries, tie_order)
        return patches

    def records(self) -> list[dict]:
        return _records(*self.heaps.values())

    def draw(self) -> None:
        """Draw every pending picture of the records held (their whole-image views included)."""
        for record in self.records():
            drawn(record)

    def summary(self) -> dict[str, list[schema.Patch]]:
        """{region id: [patch records, best first]}; a record's ``view`` is a key of ``views()``."""
        self.draw()
        return {rid: [_public(record) for record in heap.best_first()] for rid, heap in self.heaps.items()}

    def views(self) -> dict[str, schema.View]:
        """{image name: {"uri", "regions_uri", "label", "prediction", "probability"[, "groups"]}}: the
        full-image views of the images in the heaps, once per image however many regions it tops."""
        self.draw()
        views: dict[str, schema.View] = {}
        for rid in REGION_IDS:
            for record in self.heaps[rid].best_first():
                view = record.get("_view")
                if view is not None and record.get("view") is not None:
                    views.setdefault(record["view"], _as_results(schema.View, view))
        return views


def _public(record: dict) -> schema.Patch:
    """A record without its private fields (the pictures kept for ``views()``)."""
    return _as_results(schema.Patch, {key: value for key, value in record.items() if not key.startswith("_")})


def _as_results(kind: type[Record], record: dict) -> Record:
    """A drawn record as results.json holds it (``kind``: its type in ``schema``). The heaps keep records as plain
    dicts because their pictures stay ``Later`` until drawn; once drawn they are that type, which this only
    states (tests/test_schema.py checks real records against it)."""
    return cast(Record, record)


class Examples:
    """Whole images for the report: the most and the least confident predictions."""

    def __init__(self, each: int = 3):
        self.each = each
        self.most: Best[dict] = Best(each)   # key: confidence, keeps the highest
        self.least: Best[dict] = Best(each)  # key: -confidence, keeps the lowest

    def offer(self, seen: Image.Image, attribution: np.ndarray, labels: np.ndarray, landmarks: np.ndarray,
              info: dict, partner: tuple | None = None) -> bool:
        """``partner``: as ``TopPatches.offer``; the example then also carries the partner's two pictures.
        True when a heap kept the image."""
        confidence = float(info["probability"])
        order = tie_order(info)
        kept = False
        for heap, key, why in ((self.most, confidence, "most confident"), (self.least, -confidence, "least confident")):
            if not heap.wants(key, order):
                continue
            kept = True
            record = dict(info, why=why, uri=Later(_example_uri, attribution_overlay, seen, attribution),
                          regions_uri=Later(_example_uri, region_overlay, seen, labels, landmarks))
            if partner is not None:
                record["partner_uri"] = Later(_partner_uri, partner)
            heap.offer(key, record, order)
        return kept

    def merge(self, other: Examples) -> None:
        self.most.merge(other.most)
        self.least.merge(other.least)

    def to_dict(self) -> dict:
        """JSON-safe state (pictures drawn first): {"each", "most": [[key, record], ...], "least": ...}."""
        self.draw()
        return {"each": self.each, "most": self.most.to_dict(), "least": self.least.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Examples:
        examples = cls(int(data["each"]))
        examples.most = Best.from_dict(examples.each, data["most"], tie_order)
        examples.least = Best.from_dict(examples.each, data["least"], tie_order)
        return examples

    def records(self) -> list[dict]:
        return _records(self.most, self.least)

    def draw(self) -> None:
        for record in self.records():
            drawn(record)

    def summary(self) -> list[schema.Example]:
        self.draw()
        most = self.most.best_first()
        chosen = {r["image"] for r in most}
        least = [r for r in self.least.best_first() if r["image"] not in chosen]
        return [_as_results(schema.Example, record) for record in most + least]


def random_key(image: str, seed: int = 0) -> float:
    """A fixed pseudo-random number in [0, 1) for an image name: the image browser's random sample is
    the images with the smallest keys, so it is the same whatever the order, sharding or resuming."""
    digest = hashlib.blake2b(f"{seed}:{image}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def tie_order(record: dict) -> tuple[float, str, str]:
    """How records with equal keys rank in the heaps (the smaller first), taken from the record (or the info
    it is made from) alone, so a run, its merged shards and a reloaded state keep the same records.

    ``random_key`` first, so that among many equal probabilities (rounded to 1.0) the kept ones are a fair
    sample rather than the alphabetically first; then the name, and the verification partner (one image in
    several pairs), which tell apart the rare records whose keys collide."""
    image = str(record["image"])
    return random_key(image), image, str(record.get("partner") or "")


class ImageBrowser:
    """A bounded, representative sample of all analysed images for the report's image browser.

    Keeps the ``extremes`` most and least confident predictions and a uniform random sample (the images
    with the smallest ``random_key``: a fixed seed, independent of the order images arrive in), each
    with a small attention thumbnail, its label, prediction, probability, groups and per-region shares.
    ``summary()`` shows every image when there are at most ``sample``; otherwise the extremes plus
    random images up to ``sample``. At most ``sample + 2 * extremes`` thumbnails are held at any time.
    """

    def __init__(self, sample: int = 60, extremes: int | None = None, seed: int = 0):
        self.sample = sample
        self.extremes = max(0, min(sample // 2, sample // 6 if extremes is None else extremes))
        self.seed = seed
        self.total_seen = 0
        # One record may sit in several of these (shared, not copied): it leaves memory when it leaves all.
        self.highest: Best[dict] = Best(self.extremes)  # key (probability, random key): the highest probabilities
        self.lowest: Best[dict] = Best(self.extremes)   # key (-probability, -random key): the lowest
        self.random: Best[dict] = Best(sample)          # key -random key: the smallest random keys

    def _keys(self, record: dict) -> tuple[tuple, tuple, tuple]:
        key, probability = random_key(record["image"], self.seed), float(record["probability"])
        return (probability, key), (-probability, -key), (-key,)

    def _wanted(self, record: dict) -> list[tuple[Best[dict], tuple, tuple]]:
        """[(heap, key, order)] for the heaps that would keep this record (``image`` and ``probability`` are
        enough to tell)."""
        order = tie_order(record)
        return [(heap, key, order) for heap, key in zip((self.highest, self.lowest, self.random), self._keys(record))
                if heap.wants(key, order)]

    def offer(self, seen: Image.Image, attribution: np.ndarray, labels: np.ndarray | None,
              landmarks: np.ndarray | None, info: dict, shares: np.ndarray) -> bool:
        """Arguments as ``Examples.offer`` plus ``shares`` (per-region shares, ``REGION_IDS`` order);
        ``info["groups"]`` = {column: value}. The thumbnail is made only when the image is kept. True when
        it is kept."""
        self.total_seen += 1
        probe = {"image": info["image"], "probability": info["probability"], "partner": info.get("partner")}
        wanted = self._wanted(probe)
        if not wanted:
            return False
        record = {"image": info["image"], "label": info.get("label"), "prediction": info.get("prediction"),
                  "probability": info.get("probability"), "groups": dict(info.get("groups") or {}),
                  "shares": [round(float(s), 4) for s in np.asarray(shares, dtype=np.float64)[:len(REGION_IDS)]],
                  "uri": Later(_thumbnail_uri, seen, attribution)}
        # Face verification: the image it was compared with (the browser's tiles and its view name it).
        record.update({k: info[k] for k in ("similarity", "partner") if k in info})
        for heap, key, order in wanted:
            heap.offer(key, record, order)
        return True

    def merge(self, other: ImageBrowser) -> None:
        """Add another part's images (a shard of the same run): the result is what one run would keep. Each
        heap keeps the best of both parts' heaps; a record the other part shares between heaps stays shared."""
        self.total_seen += other.total_seen
        for mine, theirs in ((self.highest, other.highest), (self.lowest, other.lowest), (self.random, other.random)):
            mine.merge(theirs)

    def records(self) -> list[dict]:
        return _records(self.highest, self.lowest, self.random)

    def draw(self) -> None:
        for record in self.records():
            drawn(record)

    def to_dict(self) -> dict:
        """JSON-safe state (for partial results); ``from_dict`` restores it."""
        self.draw()
        return {"sample": self.sample, "extremes": self.extremes, "seed": self.seed, "total_seen": self.total_seen,
                "images": list({id(r): r for heap in (self.highest, self.lowest, self.random)
                                for r in heap}.values())}

    @classmethod
    def from_dict(cls, data: dict) -> ImageBrowser:
        browser = cls(int(data["sample"]), int(data["extremes"]), int(data["seed"]))
        for record in data["images"]:
            for heap, key, order in browser._wanted(record):
                heap.offer(key, record, order)
        browser.total_seen = int(data["total_seen"])
        return browser

    def summary(self) -> schema.Browser:
        """{"total_seen", "sampled", "size", "highest", "lowest", "random", "seed", "regions", "images"}:
        images sorted by probability (highest first), each with ``why`` ("highest confidence", "lowest
        confidence" or "random") and ``shares`` in the order of ``regions``."""
        self.draw()

        chosen: dict[int, dict] = {}
        for heap, why in ((self.highest, "highest confidence"), (self.lowest, "lowest confidence")):
            for record in heap.best_first():
                chosen.setdefault(id(record), dict(record, why=why))
        picked = {"highest confidence": 0, "lowest confidence": 0, "random": 0}
        for record in chosen.values():
            picked[record["why"]] += 1
        for record in self.random.best_first():  # smallest keys first
            if len(chosen) >= min(self.sample, self.total_seen):
                break
            if id(record) not in chosen:
                chosen[id(record)] = dict(record, why="random")
                picked["random"] += 1
        images = sorted(chosen.values(), key=lambda r: (-float(r["probability"]), r["image"]))
        return {"total_seen": self.total_seen, "sampled": self.total_seen > len(images), "size": self.sample,
                "highest": picked["highest confidence"], "lowest": picked["lowest confidence"],
                "random": picked["random"], "seed": self.seed, "regions": list(REGION_IDS),
                "images": [_as_results(schema.BrowserImage, record) for record in images]}
