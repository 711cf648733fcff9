"""Turn a results dict into one self-contained, interactive HTML report, and write results as JSON.

The pipeline is ``render_html(results)``: plotly figures are built here from the plain results (no
analysis happens in this module), then the jinja2 templates in ``templates/`` lay out the page
(``report.html.jinja2`` extends ``frame.html.jinja2``). The page loads nothing: plotly.js is inlined
once, every picture is a ``data:`` URI already in the results, and a Content-Security-Policy forbids
network requests. Data reaches the page's JavaScript only through ``<script type="application/json">``
blocks in which ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026``, so a
``</script>`` inside any string (an image name, a column name) stays inert.
"""

from __future__ import annotations

import functools
import html
from collections import Counter
import json
import math
import os
import re
import secrets
from pathlib import Path

import jinja2
import numpy as np
import plotly.graph_objects as go
import plotly.offline
from markupsafe import Markup
from plotly.subplots import make_subplots

from . import resources
from .drawing import REGION_COLOURS, heat_colours
from .findings import SMALL_GROUP, findings, percent_text, signed_text, times_text
from .method_settings import EFFECT_FLOOR, IG_STEPS, method_settings
from .regions import ESTIMATED, PAINT_ORDER, REGION_BY_ID, REGION_IDS

# Network requests of any kind are refused; blob: serves the "Download results/regions" buttons and plotly's
# "download plot as PNG"; inline scripts and styles are the page itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)
# Density colours are symmetric on a log2 scale: 2**-2 .. 2**2 = 0.25x .. 4x an even spread, clipped.
LOG2_LIMIT = 2.0
METHOD_NAMES = {"gradcam": "Grad-CAM", "layergradcam": "Grad-CAM", "hirescam": "HiResCAM",
                "integrated-gradients": "Integrated gradients", "occlusion": "Occlusion",
                "region-ablation": "Region ablation"}
# Methods that explain one layer's output (the others work on the input and ignore --layer).
LAYER_METHODS = {"gradcam", "layergradcam", "hirescam"}
# What replaces a removed region or window (run.baseline), in words; see attribution.baseline_images.
BASELINE_NAMES = {"mean": "the mean colour", "blur": "a blurred copy of the image"}
# Sanity-check verdicts (reportgen/checks.py), in words.
SANITY_VERDICTS = {
    "passed": ("Passed", "The region ranking changes when the model's weights are randomised, so it reflects what "
                         "the model learned."),
    "doubtful": ("Doubtful", "The region ranking changes only partly when the weights are randomised; part of what "
                             "the map shows is the image itself rather than what the model learned."),
    "failed": ("Failed", "The region ranking hardly changes when every weight is randomised, so the method shows "
                         "mostly the image, not what the model learned. Do not read the ranking as the model's "
                         "reasons."),
    "unknown": ("Unknown", "No rank correlation could be computed (for instance, the randomised model's maps were "
                           "all zero)."),
}
DETECTION_NAMES = {
    "hog": "face detector (HOG)", "hog-upsampled": "face detector on a 2× enlarged image",
    "cnn": "face detector (CNN), for faces the first missed",
    "full-frame": "whole image taken as the face (already-cropped photo)",
}
# Group differences (b - a) on their own diverging scale, so they are not read as densities:
# purple = higher in the first group (a), white = no difference, orange = higher in the second (b).
DIFFERENCE_COLOURS = ((84, 39, 136), (247, 247, 247), (179, 88, 6))
# The run summary lists at most this many failed images; the embedded results keep all of them.
FAILURES_SHOWN = 50
HOVER_LABEL = dict(bgcolor="white", bordercolor="#9aa5b1", font=dict(size=13, color="#1f2933"), align="left")
PLOT_FONT = dict(family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
                 size=13, color="#1f2933")


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
    return template.render(**_context(data))


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
def _plotly_js() -> Markup:
    source = plotly.offline.get_plotlyjs()
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
    environment.filters.update(
        times=_times, percent=_percent, ci_times=_ci_times, ci_percent=_ci_percent, signed=_signed,
        ci_signed=_ci_signed, colour=_colour, duration=_duration, count=_count, points=_points,
        ci_points=_ci_points, correlation=_correlation, ci_correlation=_ci_correlation,
    )
    return environment


# -- what the templates see ------------------------------------------------------------------------------

