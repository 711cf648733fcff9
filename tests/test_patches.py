"""Patches, full-image views and the image browser's bounded, representative sample (no dlib, no model)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from report_fixture import SOURCE_LANDMARKS, _source
from reportgen.faces.regions import REGION_IDS, label_image
from reportgen.results.patches import (
    BROWSER_SIZE,
    VIEW_SIZE,
    Examples,
    ImageBrowser,
    TopPatches,
    full_views,
    random_key,
)
from reportgen.results.scores import region_scores

SIZE = 64


@pytest.fixture(scope="module")
def face():
    """A 64 px face (what the model saw), its landmarks and region labels in the same pixels."""
    name = "grace_hopper.jpg"
    box = (120, 90, 420, 390)
    seen = _source(name).crop(box).resize((SIZE, SIZE), Image.BILINEAR)
    landmarks = (np.asarray(SOURCE_LANDMARKS[name], dtype=np.float64) - box[:2]) * (SIZE / (box[2] - box[0]))
    return seen, landmarks, label_image(landmarks, SIZE, SIZE)


def attention(labels: np.ndarray, region: str, weight: float) -> np.ndarray:
    """A map with extra attention on one region, so that region's share grows with ``weight``."""
    return 0.05 + weight * (labels == REGION_IDS.index(region))


