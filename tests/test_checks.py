"""Uncertainty and trust: bootstrap intervals, group tests, the deletion (faithfulness) and sanity checks."""

import numpy as np
import pytest
import torch

import reportgen
from reportgen.explain.attribution import Explanation, Method
from reportgen.explain.check_passes import (
    deletion_curves,
    layers_in_forward_order,
    randomisation_cascade,
    randomised_copy,
)
from reportgen.explain.heads import ExplainedModel, Head, OutputChoice
from reportgen.explain.methods import METHODS as REGISTRY
from reportgen.faces.regions import REGION_IDS
from reportgen.results.checks import (
    AREA_LIMIT,
    CASCADE,
    cascade_subset,
    deletion_orders,
    drop_curve,
    faithfulness_summary,
    rank_correlation,
    sample_rows,
    sanity_record,
    sanity_summary,
    step_correlation,
)
from reportgen.results.scores import (
    SCORED_IDS,
    RunningScores,
    bootstrap_p_value,
    bootstrap_weights,
    compare,
    region_scores,
)


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


# -- the deletion check ---------------------------------------------------------------------------------

def _region(name: str) -> int:
    return REGION_IDS.index(name)


def test_deletion_orders_rank_by_density_stop_at_the_area_limit_and_depend_only_on_the_row():
    densities = np.full(len(REGION_IDS), np.nan)
    areas = np.zeros(len(REGION_IDS))
    for name, density, area in (("forehead", 5.0, 0.05), ("nose", 3.0, 0.03), ("chin", 3.0, 0.03),
                                ("hair", 0.5, 0.2), ("background", 0.2, 0.69)):
        densities[_region(name)], areas[_region(name)] = density, area
    ranked, randoms = deletion_orders(7, densities, areas, orders=6, limit=0.2, step_area=0.0)
    assert ranked[0] == [_region("forehead")] and {ranked[1][0], ranked[2][0]} == {_region("nose"), _region("chin")}
    assert ranked[3] == [_region("hair")] and len(ranked) == 4  # 0.31 of the image >= 0.2: stop
    for order in randoms:  # each random order also stops at the first step that reaches the limit
        cumulative = np.cumsum([areas[step].sum() for step in order])
        assert cumulative[-1] >= 0.2 and (len(order) == 1 or cumulative[-2] < 0.2)
        assert {r for step in order for r in step} <= {_region(n) for n in ("forehead", "nose", "chin", "hair", "background")}
    assert deletion_orders(7, densities, areas, orders=6, limit=0.2, step_area=0.0) == (ranked, randoms)
    assert deletion_orders(8, densities, areas, orders=6, limit=0.2, step_area=0.0)[1] != randoms
    # ties (nose, chin) are broken at random, not by region number
    firsts = {ranked_steps[1][0] for ranked_steps, _ in (deletion_orders(row, densities, areas, orders=0)
                                                         for row in range(20))}
    assert firsts == {_region("nose"), _region("chin")}


def test_small_regions_are_removed_together_except_the_top_one():
    densities = np.full(len(REGION_IDS), np.nan)
    areas = np.zeros(len(REGION_IDS))
    for name, density, area in (("left_eye", 5.0, 0.01), ("right_eye", 4.0, 0.01), ("mouth", 3.0, 0.005),
                                ("nose", 2.0, 0.03), ("background", 1.0, 0.945)):
        densities[_region(name)], areas[_region(name)] = density, area
    ranked, _ = deletion_orders(0, densities, areas, orders=0, limit=0.5, step_area=0.025)
    names = [[REGION_IDS[r] for r in step] for step in ranked]
    assert names == [["left_eye"], ["right_eye", "mouth", "nose"], ["background"]]


def test_curves_are_read_at_the_same_removed_area():
    curve = {"area": [0.1, 0.4], "evidence": [3.0, 1.0], "probability": None}
    grid = np.array([0.0, 0.05, 0.1, 0.25, 0.4, 0.5])
    np.testing.assert_allclose(drop_curve(curve, 5.0, grid), [0.0, 1.0, 2.0, 3.0, 4.0, 4.0])


def _record(row: int, ranked: list, randoms: list[list], before: float = 6.0, top: str = "forehead") -> dict:
    """A deletion record whose curves pass through the given (area, evidence) steps."""
    def curve(steps):
        return {"area": [a for a, _ in steps], "evidence": [e for _, e in steps],
                "probability": [1 / (1 + np.exp(-e)) for _, e in steps]}
    return {"row": row, "evidence_name": "log-odds of the explained class", "evidence": before,
            "probability": 1 / (1 + np.exp(-before)), "top_region": top, "top_area": ranked[0][0],
            "ranked": curve(ranked), "random": [curve(r) for r in randoms]}


