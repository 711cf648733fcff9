"""The report's plotly figures, built from the plain results: the region map, the mean attention map,
the ranking, the two trust checks, the group comparisons and, for face verification, the accuracy of
same/different decisions per group and the similarity distributions of genuine and impostor pairs.

Each builder returns a ``plotly.graph_objects.Figure``; render.py writes it as JSON into the page, whose
script only calls ``Plotly.newPlot`` on it. Densities share one colour scale everywhere (``colour``,
symmetric on a log2 scale around an even spread); group differences have their own diverging scale.
Text that comes from the user (labels, column names) is escaped: plotly renders a subset of HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..faces.regions import ESTIMATED, PAINT_ORDER, REGION_BY_ID
from ..results import schema
from ..results.drawing import heat_colours
from .format import (
    bounds,
    ci_correlation,
    ci_percent,
    ci_signed,
    ci_times,
    correlation,
    count,
    drop_words,
    is_number,
    percent,
    points,
    signed,
    similarity,
    times,
)

# Density colours are symmetric on a log2 scale: 2**-2 .. 2**2 = 0.25x .. 4x an even spread, clipped.
LOG2_LIMIT = 2.0
# Group differences (b - a) on their own diverging scale, so they are not read as densities:
# purple = higher in the first group (a), white = no difference, orange = higher in the second (b).
DIFFERENCE_COLOURS = ((84, 39, 136), (247, 247, 247), (179, 88, 6))
HOVER_LABEL = dict(bgcolor="white", bordercolor="#9aa5b1", font=dict(size=13, color="#1f2933"), align="left")
PLOT_FONT = dict(family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
                 size=13, color="#1f2933")


def colour(density) -> str:
    """The fill colour of a density: blue below 1, white at 1, red above, symmetric in log2; grey if none."""
    if not is_number(density):
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


def _region_hover(row: schema.RegionRow | None, region_id: str, clickable: bool = True,
                  measure: str = "class probability") -> str:
    label = _escape((row["label"] if row else None) or _region_label(region_id))
    estimated = row.get("estimated", region_id in ESTIMATED) if row else region_id in ESTIMATED
    lines = [f"<b>{label}</b>" + (" (estimated region)" if estimated else "")]
    if row is None or not is_number(density := row["density"]):
        lines.append("no data: not visible in any image")
    else:
        lines.append(f"{times(density)} an even spread (95% CI {ci_times(row['ci'])})")
        share = f"{percent(row['share'])} of the attention"
        if bounds(row["share_ci"]):
            share += f" (95% CI {ci_percent(row['share_ci'])})"
        lines.append(share)
        lines.append(f"n = {count(row['n'])} images")
    if row is not None and is_number(effect := row.get("effect")):
        lines.append(f"removing it {drop_words(effect, row.get('effect_ci'), measure)}")
    if clickable:
        lines.append("<i>click: top patches</i>")
    return "<br>".join(lines)


def _region_label(region_id: str) -> str:
    """A region's label by its id (the id itself for one this version does not know)."""
    region = REGION_BY_ID.get(region_id)
    return region.label if region else region_id


def _paint_order(face: schema.CanonicalFace) -> list[str]:
    order = list(face["paint_order"] or PAINT_ORDER)
    order += [r for r in face["polygons"] if r not in order]
    return order


def _face_axes(face: schema.CanonicalFace) -> tuple[dict, dict]:
    width, height = face["size"]
    xaxis = dict(range=[0, width], visible=False, fixedrange=True, constrain="domain")
    yaxis = dict(range=[height, 0], visible=False, fixedrange=True, scaleratio=1, constrain="domain")
    return xaxis, yaxis


def _shapes_in_paint_order(face: schema.CanonicalFace) -> list[tuple[str, list]]:
    """(region id, its polygons) in paint order; the background is the whole canvas."""
    width, height = face["size"]
    polygons = face["polygons"]
    return [(region_id, [[[0, 0], [width, 0], [width, height], [0, height]]] if region_id == "background"
             else polygons.get(region_id) or []) for region_id in _paint_order(face)]


