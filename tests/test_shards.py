"""Shards merge into the report a single run gives; an interrupted run resumes where it stopped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reportgen
from reportgen.errors import InputError
from reportgen.results.state import load_partial, merge_partials

ROOT = Path(__file__).resolve().parents[1]  # the checkout, first on the subprocess's path


def _options(tutorial_like, tmp_path, **more):
    # 128-pixel inputs (the built-in transform, not the tutorial's 256-pixel file) and three of the six images in
    # the checks' sample: the checks' model passes are most of a run's cost, and three sampled rows still fall in
    # different shards and batches.
    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"], image_size=128,
                   layer="layer4", target_class=1, protected=["protected"], cache_dir=tmp_path / "cache",
                   out=tmp_path / "report.html", workers=0, batch_size=2, check_images=3)
    return {**options, **more}


def _close(a, b, where) -> None:
    """Equal, numbers within 1e-5 (the checks' model passes may batch images differently in each shard)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-5), where
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for x, y in zip(a, b):
            _close(x, y, where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _close(a[key], b[key], (*where, key))
    else:
        assert a == b, where


def _same(a: dict, b: dict) -> None:
    assert a["counts"] == b["counts"] and a["failures"] == b["failures"] and a["detection"] == b["detection"]
    for left, right in zip(a["regions"], b["regions"]):
        assert left["id"] == right["id"]
        for key in ("share", "area", "density"):
            assert left[key] == pytest.approx(right[key], abs=1e-6)
        assert left["ci"] == pytest.approx(right["ci"], abs=1e-6)
    assert set(a["groups"]) == set(b["groups"])
    for key in a["groups"]:
        assert [r["density"] for r in a["groups"][key]["regions"]] == pytest.approx(
            [r["density"] for r in b["groups"][key]["regions"]], abs=1e-6)
    # The canonical face's landmarks are the mean face whatever the images (every face is warped onto it), so
    # they say nothing about merging; its mean map does: the blocks the faces reach, and the attention there.
    left, right = (np.array(r["canonical_face"]["mean_attribution"], dtype=float) for r in (a, b))
    assert np.isfinite(left).mean() > 0.25, "the mean map should cover the face"
    np.testing.assert_array_equal(np.isfinite(left), np.isfinite(right))
    np.testing.assert_allclose(left, right, atol=1e-3)
    assert {k: [p["image"] for p in v] for k, v in a["patches"].items()} == \
        {k: [p["image"] for p in v] for k, v in b["patches"].items()}
    assert a["predictions"] == b["predictions"]
    for check in ("faithfulness", "sanity"):  # sampled rows and their resamples do not depend on sharding
        assert a[check] is not None and a[check]["images"] == b[check]["images"]
        for key, value in a[check].items():
            _close(value, b[check][key], (check, key))
    for left, right in zip(a["comparisons"], b["comparisons"]):
        for row, other in zip(left["regions"], right["regions"]):
            assert row["id"] == other["id"] and row["ci"] == pytest.approx(other["ci"], abs=1e-6)
    assert [f["text"] for f in a["findings"]] == [f["text"] for f in b["findings"]]


@pytest.mark.slow  # four runs; the quick run keeps the merge refusals and the option checks
def test_three_shards_merge_into_the_single_run_report(tutorial_like, tmp_path):
    single = reportgen.analyze(**_options(tutorial_like, tmp_path))
    parts = []
    for i in (1, 2, 3):
        path = tmp_path / f"part{i}.json"
        reportgen.analyze(**_options(tutorial_like, tmp_path, shard=f"{i}/3", partial=path))
        state, _ = load_partial(path)
        assert int(state.done.sum()) == 2  # every third of 6 images
        parts.append(path)
    merged = merge_partials(parts)
    _same(single, merged)
    json.dumps(merged)


def test_merging_a_shard_twice_or_parts_of_other_runs_is_refused(tutorial_like, tmp_path):
    first = tmp_path / "a.json"
    reportgen.analyze(**_options(tutorial_like, tmp_path, shard="1/2", partial=first, check_images=0))
    with pytest.raises(InputError, match="both processed"):
        merge_partials([first, first])
    other = tmp_path / "b.json"
    reportgen.analyze(**_options(tutorial_like, tmp_path, shard="2/2", partial=other, target_class=0, check_images=0))
    with pytest.raises(InputError, match="other inputs or options"):
        merge_partials([first, other])
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(InputError, match="not a readable reportgen partial-results file"):
        merge_partials([tmp_path / "junk.json"])


@pytest.mark.slow  # three runs
def test_interrupted_run_resumes_without_recomputing_finished_images(tutorial_like, tmp_path):
    options = _options(tutorial_like, tmp_path, checkpoint_seconds=0, no_cache=True,
                       partial=tmp_path / "report.partial.json")
    calls = []

    def interrupt_after_two_batches(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reportgen.analyze(progress=interrupt_after_two_batches, **options)
    checkpoint = tmp_path / "report.partial.json"
    state, _ = load_partial(checkpoint)
    assert int(state.done.sum()) == 4  # both finished batches were saved before the interruption
    resumed = reportgen.analyze(**options)
    assert resumed["run"]["detector_calls"] == 6  # 4 before the interruption + 2 after: none twice
    assert not checkpoint.exists()  # a finished run removes its checkpoint
    _same(reportgen.analyze(**options), resumed)


def test_shard_option_is_checked(tutorial_like, tmp_path):
    with pytest.raises(InputError, match="write it as I/N"):
        reportgen.analyze(**_options(tutorial_like, tmp_path, shard="half"))
    with pytest.raises(InputError, match="between 1 and N"):
        reportgen.analyze(**_options(tutorial_like, tmp_path, shard="5/4"))


@pytest.mark.slow  # three CLI runs; the quick run keeps the merge refusals
def test_cli_shards_and_merge(tutorial_like, tmp_path):
    from typer.testing import CliRunner

    from reportgen.cli import app

    runner = CliRunner()
    base = ["run", "--images", str(tutorial_like["images"]), "--annotations", str(tutorial_like["annotations"]),
            "--target", "task", "--model-file", str(tutorial_like["model_file"]), "--weights",
            str(tutorial_like["weights"]), "--transform", str(tutorial_like["transform"]), "--out",
            str(tmp_path / "report.html"), "--cache-dir", str(tmp_path / "cache"), "--workers", "0",
            "--check-images", "2"]
    for i in (1, 2):
        result = runner.invoke(app, base + ["--shard", f"{i}/2"])
        assert result.exit_code == 0, result.output
        assert f"report.shard-{i}-of-2.partial.json" in result.output
    assert not (tmp_path / "report.html").exists()
    merged = runner.invoke(app, ["merge", str(tmp_path / "report.shard-1-of-2.partial.json"),
                                 str(tmp_path / "report.shard-2-of-2.partial.json"), "--out",
                                 str(tmp_path / "merged.html"), "--json", str(tmp_path / "merged.json")])
    assert merged.exit_code == 0, merged.output
    assert json.loads((tmp_path / "merged.json").read_text())["counts"]["scored"] == 6

    # `reportgen merge` only adds numbers and renders: it must start without torch, captum or torchvision
    # (seconds of start-up on a cluster's login node). The whole command, in a fresh interpreter.
    script = ("import sys\nfrom reportgen.cli import app\ntry:\n    app(sys.argv[1:], standalone_mode=False)\n"
              "finally:\n    print('heavy:', sorted(m for m in ('torch', 'captum', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, "merge", str(tmp_path / "report.shard-1-of-2.partial.json"),
                           str(tmp_path / "report.shard-2-of-2.partial.json"), "--out", str(tmp_path / "again.html")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout, done.stdout
    assert (tmp_path / "again.html").stat().st_size > 0


def test_the_results_and_report_stages_import_without_torch():
    # The results stage (reportgen/results/) and the report only add numbers and render: merge, re-rendering
    # and the notebook summary must never pay torch's start-up. Every module of both, in a fresh interpreter;
    # a new module that imports torch (directly or through another stage) fails here by name.
    import pkgutil

    import reportgen.report
    import reportgen.results

    modules = [f"{package.__name__}.{info.name}" for package in (reportgen.results, reportgen.report)
               for info in pkgutil.iter_modules(package.__path__)]
    assert {"reportgen.results.state", "reportgen.results.checks", "reportgen.report.render"} <= set(modules)
    script = ("import importlib, sys\nheavy = {}\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
              "    heavy[name] = sorted(m for m in ('torch', 'captum', 'torchvision') if m in sys.modules)\n"
              "    if heavy[name]: break\nprint({k: v for k, v in heavy.items() if v})")
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{}", f"imports torch: {done.stdout}"