def test_faithfulness_passes_when_the_ranked_curve_falls_faster_at_equal_area():
    rng = np.random.default_rng(0)
    faithful, unfaithful = [], []
    for row in range(30):
        noise = rng.normal(0, 0.3, 3)
        randoms = [[(0.3, 6.0 + noise[0]), (0.6, 1.0)], [(0.05, 6.0 + noise[1]), (0.55, 0.5)],
                   [(0.2, 5.5 + noise[2]), (0.5, 2.0)]]
        # the ranked order's first region is small and takes most of the evidence
        faithful.append(_record(row, [(0.03, 1.0), (0.5, 0.0)], randoms))
        # ranked like a random order: no better than chance
        unfaithful.append(_record(row, randoms[row % 3], randoms))
    good, bad = faithfulness_summary(faithful, "mean"), faithfulness_summary(unfaithful, "mean")
    assert good["faithful"] and good["difference_ci"][0] > 1.0
    assert not bad["faithful"] and bad["difference_ci"][0] <= 0 <= bad["difference_ci"][1]
    assert good["images"] == 30 and good["random_orders"] == 3 and good["area_limit"] == AREA_LIMIT
    assert len(good["ranked_drop"]) == len(good["areas"]) == len(good["ranked_drop_ci"])
    assert good["areas"][-1] == AREA_LIMIT
    # the probability points are there for readers, and the single-region detail
    assert good["difference_probability"] > 0 and good["single_region"]["top_drop"] == pytest.approx(5.0)
    assert good["single_region"]["top_area"] == pytest.approx(0.03)
    # records in any order (shards, resume) give the same summary
    assert faithfulness_summary(faithful[::-1], "mean") == good


def test_faithfulness_does_not_reward_removing_more_of_the_picture():
    """A ranking that puts big regions first removes more per step; at equal area it gains nothing."""
    records = []
    for row in range(20):
        # evidence falls with the area removed, whichever regions go: the model uses every pixel alike
        ranked = [(0.3, 3.0), (0.5, 1.0)]  # two big regions first
        randoms = [[(0.05, 5.5), (0.1, 5.0), (0.3, 3.0), (0.5, 1.0)], [(0.1, 5.0), (0.5, 1.0)]]
        records.append(_record(row, ranked, randoms))
    summary = faithfulness_summary(records, "mean")
    assert summary["difference"] == pytest.approx(0.0, abs=1e-9) and not summary["faithful"]


class _Watcher(torch.nn.Module):
    """A classifier whose class-1 score is the mean of the red channel inside the top-left quarter (the
    forehead below) times ``gain``; with ``both``, the larger of the top-left and top-right quarters, so
    removing either alone leaves the cue in the other."""

    def __init__(self, gain: float = 10.0, both: bool = False):
        super().__init__()
        self.gain, self.both = gain, both

    def forward(self, x):
        score = x[:, 0, :8, :8].mean((1, 2))
        if self.both:
            score = torch.maximum(score, x[:, 0, :8, 8:].mean((1, 2)))
        score = score * self.gain
        return torch.stack([torch.zeros_like(score), score], 1)


def _watched_images(count: int = 24, both: bool = False):
    """Inputs (count, 3, 16, 16) with the red cue where the watcher looks, region label images, and the
    densities of a correct explanation (the cue's regions first)."""
    inputs = torch.zeros(count, 3, 16, 16)
    inputs[:, 0, :8, :] = 1.0
    regions = torch.zeros(count, 16, 16, dtype=torch.long)
    layout = (("forehead", slice(0, 8), slice(0, 8)), ("nose", slice(0, 8), slice(8, 16)),
              ("chin", slice(8, 12), slice(0, 16)))
    densities = np.full((count, len(REGION_IDS)), np.nan)
    areas = np.zeros((count, len(REGION_IDS)))
    for name, rows, cols in layout:
        regions[:, rows, cols] = _region(name)
        areas[:, _region(name)] = (rows.stop - rows.start) * (cols.stop - cols.start) / 256
    areas[:, 0] = 1 - areas.sum(1)
    truth = {"forehead": 3.0, "nose": 2.5 if both else 0.3, "chin": 0.2, "background": 0.1}
    for name, value in truth.items():
        densities[:, _region(name)] = value
    return inputs, regions, densities, areas