def _region_traces(face: schema.CanonicalFace, rows_by_id: dict[str, schema.RegionRow], clickable: bool, xaxis: str = "x",
                   yaxis: str = "y",
                   measure: str = "class probability"):
    """Filled polygons in paint order (later covers earlier); hover and click pick the topmost."""
    traces = []
    for region_id, shapes in _shapes_in_paint_order(face):
        row = rows_by_id.get(region_id)
        hover = _region_hover(row, region_id, clickable, measure)
        for polygon in shapes:
            if len(polygon) < 3:
                continue
            xs = [float(p[0]) for p in polygon] + [float(polygon[0][0])]
            ys = [float(p[1]) for p in polygon] + [float(polygon[0][1])]
            traces.append(go.Scatter(
                x=xs, y=ys, mode="lines", fill="toself", fillcolor=colour(row["density"] if row else None),
                line=dict(color="rgba(31,41,51,0.45)", width=0.8), hoveron="fills", hoverinfo="text",
                text=hover, name=_escape((row["label"] if row else None) or region_id), meta=region_id,
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


def region_map(face: schema.CanonicalFace, regions: list[schema.RegionRow], measure: str = "class probability") -> go.Figure:
    """The canonical face, each region filled with its density colour; click a region for its patches.
    ``measure``: what a removed region lowers, in the hover of a region-ablation run ("similarity")."""
    rows_by_id = {r["id"]: r for r in regions}
    figure = go.Figure(_region_traces(face, rows_by_id, clickable=True, measure=measure))
    figure.add_trace(_scale_trace("density (× an even spread)"))
    xaxis, yaxis = _face_axes(face)
    figure.update_layout(**_map_layout(xaxis=xaxis, yaxis=dict(yaxis, scaleanchor="x")))
    return figure


def mean_map(face: schema.CanonicalFace) -> go.Figure:
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
        for polygon in face["polygons"].get(region_id) or []:
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


def ranked_chart(regions: list[schema.RegionRow], measure: str = "class probability") -> go.Figure:
    """Density per region, highest first, with 95% CI bars and the even-spread line at 1.0; ``measure`` as
    for ``region_map``."""
    scored = sorted(((value, r) for r in regions if is_number(value := r["density"])), key=lambda pair: -pair[0])
    rows = [r for _, r in scored]
    labels = [_escape(r["label"] or r["id"]) + (" *" if r.get("estimated") else "") for r in rows]
    density = [d for d, _ in scored]
    upper = [max((bounds(r["ci"]) or (d, d))[1] - d, 0) for r, d in zip(rows, density)]
    lower = [max(d - (bounds(r["ci"]) or (d, d))[0], 0) for r, d in zip(rows, density)]
    hover = [_region_hover(r, r["id"], clickable=True, measure=measure) for r in rows]
    figure = go.Figure(go.Bar(
        x=density, y=labels, orientation="h", marker=dict(color=[colour(d) for d in density],
                                                          line=dict(color="rgba(31,41,51,0.55)", width=1)),
        error_x=dict(type="data", array=upper, arrayminus=lower, color="#3e4c59", thickness=1.2, width=3),
        customdata=[[r["id"]] for r in rows], hovertext=hover, hoverinfo="text",
    ))
    top = max([d + u for d, u in zip(density, upper)] + [1.2])
    # The column on the right: each region's share of the attention or, for a method that measures regions
    # directly (region-ablation), its effect: the drop of the class probability (or similarity) in points.
    effects = any(is_number(r.get("effect")) for r in rows)
    for label, row in zip(labels, rows):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=label, yref="y", showarrow=False,
                              text=points(row.get("effect")) if effects else percent(row["share"]),
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


def deletion_chart(check: schema.Faithfulness) -> go.Figure:
    """The deletion check: the mean drop of the model's evidence (log-odds) as regions are removed in the
    explanation's order and in random orders, against the removed area (% of the image), each with its
    pointwise 95% band; the area between the curves and its interval are written on the chart. Results
    from before the curves (one top and one random region) get the two bars they had."""
    ranked_drop, random_drop = check.get("ranked_drop"), check.get("random_drop")
    if ranked_drop is None:
        return _single_region_bars(check)
    areas = [100 * a for a in check.get("areas") or []]
    evidence = _escape(check.get("evidence") or "evidence")
    figure = go.Figure()
    # (random_drop is a curve here: one number only in the results from before the curves)
    lines = (("ranked", "in the explanation's order", "#1d4e89", "rgba(29,78,137,0.16)",
              ranked_drop, check.get("ranked_drop_ci"), check.get("ranked_drop_probability")),
             ("random", "in random orders", "#7b8794", "rgba(123,135,148,0.18)",
              random_drop if isinstance(random_drop, list) else [], check.get("random_drop_ci"),
              check.get("random_drop_probability")))
    for key, words, ink, fill, means, drop_band, drop_probability in lines:
        band = drop_band or []
        probability: list[float | None] = drop_probability or [None] * len(means)
        pairs = [bounds(b) for b in band]
        low = [pair[0] if pair else None for pair in pairs]
        high = [pair[1] if pair else None for pair in pairs]
        if any(v is not None for v in low):
            figure.add_trace(go.Scatter(x=areas, y=high, mode="lines", line=dict(width=0), hoverinfo="skip",
                                        showlegend=False))
            figure.add_trace(go.Scatter(x=areas, y=low, mode="lines", line=dict(width=0), fill="tonexty",
                                        fillcolor=fill, hoverinfo="skip", showlegend=False))
        hover = [f"<b>regions removed {words}</b><br>{percent(a / 100)} of the image removed<br>"
                 f"{evidence} drops by {signed(m)} (95% CI {ci_signed(b)})"
                 + (f"<br>and {drop_words(p)}" if is_number(p) else "")
                 for a, m, b, p in zip(areas, means, band, probability)]
        figure.add_trace(go.Scatter(x=areas, y=means, mode="lines", name=f"regions removed {words}",
                                    line=dict(color=ink, width=2.6 if key == "ranked" else 2,
                                              dash=None if key == "ranked" else "dash"),
                                    hovertext=hover, hoverinfo="text"))
    text = (f"area between the curves: <b>{signed(check['difference'])}</b> "
            f"(95% CI {ci_signed(check['difference_ci'])})")
    if is_number(check.get("difference_probability")):
        text += f"<br>in class probability: {points(check.get('difference_probability'))} points"
    figure.add_annotation(x=0.01, xref="paper", xanchor="left", y=0.99, yref="paper", yanchor="top", showarrow=False,
                          align="left", text=text, font=dict(size=12, color="#1f2933"), bgcolor="rgba(255,255,255,0.85)")
    figure.update_layout(
        height=320, margin=dict(l=8, r=12, t=10, b=44), font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", dragmode=False, hovermode="closest", hoverlabel=HOVER_LABEL,
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.2, yanchor="top", font=dict(size=12), traceorder="normal"),
        xaxis=dict(title=dict(text="area removed, % of the image"), range=[0, areas[-1] if areas else 50],
                   ticksuffix="%", gridcolor="#e4e7eb", zeroline=False, fixedrange=True),
        yaxis=dict(title=dict(text=f"drop, {evidence_unit(check.get('evidence'))}"), gridcolor="#e4e7eb", zeroline=True,
                   zerolinecolor="#1f2933", fixedrange=True, automargin=True),
    )
    return figure


def evidence_unit(name) -> str:
    """The evidence's unit in a word or two, for axis titles and table heads: "log-odds of the explained class"
    -> "log-odds"."""
    return _escape(str(name or "evidence").split(" of ")[0])


def _single_region_bars(check: schema.Faithfulness) -> go.Figure:
    """Older results: the drop of the class probability (points, 95% CI) for the top-ranked region and a
    random region of similar area."""
    names = ["top-ranked region", "random region,<br>similar area"]
    means = [check.get("top_drop"), check.get("random_drop")]
    intervals = [bounds(check.get("top_drop_ci")), bounds(check.get("random_drop_ci"))]
    values = [100 * m if is_number(m) else None for m in means]
    upper = [100 * (ci[1] - m) if ci and is_number(m) else 0 for ci, m in zip(intervals, means)]
    lower = [100 * (m - ci[0]) if ci and is_number(m) else 0 for ci, m in zip(intervals, means)]
    hover = [f"<b>{name.replace('<br>', ' ')}</b><br>{'replacing it ' + drop_words(m, ci) if is_number(m) else '–'}"
             for name, m, ci in zip(names, means, intervals)]
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker=dict(color=["#1d4e89", "#9aa5b1"]),
        error_x=dict(type="data", array=upper, arrayminus=lower, color="#1f2933", thickness=1.4, width=5),
        hovertext=hover, hoverinfo="text", text=[points(m) for m in means], textposition="none",
    ))
    ends = [v + u for v, u in zip(values, upper) if v is not None] + [v - lo for v, lo in zip(values, lower)
                                                                       if v is not None]
    high, low = max(ends + [1.0]), min(ends + [0.0])
    figure.update_layout(
        height=170, margin=dict(l=8, r=56, t=10, b=44), font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", dragmode=False, showlegend=False, bargap=0.35, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="drop of the class probability, percentage points (95% CI)"),
                   range=[min(low * 1.1, 0), high * 1.08], gridcolor="#e4e7eb", zeroline=True,
                   zerolinecolor="#1f2933", fixedrange=True),
        yaxis=dict(autorange="reversed", fixedrange=True, ticksuffix="  ", automargin=True),
    )
    return figure


