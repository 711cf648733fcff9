"""--dask: the shards of a run on a Dask cluster merge into the single run's results, survive a killed
worker, and an interrupted run reuses its finished parts."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import reportgen
from reportgen.cli import app
from reportgen.cluster import default_shards, local_cluster, parts_folder, remove_parts, run_on_dask
from reportgen.inputs.config import make_config
from reportgen.resources import samples_dir

# The demo's model (the tutorial's shapes would do as well, but this one runs in a fraction of the time)
# with a forward pass that kills the Dask worker process it runs in, once: when two shards have saved a
# part, so that the shard that dies has a checkpoint of its own to continue from. Outside a Dask worker
# (the single run in this process) it is the demo's model.
DYING_MODEL = """\
import os
import signal
from pathlib import Path

from reportgen.synthetic import SmallFaceNet

PARTS = Path({parts!r})
MARKER = Path({marker!r})


def _on_a_dask_worker():
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


class DyingOnce(SmallFaceNet):
    def forward(self, x):
        if not MARKER.exists() and _on_a_dask_worker() and len(list(PARTS.glob("shard-*.partial.json"))) >= 2:
            MARKER.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


model = DyingOnce()
"""


@pytest.fixture(scope="module")
def demo_subset(tmp_path_factory) -> dict:
    """8 of the demo's photos (every 15th row: both classes, both groups) with the demo's model."""
    rows = (samples_dir() / "annotations.csv").read_text().splitlines()
    annotations = tmp_path_factory.mktemp("demo_subset") / "annotations.csv"
    annotations.write_text("\n".join([rows[0]] + rows[1::15]) + "\n")
    return {"images": samples_dir() / "images", "annotations": annotations, "model_file": samples_dir() / "model.py",
            "weights": samples_dir() / "weights.pt", "transform": samples_dir() / "transform.py"}


# The tests on a running cluster: its two worker processes import torch and the model (seconds of CPU each), so
# the quick run (-m "not slow") leaves them out; the option checks below need no cluster and stay in it.
cluster = pytest.mark.slow


@pytest.fixture(scope="module")
def scheduler():
    """A local Dask cluster of two worker processes (one thread each, as --dask local makes them), shared
    by this module's tests."""
    with local_cluster(2) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def single_run(demo_subset, tmp_path_factory):
    """The results of a single run in this process: what every Dask run here must give."""
    return reportgen.analyze(**_options(demo_subset, tmp_path_factory.mktemp("single")))


def _options(inputs, tmp_path, **more):
    options = dict(images=inputs["images"], annotations=inputs["annotations"], target="task",
                   model_file=inputs["model_file"], weights=inputs["weights"], transform=inputs["transform"],
                   target_class=1, protected=["protected"], cache_dir=tmp_path / "cache", out=tmp_path / "report.html",
                   workers=0, batch_size=2)
    return {**options, **more}