def _context(results: dict) -> dict:
    run = results.get("run") or {}
    settings = _method_settings(run)  # what the methods ran with (IG steps, occlusion window...)
    method = str(run.get("method") or "gradcam").lower()
    uses_layer = method in LAYER_METHODS or method not in METHOD_NAMES
    method_name = METHOD_NAMES.get(method, str(run.get("method") or "unknown"))
    regions = [r for r in results.get("regions") or [] if isinstance(r, dict)]
    face = results.get("canonical_face") or {}
    groups = results.get("groups") or {}
    figures: dict[str, Markup] = {}
    if face.get("polygons") is not None and face.get("size"):
        figures["region-map"] = _figure_json(_region_map(face, regions))
        # A grid with no number in it (no image had any attention to place) is left out, not drawn blue.
        if face.get("mean_attribution") and np.isfinite(np.asarray(face["mean_attribution"], dtype=np.float64)).any():
            figures["mean-map"] = _figure_json(_mean_map(face))
    if regions:
        figures["ranked"] = _figure_json(_ranked_chart(regions))
    checks = _checks_view(results, run)
    if checks["deletion"]:
        figures["checks-deletion"] = _figure_json(_deletion_chart(checks["deletion"]))
    if checks["sanity"] and _number(checks["sanity"].get("rank_correlation")):
        figures["checks-sanity"] = _figure_json(_sanity_chart(checks["sanity"]))
    comparisons = []
    for index, comparison in enumerate(results.get("comparisons") or []):
        view = _comparison_view(comparison, groups)
        figure_id = f"comparison-{index}"
        if face.get("polygons") is not None and face.get("size") and view["maps"]:
            figures[figure_id] = _figure_json(_comparison_maps(face, comparison, groups))
            view["figure"] = figure_id
        comparisons.append(view)
    patches = results.get("patches") or {}
    ranked_ids = [r.get("id") for r in regions]
    patch_regions = [r for r in regions if r.get("id") in patches]
    patch_regions += [_region_stub(key) for key in patches if key not in ranked_ids]
    items = results.get("findings")
    if not items:
        items = findings(results)
    failures = [f for f in results.get("failures") or [] if isinstance(f, dict)]
    return {
        "results": results,
        "results_json": script_json(results),
        "run": run,
        "tool": results.get("tool") or {},
        "counts": results.get("counts") or {},
        "analysed": _analysed(results.get("counts") or {}),
        "cell": _layer_cell(run) if uses_layer else None,
        "method": method,
        "method_name": method_name,
        # mid-sentence: "what region ablation measures", but "what Grad-CAM measures"
        "method_inline": method_name if "CAM" in method_name else method_name[:1].lower() + method_name[1:],
        "uses_layer": uses_layer,
        "baseline_name": BASELINE_NAMES.get(str(run.get("baseline")), run.get("baseline") or BASELINE_NAMES["mean"]),
        "occlusion_side": {"window": settings["occlusion_window"], "stride": settings["occlusion_stride"]}
                          if "occlusion_window" in settings else None,
        "ig_steps": settings.get("ig_steps", IG_STEPS),
        "effect_floor_points": _points(settings.get("effect_floor", EFFECT_FLOOR)),
        "effects": any(_number(r.get("effect")) for r in regions),
        "intervals": _intervals_view(run, results.get("comparisons") or []),
        "checks": checks,
        "detection": [(DETECTION_NAMES.get(name, name), count)
                      for name, count in (results.get("detection") or {}).items()],
        "findings": items,
        "regions": regions,
        "region_groups": results.get("region_groups") or [],
        "groups": [dict(group, key=key, small=_small(group.get("n"))) for key, group in groups.items()],
        "comparisons": comparisons,
        "patch_regions": patch_regions,
        "patches": patches,
        "examples": results.get("examples") or [],
        "views": results.get("views") or {},
        "browser": _browser_view(results.get("browser"), regions, run),
        "legend": _region_legend(),
        "failures_shown": failures[:FAILURES_SHOWN],
        "failure_reasons": Counter(str(f.get("reason")) for f in failures).most_common(),
        "figures": figures,
        "estimated_labels": [REGION_BY_ID[r].label for r in ESTIMATED if r != "background"],
        "config_text": _toml(results.get("config") or {}),
        "small_group": SMALL_GROUP,
        "plotly_js": _plotly_js(),
        "csp": CONTENT_SECURITY_POLICY,
        "log2_limit": LOG2_LIMIT,
    }


def _method_settings(run: dict) -> dict:
    """The methods' settings as the run recorded them, or (older results) as computed for its input size;
    empty when neither is known (the text then leaves the pixel sizes out)."""
    if run.get("method_settings"):
        return run["method_settings"]
    size = run.get("input_size")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return method_settings(tuple(size))
    return {}


def _intervals_view(run: dict, comparisons: list) -> dict:
    """How the 95% intervals and the group tests were computed, for the glossary and the methods text."""
    resamples = run.get("bootstrap")
    if isinstance(resamples, int) and not isinstance(resamples, bool):
        kind = "bootstrap" if resamples > 0 else "t"
    else:
        kind = None  # results from before run.bootstrap existed: Student t
    tests = {str(r.get("test")) for c in comparisons if isinstance(c, dict)
             for r in c.get("regions") or [] if isinstance(r, dict) and r.get("test")}
    return {"kind": kind, "resamples": resamples if kind == "bootstrap" else None,
            "phrase": run.get("interval") or ("Student t over images" if kind != "bootstrap" else None),
            "tests": sorted(tests)}