def sanity_steps(sanity: schema.Sanity) -> list[schema.SanityStep]:
    """The cascade's steps as the sanity results hold them; older results (one randomisation of every
    layer) as a single step."""
    steps = sanity.get("steps")
    if steps:
        return steps
    return [{"randomised": "every layer", "images": sanity["images"], "rank_correlation": sanity["rank_correlation"],
             "rank_correlation_ci": sanity["rank_correlation_ci"],
             "mean_ranking_correlation": sanity["mean_ranking_correlation"], "zero_maps": sanity["zero_maps"],
             "top_region_randomised": sanity["top_region_randomised"]}]


def step_words(name: str) -> tuple[str, str]:
    """A cascade step's name in two parts: 'the top half of the layers (21 of 41, from layer3.0.conv1 up)' ->
    ('top half of the layers', '21 of 41, from layer3.0.conv1 up')."""
    words, _, detail = name.partition(" (")
    return words.removeprefix("the "), detail.removesuffix(")")


def _step_label(name: str) -> str:
    words, detail = step_words(name)
    return f"{_escape(words)}<br>({_escape(detail)})" if detail else _escape(words)


def sanity_chart(sanity: schema.Sanity) -> go.Figure:
    """The sanity check's cascade: for each step (the output layer, the top half, every layer randomised),
    the mean rank correlation between the real and the randomised model's region rankings with its 95% CI
    and the number of images behind it, over bands for the verdicts (read at the last step)."""
    doubtful, failed = sanity["thresholds"]["doubtful"], sanity["thresholds"]["failed"]
    steps = sanity_steps(sanity)
    labels = [_step_label(s["randomised"]) for s in steps]
    values = [s["rank_correlation"] if is_number(s["rank_correlation"]) else None for s in steps]
    intervals = [bounds(s["rank_correlation_ci"]) for s in steps]
    hover = [f"<b>randomised: {_escape(s['randomised'])}</b><br>rank correlation {correlation(v)} "
             f"(95% CI {ci_correlation(ci)})<br>{count(s['images'])} images"
             + (f", {count(s['zero_maps'])} of them with a zero map (counted as 0)" if s["zero_maps"] else "")
             for s, v, ci in zip(steps, values, intervals)]
    figure = go.Figure(go.Scatter(
        x=labels, y=values, mode="lines+markers", marker=dict(size=12, color="#1f2933", symbol="diamond"),
        line=dict(color="#9aa5b1", width=1.2, dash="dot"),
        error_y=dict(type="data", array=[ci[1] - v if ci and v is not None else 0 for v, ci in zip(values, intervals)],
                     arrayminus=[v - ci[0] if ci and v is not None else 0 for v, ci in zip(values, intervals)],
                     color="#1f2933", thickness=1.6, width=7),
        hovertext=hover, hoverinfo="text",
    ))
    bands = (("passed", -1.0, doubtful, "#eef2f6", "#52606d"), ("doubtful", doubtful, failed, "#fff8e6", "#8d5b00"),
             ("failed", failed, 1.0, "#fbe5e7", "#a61b29"))
    for name, start, end, fill, ink in bands:
        figure.add_shape(type="rect", x0=0, x1=1, xref="paper", y0=start, y1=end, yref="y", fillcolor=fill,
                         line=dict(width=0), layer="below")
        figure.add_annotation(x=1.0, xref="paper", xanchor="right", y=(start + end) / 2, yref="y", showarrow=False,
                              text=name, font=dict(size=12, color=ink))
    for label, s in zip(labels, steps):
        figure.add_annotation(x=label, xref="x", y=-1.0, yref="y", yanchor="bottom", showarrow=False,
                              text=f"n = {count(s['images'])}", font=dict(size=11, color="#52606d"))
    figure.update_layout(
        height=300, margin=dict(l=12, r=12, t=10, b=60), font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", dragmode=False, showlegend=False, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="randomised from the output down (cumulative)"), fixedrange=True,
                   tickfont=dict(size=11)),
        yaxis=dict(title=dict(text="rank correlation"), range=[-1.05, 1.05],
                   tickvals=[-1, -0.5, 0, doubtful, failed, 1], gridcolor="#d9dde3", zeroline=True,
                   zerolinecolor="#9aa5b1", fixedrange=True),
    )
    return figure


