"""Where the shipped templates, samples and plotly.js are, in a checkout and in an installed wheel alike.

In the repository templates and samples sit at the top level (``templates/``, ``samples/``); the wheel
carries them inside the package (``reportgen/templates``, ``reportgen/samples``, see pyproject.toml).
plotly.js is inside the package in both (``reportgen/report/vendor/plotly.js/``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _find(name: str) -> Path:
    packaged = Path(str(resources.files("reportgen") / name))
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"reportgen's {name}/ folder is missing from this installation; reinstall reportgen")


def templates_dir() -> Path:
    return _find("templates")


def samples_dir() -> Path:
    return _find("samples")


def plotly_bundle() -> Path:
    """The plotly.js bundle the report inlines: plotly's cartesian partial bundle (bar, scatter, heatmap
    and a few more; see reportgen/report/vendor/plotly.js/SOURCE.md)."""
    return Path(str(resources.files("reportgen") / "report" / "vendor" / "plotly.js" / "plotly-cartesian.min.js"))