def _deletion(model, inputs, regions, densities, areas):
    model = ExplainedModel(model, OutputChoice(), Head("softmax", 2))  # the wrapper the analysis explains
    rows = list(range(len(inputs)))
    records = deletion_curves(model, inputs, torch.ones(len(inputs), dtype=torch.long), regions, densities, areas,
                              rows, "mean", batch_size=16)
    return records, faithfulness_summary(records, "mean")


def test_deletion_check_passes_for_the_region_the_model_uses_and_fails_when_the_ranking_is_wrong():
    inputs, regions, densities, areas = _watched_images()
    records, summary = _deletion(_Watcher(), inputs, regions, densities, areas)
    assert all(r["top_region"] == "forehead" for r in records)
    assert summary["faithful"] and summary["single_region"]["top_drop"] > 4
    # negative controls: the ranking reversed, and one that points at a region the model provably ignores
    assert not _deletion(_Watcher(), inputs, regions, -densities, areas)[1]["faithful"]
    ignored = densities.copy()
    ignored[:, _region("chin")], ignored[:, _region("forehead")] = 3.0, 0.2
    assert not _deletion(_Watcher(), inputs, regions, ignored, areas)[1]["faithful"]


def test_deletion_check_passes_for_a_cue_spanning_two_regions():
    """The watcher sees the cue in either top quarter: deleting the top region alone changes nothing, the
    curve (both regions removed) does."""
    inputs, regions, densities, areas = _watched_images(both=True)
    records, summary = _deletion(_Watcher(both=True), inputs, regions, densities, areas)
    assert summary["single_region"]["top_drop"] == pytest.approx(0.0, abs=1e-6)
    assert summary["faithful"], summary["difference_ci"]


def test_deletion_check_passes_for_a_saturated_model():
    """Probabilities of 1 - 1e-40 barely move in points; log-odds do."""
    inputs, regions, densities, areas = _watched_images()
    records, summary = _deletion(_Watcher(gain=100.0), inputs, regions, densities, areas)
    assert min(r["probability"] for r in records) > 0.9999
    assert summary["faithful"] and summary["difference"] > 10


def test_deletion_passes_each_perturbed_copy_its_own_extra_inputs():
    """A verification-style model: per-image extra tensors must follow their image into every copy."""
    class Paired(torch.nn.Module):
        evidence_name = "similarity"

        def forward(self, x, partner):
            return torch.stack([torch.zeros(len(x)), (x[:, 0, :8, :8].mean((1, 2)) * partner[:, 0])], 1)

        def evidence(self, x, targets, partner):
            return self(x, partner)[:, 1]

    inputs, regions, densities, areas = _watched_images(count=4)
    partner = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    records = deletion_curves(Paired(), inputs, torch.ones(4, dtype=torch.long), regions, densities, areas,
                              [0, 1, 2, 3], "mean", extra=(partner,), batch_size=5)
    assert [r["evidence"] for r in records] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert all(r["ranked"]["evidence"][0] == pytest.approx(0.0) for r in records)  # the forehead went first
    assert records[0]["probability"] is None and records[0]["evidence_name"] == "similarity"
    assert faithfulness_summary(records, "mean")["evidence"] == "similarity"


# -- the sanity check -------------------------------------------------------------------------------------

def _small_net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 12 * 12, 2)).eval()
    with torch.no_grad():  # "trained" batch norm: its reset (weight 1, bias 0) must show
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.normal_()
    return model


def test_randomised_copy_changes_every_weight_and_leaves_the_model_alone():
    model = _small_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    copy = randomised_copy(model)
    assert torch.equal(torch.random.get_rng_state(), state)  # the run's own random numbers are untouched
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    changed = {name for name, value in copy.named_parameters()
               if not torch.equal(value, dict(model.named_parameters())[name])}
    assert changed >= {"0.weight", "3.weight", "5.weight", "5.bias"}


def test_cascade_randomises_from_the_output_layer_down():
    model = _small_net()
    probe = torch.randn(1, 3, 16, 16)
    assert layers_in_forward_order(model, probe) == ["0", "1", "3", "5"]
    state = torch.random.get_rng_state()
    steps = randomisation_cascade(model, probe)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [step.layers for step in steps] == [["5"], ["3", "5"], ["0", "1", "3", "5"]]
    assert [step.name for step in steps] == [f"{CASCADE[0][0]} (5)", f"{CASCADE[1][0]} (2 of 4, from 3 up)",
                                             f"{CASCADE[2][0]} (4)"]
    original = dict(model.named_parameters())
    for step in steps:
        for name, value in step.model.named_parameters():
            assert torch.equal(value, original[name]) == (name.split(".")[0] not in step.layers), (step.name, name)
    # the output layer gets the same random weights in every step that randomises it
    assert torch.equal(steps[0].model[5].weight, steps[2].model[5].weight)