def _region_name(region_id) -> str:
    region = REGION_BY_ID.get(region_id) if isinstance(region_id, str) else None
    return region.label if region else str(region_id)


def _checks_view(results: dict, run: dict) -> dict:
    """The faithfulness (deletion) and sanity checks as the "Can this explanation be trusted?" section
    shows them, and the warnings the masthead repeats (a failed sanity check, an unfaithful explanation)."""
    deletion = results.get("faithfulness") if isinstance(results.get("faithfulness"), dict) else None
    sanity = results.get("sanity") if isinstance(results.get("sanity"), dict) else None
    warnings = []
    if deletion is not None:
        counts = deletion.get("top_regions") if isinstance(deletion.get("top_regions"), dict) else {}
        top_area, random_area = deletion.get("top_area"), deletion.get("random_area")
        deletion = dict(deletion, top_list=[(_region_name(rid), n) for rid, n in counts.items()],
                        baseline_name=BASELINE_NAMES.get(str(deletion.get("baseline")),
                                                         deletion.get("baseline") or "the baseline"),
                        # the random regions were much smaller than the top ones: size may explain part of the gap
                        size_gap=_number(top_area) and _number(random_area) and top_area > 1.5 * random_area)
        if deletion.get("faithful") is False:
            warnings.append("deletion")
    if sanity is not None:
        verdict = SANITY_VERDICTS.get(str(sanity.get("verdict")), SANITY_VERDICTS["unknown"])
        sanity = dict(sanity, verdict_label=verdict[0], verdict_text=verdict[1],
                      top_name=_region_name(sanity.get("top_region")) if sanity.get("top_region") else None,
                      top_randomised_name=_region_name(sanity.get("top_region_randomised"))
                      if sanity.get("top_region_randomised") else None)
        if sanity.get("verdict") == "failed":
            warnings.append("sanity")
    check_images = run.get("check_images")
    return {"deletion": deletion, "sanity": sanity, "warnings": warnings,
            "off": isinstance(check_images, int) and not isinstance(check_images, bool) and check_images <= 0,
            "check_images": check_images}


def _browser_view(browser, regions: list[dict], run: dict) -> dict | None:
    """What the image browser's controls offer: sort keys for the group columns and each region."""
    if not isinstance(browser, dict) or not browser.get("images"):
        return None
    images = [r for r in browser["images"] if isinstance(r, dict)]
    columns = list(dict.fromkeys([c for c in run.get("protected") or [] if isinstance(c, str)] +
                                 [c for r in images for c in (r.get("groups") or {})]))
    order = [r.get("id") for r in regions] or list(browser.get("regions") or REGION_IDS)
    region_ids = [rid for rid in order if rid in (browser.get("regions") or REGION_IDS)]
    labels = {r.get("id"): r.get("label") for r in regions}
    return dict(browser, shown=len(images), columns=columns,
                region_options=[(rid, labels.get(rid) or getattr(REGION_BY_ID.get(rid), "label", rid))
                                for rid in region_ids])


def _region_legend() -> list[tuple[str, str]]:
    """(CSS colour, name) for each colour of the region overlays: a pair of regions (left and right eye)
    shares one colour and one name ("Eyes")."""
    names: dict[tuple, list[str]] = {}
    for rid in REGION_IDS:
        if rid != "background":
            names.setdefault(REGION_COLOURS[rid], []).append(REGION_BY_ID[rid].label)
    legend = []
    for colour, labels in names.items():
        plain = list(dict.fromkeys(re.sub(r"^(Right|Left) (\w)", lambda m: m.group(2).upper(), label) for label in labels))
        name = plain[0] + ("s" if len(labels) > 1 and len(plain) == 1 else "") if len(plain) == 1 else " / ".join(labels)
        legend.append((f"rgb({colour[0]},{colour[1]},{colour[2]})", name))
    return legend


def _analysed(counts: dict):
    """Images behind the numbers: "scored" when the analysis reports it, else "aligned"."""
    return counts.get("scored", counts.get("aligned"))


def _layer_cell(run: dict) -> dict | None:
    """How coarse the explained layer is: its grid and the input pixels one cell covers, when known."""
    shape, size = run.get("layer_shape"), run.get("input_size")
    if not (isinstance(shape, list) and len(shape) >= 2 and isinstance(size, list) and len(size) == 2):
        return None
    rows, cols = shape[-2], shape[-1]
    if not all(isinstance(v, int) and v > 0 for v in (rows, cols, *size)):
        return None
    return {"grid": f"{rows}×{cols}", "input": f"{size[0]}×{size[1]}",
            "pixels": f"{size[0] / rows:.0f}×{size[1] / cols:.0f}"}


def _region_stub(region_id: str) -> dict:
    region = REGION_BY_ID.get(region_id)
    return {"id": region_id, "label": region.label if region else region_id,
            "estimated": bool(region and region.estimated)}


def _small(n) -> bool:
    return isinstance(n, (int, float)) and n < SMALL_GROUP


