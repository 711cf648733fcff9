"""Known-answer tests: a model trained to rely on a cue planted in one face region must be explained
by that region. This is the tool doing its job, end to end (faces -> regions -> Grad-CAM -> scores)."""

import pytest

import reportgen
from reportgen.inputs.config import make_config
from reportgen.resources import samples_dir


def _ranking(results):
    return [row["id"] for row in results["regions"]]


def test_bundled_demo_ranks_the_planted_forehead_first(tmp_path):
    config = make_config(samples_dir() / "demo.toml", cache_dir=tmp_path)
    results = reportgen.analyze(config)
    assert results["counts"]["failed"] == 0
    assert _ranking(results)[0] == "forehead"
    top, runner_up = results["regions"][0], results["regions"][1]
    assert top["ci"][0] > runner_up["ci"][1]  # clearly first, not within noise
    assert results["findings"][0]["text"].startswith("The model looks most at the forehead")


@pytest.mark.slow  # 192 images; the quick run keeps the classifier demo above
def test_bundled_verification_demo_runs_and_tells_the_two_people_apart(tmp_path):
    """`reportgen demo --pairs`: the sample pairs with the sample embedding model (self-contained file)."""
    config = make_config(samples_dir() / "verification.toml", cache_dir=tmp_path, check_images=8)
    results = reportgen.analyze(config)
    assert results["run"]["task"] == "verification" and results["counts"]["pairs"] == 60
    assert results["counts"]["failed"] == 0
    quality = results["verification"]["overall"]
    assert quality["accuracy"] >= 0.9 and quality["mean_genuine"] > quality["mean_impostor"]


@pytest.mark.parametrize("region", ["background", "left_eye"])
def test_planted_cue_region_ranks_first(known_cases, tmp_path, region):
    case = known_cases(region)
    results = reportgen.analyze(images=case["images"], annotations=case["annotations"], target="task",
                                model_file=case["model_file"], weights=case["weights"],
                                transform=case["transform"], target_class=1, cache_dir=tmp_path / "cache")
    assert results["run"]["layer"] == case["layer"]  # the default layer is the model's last conv stage
    assert _ranking(results)[0] == region, _ranking(results)[:5]
    assert results["patches"][region], "the planted region shows patches"