def picture(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def offer(patches: TopPatches, face, name: str, weight: float, region: str = "left_eye", **info):
    seen, landmarks, labels = face
    heat = attention(labels, region, weight)
    shares = region_scores(heat, labels)["share"][:len(REGION_IDS)]
    info = {"image": name, "label": "1", "prediction": 1, "probability": 0.9, **info}
    patches.offer(seen, heat, labels, shares, info, landmarks=landmarks)


def test_full_views_are_view_size_jpegs_of_the_whole_image(face):
    seen, landmarks, labels = face
    views = full_views(seen, attention(labels, "nose", 1.0), labels, landmarks)
    for key in ("uri", "regions_uri"):
        assert picture(views[key]).size == (VIEW_SIZE, VIEW_SIZE)
    # without landmarks the region view still shows the region colours
    plain = full_views(seen, attention(labels, "nose", 1.0), labels, None)
    assert picture(plain["regions_uri"]).size == (VIEW_SIZE, VIEW_SIZE)


def test_patch_records_reference_one_deduplicated_view_per_image(face):
    patches = TopPatches(per_region=3)
    for k in range(5):
        offer(patches, face, f"img{k}.jpg", weight=1.0 + k, groups={"protected": str(k % 2)})
    summary = patches.summary()
    views = patches.views()
    records = [r for items in summary.values() for r in items]
    assert records and all(r["view"] == r["image"] for r in records)
    assert all("_view" not in r and r["uri"].startswith("data:image/jpeg") for r in records)
    assert set(views) == {r["view"] for r in records}  # every referenced view exists, no other
    assert len(views) < len(records)  # an image topping several regions has one view
    view = views[summary["left_eye"][0]["view"]]
    assert set(view) == {"uri", "regions_uri", "label", "prediction", "probability", "groups"}
    assert summary["left_eye"][0]["image"] == "img4.jpg"  # the largest share first
    json.dumps(summary), json.dumps(views)  # plain JSON


def test_views_leave_with_their_images(face):
    patches = TopPatches(per_region=2)
    for k in range(6):
        offer(patches, face, f"img{k}.jpg", weight=1.0 + k)
    kept = {r["image"] for items in patches.summary().values() for r in items}
    assert set(patches.views()) == kept
    # img0 tops the regions the others leave (its left eye matters least), img4 and img5 the left eye
    assert kept == {"img0.jpg", "img1.jpg", "img4.jpg", "img5.jpg"}
    # evicted records are gone from memory: only records still in a heap hold pictures
    held = {id(record["_view"]) for heap in patches.heaps.values() for record in heap}
    assert len(held) == len(kept)


def test_merged_patches_keep_their_views(face):
    a, b = TopPatches(per_region=2), TopPatches(per_region=2)
    for k in range(3):
        offer(a, face, f"a{k}.jpg", weight=1.0 + 2 * k)
        offer(b, face, f"b{k}.jpg", weight=2.0 + 2 * k)
    a.merge(b)
    summary, views = a.summary(), a.views()
    assert [r["image"] for r in summary["left_eye"]] == ["b2.jpg", "a2.jpg"]
    assert {r["view"] for items in summary.values() for r in items} == set(views)


def browser_offer(browser: ImageBrowser, seen, labels, name: str, probability: float, group: str = "0"):
    heat = np.ones((SIZE, SIZE))
    shares = region_scores(heat, labels)["share"][:len(REGION_IDS)]
    browser.offer(seen, heat, labels, None, {"image": name, "label": "1", "prediction": int(probability > 0.5),
                                            "probability": probability, "groups": {"protected": group}}, shares)


def test_browser_shows_every_image_when_there_are_few(face):
    seen, _, labels = face
    browser = ImageBrowser(sample=12)
    for k in range(10):
        browser_offer(browser, seen, labels, f"img{k}.jpg", k / 10)
    summary = browser.summary()
    assert summary["total_seen"] == 10 and summary["sampled"] is False
    assert sorted(r["image"] for r in summary["images"]) == sorted(f"img{k}.jpg" for k in range(10))
    record = summary["images"][0]
    assert record["probability"] == 0.9  # highest first
    assert len(record["shares"]) == len(REGION_IDS) == len(summary["regions"])
    assert abs(sum(record["shares"]) - 1) < 1e-3
    assert record["groups"] == {"protected": "0"}
    assert picture(record["uri"]).size[0] == BROWSER_SIZE
    json.dumps(summary)


def test_browser_sample_is_bounded_and_keeps_extremes_and_a_fixed_random_part(face):
    seen, _, labels = face
    rng = np.random.default_rng(1)
    probabilities = rng.uniform(0.5, 1.0, 400)
    browser = ImageBrowser(sample=30, extremes=5)
    for k, p in enumerate(probabilities):
        browser_offer(browser, seen, labels, f"img{k:03d}.jpg", float(p))
        assert len(browser.highest) <= 5 and len(browser.lowest) <= 5 and len(browser.random) <= 30
    summary = browser.summary()
    assert summary["total_seen"] == 400 and summary["sampled"] is True
    assert len(summary["images"]) == 30
    assert (summary["highest"], summary["lowest"], summary["random"]) == (5, 5, 20)
    shown = {r["image"]: r for r in summary["images"]}
    order = np.argsort(probabilities)
    assert {f"img{k:03d}.jpg" for k in order[-5:]} | {f"img{k:03d}.jpg" for k in order[:5]} <= set(shown)
    random_part = {name for name, r in shown.items() if r["why"] == "random"}
    others = sorted((random_key(f"img{k:03d}.jpg"), f"img{k:03d}.jpg") for k in order[5:-5])
    assert random_part == {name for _, name in others[:20]}  # the smallest fixed keys: same every run


def test_browser_random_sample_is_spread_over_the_run(face):
    seen, _, labels = face
    browser = ImageBrowser(sample=60, extremes=0)
    for k in range(3000):
        browser_offer(browser, seen, labels, f"img{k:04d}.jpg", 0.7)
    positions = sorted(int(r["image"][3:7]) for r in browser.summary()["images"])
    # a uniform sample: each third of the run holds about a third of it
    thirds = np.bincount(np.array(positions) // 1000, minlength=3)
    assert thirds.min() >= 10, thirds


def test_browser_merge_and_round_trip_equal_a_single_run(face):
    seen, _, labels = face
    rng = np.random.default_rng(2)
    probabilities = rng.uniform(0, 1, 150)
    single, parts = ImageBrowser(sample=20), [ImageBrowser(sample=20) for _ in range(3)]
    for k, p in enumerate(probabilities):
        browser_offer(single, seen, labels, f"img{k:03d}.jpg", float(p))
        browser_offer(parts[k % 3], seen, labels, f"img{k:03d}.jpg", float(p))
    merged = ImageBrowser.from_dict(json.loads(json.dumps(parts[0].to_dict())))
    for part in parts[1:]:
        merged.merge(ImageBrowser.from_dict(json.loads(json.dumps(part.to_dict()))))
    assert merged.summary() == single.summary()


def test_examples_still_pick_most_and_least_confident(face):
    seen, landmarks, labels = face
    examples = Examples(each=1)
    for k, p in enumerate((0.6, 0.99, 0.51)):
        examples.offer(seen, np.ones((SIZE, SIZE)), labels, landmarks,
                       {"image": f"img{k}.jpg", "label": "1", "prediction": 1, "probability": p})
    assert [r["image"] for r in examples.summary()] == ["img1.jpg", "img2.jpg"]


def test_pictures_are_drawn_only_for_the_images_the_report_keeps(face, monkeypatch):
    """Images pushed out of the heaps before the end are never drawn; the kept ones are drawn once each, and
    saving the state (to_dict) leaves plain JSON."""
    from reportgen.results import patches as module

    drawn_views = []
    real = module.full_views
    monkeypatch.setattr(module, "full_views", lambda seen, *rest: drawn_views.append(seen) or real(seen, *rest))
    patches, browser = TopPatches(per_region=2), ImageBrowser(sample=3, extremes=0)
    seen, landmarks, labels = face
    for k in range(20):  # rising attention on the left eye: every image enters that heap, most leave it
        offer(patches, face, f"img{k:02d}.jpg", 0.1 * (k + 1))
        heat = attention(labels, "left_eye", 0.1 * (k + 1))
        browser.offer(seen, heat, labels, landmarks, {"image": f"img{k:02d}.jpg", "probability": 0.5},
                      np.zeros(len(REGION_IDS)))
    assert drawn_views == []  # nothing drawn while the images stream past
    views = patches.views()
    kept = {record["image"] for records in patches.summary().values() for record in records}
    assert len(drawn_views) == len(views) == len(kept) < 20
    assert {"img19.jpg", "img18.jpg"} <= kept
    assert all(picture(record["uri"]) for records in patches.summary().values() for record in records)
    json.dumps(browser.to_dict())  # pending thumbnails were drawn: plain data
    assert len(browser.summary()["images"]) == 3