def _comparison_view(comparison: dict, groups: dict) -> dict:
    a, b = comparison.get("a"), comparison.get("b")
    rows = sorted((r for r in comparison.get("regions") or [] if isinstance(r, dict)),
                  key=lambda r: -abs(r["difference"]) if isinstance(r.get("difference"), (int, float)) else 0)
    n_a = comparison.get("n_a", (groups.get(a) or {}).get("n"))
    n_b = comparison.get("n_b", (groups.get(b) or {}).get("n"))
    return dict(comparison, rows=rows, n_a=n_a, n_b=n_b, small=_small(n_a) or _small(n_b),
                beyond=sum(1 for r in rows if r.get("beyond_noise")), figure=None,
                maps=a in groups and b in groups)


# -- formatting filters ----------------------------------------------------------------------------------

def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _times(value) -> str:
    return f"{times_text(value)}×" if _number(value) else "–"


def _percent(value) -> str:
    return percent_text(value) if _number(value) else "–"


def _pair(interval) -> tuple | None:
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(_number(v) for v in interval):
        return tuple(interval)
    return None


def _ci_times(interval) -> str:
    pair = _pair(interval)
    return f"{times_text(pair[0])}–{times_text(pair[1])}" if pair else "–"


def _ci_percent(interval) -> str:
    pair = _pair(interval)
    return f"{percent_text(pair[0])}–{percent_text(pair[1])}" if pair else "–"


def _signed(value) -> str:
    return signed_text(value).replace("-", "−") if _number(value) else "–"


def _ci_signed(interval) -> str:
    pair = _pair(interval)
    return f"{_signed(pair[0])} to {_signed(pair[1])}" if pair else "–"


def _points(fraction) -> str:
    """A change of probability (0-1) in percentage points: 50, 3.2, −0.07."""
    return _signed(100 * fraction) if _number(fraction) else "–"


def _ci_points(interval) -> str:
    pair = _pair(interval)
    if not pair:
        return "–"
    low, high = (_points(v) for v in pair)
    # "−3 to −1" when a bound shows a minus sign: a dash there would read as one.
    return f"{low} to {high}" if "−" in low + high else f"{low}–{high}"


def _correlation(value) -> str:
    return f"{value:.2f}".replace("-", "−") if _number(value) else "–"


def _ci_correlation(interval) -> str:
    pair = _pair(interval)
    return f"{_correlation(pair[0])} to {_correlation(pair[1])}" if pair else "–"


def _duration(seconds) -> str:
    if not _number(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _count(value) -> str:
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) and not isinstance(value, bool) else \
        ("–" if value is None else str(value))


# -- figures (plain plotly JSON; the page's script only calls Plotly.newPlot on it) ----------------------

def _figure_json(figure: go.Figure) -> Markup:
    return script_json(figure.to_json(validate=False, pretty=False))


def _colour(density) -> str:
    """The fill colour of a density: blue below 1, white at 1, red above, symmetric in log2; grey if none."""
    if not _number(density):
        return "rgb(214,218,224)"
    value = (float(_log2(density)) + LOG2_LIMIT) / (2 * LOG2_LIMIT)
    r, g, b = heat_colours(np.array(value))
    return f"rgb({r},{g},{b})"


def _colour_scale() -> list:
    stops = heat_colours(np.array([0.0, 0.5, 1.0]))
    return [[position, f"rgb({r},{g},{b})"] for position, (r, g, b) in zip((0.0, 0.5, 1.0), stops)]


