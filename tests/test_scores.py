"""Score definitions (share, area, density), running means with intervals, and group comparisons."""

import numpy as np
import pytest

from reportgen.faces.regions import REGION_IDS
from reportgen.results.scores import SCORED_IDS, RunningScores, compare, holm, region_scores, t_quantile_975


def test_share_area_and_density_follow_their_definitions():
    labels = np.zeros((10, 10), np.uint8)  # background everywhere
    eye = REGION_IDS.index("left_eye")
    labels[:2, :5] = eye  # 10% of the picture
    attribution = np.zeros((10, 10))
    attribution[:2, :5] = 3.0  # 30 units in the eye
    attribution[5:, :] = 0.7  # 35 units in the background
    scores = region_scores(attribution, labels)
    i, b = SCORED_IDS.index("left_eye"), SCORED_IDS.index("background")
    assert scores["share"][i] == pytest.approx(30 / 65)
    assert scores["area"][i] == pytest.approx(0.10)
    assert scores["density"][i] == pytest.approx((30 / 65) / 0.10)
    assert scores["share"][b] == pytest.approx(35 / 65)
    assert np.isnan(scores["density"][SCORED_IDS.index("nose")])  # not in the picture: no density
    eyes = SCORED_IDS.index("eyes")
    assert scores["share"][eyes] == pytest.approx(30 / 65)  # groups add up their members


def test_zero_attribution_cannot_be_scored():
    assert region_scores(np.zeros((4, 4)), np.zeros((4, 4), np.uint8)) is None


def _scores(density_of_eye, rng):
    labels = np.zeros((8, 8), np.uint8)
    labels[:2, :2] = REGION_IDS.index("left_eye")
    attribution = np.ones((8, 8)) + rng.random((8, 8)) * 0.1
    attribution[:2, :2] *= density_of_eye
    return region_scores(attribution, labels)


def test_running_means_have_intervals_that_cover_and_merge_exactly():
    rng = np.random.default_rng(0)
    whole, part_a, part_b = RunningScores(), RunningScores(), RunningScores()
    for k in range(40):
        scores = _scores(3.0 + rng.normal(0, 0.3), rng)
        whole.add(scores)
        (part_a if k % 2 else part_b).add(scores)
    part_a.merge(part_b)
    assert part_a.table() == whole.table()
    eye = next(r for r in whole.table() if r["id"] == "left_eye")
    assert eye["ci"][0] < eye["density"] < eye["ci"][1]
    assert whole.table()[0]["id"] == "left_eye"  # ranked by density


def test_only_differences_beyond_noise_after_holm_are_flagged():
    rng = np.random.default_rng(1)
    same_a, same_b, shifted = RunningScores(), RunningScores(), RunningScores()
    for _ in range(60):
        same_a.add(_scores(2.0 + rng.normal(0, 0.5), rng))
        same_b.add(_scores(2.0 + rng.normal(0, 0.5), rng))
        shifted.add(_scores(4.0 + rng.normal(0, 0.5), rng))
    assert not any(row["beyond_noise"] for row in compare(same_a, same_b))
    rows = compare(same_a, shifted)
    assert rows[0]["id"] == "left_eye" and rows[0]["beyond_noise"] and rows[0]["difference"] > 1.0


def test_holm_adjustment():
    with_gap = holm([0.01, 0.04, None, 0.03])
    assert with_gap[2] is None and with_gap[0] == pytest.approx(0.03)
    adjusted = holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])


def test_t_quantiles():
    assert t_quantile_975(1) == pytest.approx(12.706)
    assert t_quantile_975(100) == pytest.approx(1.984, abs=1e-3)