def comparison_maps(face: schema.CanonicalFace, comparison: schema.Comparison, groups: dict[str, schema.Group],
                    names: tuple[str, str] | None = None) -> go.Figure:
    """The two groups' region maps side by side on one colour scale, and a third map of the difference
    in density (b - a) per region on a diverging scale centred at 0; regions that differ beyond noise
    are outlined. ``names``: the two groups as the page names them (default: their keys)."""
    a, b = comparison["a"], comparison["b"]
    names = names or (a, b)
    titles = [f"<b>{letter}</b> · {_escape(name)} (n = {count(groups[key]['n'])})"
              for letter, key, name in (("a", a, names[0]), ("b", b, names[1]))]
    titles.append("<b>b − a</b> · difference in density")
    spacing = 0.03
    figure = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=spacing)
    traces = []
    for column, key in enumerate((a, b), start=1):
        rows_by_id = {r["id"]: r for r in groups[key]["regions"]}
        suffix = "" if column == 1 else str(column)
        traces += _region_traces(face, rows_by_id, clickable=False, xaxis=f"x{suffix}", yaxis=f"y{suffix}")
    differences = {r["id"]: r for r in comparison["regions"]}
    limit = _difference_limit(differences.values())
    traces += _difference_traces(face, differences, names[0], names[1], limit)
    width = (1 - 2 * spacing) / 3
    traces.append(_scale_trace("density (× an even spread)", xaxis="x2", yaxis="y2",
                               x=width + spacing / 2, len=2 * width * 0.92))
    traces.append(_difference_scale(limit, x=1 - width / 2, len=width * 0.9))
    # One call: plotly checks the whole trace list on every add_trace, so adding ~60 one by one is quadratic.
    figure.add_traces(traces)
    xaxis, yaxis = _face_axes(face)
    figure.update_layout(**_map_layout(height=430, xaxis=xaxis, xaxis2=xaxis, xaxis3=xaxis,
                                       yaxis=dict(yaxis, scaleanchor="x"), yaxis2=dict(yaxis, scaleanchor="x2"),
                                       yaxis3=dict(yaxis, scaleanchor="x3")))
    figure.update_layout(margin=dict(l=4, r=4, t=36, b=78))
    figure.update_annotations(font=dict(size=13))
    return figure


