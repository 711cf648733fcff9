"""One home per fact: the methods registry (reportgen.explain.methods) and RunConfig's defaults are what the
attribution classes, the report's templates, the CLI's help and 'reportgen init' read; and the modules
that only describe or render results load no torch."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reportgen.cli import app
from reportgen.explain.methods import METHODS, method_info
from reportgen.inputs.config import INIT_TEMPLATE, RunConfig
from reportgen.resources import templates_dir

ROOT = Path(__file__).resolve().parents[1]


def test_every_method_in_the_registry_is_implemented_and_no_other():
    from reportgen.explain import attribution

    assert list(attribution.METHODS) == list(METHODS)
    for method_id, implementation in attribution.METHODS.items():
        assert implementation.about is METHODS[method_id]


@pytest.mark.parametrize("method_id", sorted(METHODS))
def test_every_method_has_its_texts_in_the_templates(method_id):
    text = (templates_dir() / "methods" / f"{method_id}.html.jinja2").read_text()
    macros = set(re.findall(r"{%-?\s*macro (\w+)\(", text))
    # the run summary asks a method without a layer what it did; a layer method shows its layer instead
    assert macros == ({"measures"} if METHODS[method_id].needs_layer else {"measures", "summary"})


def test_older_and_unknown_method_names_still_have_an_entry():
    assert method_info("layergradcam") is METHODS["gradcam"]
    assert method_info("HiResCAM") is METHODS["hirescam"]
    assert method_info(None) is METHODS["gradcam"]
    future = method_info("SmoothGrad")
    assert (future.id, future.name, future.inline_name, future.needs_layer) == ("smoothgrad", "SmoothGrad",
                                                                                  "smoothGrad", True)


def test_the_method_help_lists_every_method_and_the_default():
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    for method in METHODS.values():
        assert f"{method.id}: {method.summary}" in text
    default = RunConfig()
    assert f"[default: {default.method}]" in text and f"[default: {default.baseline}]" in text
    assert f"Images per model batch [default: {default.batch_size}]" in text
    assert f"Top patches shown per region [default: {default.patches}]" in text


def test_init_writes_runconfig_defaults_and_valid_toml():
    text = INIT_TEMPLATE.format(name="run.toml")
    settings = {key.replace("-", "_"): value for key, value in tomllib.loads(text).items()}
    # the commented-out lines hold defaults too: uncommented, they must parse to the same values
    commented = [line[2:].split("#")[0] for line in text.splitlines()
                 if re.match(r"# [a-z-]+ = ", line) and "default:" not in line]
    settings_off = {key.replace("-", "_"): value for key, value in tomllib.loads("\n".join(commented)).items()}
    default = RunConfig().to_dict()
    for name in ("method", "batch_size", "device", "patches", "out", "baseline", "samples", "bootstrap",
                 "check_images", "image_size", "mean", "std"):
        assert {**settings, **settings_off}[name] == default[name], name
    method_line = next(line for line in text.splitlines() if line.startswith("method = "))
    assert all(method_id in method_line for method_id in METHODS)


def test_describing_and_rendering_results_loads_no_torch():
    """The registry, the config, the report and the CLI's help stay light (no torch, captum, torchvision),
    so 'reportgen --help' and re-rendering a report start fast."""
    code = """
import sys
sys.path.insert(0, "tests")
from report_fixture import build_results, region_ablation
import reportgen.report, reportgen.explain.methods, reportgen.inputs.config, reportgen.results.findings
reportgen.report.render_html(build_results())
reportgen.report.render_html(region_ablation(build_results(with_groups=False)))
from typer.testing import CliRunner
from reportgen.cli import app
for arguments in (["--help"], ["run", "--help"], ["init", "--help"]):
    assert CliRunner().invoke(app, arguments).exit_code == 0
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "captum")))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