def _colour_bar(title: str, **extra) -> dict:
    values = list(range(-int(LOG2_LIMIT), int(LOG2_LIMIT) + 1))
    labels = [f"{2.0 ** v:g}×" for v in values]
    labels[0], labels[-1] = f"≤{labels[0]}", f"≥{labels[-1]}"
    labels[len(values) // 2] = "1× even"
    # Horizontal, under the face: the face keeps the full width of its panel (and of a phone).
    bar = dict(title=dict(text=title, side="bottom"), tickvals=values, ticktext=labels, thickness=10, len=0.9,
               orientation="h", x=0.5, xanchor="center", y=-0.03, yanchor="top", outlinewidth=0)
    bar.update(extra)
    return bar


def _log2(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logged = np.log2(np.where(array > 0, array, 2.0 ** -LOG2_LIMIT))
    return np.clip(np.nan_to_num(logged, nan=-LOG2_LIMIT), -LOG2_LIMIT, LOG2_LIMIT)


def _escape(text) -> str:
    """Plotly renders a subset of HTML in labels; user text (column names, labels) must show as text."""
    return html.escape(str(text), quote=False)


def _region_hover(row: dict | None, region_id: str, clickable: bool = True) -> str:
    label = _escape((row or {}).get("label") or getattr(REGION_BY_ID.get(region_id), "label", region_id))
    estimated = (row or {}).get("estimated", region_id in ESTIMATED)
    lines = [f"<b>{label}</b>" + (" (estimated region)" if estimated else "")]
    if row is None or not _number(row.get("density")):
        lines.append("no data: not visible in any image")
    else:
        lines.append(f"{_times(row['density'])} an even spread (95% CI {_ci_times(row.get('ci'))})")
        share = f"{_percent(row.get('share'))} of the attention"
        if _pair(row.get("share_ci")):
            share += f" (95% CI {_ci_percent(row.get('share_ci'))})"
        lines.append(share)
        if row.get("n") is not None:
            lines.append(f"n = {_count(row.get('n'))} images")
    if row is not None and _number(row.get("effect")):
        lines.append(f"removing it {_drop_words(row['effect'], row.get('effect_ci'))}")
    if clickable:
        lines.append("<i>click: top patches</i>")
    return "<br>".join(lines)


def _drop_words(effect: float, interval=None) -> str:
    """A drop of the class probability (0-1) and its 95% interval as words: "lowers the class probability by
    50 points (95% CI 42–59)"; a negative drop "raises ... by 0.7 points (95% CI 0.2–1.2)"."""
    pair = _pair(interval)
    if effect < 0:
        words, effect, pair = "raises", -effect, (-pair[1], -pair[0]) if pair else None
    else:
        words = "lowers"
    return f"{words} the class probability by {_points(effect)} points" + \
        (f" (95% CI {_ci_points(pair)})" if pair else "")


def _paint_order(face: dict) -> list[str]:
    order = [r for r in face.get("paint_order") or PAINT_ORDER if isinstance(r, str)]
    order += [r for r in (face.get("polygons") or {}) if r not in order]
    return order


def _face_axes(face: dict) -> tuple[dict, dict]:
    width, height = face["size"]
    xaxis = dict(range=[0, width], visible=False, fixedrange=True, constrain="domain")
    yaxis = dict(range=[height, 0], visible=False, fixedrange=True, scaleratio=1, constrain="domain")
    return xaxis, yaxis


def _shapes_in_paint_order(face: dict) -> list[tuple[str, list]]:
    """(region id, its polygons) in paint order; the background is the whole canvas."""
    width, height = face["size"]
    polygons = face.get("polygons") or {}
    return [(region_id, [[[0, 0], [width, 0], [width, height], [0, height]]] if region_id == "background"
             else polygons.get(region_id) or []) for region_id in _paint_order(face)]


def _region_traces(face: dict, rows_by_id: dict, clickable: bool, xaxis: str = "x", yaxis: str = "y"):
    """Filled polygons in paint order (later covers earlier); hover and click pick the topmost."""
    traces = []
    for region_id, shapes in _shapes_in_paint_order(face):
        row = rows_by_id.get(region_id)
        hover = _region_hover(row, region_id, clickable)
        for polygon in shapes:
            if len(polygon) < 3:
                continue
            xs = [float(p[0]) for p in polygon] + [float(polygon[0][0])]
            ys = [float(p[1]) for p in polygon] + [float(polygon[0][1])]
            traces.append(go.Scatter(
                x=xs, y=ys, mode="lines", fill="toself", fillcolor=_colour((row or {}).get("density")),
                line=dict(color="rgba(31,41,51,0.45)", width=0.8), hoveron="fills", hoverinfo="text",
                text=hover, name=_escape((row or {}).get("label") or region_id), meta=region_id,
                showlegend=False, xaxis=xaxis, yaxis=yaxis,
            ))
    return traces


def _scale_trace(title: str, xaxis: str = "x", yaxis: str = "y", **bar) -> go.Scatter:
    """An invisible trace that only carries the colour bar."""
    return go.Scatter(
        x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False, xaxis=xaxis, yaxis=yaxis,
        marker=dict(color=[0], cmin=-LOG2_LIMIT, cmax=LOG2_LIMIT, colorscale=_colour_scale(), showscale=True,
                    colorbar=_colour_bar(title, **bar)),
    )


def _map_layout(height: int = 470, **extra) -> dict:
    return dict(height=height, margin=dict(l=4, r=4, t=8, b=78), paper_bgcolor="rgba(0,0,0,0)",
                plot_bgcolor="rgba(0,0,0,0)", font=PLOT_FONT, dragmode=False, hovermode="closest",
                hoverlabel=HOVER_LABEL,
                **extra)


def _region_map(face: dict, regions: list[dict]) -> go.Figure:
    """The canonical face, each region filled with its density colour; click a region for its patches."""
    rows_by_id = {r.get("id"): r for r in regions}
    figure = go.Figure(_region_traces(face, rows_by_id, clickable=True))
    figure.add_trace(_scale_trace("density (× an even spread)"))
    xaxis, yaxis = _face_axes(face)
    figure.update_layout(**_map_layout(xaxis=xaxis, yaxis=dict(yaxis, scaleanchor="x")))
    return figure


def _mean_map(face: dict) -> go.Figure:
    """The mean attention on the canonical face (same colour scale) with the region outlines on top."""
    width, height = face["size"]
    grid = np.asarray(face["mean_attribution"], dtype=np.float64)
    rows, cols = grid.shape
    figure = go.Figure(go.Heatmap(
        z=_log2(grid).astype(np.float32), customdata=np.nan_to_num(grid).astype(np.float32), x0=width / cols / 2, dx=width / cols,
        y0=height / rows / 2, dy=height / rows, zmin=-LOG2_LIMIT, zmax=LOG2_LIMIT, colorscale=_colour_scale(),
        colorbar=_colour_bar("attention (× an even spread)"), zsmooth="best",
        hovertemplate="%{customdata:.2f}× an even spread<extra></extra>",
    ))
    for region_id in _paint_order(face):
        for polygon in (face.get("polygons") or {}).get(region_id) or []:
            if len(polygon) < 3:
                continue
            figure.add_trace(go.Scatter(
                x=[float(p[0]) for p in polygon] + [float(polygon[0][0])],
                y=[float(p[1]) for p in polygon] + [float(polygon[0][1])],
                mode="lines", line=dict(color="rgba(31,41,51,0.55)", width=1), hoverinfo="skip", showlegend=False,
            ))
    xaxis, yaxis = _face_axes(face)
    figure.update_layout(**_map_layout(xaxis=xaxis, yaxis=dict(yaxis, scaleanchor="x")))
    return figure


def _ranked_chart(regions: list[dict]) -> go.Figure:
    """Density per region, highest first, with 95% CI bars and the even-spread line at 1.0."""
    rows = sorted((r for r in regions if _number(r.get("density"))), key=lambda r: -r["density"])
    labels = [_escape(r.get("label") or r.get("id")) + (" *" if r.get("estimated") else "") for r in rows]
    density = [r["density"] for r in rows]
    upper = [max((_pair(r.get("ci")) or (d, d))[1] - d, 0) for r, d in zip(rows, density)]
    lower = [max(d - (_pair(r.get("ci")) or (d, d))[0], 0) for r, d in zip(rows, density)]
    hover = [_region_hover(r, r.get("id"), clickable=True) for r in rows]
    figure = go.Figure(go.Bar(
        x=density, y=labels, orientation="h", marker=dict(color=[_colour(d) for d in density],
                                                          line=dict(color="rgba(31,41,51,0.55)", width=1)),
        error_x=dict(type="data", array=upper, arrayminus=lower, color="#3e4c59", thickness=1.2, width=3),
        customdata=[[r.get("id")] for r in rows], hovertext=hover, hoverinfo="text",
    ))
    top = max([d + u for d, u in zip(density, upper)] + [1.2])
    # The column on the right: each region's share of the attention or, for a method that measures regions
    # directly (region-ablation), its effect: the drop of the class probability in percentage points.
    effects = any(_number(r.get("effect")) for r in rows)
    for label, row in zip(labels, rows):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=label, yref="y", showarrow=False,
                              text=_points(row.get("effect")) if effects else _percent(row.get("share")),
                              font=dict(color="#52606d", size=12), xshift=10)
    figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=1.0, yref="paper", yanchor="bottom",
                          showarrow=False, text="<b>drop, pts</b>" if effects else "<b>share</b>",
                          font=dict(color="#52606d", size=12), xshift=10)
    figure.add_shape(type="line", x0=1, x1=1, xref="x", y0=0, y1=1, yref="paper",
                     line=dict(color="#1f2933", width=1.2, dash="dash"))
    figure.add_annotation(x=1, xref="x", y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                          text="even spread (1×)", font=dict(size=12, color="#1f2933"))
    figure.update_layout(
        height=max(260, 28 * len(rows) + 70), margin=dict(l=8, r=84 if effects else 64, t=30, b=40), font=PLOT_FONT,
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", dragmode=False, showlegend=False,
        bargap=0.28, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="density: attention per pixel, × an even spread"), range=[0, top * 1.05],
                   gridcolor="#e4e7eb", zeroline=True, zerolinecolor="#9aa5b1", fixedrange=True),
        yaxis=dict(autorange="reversed", fixedrange=True, ticksuffix="  ", automargin=True),
    )
    return figure


