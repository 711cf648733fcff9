"""The whole analysis on inputs shaped like the MAI-BIAS tutorial's, plus caching, config and errors."""

import json

import pytest

import reportgen
from reportgen.errors import InputError
from reportgen.faces.regions import REGION_IDS
from reportgen.inputs.config import make_config


@pytest.fixture(scope="module")
def tutorial_results(tutorial_like, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                   transform=tutorial_like["transform"], layer="layer4", target_class=1,
                   protected=["protected"], cache_dir=cache, batch_size=4,
                   check_images=0)  # the checks' model passes cost most of a run here; tests of their own cover them
    first = reportgen.analyze(**options)
    second = reportgen.analyze(**options)
    return first, second


def test_tutorial_shaped_inputs_give_results_with_the_contract_fields(tutorial_results):
    results, _ = tutorial_results
    assert results["schema"] == "reportgen/1"
    assert results["run"]["layer"] == "layer4" and results["run"]["target_class"] == 1
    assert results["run"]["method"] == "gradcam" and results["run"]["input_size"] == [256, 256]
    assert results["counts"] == {"images": 6, "aligned": 6, "failed": 0, "scored": 6}
    assert {r["id"] for r in results["regions"]} == set(REGION_IDS)
    densities = [r["density"] for r in results["regions"]]
    assert densities == sorted(densities, reverse=True)
    shares = sum(r["share"] for r in results["regions"])
    assert shares == pytest.approx(1.0, abs=1e-4)  # regions partition the image
    assert set(results["groups"]) == {"protected=0", "protected=1"}
    assert results["groups"]["protected=0"]["n"] + results["groups"]["protected=1"]["n"] == 6
    assert results["comparisons"][0]["a"] == "protected=0"
    json.dumps(results)  # plain data all the way down


def test_second_run_reads_landmarks_from_the_cache(tutorial_results):
    first, second = tutorial_results
    assert first["run"]["detector_calls"] == 6
    assert second["run"]["detector_calls"] == 0
    assert [r["density"] for r in first["regions"]] == [r["density"] for r in second["regions"]]


def test_corrupt_cache_entries_are_recomputed(tutorial_like, tmp_path):
    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                   image_size=128, cache_dir=tmp_path, check_images=0)
    reportgen.analyze(**options)
    for entry in tmp_path.rglob("*.json"):
        entry.write_text("{not json")
    again = reportgen.analyze(**options)
    assert again["run"]["detector_calls"] == 6
    assert again["counts"]["aligned"] == 6


def test_default_layer_is_the_last_spatial_one_and_default_class_is_predicted(tutorial_like, tmp_path):
    results = reportgen.analyze(images=tutorial_like["images"], annotations=tutorial_like["annotations"],
                                target="task", model_file=tutorial_like["model_file"],
                                weights=tutorial_like["weights"], image_size=224, cache_dir=tmp_path, check_images=0)
    assert results["run"]["layer"] == "layer4" and results["run"]["layer_source"] == "default"
    assert results["run"]["target_class"] is None and results["run"]["input_size"] == [224, 224]