def _close(a, b, where):
    """Equal up to the last rounded digit: results are rounded to 6 decimals, and the shards add their
    sums in another order (and run the model on one thread instead of two)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for k, (left, right) in enumerate(zip(a, b)):
            _close(left, right, f"{where}[{k}]")
    elif isinstance(a, float) and not isinstance(b, str):
        assert b == pytest.approx(a, abs=1e-5), where
    else:
        assert a == b, where


def _same_results(single: dict, sharded: dict) -> None:
    for field in ("counts", "failures", "detection", "regions", "region_groups", "comparisons", "predictions",
                  "faithfulness", "sanity"):
        _close(single[field], sharded[field], field)
    assert set(single["groups"]) == set(sharded["groups"])
    for key, group in single["groups"].items():
        for field in ("n", "regions", "region_groups"):
            _close(group[field], sharded["groups"][key][field], f"groups.{key}.{field}")
    assert [f["text"] for f in single["findings"]] == [f["text"] for f in sharded["findings"]]
    assert single["faithfulness"] is not None and single["sanity"] is not None  # the checks were compared


@cluster
def test_two_worker_processes_give_the_single_run_results(scheduler, single_run, demo_subset, tmp_path):
    sharded = reportgen.analyze(**_options(demo_subset, tmp_path, dask=scheduler, shards=4))
    _same_results(single_run, sharded)
    dask = sharded["run"]["dask"]
    assert {k: v for k, v in dask.items() if k != "seconds"} == {
        "scheduler": scheduler, "workers": 2, "threads": 2, "shards": 4, "reused": [], "resumed": []}
    assert not parts_folder(make_config(out=tmp_path / "report.html")).exists()  # removed once merged
    # The options recorded are the run's, not those of the shard merged first.
    assert sharded["config"]["shard"] is None and sharded["config"]["dask"] == scheduler
    assert sharded["manifest"]["options"] == sharded["config"]
    json.dumps(sharded)


def test_default_shard_count_is_two_per_worker_thread_with_enough_images_each():
    assert default_shards(threads=2, images=128) == 4
    assert default_shards(threads=2, images=120) == 3  # not 4 shards of 30: no shard under 32 images
    assert default_shards(threads=2, images=6) == 1
    assert default_shards(threads=16, images=100_000) == 32


@cluster
def test_a_worker_killed_mid_shard_still_ends_in_the_same_report(scheduler, single_run, demo_subset, tmp_path):
    parts, marker = tmp_path / "report.parts", tmp_path / "killed-a-worker"
    model_file = tmp_path / "dying_model.py"
    model_file.write_text(DYING_MODEL.format(parts=str(parts), marker=str(marker)))
    # One image per batch and a checkpoint after every batch: each shard of 4 images has a checkpoint before
    # its second image, and the worker dies in a forward pass after that.
    options = _options(demo_subset, tmp_path, model_file=model_file, batch_size=1, checkpoint_seconds=0,
                       no_cache=True)
    sharded = reportgen.analyze(**options, dask=scheduler, shards=2)
    assert marker.exists(), "the model should have killed one Dask worker"
    _same_results(single_run, sharded)  # the demo's weights in a model class of its own: the same results
    # The shard that lost its worker continued from its own checkpoint on a new worker, and no image was
    # counted twice (without a landmark cache every image is searched once per try that keeps it).
    assert sharded["run"]["dask"]["resumed"], sharded["run"]["dask"]
    assert sharded["run"]["detector_calls"] == 8
    assert not parts.exists()


@cluster
@pytest.mark.heavy  # three runs on the cluster; the default run keeps the sharded-equals-single test above
def test_a_started_again_run_reuses_finished_parts_and_continues_a_half_done_one(scheduler, single_run,
                                                                                   demo_subset, tmp_path):
    options = _options(demo_subset, tmp_path, batch_size=1, checkpoint_seconds=0, no_cache=True)
    parts = tmp_path / "report.parts"
    # What an interrupted 2-shard run leaves: shard 1 finished, shard 2 stopped after its first image...
    reportgen.analyze(**options, shard="1/2", partial=parts / "shard-1-of-2.partial.json")

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reportgen.analyze(**options, shard="2/2", partial=parts / "shard-2-of-2.partial.json", progress=interrupt)
    # ...and a part of a run with other options, which must not be merged.
    reportgen.analyze(**{**options, "target_class": 0}, shard="1/3", partial=parts / "shard-1-of-3.partial.json")

    said = []
    config = make_config(**options, dask=scheduler)  # no --shards: the earlier run's count is taken
    sharded = run_on_dask(config, say=said.append)
    _same_results(single_run, sharded)
    dask = sharded["run"]["dask"]
    assert (dask["shards"], dask["reused"], dask["resumed"]) == (2, [1], [2])
    assert sharded["run"]["detector_calls"] == 8  # nothing finished before was searched again
    assert not (parts / "shard-1-of-3.partial.json").exists()
    assert any("removed 1 part(s) of an earlier run" in line for line in said)
    assert any("reusing 1 finished part(s)" in line and "(shards 1)" in line for line in said)
    assert any("shard 2/2 continued from its checkpoint (1 of 4 images were done)" in line for line in said)
    assert parts.exists()  # kept until the report is written
    remove_parts(config)
    assert not parts.exists()


def _cli_arguments(demo_subset, tmp_path):
    return ["run", "--images", str(demo_subset["images"]), "--annotations", str(demo_subset["annotations"]),
            "--target", "task", "--model-file", str(demo_subset["model_file"]), "--weights",
            str(demo_subset["weights"]), "--transform", str(demo_subset["transform"]), "--target-class", "1",
            "--out", str(tmp_path / "report.html"), "--json", str(tmp_path / "results.json"),
            "--cache-dir", str(tmp_path / "cache")]


@cluster
def test_cli_runs_on_a_scheduler_and_says_what_ran(scheduler, demo_subset, tmp_path):
    result = CliRunner().invoke(app, _cli_arguments(demo_subset, tmp_path) + ["--dask", scheduler, "--shards", "3"])
    assert result.exit_code == 0, result.output
    assert f"dask: scheduler {scheduler}, 2 worker(s) with 2 thread(s); 3 shard(s) of about 3 images" in result.output
    assert "dask: 3 shards (3 computed, 0 reused) on 2 worker(s) in" in result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["run"]["dask"]["scheduler"] == scheduler and results["run"]["dask"]["shards"] == 3
    assert results["counts"]["scored"] == 8 and (tmp_path / "report.html").exists()
    assert not (tmp_path / "report.parts").exists()
    # As a single run's, the shared report names no folder of this machine (the workers' contexts hold them).
    for shared in ((tmp_path / "results.json").read_text(), (tmp_path / "report.html").read_text()):
        for folder in (str(samples_dir()), str(demo_subset["annotations"].parent), str(tmp_path)):
            assert folder not in shared


@cluster
def test_cli_bad_input_found_by_a_worker_is_one_line(scheduler, demo_subset, tmp_path):
    arguments = _cli_arguments(demo_subset, tmp_path) + ["--dask", scheduler, "--layer", "layr4"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: shard ") and "on Dask worker tcp://" in line and "layr4" in line
    assert "Traceback" not in result.output


@pytest.mark.parametrize("extra, message", [
    (["--shards", "3"], "--shards needs --dask"),
    (["--dask", "local", "--shard", "1/2"], "--shard and --dask"),
    (["--dask", "local", "--workers", "2"], "--workers and --dask"),
    (["--dask", "local", "--shards", "0"], "--shards 0: give 1 or more"),
    pytest.param(["--dask", "tcp://127.0.0.1:9"], "--dask tcp://127.0.0.1:9: no Dask scheduler answers there",
                 marks=pytest.mark.slow),  # waits for the connection timeout
])
def test_cli_dask_options_are_checked(demo_subset, tmp_path, extra, message, monkeypatch):
    monkeypatch.setattr("reportgen.cluster.CONNECT_SECONDS", 2)  # nothing listens on port 9: no need to wait 10 s
    result = CliRunner().invoke(app, _cli_arguments(demo_subset, tmp_path) + extra)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_without_dask_installed_the_option_says_which_extra_to_install(demo_subset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what a missing package looks like to import
    result = CliRunner().invoke(app, _cli_arguments(demo_subset, tmp_path) + ["--dask", "local"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --dask needs Dask's distributed package: install reportgen[dask] " \
                                    "(pip install 'reportgen[dask]')"


def test_inputs_given_as_objects_are_refused_with_dask(demo_subset, tmp_path):
    from reportgen.errors import InputError
    from reportgen.synthetic import SmallFaceNet

    options = _options(demo_subset, tmp_path, dask="local")
    del options["model_file"]
    with pytest.raises(InputError, match="Dask workers load the inputs from files"):
        reportgen.analyze(**options, model=SmallFaceNet())


def test_import_and_help_do_not_import_dask():
    code = ("import sys, reportgen\nfrom reportgen.cli import app\nsys.argv = ['reportgen', 'run', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--dask" in done.stdout and done.stdout.strip().endswith("[]"), done.stdout[-300:]


@pytest.mark.heavy  # starts a cluster of its own (10 s); the default run keeps the CLI on the shared one
def test_cli_dask_local_starts_and_closes_its_own_cluster(demo_subset, tmp_path):
    result = CliRunner().invoke(app, _cli_arguments(demo_subset, tmp_path) + ["--dask", "local"])
    assert result.exit_code == 0, result.output
    assert "dask: local cluster," in result.output
    assert json.loads((tmp_path / "results.json").read_text())["run"]["dask"]["scheduler"] == "local"