def _deletion_chart(check: dict) -> go.Figure:
    """The deletion check: mean drop of the class probability (percentage points, 95% CI) when each image's
    top-ranked region, or a random region of similar area, is replaced by the baseline."""
    names = ["top-ranked region", "random region,<br>similar area"]
    means = [check.get("top_drop"), check.get("random_drop")]
    intervals = [_pair(check.get("top_drop_ci")), _pair(check.get("random_drop_ci"))]
    values = [100 * m if _number(m) else None for m in means]
    upper = [100 * (ci[1] - m) if ci and _number(m) else 0 for ci, m in zip(intervals, means)]
    lower = [100 * (m - ci[0]) if ci and _number(m) else 0 for ci, m in zip(intervals, means)]
    hover = [f"<b>{name.replace('<br>', ' ')}</b><br>{'replacing it ' + _drop_words(m, ci) if _number(m) else '–'}"
             for name, m, ci in zip(names, means, intervals)]
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker=dict(color=["#1d4e89", "#9aa5b1"]),
        error_x=dict(type="data", array=upper, arrayminus=lower, color="#1f2933", thickness=1.4, width=5),
        hovertext=hover, hoverinfo="text", text=[_points(m) for m in means], textposition="none",
    ))
    ends = [v + u for v, u in zip(values, upper) if v is not None] + [v - lo for v, lo in zip(values, lower)
                                                                       if v is not None]
    high, low = max(ends + [1.0]), min(ends + [0.0])
    for name, m in zip(names, means):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=name, yref="y", showarrow=False,
                              text=f"<b>{_points(m)}</b>", font=dict(size=13, color="#1f2933"), xshift=10)
    figure.update_layout(
        height=170, margin=dict(l=8, r=56, t=10, b=44), font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", dragmode=False, showlegend=False, bargap=0.35, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="drop of the class probability, percentage points (95% CI)"),
                   range=[min(low * 1.1, 0), high * 1.08], gridcolor="#e4e7eb", zeroline=True,
                   zerolinecolor="#1f2933", fixedrange=True),
        yaxis=dict(autorange="reversed", fixedrange=True, ticksuffix="  ", automargin=True),
    )
    return figure


