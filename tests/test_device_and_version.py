"""--device auto (the default) picks the fastest device present; reportgen --version prints the one version."""

import pytest
import torch
from typer.testing import CliRunner

import reportgen
from reportgen.analysis import _check_device
from reportgen.cli import app
from reportgen.errors import InputError
from reportgen.inputs.config import RunConfig


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_takes_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert _check_device("auto").type == expected


def test_auto_is_the_default_and_a_named_device_is_still_checked(monkeypatch):
    assert RunConfig().device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU is available here"):
        _check_device("cuda")
    with pytest.raises(InputError, match="use auto, cpu, cuda"):
        _check_device("tpu")


def test_version_prints_the_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"reportgen {reportgen.__version__}"
