"""The report's plotly figures, built from the plain results: the region map, the mean attention map,
the ranking, the two trust checks and the group comparisons.

Each builder returns a ``plotly.graph_objects.Figure``; render.py writes it as JSON into the page, whose
script only calls ``Plotly.newPlot`` on it. Densities share one colour scale everywhere (``colour``,
symmetric on a log2 scale around an even spread); group differences have their own diverging scale.
Text that comes from the user (labels, column names) is escaped: plotly renders a subset of HTML.
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..drawing import heat_colours
from ..regions import ESTIMATED, PAINT_ORDER, REGION_BY_ID
from .format import (bounds, ci_correlation, ci_percent, ci_signed, ci_times, correlation, count, drop_words,
                     is_number, percent, points, signed, times)

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


def _region_hover(row: dict | None, region_id: str, clickable: bool = True) -> str:
    label = _escape((row or {}).get("label") or getattr(REGION_BY_ID.get(region_id), "label", region_id))
    estimated = (row or {}).get("estimated", region_id in ESTIMATED)
    lines = [f"<b>{label}</b>" + (" (estimated region)" if estimated else "")]
    if row is None or not is_number(row.get("density")):
        lines.append("no data: not visible in any image")
    else:
        lines.append(f"{times(row['density'])} an even spread (95% CI {ci_times(row.get('ci'))})")
        share = f"{percent(row.get('share'))} of the attention"
        if bounds(row.get("share_ci")):
            share += f" (95% CI {ci_percent(row.get('share_ci'))})"
        lines.append(share)
        if row.get("n") is not None:
            lines.append(f"n = {count(row.get('n'))} images")
    if row is not None and is_number(row.get("effect")):
        lines.append(f"removing it {drop_words(row['effect'], row.get('effect_ci'))}")
    if clickable:
        lines.append("<i>click: top patches</i>")
    return "<br>".join(lines)


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
                x=xs, y=ys, mode="lines", fill="toself", fillcolor=colour((row or {}).get("density")),
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


def region_map(face: dict, regions: list[dict]) -> go.Figure:
    """The canonical face, each region filled with its density colour; click a region for its patches."""
    rows_by_id = {r.get("id"): r for r in regions}
    figure = go.Figure(_region_traces(face, rows_by_id, clickable=True))
    figure.add_trace(_scale_trace("density (× an even spread)"))
    xaxis, yaxis = _face_axes(face)
    figure.update_layout(**_map_layout(xaxis=xaxis, yaxis=dict(yaxis, scaleanchor="x")))
    return figure


def mean_map(face: dict) -> go.Figure:
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


def ranked_chart(regions: list[dict]) -> go.Figure:
    """Density per region, highest first, with 95% CI bars and the even-spread line at 1.0."""
    rows = sorted((r for r in regions if is_number(r.get("density"))), key=lambda r: -r["density"])
    labels = [_escape(r.get("label") or r.get("id")) + (" *" if r.get("estimated") else "") for r in rows]
    density = [r["density"] for r in rows]
    upper = [max((bounds(r.get("ci")) or (d, d))[1] - d, 0) for r, d in zip(rows, density)]
    lower = [max(d - (bounds(r.get("ci")) or (d, d))[0], 0) for r, d in zip(rows, density)]
    hover = [_region_hover(r, r.get("id"), clickable=True) for r in rows]
    figure = go.Figure(go.Bar(
        x=density, y=labels, orientation="h", marker=dict(color=[colour(d) for d in density],
                                                          line=dict(color="rgba(31,41,51,0.55)", width=1)),
        error_x=dict(type="data", array=upper, arrayminus=lower, color="#3e4c59", thickness=1.2, width=3),
        customdata=[[r.get("id")] for r in rows], hovertext=hover, hoverinfo="text",
    ))
    top = max([d + u for d, u in zip(density, upper)] + [1.2])
    # The column on the right: each region's share of the attention or, for a method that measures regions
    # directly (region-ablation), its effect: the drop of the class probability in percentage points.
    effects = any(is_number(r.get("effect")) for r in rows)
    for label, row in zip(labels, rows):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=label, yref="y", showarrow=False,
                              text=points(row.get("effect")) if effects else percent(row.get("share")),
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


def deletion_chart(check: dict) -> go.Figure:
    """The deletion check: mean drop of the class probability (percentage points, 95% CI) when each image's
    top-ranked region, or a random region of similar area, is replaced by the baseline."""
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
    for name, m in zip(names, means):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=name, yref="y", showarrow=False,
                              text=f"<b>{points(m)}</b>", font=dict(size=13, color="#1f2933"), xshift=10)
    figure.update_layout(
        height=170, margin=dict(l=8, r=56, t=10, b=44), font=PLOT_FONT, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", dragmode=False, showlegend=False, bargap=0.35, hoverlabel=HOVER_LABEL,
        xaxis=dict(title=dict(text="drop of the class probability, percentage points (95% CI)"),
                   range=[min(low * 1.1, 0), high * 1.08], gridcolor="#e4e7eb", zeroline=True,
                   zerolinecolor="#1f2933", fixedrange=True),
        yaxis=dict(autorange="reversed", fixedrange=True, ticksuffix="  ", automargin=True),
    )
    return figure


def sanity_chart(sanity: dict) -> go.Figure:
    """The sanity check on the rank-correlation scale (-1 to 1): the mean correlation between the real and
    the randomised model's region rankings with its 95% CI, over bands for the verdicts."""
    thresholds = sanity.get("thresholds") if isinstance(sanity.get("thresholds"), dict) else {}
    doubtful = thresholds.get("doubtful") if is_number(thresholds.get("doubtful")) else 0.4
    failed = thresholds.get("failed") if is_number(thresholds.get("failed")) else 0.7
    rho = sanity["rank_correlation"]
    ci = bounds(sanity.get("rank_correlation_ci"))
    figure = go.Figure(go.Scatter(
        x=[rho], y=[0], mode="markers", marker=dict(size=13, color="#1f2933", symbol="diamond"),
        error_x=dict(type="data", array=[ci[1] - rho if ci else 0], arrayminus=[rho - ci[0] if ci else 0],
                     color="#1f2933", thickness=1.6, width=7),
        hovertext=[f"rank correlation {correlation(rho)}<br>95% CI {ci_correlation(ci)}"], hoverinfo="text",
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


def comparison_maps(face: dict, comparison: dict, groups: dict) -> go.Figure:
    """The two groups' region maps side by side on one colour scale, and a third map of the difference
    in density (b - a) per region on a diverging scale centred at 0; regions that differ beyond noise
    are outlined."""
    a, b = comparison["a"], comparison["b"]
    titles = [f"<b>{name}</b> · {_escape(key)} (n = {count(groups[key].get('n'))})" for name, key in (("a", a), ("b", b))]
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
    largest = max((abs(r["difference"]) for r in rows if is_number(r.get("difference"))), default=0.0)
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


def _difference_traces(face: dict, rows_by_id: dict, a: str, b: str, limit: float) -> list:
    """The difference map: each region filled by b - a; beyond-noise regions outlined in ink."""
    traces = []
    for region_id, shapes in _shapes_in_paint_order(face):
        row = rows_by_id.get(region_id)
        label = _escape((row or {}).get("label") or getattr(REGION_BY_ID.get(region_id), "label", region_id))
        if row is None or not is_number(row.get("difference")):
            hover = f"<b>{label}</b><br>no difference measured"
        else:
            hover = (f"<b>{label}</b><br>b − a: {signed(row['difference'])}× an even spread "
                     f"(95% CI {ci_signed(row.get('ci'))})<br>"
                     f"density {times(row.get('density_a'))} in {_escape(a)}, {times(row.get('density_b'))} in {_escape(b)}"
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