def _sanity_chart(sanity: dict) -> go.Figure:
    """The sanity check on the rank-correlation scale (-1 to 1): the mean correlation between the real and
    the randomised model's region rankings with its 95% CI, over bands for the verdicts."""
    thresholds = sanity.get("thresholds") if isinstance(sanity.get("thresholds"), dict) else {}
    doubtful = thresholds.get("doubtful") if _number(thresholds.get("doubtful")) else 0.4
    failed = thresholds.get("failed") if _number(thresholds.get("failed")) else 0.7
    rho = sanity["rank_correlation"]
    ci = _pair(sanity.get("rank_correlation_ci"))
    figure = go.Figure(go.Scatter(
        x=[rho], y=[0], mode="markers", marker=dict(size=13, color="#1f2933", symbol="diamond"),
        error_x=dict(type="data", array=[ci[1] - rho if ci else 0], arrayminus=[rho - ci[0] if ci else 0],
                     color="#1f2933", thickness=1.6, width=7),
        hovertext=[f"rank correlation {_correlation(rho)}<br>95% CI {_ci_correlation(ci)}"], hoverinfo="text",
    ))
    bands = (("passed", -1.0, doubtful, "#eef2f6", "#52606d"), ("doubtful", doubtful, failed, "#fff8e6", "#8d5b00"),
             ("failed", failed, 1.0, "#fbe5e7", "#a61b29"))
    for name, start, end, fill, ink in bands:
        figure.add_shape(type="rect", x0=start, x1=end, xref="x", y0=0, y1=1, yref="paper", fillcolor=fill,
                         line=dict(width=0), layer="below")
        figure.add_annotation(x=(start + end) / 2, xref="x", y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                              text=name, font=dict(size=12, color=ink))
    figure.update_layout(
        height=140, margin=dict(l=12, r=12, t=24, b=44), font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", dragmode=False, showlegend=False, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="rank correlation, real vs randomised model (95% CI)"), range=[-1, 1],
                   tickvals=[-1, -0.5, 0, doubtful, failed, 1], gridcolor="#d9dde3", zeroline=False, fixedrange=True),
        yaxis=dict(visible=False, range=[-1, 1], fixedrange=True),
    )
    return figure


def _comparison_maps(face: dict, comparison: dict, groups: dict) -> go.Figure:
    """The two groups' region maps side by side on one colour scale, and a third map of the difference
    in density (b - a) per region on a diverging scale centred at 0; regions that differ beyond noise
    are outlined."""
    a, b = comparison["a"], comparison["b"]
    titles = [f"<b>{name}</b> · {_escape(key)} (n = {_count(groups[key].get('n'))})" for name, key in (("a", a), ("b", b))]
    titles.append("<b>b − a</b> · difference in density")
    spacing = 0.03
    figure = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=spacing)
    for column, key in enumerate((a, b), start=1):
        rows_by_id = {r.get("id"): r for r in groups[key].get("regions") or []}
        suffix = "" if column == 1 else str(column)
        for trace in _region_traces(face, rows_by_id, clickable=False, xaxis=f"x{suffix}", yaxis=f"y{suffix}"):
            figure.add_trace(trace)
    rows_by_id = {r.get("id"): r for r in comparison.get("regions") or [] if isinstance(r, dict)}
    limit = _difference_limit(rows_by_id.values())
    for trace in _difference_traces(face, rows_by_id, a, b, limit):
        figure.add_trace(trace)
    width = (1 - 2 * spacing) / 3
    figure.add_trace(_scale_trace("density (× an even spread)", xaxis="x2", yaxis="y2",
                                  x=width + spacing / 2, len=2 * width * 0.92))
    figure.add_trace(_difference_scale(limit, x=1 - width / 2, len=width * 0.9))
    xaxis, yaxis = _face_axes(face)
    figure.update_layout(**_map_layout(height=430, xaxis=xaxis, xaxis2=xaxis, xaxis3=xaxis,
                                       yaxis=dict(yaxis, scaleanchor="x"), yaxis2=dict(yaxis, scaleanchor="x2"),
                                       yaxis3=dict(yaxis, scaleanchor="x3")))
    figure.update_layout(margin=dict(l=4, r=4, t=36, b=78))
    figure.update_annotations(font=dict(size=13))
    return figure