def test_a_map_that_becomes_zero_counts_as_changed_not_as_missing():
    real = np.array([3.0, 2.0, 1.0, 0.5] + [np.nan] * (len(REGION_IDS) - 4))
    assert step_correlation(real, None) == 0.0  # zero map
    assert step_correlation(real, np.where(np.isfinite(real), 1.0, np.nan)) == 0.0  # flat map
    assert step_correlation(real, real) == pytest.approx(1.0)
    assert step_correlation(np.where(np.isfinite(real), 1.0, np.nan), real) is None  # the real map ranks nothing
    steps = ["the output layer (fc)", "every layer (3)"]
    records = [sanity_record(row, real, [None, real], steps) for row in range(10)]
    summary = sanity_summary(records)
    assert summary["images"] == 10 and summary["checked_images"] == 10
    first, last = summary["steps"]
    assert (first["images"], first["zero_maps"], first["rank_correlation"]) == (10, 10, 0.0)
    assert (last["images"], last["zero_maps"]) == (10, 0) and last["rank_correlation"] == pytest.approx(1.0)
    assert summary["rank_correlation"] == last["rank_correlation"] and summary["verdict"] == "failed"


def test_expensive_methods_run_the_earlier_steps_on_a_fixed_subset_and_say_so():
    rows = set(range(0, 200, 3))
    subset = cascade_subset(rows, 16)
    assert len(subset) == 16 and subset <= rows and subset == cascade_subset(set(sorted(rows, reverse=True)), 16)
    assert max(subset) > 100  # a random subset of the sample, not its first rows
    real = np.array([3.0, 2.0, 1.0, 0.5] + [np.nan] * (len(REGION_IDS) - 4))
    steps = ["the output layer (fc)", "every layer (3)"]
    records = [sanity_record(row, real, [None, real[::-1]], steps, [row not in subset, False]) for row in sorted(rows)]
    first, last = sanity_summary(records)["steps"]
    assert (first["images"], first["zero_maps"]) == (16, 16)  # skipped images are neither zero maps nor numbers
    assert last["images"] == len(rows)


def test_sanity_verdicts():
    real = np.array([1.0, 2.0, 3.0, 4.0, 5.0] + [np.nan] * (len(REGION_IDS) - 5))
    reversed_ = np.concatenate([real[:5][::-1], real[5:]])
    same = [sanity_record(row, real, [real], ["every layer (3)"]) for row in range(5)]
    changed = [sanity_record(row, real, [reversed_], ["every layer (3)"]) for row in range(5)]
    assert sanity_summary(same)["verdict"] == "failed"
    assert sanity_summary(changed)["verdict"] == "passed"
    assert sanity_summary(changed)["top_region_randomised"] == REGION_IDS[0]
    assert sanity_summary([]) is None


def test_the_statistics_load_no_torch():
    """state.py (shards, resume, merge) and the report read the checks' statistics without torch."""
    import subprocess
    import sys

    code = "import sys, reportgen.results.state, reportgen.results.checks; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr


class _Brightness(Method):
    """A "method" that ignores the model: its map is the image's own brightness. Any model, trained or
    randomised, gets the same map, so the sanity check must fail it."""

    about = REGISTRY["gradcam"]

    def attribute(self, inputs, targets, regions=None, extra=()):
        brightness = inputs.sum(1)
        return Explanation((brightness - brightness.amin((1, 2), keepdim=True)).detach() + 1e-3)


def test_sanity_check_fails_for_a_map_that_ignores_the_model(tutorial_like, tmp_path, monkeypatch):
    from reportgen import analysis

    monkeypatch.setattr(analysis, "make_method", lambda name, model, layer, **options: _Brightness(model, layer))
    results = reportgen.analyze(images=tutorial_like["images"], annotations=tutorial_like["annotations"],
                                target="task", model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                                image_size=128, target_class=1, check_images=3, bootstrap=0, workers=0,
                                cache_dir=tmp_path / "cache")  # 128-px inputs: a quarter of the model passes
    sanity = results["sanity"]
    assert sanity["verdict"] == "failed" and sanity["rank_correlation"] == pytest.approx(1.0)
    assert [step["images"] for step in sanity["steps"]] == [3, 3, 3]
    assert all(step["rank_correlation"] == pytest.approx(1.0) for step in sanity["steps"])
    assert any(f["kind"] == "sanity" and f["severity"] == "warning" for f in results["findings"])