def _difference_limit(rows: Iterable[schema.RegionDifference]) -> float:
    """The end of the difference scale: the largest |b - a|, rounded up to 1, 2, 2.5 or 5 × 10^k."""
    largest = max((abs(difference) for r in rows if is_number(difference := r["difference"])), default=0.0)
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
    if not is_number(difference):
        return "rgb(214,218,224)"
    r, g, b = _difference_colours(np.array(difference / limit))
    return f"rgb({r},{g},{b})"


def _difference_traces(face: schema.CanonicalFace, rows_by_id: dict[str, schema.RegionDifference], a: str, b: str,
                       limit: float) -> list:
    """The difference map: each region filled by b - a; beyond-noise regions outlined in ink."""
    traces = []
    for region_id, shapes in _shapes_in_paint_order(face):
        row = rows_by_id.get(region_id)
        label = _escape((row["label"] if row else None) or _region_label(region_id))
        if row is None or not is_number(row["difference"]):
            hover = f"<b>{label}</b><br>no difference measured"
        else:
            hover = (f"<b>{label}</b><br>b − a: {signed(row['difference'])}× an even spread "
                     f"(95% CI {ci_signed(row['ci'])})<br>"
                     f"density {times(row['density_a'])} in {_escape(a)}, {times(row['density_b'])} in {_escape(b)}"
                     f"<br>{'<b>beyond noise</b>' if row['beyond_noise'] else 'within noise'}")
        beyond = bool(row and row["beyond_noise"])
        for polygon in shapes:
            if len(polygon) < 3:
                continue
            traces.append(go.Scatter(
                x=[float(p[0]) for p in polygon] + [float(polygon[0][0])],
                y=[float(p[1]) for p in polygon] + [float(polygon[0][1])],
                mode="lines", fill="toself", fillcolor=_difference_colour(row["difference"] if row else None, limit),
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
    colour_bar = dict(title=dict(text="density, b − a", side="bottom"),
                      tickvals=values, ticktext=labels, thickness=10, orientation="h", xanchor="center",
                      y=-0.03, yanchor="top", outlinewidth=0, **bar)
    return go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False, xaxis="x3", yaxis="y3",
                      marker=dict(color=[0], cmin=-limit, cmax=limit, colorscale=scale, showscale=True,
                                  colorbar=colour_bar))




# -- face verification ------------------------------------------------------------------------------------

GENUINE_COLOUR, IMPOSTOR_COLOUR = "#1d4e89", "#d97706"  # genuine pairs navy, impostor pairs amber


def accuracy_chart(verification: dict[str, Any]) -> go.Figure:
    """Face verification: the accuracy of same/different decisions at the threshold, overall and per group,
    with 95% intervals (Wilson), on a fixed 0-100% axis so gaps read at their true size. Groups on the worse
    side of a gap beyond noise are drawn in the alert colour. ``verification``: view.py's section view."""
    rows = [r for r in verification["rows"] if is_number(r.get("accuracy"))]
    worse = {gap["worse"] for gap in verification["gaps"]}
    unit = verification["unit"]
    names = [_escape(r["name"]) for r in rows]
    values = [r["accuracy"] for r in rows]
    intervals = [bounds(r.get("accuracy_ci")) for r in rows]
    hover = []
    for row, ci in zip(rows, intervals):
        lines = [f"<b>{_escape(row['name'])}</b>",
                 f"accuracy {percent(row['accuracy'])}" + (f" (95% CI {ci_percent(ci)})" if ci else ""),
                 f"{count(row.get('pairs'))} {unit}: {count(row.get('genuine'))} genuine, {count(row.get('impostor'))} impostor",
                 f"true accepts {percent(row.get('true_accept_rate'))} · false accepts {percent(row.get('false_accept_rate'))}"]
        hover.append("<br>".join(lines))
    colours = ["#1f2933" if row.get("key") is None else "#a61b29" if row["name"] in worse else "#1d4e89" for row in rows]
    figure = go.Figure(go.Scatter(
        x=values, y=names, mode="markers", marker=dict(size=12, color=colours, symbol="diamond"), cliponaxis=False,
        error_x=dict(type="data", array=[ci[1] - v if ci else 0 for ci, v in zip(intervals, values)],
                     arrayminus=[v - ci[0] if ci else 0 for ci, v in zip(intervals, values)],
                     color="#3e4c59", thickness=1.4, width=5),
        hovertext=hover, hoverinfo="text", showlegend=False,
    ))
    for name, value in zip(names, values):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=name, yref="y", showarrow=False,
                              text=f"<b>{percent(value)}</b>", font=dict(size=13, color="#1f2933"), xshift=10)
    if rows and rows[0].get("key") is None:
        figure.add_shape(type="line", x0=values[0], x1=values[0], xref="x", y0=0, y1=1, yref="paper",
                         line=dict(color="#9aa5b1", width=1.2, dash="dash"))
    figure.update_layout(
        height=max(150, 34 * len(rows) + 80), margin=dict(l=8, r=60, t=10, b=44), font=PLOT_FONT,
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", dragmode=False, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="accuracy: correct decisions (95% CI)"), range=[0, 1.0],
                   tickformat=".0%", gridcolor="#e4e7eb", zeroline=False, fixedrange=True),
        yaxis=dict(autorange="reversed", fixedrange=True, ticksuffix="  ", automargin=True),
    )
    return figure