def _difference_limit(rows) -> float:
    """The end of the difference scale: the largest |b - a|, rounded up to 1, 2, 2.5 or 5 × 10^k."""
    largest = max((abs(r["difference"]) for r in rows if _number(r.get("difference"))), default=0.0)
    if largest <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(largest))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= largest * (1 - 1e-9))


def _difference_colours(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] to RGB on the purple - white - orange scale, shape (..., 3)."""
    v = np.clip(values, -1.0, 1.0)[..., None]
    low, mid, high = (np.array(c, dtype=np.float64) for c in DIFFERENCE_COLOURS)
    return np.where(v < 0, mid + (low - mid) * -v, mid + (high - mid) * v).astype(np.uint8)


def _difference_colour(difference, limit: float) -> str:
    if not _number(difference):
        return "rgb(214,218,224)"
    r, g, b = _difference_colours(np.array(difference / limit))
    return f"rgb({r},{g},{b})"


def _difference_traces(face: dict, rows_by_id: dict, a: str, b: str, limit: float) -> list:
    """The difference map: each region filled by b - a; beyond-noise regions outlined in ink."""
    traces = []
    for region_id, shapes in _shapes_in_paint_order(face):
        row = rows_by_id.get(region_id)
        label = _escape((row or {}).get("label") or getattr(REGION_BY_ID.get(region_id), "label", region_id))
        if row is None or not _number(row.get("difference")):
            hover = f"<b>{label}</b><br>no difference measured"
        else:
            hover = (f"<b>{label}</b><br>b − a: {_signed(row['difference'])}× an even spread "
                     f"(95% CI {_ci_signed(row.get('ci'))})<br>"
                     f"density {_times(row.get('density_a'))} in {_escape(a)}, {_times(row.get('density_b'))} in {_escape(b)}"
                     f"<br>{'<b>beyond noise</b>' if row.get('beyond_noise') else 'within noise'}")
        beyond = bool((row or {}).get("beyond_noise"))
        for polygon in shapes:
            if len(polygon) < 3:
                continue
            traces.append(go.Scatter(
                x=[float(p[0]) for p in polygon] + [float(polygon[0][0])],
                y=[float(p[1]) for p in polygon] + [float(polygon[0][1])],
                mode="lines", fill="toself", fillcolor=_difference_colour((row or {}).get("difference"), limit),
                line=dict(color="#1f2933", width=2.2) if beyond else dict(color="rgba(31,41,51,0.45)", width=0.8),
                hoveron="fills", hoverinfo="text", text=hover, name=label, meta=region_id, showlegend=False,
                xaxis="x3", yaxis="y3",
            ))
    return traces


def _difference_scale(limit: float, **bar) -> go.Scatter:
    values = [-limit, -limit / 2, 0.0, limit / 2, limit]
    labels = [f"{v:+g}".replace("-", "−") if v else "0" for v in values]
    stops = _difference_colours(np.array([-1.0, 0.0, 1.0]))
    scale = [[position, f"rgb({r},{g},{b})"] for position, (r, g, b) in zip((0.0, 0.5, 1.0), stops)]
    colour_bar = dict(title=dict(text="difference in density, b − a", side="bottom"),
                      tickvals=values, ticktext=labels, thickness=10, orientation="h", xanchor="center",
                      y=-0.03, yanchor="top", outlinewidth=0, **bar)
    return go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False, xaxis="x3", yaxis="y3",
                      marker=dict(color=[0], cmin=-limit, cmax=limit, colorscale=scale, showscale=True,
                                  colorbar=colour_bar))


# -- the run's configuration as TOML-like text -----------------------------------------------------------

def _toml(config: dict) -> str:
    """``config`` as TOML (tables for nested dicts; unset options as comments), for a one-edit re-run."""
    lines: list[str] = []
    _toml_table(config, [], lines)
    return "\n".join(lines).strip("\n")


def _toml_table(table: dict, path: list[str], lines: list[str]) -> None:
    nested = [(key, value) for key, value in table.items() if isinstance(value, dict)]
    if path:
        lines += ["", f"[{'.'.join(_toml_key(p) for p in path)}]"]
    for key, value in table.items():
        if isinstance(value, dict):
            continue
        if value is None:
            lines.append(f"# {_toml_key(key)} = (not set)")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        _toml_table(value, path + [str(key)], lines)


def _toml_key(key) -> str:
    key = str(key)
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    return json.dumps(str(value), ensure_ascii=False)
