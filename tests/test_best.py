"""Best: the K best records, the same whatever the arrival order, the sharding or a save and reload."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.results.best import Best


def order_of(record: dict) -> str:
    return record["image"]


def fill(records: list[dict], size: int) -> Best:
    best: Best = Best(size)
    for record in records:
        best.offer(record["key"], record, order_of(record))
    return best


def kept(best: Best) -> list[str]:
    return [record["image"] for record in best.best_first()]


def round_trip(best: Best, size: int) -> Best:
    return Best.from_dict(size, json.loads(json.dumps(best.to_dict())), order_of)


# Ten records, only three distinct keys: which of the equal ones are kept is the tie-break's whole job.
TIED = [{"image": f"img{k}.jpg", "key": [1.0, 0.5, 1.0, 0.5, 1.0, 0.2, 1.0, 0.5, 1.0, 0.2][k]} for k in range(10)]


def test_ties_keep_the_smallest_order_not_the_first_to_arrive():
    assert kept(fill(TIED, 3)) == ["img0.jpg", "img2.jpg", "img4.jpg"]
    assert kept(fill(TIED[::-1], 3)) == ["img0.jpg", "img2.jpg", "img4.jpg"]


def test_a_larger_key_beats_any_order():
    best = fill(TIED, 6)
    assert kept(best) == ["img0.jpg", "img2.jpg", "img4.jpg", "img6.jpg", "img8.jpg", "img1.jpg"]
    assert best.wants(0.5, "img0.jpg") and not best.wants(0.5, "img3.jpg") and best.wants(0.6, "zzz")
    assert not best.offer(0.2, {"image": "a.jpg", "key": 0.2}, "a.jpg")
    assert len(best) == 6


def test_in_order_reversed_sharded_and_reloaded_keep_the_same_records():
    size = 4
    single = kept(fill(TIED, size))
    assert kept(fill(TIED[::-1], size)) == single
    # two shards, merged either way round, each through a save and reload
    first, second = fill(TIED[0::2], size), fill(TIED[1::2], size)
    merged = round_trip(first, size)
    merged.merge(round_trip(second, size))
    assert kept(merged) == single
    other_way = fill(TIED[1::2], size)
    other_way.merge(fill(TIED[0::2], size))
    assert kept(other_way) == single
    assert kept(round_trip(fill(TIED, size), size)) == single


def test_size_zero_keeps_nothing():
    best = fill(TIED, 0)
    assert len(best) == 0 and not best.wants(9.0, "a") and best.best_first() == []


def test_records_are_kept_as_given_so_one_record_can_sit_in_two():
    record = {"image": "a.jpg", "key": 1.0}
    one, two = Best(2), Best(2)
    one.offer(1.0, record, "a.jpg")
    two.offer(-1.0, record, "a.jpg")
    assert next(iter(one)) is next(iter(two)) is record


records = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 40)), max_size=40,
                   unique_by=lambda pair: pair[1]).map(
    lambda pairs: [{"image": f"img{name:02d}.jpg", "key": key} for key, name in pairs])


@settings(max_examples=200, deadline=None)
@given(records=records, size=st.integers(0, 6), parts=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_any_order_any_sharding_any_reload_keeps_the_sorted_best(records, size, parts, seed):
    expected = [r["image"] for r in sorted(records, key=lambda r: (-r["key"], order_of(r)))[:size]]
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    assert kept(fill(shuffled, size)) == expected
    shards = [fill(shuffled[k::parts], size) for k in range(parts)]
    merged = round_trip(shards[0], size)
    for shard in shards[1:]:
        merged.merge(round_trip(shard, size))
    assert kept(merged) == expected


# --- the report's heaps, through RunState: a run, its shards merged and a reloaded state keep the same ---

def _state_inputs(count: int = 24):
    """``count`` analysed images of one 64 px face with lots of ties: four attention levels on the left eye
    (so every region's share takes four values) and probabilities 1.0, 0.5 or 0.0 (the rounded ones).
    Returns [(row, scores, attribution, landmarks, labels, groups, info)]."""
    import numpy as np
    from PIL import Image

    from report_fixture import SOURCE_LANDMARKS, _source
    from reportgen.faces.regions import REGION_IDS, label_image
    from reportgen.results.scores import region_scores

    box, size = (120, 90, 420, 390), 64
    landmarks = (np.asarray(SOURCE_LANDMARKS["grace_hopper.jpg"], dtype=np.float64) - box[:2]) * (size / 300)
    labels = label_image(landmarks, size, size)
    seen = _source("grace_hopper.jpg").crop(box).resize((size, size), Image.BILINEAR)
    images = []
    for row in range(count):
        attribution = 0.05 + (1 + row % 4) * (labels == REGION_IDS.index("left_eye"))
        info = {"image": f"img{row:02d}.jpg", "label": "1", "prediction": 1,
                "probability": (1.0, 0.5, 0.0)[row % 3]}
        images.append((row, region_scores(attribution, labels), attribution, landmarks, labels,
                       {"protected": str(row % 2)}, info, seen))
    return images


def _state(images, total: int):
    from reportgen.results.patches import Examples, ImageBrowser
    from reportgen.results.state import RunState

    state = RunState(total, patches_per_region=2)
    state.examples, state.browser = Examples(each=2), ImageBrowser(sample=6, extremes=1)
    for row, scores, attribution, landmarks, labels, groups, info, seen in images:
        state.add_image(row, scores, attribution, landmarks, labels, groups, dict(info), 1, seen)
    return state


def _reloaded(state):
    from reportgen.results.state import RunState

    return RunState.from_dict(json.loads(json.dumps(state.to_dict())))


def _kept(state) -> dict:
    """What the report shows of the heaps (pictures included)."""
    return {"patches": state.patches.summary(), "views": state.patches.views(),
            "examples": state.examples.summary(), "browser": state.browser.summary()}


def test_a_run_its_reverse_its_merged_shards_and_a_reload_show_the_same_pictures():
    images = _state_inputs()
    single = _kept(_state(images, len(images)))
    # ties do decide here: the patches of a region hold 2 of the 6 images with its largest share
    assert len({record["image"] for record in single["patches"]["left_eye"]}) == 2
    assert _kept(_state(images[::-1], len(images))) == single
    assert _kept(_reloaded(_state(images, len(images)))) == single
    for parts in ((images[0::2], images[1::2]), (images[12:], images[:12])):
        merged = _reloaded(_state(parts[0], len(images)))
        merged.merge(_reloaded(_state(parts[1], len(images))))
        assert _kept(merged) == single