def _histogram_range(rows: list[dict[str, Any]], threshold: float | None) -> tuple[float, float]:
    """The similarities that hold pairs (and the threshold), one bin wider each side, within [-1, 1]."""
    low, high = [], []
    for row in rows:
        histogram = row["histogram"]
        edges = histogram["edges"]
        counts = [g + i for g, i in zip(histogram["genuine"], histogram["impostor"])]
        filled = [k for k, n in enumerate(counts) if n]
        if filled:
            low.append(edges[max(filled[0] - 1, 0)])
            high.append(edges[min(filled[-1] + 2, len(edges) - 1)])
    if is_number(threshold):
        low.append(threshold - 0.05)
        high.append(threshold + 0.05)
    return (max(-1.0, min(low, default=-1.0)), min(1.0, max(high, default=1.0)))


def similarity_histograms(verification: dict[str, Any]) -> go.Figure:
    """Face verification: per group (all pairs first), the distribution of similarity for genuine pairs (the
    same person) and impostor pairs (two people), each as the fraction of its kind in each bin so groups of
    any size compare, drawn as filled steps (two bars in one bin would hide each other), with the decision
    threshold as a dashed line. Well-separated humps = good decisions; overlap around the threshold = errors."""
    rows = [r for r in verification["rows"] if r["histogram"]["edges"]]
    threshold = verification["threshold"]
    columns = 1 if len(rows) == 1 else 2
    lines = math.ceil(len(rows) / columns)
    unit = verification["unit"]
    titles = [f"<b>{_escape(r['name'])}</b> ({count(r.get('pairs'))} {unit})" for r in rows]
    panel, top, bottom = 170, 84, 50  # px: one row of panels, the margin above (legend, titles) and below
    height = top + bottom + panel * lines + 60 * (lines - 1)
    figure = make_subplots(rows=lines, cols=columns, subplot_titles=titles, shared_xaxes=True,
                           horizontal_spacing=0.08, vertical_spacing=60 / (height - top - bottom) if lines > 1 else 0)
    low, high = _histogram_range(rows, threshold)
    for index, row in enumerate(rows):
        histogram, place = row["histogram"], dict(row=index // columns + 1, col=index % columns + 1)
        edges = histogram["edges"]
        kinds = verification["kinds"]
        for kind, colour, fill, rank in (("impostor", IMPOSTOR_COLOUR, "rgba(217,119,6,0.22)", 2),
                                         ("genuine", GENUINE_COLOUR, "rgba(29,78,137,0.22)", 1)):
            words = _escape(kinds.get(kind, f"{kind} pairs"))
            counts = [int(n) for n in histogram[kind]]
            total = sum(counts)
            shares = [n / total if total else 0.0 for n in counts]
            hover = [f"<b>{_escape(row['name'])}</b><br>{words}<br>similarity {a:.2f} to {b:.2f}: "
                     f"{count(n)} of {count(total)} ({percent(share)})"
                     for a, b, n, share in zip(edges[:-1], edges[1:], counts, shares)]
            # A step per bin: each bin's value from its left edge to the next (the last edge repeats it).
            figure.add_trace(go.Scatter(
                x=list(edges), y=shares + shares[-1:], mode="lines", line=dict(color=colour, width=1.6, shape="hv"),
                fill="tozeroy", fillcolor=fill, name=words, legendgroup=kind, legendrank=rank, showlegend=index == 0,
                hovertext=hover + hover[-1:], hoverinfo="text"), **place)
        if is_number(threshold):
            axis = "" if index == 0 else str(index + 1)
            figure.add_shape(type="line", x0=threshold, x1=threshold, xref=f"x{axis}", y0=0, y1=1,
                             yref=f"y{axis} domain", line=dict(color="#1f2933", width=1.3, dash="dash"))
    if is_number(threshold):  # the threshold's entry in the legend (its lines are shapes, which have none)
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"threshold {similarity(threshold)}",
                                    line=dict(color="#1f2933", width=1.3, dash="dash"), hoverinfo="skip", legendrank=3),
                         row=1, col=1)
    figure.update_xaxes(range=[low, high], gridcolor="#e4e7eb", zeroline=False, fixedrange=True, showticklabels=True)
    for column in range(1, columns + 1):
        figure.update_xaxes(title_text="cosine similarity", row=lines, col=column)
    figure.update_yaxes(tickformat=".0%", gridcolor="#e4e7eb", zeroline=False, fixedrange=True, rangemode="tozero")
    plot_height = height - top - bottom
    figure.update_layout(
        height=height, font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", dragmode=False,
        hoverlabel=HOVER_LABEL, hovermode="closest", margin=dict(l=8, r=8, t=top, b=bottom),
        # the legend above the first row's titles (paper units: 1 = the top of the plotting area)
        legend=dict(orientation="h", x=0, xanchor="left", y=1 + 34 / plot_height, yanchor="bottom"),
    )
    figure.update_annotations(font=dict(size=13))
    return figure
