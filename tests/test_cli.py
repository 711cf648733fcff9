"""The command line: exit codes, one-line errors, and each command doing its job."""

import json

from typer.testing import CliRunner

from conftest import SOURCES
from reportgen.cli import app

runner = CliRunner()


def test_missing_annotation_file_is_one_line_and_exit_code_2(tutorial_like, tmp_path):
    result = runner.invoke(app, ["run", "--images", str(tutorial_like["images"]), "--annotations",
                                 str(tmp_path / "nope.csv"), "--target", "task", "--model-file",
                                 str(tutorial_like["model_file"]), "--weights", str(tutorial_like["weights"])])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope.csv" in lines[0] and "file not found" in lines[0]
    assert "Traceback" not in result.output


def test_missing_required_option_names_it(tutorial_like):
    result = runner.invoke(app, ["run", "--images", str(tutorial_like["images"])])
    assert result.exit_code == 2 and "--annotations is required" in result.output


def test_run_writes_report_and_json_and_prints_a_summary(tutorial_like, tmp_path):
    report, results = tmp_path / "r.html", tmp_path / "r.json"
    result = runner.invoke(app, ["run", "--images", str(tutorial_like["images"]), "--annotations",
                                 str(tutorial_like["annotations"]), "--target", "task", "--model-file",
                                 str(tutorial_like["model_file"]), "--weights", str(tutorial_like["weights"]),
                                 "--image-size", "128", "--layer", "layer4",
                                 "--target-class", "1", "--protected", "protected", "--out", str(report),
                                 "--json", str(results), "--cache-dir", str(tmp_path / "cache"),
                                 "--check-images", "2"])
    assert result.exit_code == 0, result.output
    assert report.stat().st_size > 1_000_000 and results.stat().st_size > 1000
    written = json.loads(results.read_text())
    assert "6 images, 6 aligned, 0 failed" in result.output.replace("\n", " "), written["failures"]
    # The trust checks are summed up on the console too, with the verdicts the report gives.
    verdict = "passed" if written["faithfulness"]["faithful"] else "NOT FAITHFUL"
    assert f"checks: deletion check {verdict}" in result.output.replace("\n", " ")
    assert "sanity check" in result.output


def test_layers_lists_modules_with_shapes_and_the_default(tutorial_like):
    result = runner.invoke(app, ["layers", "--model-file", str(tutorial_like["model_file"]), "--transform",
                                 str(tutorial_like["transform"]), "--weights", str(tutorial_like["weights"])])
    assert result.exit_code == 0, result.output
    assert "512 x 8 x 8" in result.output and "Default: --layer layer4" in result.output.replace("\n", " ")
    assert result.output.index("conv1") < result.output.index("layer4") < result.output.index("fc")


def test_init_writes_a_config_that_run_accepts(tmp_path):
    from reportgen.inputs.config import make_config

    path = tmp_path / "run.toml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    settings = make_config(path)
    assert settings.target == "task" and settings.images == tmp_path / "images"
    again = runner.invoke(app, ["init", str(path)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_regions_draws_a_check_image(tmp_path):
    from PIL import Image

    out = tmp_path / "regions.png"
    result = runner.invoke(app, ["regions", str(SOURCES / "grace_hopper.jpg"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).width > 512
    blank = tmp_path / "blank.png"
    Image.new("RGB", (100, 100), "gray").save(blank)
    failed = runner.invoke(app, ["regions", str(blank), "--out", str(out)])
    assert failed.exit_code == 2 and "no face found" in failed.output
