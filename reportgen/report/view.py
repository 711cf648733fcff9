"""What the templates see: the results dict shaped into the context of ``report.html.jinja2``.

``context(results)`` reads a results dict (schema ``reportgen/1``, already JSON-plain) and returns the
names the templates use: the run, the regions and groups, the checks with their verdicts in words, the
findings, the figures (``plotly`` figure objects; render.py writes them into the page) and what the
image browser offers. Results written by older versions lack some fields; the helpers here fill what
can be derived (the methods' settings from the input size, the interval kind from ``run.bootstrap``)
and leave the rest empty, so old results still render.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import plotly.graph_objects as go

from ..config import to_toml
from ..drawing import REGION_COLOURS
from ..findings import SMALL_GROUP, findings
from ..methods import BASELINES, EFFECT_FLOOR, IG_STEPS, METHODS, method_info, method_settings
from ..regions import ESTIMATED, REGION_BY_ID, REGION_IDS
from .figures import (LOG2_LIMIT, comparison_maps, deletion_chart, mean_map, ranked_chart, region_map,
                      sanity_chart)
from .format import is_number, points

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
# The run summary lists at most this many failed images; the embedded results keep all of them.
FAILURES_SHOWN = 50


def context(results: dict) -> dict:
    """The names ``report.html.jinja2`` and its parts read, for one JSON-plain results dict; ``figures``
    maps a figure id (``region-map``, ``ranked``, ``comparison-0``...) to its plotly figure."""
    run = results.get("run") or {}
    settings = _method_settings(run)  # what the methods ran with (IG steps, occlusion window...)
    method = method_info(run.get("method"))
    regions = [r for r in results.get("regions") or [] if isinstance(r, dict)]
    face = results.get("canonical_face") or {}
    groups = results.get("groups") or {}
    figures: dict[str, go.Figure] = {}
    if face.get("polygons") is not None and face.get("size"):
        figures["region-map"] = region_map(face, regions)
        # A grid with no number in it (no image had any attention to place) is left out, not drawn blue.
        if face.get("mean_attribution") and np.isfinite(np.asarray(face["mean_attribution"], dtype=np.float64)).any():
            figures["mean-map"] = mean_map(face)
    if regions:
        figures["ranked"] = ranked_chart(regions)
    checks = _checks_view(results, run)
    if checks["deletion"]:
        figures["checks-deletion"] = deletion_chart(checks["deletion"])
    if checks["sanity"] and is_number(checks["sanity"].get("rank_correlation")):
        figures["checks-sanity"] = sanity_chart(checks["sanity"])
    comparisons = []
    for index, comparison in enumerate(results.get("comparisons") or []):
        view = _comparison_view(comparison, groups)
        figure_id = f"comparison-{index}"
        if face.get("polygons") is not None and face.get("size") and view["maps"]:
            figures[figure_id] = comparison_maps(face, comparison, groups)
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
        "run": run,
        "tool": results.get("tool") or {},
        "counts": results.get("counts") or {},
        "analysed": _analysed(results.get("counts") or {}),
        "cell": _layer_cell(run) if method.needs_layer else None,
        "method": method,  # a methods.Method
        # its texts: templates/methods/<id>.html.jinja2 (other.html.jinja2 for a method this version lacks)
        "method_template": f"methods/{method.id if method.id in METHODS else 'other'}.html.jinja2",
        "baseline_name": BASELINES.get(str(run.get("baseline")), run.get("baseline") or BASELINES["mean"]),
        "occlusion_side": {"window": settings["occlusion_window"], "stride": settings["occlusion_stride"]}
                          if "occlusion_window" in settings else None,
        "ig_steps": settings.get("ig_steps", IG_STEPS),
        "effect_floor_points": points(settings.get("effect_floor", EFFECT_FLOOR)),
        "effects": any(is_number(r.get("effect")) for r in regions),
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
        "config_text": to_toml(results.get("config") or {}),
        "small_group": SMALL_GROUP,
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
                        baseline_name=BASELINES.get(str(deletion.get("baseline")),
                                                         deletion.get("baseline") or "the baseline"),
                        # the random regions were much smaller than the top ones: size may explain part of the gap
                        size_gap=is_number(top_area) and is_number(random_area) and top_area > 1.5 * random_area)
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


