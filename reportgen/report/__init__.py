"""The HTML report and the JSON results file, from a results dict (schema ``reportgen/1``).

    render.py   the jinja environment, the entry points (render_html, write_html, write_json), atomic
                writing, the JSON blocks of the page and the inlined plotly.js
    view.py     the results shaped into what the templates see (with fixes for older results)
    figures.py  the plotly figures
    format.py   how numbers read in the report (the jinja filters)

The entry points are imported on first use (PEP 562), so the modules that only need format.py's
number rule (findings, the CLI) do not load jinja2 and plotly with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .render import CONTENT_SECURITY_POLICY, render_html, script_json, write_html, write_json

__all__ = ["CONTENT_SECURITY_POLICY", "render_html", "script_json", "write_html", "write_json"]


def __getattr__(name: str):
    if name in __all__:
        from . import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