def test_a_broken_image_and_a_faceless_image_are_recorded_and_the_run_goes_on(tutorial_like, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for path in tutorial_like["images"].rglob("*.jpg"):
        target = images / path.relative_to(tutorial_like["images"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(images / "blank.png")
    lines = tutorial_like["annotations"].read_text().splitlines()
    lines += ["broken.jpg,1,0", "blank.png,0,1", "gone.jpg,0,0"]
    annotations = tmp_path / "a.csv"
    annotations.write_text("\n".join(lines) + "\n")
    results = reportgen.analyze(images=images, annotations=annotations, target="task",
                                model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                                transform=tutorial_like["transform"], cache_dir=tmp_path / "cache", check_images=0)
    reasons = {f["image"]: f["reason"] for f in results["failures"]}
    assert reasons["blank.png"] == "no face found"
    assert reasons["gone.jpg"] == "file not found"
    assert reasons["broken.jpg"].startswith("not a readable image")
    assert results["counts"] == {"images": 9, "aligned": 6, "failed": 3, "scored": 6}


@pytest.mark.parametrize("change, message", [
    (dict(layer="layr4"), "--layer 'layr4' not found in the model; did you mean 'layer4'"),
    (dict(layer="fc"), "not a grid over the image"),
    (dict(target_class=5), "--target-class 5: the model has 2 outputs"),
    (dict(model_var="net"), "variable 'net' is not defined"),
    (dict(target="taks"), "no column 'taks'; did you mean 'task'"),
    (dict(device="cuda:0"), None),
])
def test_bad_options_stop_with_one_clear_line(tutorial_like, tmp_path, change, message):
    import torch

    if change.get("device") and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                   transform=tutorial_like["transform"], cache_dir=tmp_path)
    options.update(change)
    with pytest.raises(InputError, match=message or "no CUDA GPU") as error:
        reportgen.analyze(**options)
    assert "\n" not in str(error.value)


def test_mismatched_weights_list_the_problem(tutorial_like, tmp_path):
    import torch

    state = torch.load(tutorial_like["weights"], weights_only=True)
    state["fc.weight"] = torch.zeros(3, 512)
    del state["fc.bias"]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(InputError, match=r"missing keys: fc.bias; shape mismatches: fc.weight \(3, 512\)"):
        reportgen.analyze(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                          model_file=tutorial_like["model_file"], weights=bad)


def test_model_file_that_raises_names_file_and_line(tutorial_like, tmp_path):
    broken = tmp_path / "model.py"
    broken.write_text("import torch\n\nmodel = torch.nn.Linear(2, 2)\nraise ValueError('boom')\n")
    with pytest.raises(InputError, match=r"model.py, line 4: loading the file failed: ValueError: boom"):
        reportgen.analyze(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                          model_file=broken, weights=tutorial_like["weights"])


def test_config_file_values_are_overridden_by_given_options(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('images = "imgs"\nannotations = "a.csv"\ntarget = "task"\nlayer = "layer3"\n'
                      'protected = ["Male"]\nbatch-size = 8\n')
    settings = make_config(config, layer="layer4")
    assert settings.images == tmp_path / "imgs"
    assert settings.layer == "layer4" and settings.batch_size == 8 and settings.protected == ["Male"]
    config.write_text('laye = "x"\n')
    with pytest.raises(InputError, match="unknown option 'laye'"):
        make_config(config)


@pytest.mark.slow  # starts two worker processes, each of which imports torch again
def test_worker_processes_give_the_same_results_forked_or_spawned(tutorial_like):
    """Faces found in a worker process (workers=1) give exactly the in-process run's results (workers=0): in a
    forked worker, and in a spawned one after dlib's CNN detector was used here (it cannot be used again in a
    forked child, so workers must then be spawned)."""
    import numpy as np

    from conftest import portrait
    from reportgen.faces.landmarks import _cnn_detector

    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                   transform=tutorial_like["transform"], layer="layer4", target_class=1, no_cache=True,
                   check_images=0)
    in_process = reportgen.analyze(workers=0, **options)
    forked = reportgen.analyze(workers=1, **options)
    _cnn_detector()(np.asarray(portrait()), 0)
    spawned = reportgen.analyze(workers=1, **options)
    assert in_process["run"]["workers"] == 0
    for in_worker in (forked, spawned):
        assert in_worker["run"]["workers"] == 1  # an explicit count is kept
        assert in_worker["run"]["detector_calls"] == 6 and in_worker["counts"]["scored"] == 6
        assert in_worker["counts"] == in_process["counts"] and in_worker["failures"] == in_process["failures"]
        assert in_worker["predictions"] == in_process["predictions"]
        assert [(r["id"], r["density"], r["share"]) for r in in_worker["regions"]] == \
            [(r["id"], r["density"], r["share"]) for r in in_process["regions"]]


def test_default_workers_follow_the_cores(tutorial_like, tmp_path, monkeypatch):
    """By default one worker per spare core (at most 4), none on two cores (the model's threads fill both);
    an explicit --workers is always kept (a run with workers=1: the worker test above)."""
    from reportgen import analysis

    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                   transform=tutorial_like["transform"], layer="layer4", target_class=1, cache_dir=tmp_path / "cache",
                   check_images=0, bootstrap=0)
    monkeypatch.setattr(analysis.os, "cpu_count", lambda: 2)
    in_process = reportgen.analyze(**options)
    assert in_process["run"]["workers"] == 0 and in_process["run"]["detector_calls"] == 6
    assert analysis.choose_workers(None) == 0
    monkeypatch.setattr(analysis.os, "cpu_count", lambda: 4)
    assert analysis.choose_workers(None) == 3
    monkeypatch.setattr(analysis.os, "cpu_count", lambda: 16)
    assert analysis.choose_workers(None) == 4 and analysis.choose_workers(0) == 0


def test_channels_last_is_used_only_when_it_leaves_the_output_unchanged():
    """The CPU runs conv models in the faster channels-last format, but a model whose forward ``.view``s a
    conv output would fail in it: such a model keeps its format and still runs."""
    import torch
    from torchvision.models import resnet18

    from reportgen.inputs.model import use_channels_last

    cpu = torch.device("cpu")
    resnet = resnet18().eval()
    assert use_channels_last(resnet, (64, 64), cpu)
    assert resnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)

    class Flattens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 30 * 30, 2)

        def forward(self, x):
            y = self.conv(x)
            return self.fc(y.view(y.size(0), -1))  # fails on a channels-last tensor

    viewing = Flattens().eval()
    assert not use_channels_last(viewing, (32, 32), cpu)
    assert viewing.conv.weight.is_contiguous()
    assert viewing(torch.zeros(2, 3, 32, 32)).shape == (2, 2)
    assert not use_channels_last(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)), (8, 8), cpu)


@pytest.mark.slow  # two runs with checks
def test_channels_last_gives_the_same_results(tutorial_like, tmp_path, monkeypatch):
    from reportgen import analysis

    # 128-pixel inputs and two checked images: enough to compare the explanations and the sanity check's passes.
    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"], image_size=128,
                   layer="layer4", target_class=1, cache_dir=tmp_path, workers=0, check_images=2)
    fast = reportgen.analyze(**options)
    monkeypatch.setattr(analysis, "use_channels_last", lambda *args: False)
    plain = reportgen.analyze(**options)
    assert fast["run"]["channels_last"] and not plain["run"]["channels_last"]
    for a, b in zip(fast["regions"], plain["regions"]):
        assert a["id"] == b["id"] and a["density"] == pytest.approx(b["density"], rel=1e-3, abs=1e-4)
    assert fast["sanity"]["rank_correlation"] == pytest.approx(plain["sanity"]["rank_correlation"], abs=1e-3)
