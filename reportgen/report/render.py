"""Turn a results dict into one self-contained, interactive HTML report, and write results as JSON.

The pipeline is ``render_html(results)``: view.py shapes the plain results into what the templates see
(figures.py builds the plotly figures, format.py the numbers; no analysis happens here), then the jinja2
templates in ``templates/`` lay out the page (``report.html.jinja2`` extends ``frame.html.jinja2``).
The page loads nothing: plotly.js is inlined once, every picture is a ``data:`` URI already in the
results, and a Content-Security-Policy forbids network requests. Data reaches the page's JavaScript only
through ``<script type="application/json">`` blocks in which ``<``, ``>`` and ``&`` are written as
``\\u003c``, ``\\u003e``, ``\\u0026``, so a ``</script>`` inside any string (an image name, a column
name) stays inert.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
from pathlib import Path

import jinja2
import numpy as np
import plotly.graph_objects as go
from markupsafe import Markup

from .. import resources
from .figures import colour
from .format import FILTERS
from .view import context

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)


def render_html(results: dict, *, template_dir: str | os.PathLike | None = None) -> str:
    """The report for one results dict (schema ``reportgen/1``) as a complete HTML document.

    Findings come from ``results["findings"]`` when present, otherwise from ``findings.findings``.
    Non-finite numbers (NaN, inf) are written as null, in the page as in ``write_json``.
    ``template_dir``: a folder of templates that override the shipped ones by name (for instance a
    ``report.css`` or ``frame.html.jinja2`` of your own); the rest come from ``templates/``.
    """
    data = _plain(results)
    folders = ((str(template_dir),) if template_dir else ()) + (str(resources.templates_dir()),)
    template = _environment(folders).get_template("report.html.jinja2")
    page = context(data)
    figures = {name: _figure_json(figure) for name, figure in page.pop("figures").items()}
    return template.render(**page, figures=figures, results_json=script_json(data), plotly_js=plotly_js(),
                           csp=CONTENT_SECURITY_POLICY)


def write_html(results: dict, path: str | os.PathLike, *, template_dir: str | os.PathLike | None = None) -> None:
    """Write ``render_html(results)`` to ``path`` (UTF-8), atomically: readers never see half a file."""
    _write_atomic(Path(path), render_html(results, template_dir=template_dir))


def write_json(results: dict, path: str | os.PathLike) -> None:
    """Write the results as strict JSON (indented, UTF-8, NaN/inf as null) to ``path``, atomically."""
    text = json.dumps(_plain(results), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    _write_atomic(Path(path), text)



# -- writing ---------------------------------------------------------------------------------------------

def _write_atomic(path: Path, text: str) -> None:
    """Write a temporary file beside ``path`` and rename it over ``path`` (same folder: same file system)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 honours the umask, so the report gets the permissions of any new file.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _plain(value):
    """A JSON-safe copy: numpy scalars and arrays to Python, tuples to lists, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def script_json(value) -> Markup:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>``, ``&`` escaped, so no string
    can close the script element; ``JSON.parse`` (and ``json.loads``) read it back unchanged."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, allow_nan=False,
                                                           separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


@functools.lru_cache(maxsize=1)
def plotly_js() -> Markup:
    """plotly.js as the page inlines it in a ``<script>`` element: plotly's own cartesian partial bundle,
    1.5 MB instead of the full bundle's 4.8 MB of maps and 3-D code the report never draws."""
    source = resources.plotly_bundle().read_text(encoding="utf-8")
    # Inlined as raw script text: it must not contain what would end or confuse the script element.
    if "</script" in source.lower() or "<!--" in source:
        raise RuntimeError("this plotly.js build cannot be inlined safely in a <script> element")
    return Markup(source)


@functools.lru_cache(maxsize=4)
def _environment(folders: tuple[str, ...]) -> jinja2.Environment:
    # Optional fields may be missing from older or partial results: a missing one renders empty.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(folders)), autoescape=True, undefined=jinja2.ChainableUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS, colour=colour)
    return environment


def _figure_json(figure: go.Figure) -> Markup:
    return script_json(figure.to_json(validate=False, pretty=False))
