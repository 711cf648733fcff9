"""A shared report discloses nothing about the author's machine by default: no absolute path of the
inputs, the outputs, the cache, the current, temporary or home folder in the HTML or the JSON; file names
with their sha256 instead, image paths relative to --images. --full-paths shows the paths as given."""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reportgen.cli import app
from reportgen.results.privacy import shareable

runner = CliRunner()


@pytest.fixture(scope="module")
def reports(tutorial_like, tmp_path_factory):
    """The same run twice from the command line, as a user runs it (a working folder, outputs elsewhere, a
    cache folder, one annotation row whose image is missing): by default and with --full-paths."""
    base = tmp_path_factory.mktemp("privacy")
    annotations = base / "data" / "annotations.csv"
    annotations.parent.mkdir()
    annotations.write_text(tutorial_like["annotations"].read_text() + "African/missing.jpg,0,1\n")
    work = base / "work"
    work.mkdir()
    written = {}
    for name, extra in (("default", []), ("full", ["--full-paths"])):
        out = base / "reports" / name
        out.mkdir(parents=True)
        arguments = ["run", "--images", str(tutorial_like["images"]), "--annotations", str(annotations),
                     "--target", "task", "--model-file", str(tutorial_like["model_file"]),
                     "--weights", str(tutorial_like["weights"]), "--transform", str(tutorial_like["transform"]),
                     "--protected", "protected", "--layer", "layer4", "--out", str(out / "report.html"),
                     "--json", str(out / "results.json"), "--cache-dir", str(base / "cache"), "--bootstrap", "0",
                     "--check-images", "0", *extra]
        previous = os.getcwd()
        os.chdir(work)
        try:
            result = runner.invoke(app, arguments)
        finally:
            os.chdir(previous)
        assert result.exit_code == 0, result.output
        written[name] = ((out / "report.html").read_text(), (out / "results.json").read_text(), result.output)
    return written, {"data": str(tutorial_like["root"]), "annotations": str(annotations.parent), "base": str(base),
                     "work": str(work), "home": str(Path.home()), "temp": tempfile.gettempdir()}


def test_no_folder_of_the_machine_is_in_the_report_or_the_json_by_default(reports):
    written, folders = reports
    html, text, _ = written["default"]
    for content in (html, text):
        for name, folder in folders.items():
            assert folder + os.sep not in content and f'"{folder}"' not in content, name


def test_inputs_are_named_by_file_name_and_sha256_and_images_relative_to_the_folder(reports, tutorial_like):
    results = json.loads(reports[0]["default"][1])
    weights = results["manifest"]["inputs"]["weights"]
    assert weights["path"] == "weights.pt"
    assert weights["sha256"] == hashlib.sha256(tutorial_like["weights"].read_bytes()).hexdigest()
    assert {k: results["run"][k] for k in ("images", "annotations", "model_file", "weights")} == {
        "images": "images", "annotations": "annotations.csv", "model_file": "model.py", "weights": "weights.pt"}
    assert results["config"]["cache_dir"] == "cache" and results["config"]["out"] == "report.html"
    assert results["manifest"]["options"]["transform"] == "transform.py"
    assert results["failures"] == [{"image": "African/missing.jpg", "reason": "file not found"}]
    assert results["config"]["full_paths"] is False
    assert f"<code>weights.pt</code> <small title=\"sha256 {weights['sha256']}\">" in reports[0]["default"][0]


def test_full_paths_show_them(reports, tutorial_like):
    html, text, _ = reports[0]["full"]
    results = json.loads(text)
    assert results["run"]["images"] == str(tutorial_like["images"])
    assert results["manifest"]["inputs"]["weights"]["path"] == str(tutorial_like["weights"])
    assert results["config"]["cache_dir"] == str(Path(reports[1]["base"]) / "cache")
    assert str(tutorial_like["model_file"]) in html


def test_the_console_says_which_device_ran(reports):
    assert "device: cpu" in reports[0]["default"][2]  # --device auto (the default) on a machine without a GPU


CONTEXT = {
    "config": {"images": "/home/alice/faces/images", "annotations": "/home/alice/faces/ann.csv",
               "model_file": "/home/alice/models/net.py", "weights": "/data/weights/w.pt", "transform": None,
               "out": "/home/alice/reports/r.html", "cache_dir": None, "full_paths": False},
    "run": {"images": "/home/alice/faces/images"},
    "machine": {"cwd": "/srv/job-17", "home": "/home/alice", "temp": "/scratch/tmp"},
}


def _results(**overrides):
    return {"run": {"images": "/home/alice/faces/images", "weights": "/data/weights/w.pt",
                    "transform": "MyTransform(mask='/home/alice/faces/mask.png')"},
            "config": dict(CONTEXT["config"]),
            "notes": ["checkpoint kept in /srv/job-17/out/r.partial.json"],
            "failures": [{"image": "a/b.jpg", "reason": "cannot identify image file '/home/alice/faces/images/a/b.jpg'"},
                         {"image": "c.jpg", "reason": "OSError in /usr/lib/python3/dist-packages/PIL/Image.py"}],
            "regions": [{"id": "nose", "label": "Nose", "density": 1.0}],
            "browser": {"images": [{"picture": "data:image/jpeg;base64,/9j/4AAQ/Sk+Z/abc"}]}, **overrides}


def test_error_texts_notes_and_descriptions_lose_their_folders():
    shared = shareable(_results(), CONTEXT)
    assert shared["failures"][0]["reason"] == "cannot identify image file 'a/b.jpg'"  # relative to --images
    assert shared["failures"][1]["reason"] == "OSError in Image.py"
    assert shared["notes"] == ["checkpoint kept in out/r.partial.json"]
    assert shared["run"]["transform"] == "MyTransform(mask='mask.png')"
    assert shared["run"]["weights"] == "w.pt" and shared["config"]["out"] == "r.html"
    # Data that is not text about paths is left alone: a '/' in base64 is not a folder.
    assert shared["browser"] == _results()["browser"] and shared["regions"] == _results()["regions"]


def test_full_paths_leave_the_results_as_they_are():
    context = {**CONTEXT, "config": {**CONTEXT["config"], "full_paths": True}}
    assert shareable(_results(), context) == _results()
