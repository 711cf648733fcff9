"""Uncertainty and trust: bootstrap intervals, group tests, the deletion (faithfulness) and sanity checks."""

import numpy as np
import pytest
import torch

from reportgen.checks import (deletion_drops, faithfulness_summary, randomised_copy, rank_correlation, sample_rows,
                              sanity_summary)
from reportgen.regions import REGION_IDS
from reportgen.scores import (SCORED_IDS, RunningScores, bootstrap_p_value, bootstrap_weights, compare,
                              region_scores)


def _scores(density_of_first: float, rng) -> dict:
    """Region scores of a made-up image whose first region (background) has about the given density."""
    labels = rng.integers(0, len(REGION_IDS), (32, 32)).astype(np.uint8)
    attribution = rng.random((32, 32)) * 0.1
    attribution[labels == 0] += density_of_first
    return region_scores(attribution, labels)


def _filled(values, replicates, first_row=0, rng_seed=0) -> RunningScores:
    rng = np.random.default_rng(rng_seed)
    scores = RunningScores(replicates)
    for row, value in enumerate(values, start=first_row):
        scores.add(_scores(value, rng), bootstrap_weights(row, replicates) if replicates else None)
    return scores


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    small = _filled(rng.normal(1.0, 0.5, 20).clip(0.01), 500)
    large = _filled(rng.normal(1.0, 0.5, 400).clip(0.01), 500)
    index = SCORED_IDS.index("background")
    widths = []
    for scores in (small, large):
        mean = scores.sum["density"][index] / scores.n["density"][index]
        low, high = scores.intervals("density")[index]
        assert low < mean < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # 20x the images: about 4.5x narrower


def test_bootstrap_resamples_add_up_exactly_across_parts():
    rng = np.random.default_rng(0)
    images = [_scores(value, rng) for value in np.linspace(0.2, 3.0, 30)]
    whole, part_a, part_b = RunningScores(200), RunningScores(200), RunningScores(200)
    for row, scores in enumerate(images):
        whole.add(scores, bootstrap_weights(row, 200))
        (part_a if row % 3 else part_b).add(scores, bootstrap_weights(row, 200))
    part_a.merge(part_b)
    index = SCORED_IDS.index("background")
    for metric in ("density", "share"):
        np.testing.assert_allclose(part_a.boot_sum[metric], whole.boot_sum[metric], rtol=1e-12)
        np.testing.assert_array_equal(part_a.boot_n[metric], whole.boot_n[metric])
        assert part_a.intervals(metric)[index] == pytest.approx(whole.intervals(metric)[index], rel=1e-9)
    with pytest.raises(ValueError):
        part_a.merge(RunningScores(10))


def test_bootstrap_weights_depend_only_on_the_row():
    np.testing.assert_array_equal(bootstrap_weights(7, 100), bootstrap_weights(7, 100))
    assert not np.array_equal(bootstrap_weights(7, 100), bootstrap_weights(8, 100))
    assert abs(bootstrap_weights(3, 20000).mean() - 1.0) < 0.03  # Poisson(1)


def test_group_test_finds_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(2)
    a = _filled(rng.normal(1.0, 0.3, 60).clip(0.01), 2000, rng_seed=3)
    same = _filled(rng.normal(1.0, 0.3, 60).clip(0.01), 2000, first_row=100, rng_seed=4)
    shifted = _filled(rng.normal(2.0, 0.3, 60).clip(0.01), 2000, first_row=200, rng_seed=5)
    null_rows = {row["id"]: row for row in compare(a, same)}
    real_rows = {row["id"]: row for row in compare(a, shifted)}
    assert not null_rows["background"]["beyond_noise"]
    assert real_rows["background"]["beyond_noise"]
    assert real_rows["background"]["test"] == "bootstrap"
    low, high = real_rows["background"]["ci"]
    assert low > 0 and low < real_rows["background"]["difference"] < high
    # Holm: the adjusted p-value is never below the raw one.
    assert all(row["p_adjusted"] >= row["p_value"] for row in real_rows.values() if row["p_value"] is not None)


def test_bootstrap_p_value():
    assert bootstrap_p_value(np.full(999, 1.0)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(np.linspace(-1, 1, 1001)) == pytest.approx(1.0)
    assert bootstrap_p_value(np.array([np.nan])) is None


def test_t_intervals_without_bootstrap():
    scores = _filled(np.linspace(0.5, 1.5, 10), 0)
    assert scores.replicates == 0
    row = next(r for r in scores.table() if r["id"] == "background")
    assert row["ci"][0] < row["density"] < row["ci"][1]


def test_effects_are_kept_and_grouped():
    labels = np.zeros((8, 8), np.uint8)
    labels[:4, :4] = REGION_IDS.index("left_eye")
    labels[4:, 4:] = REGION_IDS.index("right_eye")
    effects = np.full(len(REGION_IDS), np.nan)
    effects[[0, REGION_IDS.index("left_eye"), REGION_IDS.index("right_eye")]] = [0.1, 0.3, 0.2]
    scores = region_scores(np.zeros((8, 8)), labels, effects)  # no attention to share, effects still count
    assert np.isnan(scores["density"]).all()
    assert scores["effect"][SCORED_IDS.index("eyes")] == pytest.approx(0.5)
    assert np.isnan(scores["effect"][SCORED_IDS.index("nose")])
    assert region_scores(np.zeros((8, 8)), labels) is None


def test_rank_correlation():
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    assert rank_correlation(np.array([1.0, np.nan, 3]), np.array([1.0, 2, 3])) is None  # two shared entries
    assert rank_correlation(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])) is None  # no spread


def test_sample_rows_is_fixed_and_bounded():
    assert sample_rows(1000, 64) == sample_rows(1000, 64)
    assert len(sample_rows(1000, 64)) == 64
    assert sample_rows(10, 64) == set(range(10))
    assert sample_rows(1000, 0) == set()


class _Watcher(torch.nn.Module):
    """A model whose class-1 score is the mean of the red channel inside the top-left quarter."""

    def forward(self, x):
        score = x[:, 0, :8, :8].mean((1, 2)) * 10
        return torch.stack([torch.zeros_like(score), score], 1)


def test_deletion_drop_is_large_for_the_region_the_model_uses():
    inputs = torch.zeros(2, 3, 16, 16)
    inputs[:, 0, :8, :8] = 1.0
    regions = torch.zeros(2, 16, 16, dtype=torch.long)
    regions[:, :8, :8] = REGION_IDS.index("forehead")
    regions[:, 8:, :8] = REGION_IDS.index("chin")
    regions[:, :8, 8:] = REGION_IDS.index("nose")
    densities = np.full((2, len(REGION_IDS)), np.nan)
    areas = np.zeros((2, len(REGION_IDS)))
    for name, density in (("forehead", 3.0), ("chin", 0.5), ("nose", 0.5), ("background", 0.2)):
        densities[:, REGION_IDS.index(name)] = density
        areas[:, REGION_IDS.index(name)] = 0.25
    records = deletion_drops(_Watcher(), inputs, torch.tensor([1, 1]), regions, densities, areas, [0, 1], "mean")
    assert all(r["top_region"] == "forehead" for r in records)
    assert all(r["random_region"] in ("chin", "nose", "background") for r in records)
    assert all(r["top_drop"] > 0.4 and abs(r["random_drop"]) < 1e-6 for r in records)
    summary = faithfulness_summary(records * 10, "mean")
    assert summary["faithful"] and summary["images"] == 20
    unfaithful = [dict(r, top_drop=0.0) for r in records * 10]
    assert not faithfulness_summary(unfaithful, "mean")["faithful"]


def test_randomised_copy_changes_every_weight_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 14 * 14, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    copy = randomised_copy(model)
    assert torch.equal(torch.random.get_rng_state(), state)  # the run's own random numbers are untouched
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    changed = [name for name, value in copy.named_parameters()
               if not torch.equal(value, dict(model.named_parameters())[name])]
    assert set(changed) >= {"0.weight", "3.weight", "3.bias"}


def test_sanity_verdicts():
    real = [1.0, 2.0, 3.0, 4.0, 5.0] + [None] * (len(REGION_IDS) - 5)
    same = {"row": 0, "real": real, "randomised": real, "rank_correlation": 1.0}
    reversed_ = {"row": 1, "real": real, "randomised": real[:5][::-1] + real[5:], "rank_correlation": -1.0}
    assert sanity_summary([same] * 5)["verdict"] == "failed"
    assert sanity_summary([reversed_] * 5)["verdict"] == "passed"
    assert sanity_summary([reversed_] * 5)["top_region_randomised"] == REGION_IDS[0]
    assert sanity_summary([]) is None
