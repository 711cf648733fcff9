"""What the templates see: the results dict shaped into the context of ``report.html.jinja2``.

``context(results)`` reads a results dict (schema ``reportgen/1``, already JSON-plain) and returns the
names the templates use: the run, the regions and groups, the checks with their verdicts in words, the
findings, the figures (``plotly`` figure objects; render.py writes them into the page) and what the
image browser offers. ``task`` holds the words for what is explained (a class probability, or for face
verification the similarity of two faces), so the templates and report.js say "similarity" and "the other
image of the pair" without branching on the kind of run; ``verification`` is the "Verification quality"
section (None for a classifier). Results written by older versions lack some fields; the helpers here fill what
can be derived (the methods' settings from the input size, the interval kind from ``run.bootstrap``)
and leave the rest empty, so old results still render.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..explain.methods import BASELINES, EFFECT_FLOOR, IG_STEPS, METHODS, method_info, method_settings
from ..faces.regions import ESTIMATED, REGION_BY_ID, REGION_IDS
from ..inputs.config import to_toml
from ..results import schema
from ..results.drawing import REGION_COLOURS
from ..results.findings import SMALL_GROUP, findings
from .figures import (
    LOG2_LIMIT,
    accuracy_chart,
    comparison_maps,
    deletion_chart,
    evidence_unit,
    mean_map,
    ranked_chart,
    region_map,
    sanity_chart,
    sanity_steps,
    similarity_histograms,
    step_words,
)
from .format import is_number, points

# Sanity-check verdicts (reportgen/results/checks.py), in words.
SANITY_VERDICTS = {
    "passed": ("Passed", "The region ranking changes when the model's weights are randomised, so it reflects what "
                         "the model learned."),
    "doubtful": ("Doubtful", "The region ranking changes only partly when the weights are randomised; part of what "
                             "the map shows is the image itself rather than what the model learned."),
    "failed": ("Failed", "The region ranking hardly changes when every weight is randomised, so the method shows "
                         "mostly the image, not what the model learned. Do not read the ranking as the model's "
                         "reasons."),
    "unknown": ("Unknown", "No rank correlation could be computed (the real maps ranked no regions)."),
}
DETECTION_NAMES = {
    "hog": "face detector (HOG)", "hog-upsampled": "face detector on a 2× enlarged image",
    "cnn": "face detector (CNN), for faces the first missed",
    "full-frame": "whole image taken as the face (already-cropped photo)",
}
# The run summary lists at most this many failed images; the embedded results keep all of them.
FAILURES_SHOWN = 50

# What the page says about the explained score, for a classifier. Face verification's words are made by
# _task_view from the run (similarity or dissimilarity, a pair file or a reference photo).
CLASSIFIER_WORDS = {
    "verification": False, "reference": False,
    "score": "class probability",  # what is explained and what a removed region lowers, in a sentence
    "drop": "probability drop",  # a region's effect (region ablation), as a column or term
    "towards": "the class it explains",  # "how strongly each part of the picture pushed the model towards ..."
    "target": "the explained class", "class_score": "class score",  # the methods' texts (templates/methods/)
    "value": "Probability",  # the number each image record carries in "probability", as a label
    "value_sort": "Probability of the predicted class",
    "label": "Label", "prediction": "Prediction", "label_sort": "True label", "prediction_sort": "Predicted class",
    "wrong_sort": "Wrong predictions first",
    "highest": "most confident predictions", "lowest": "least confident",
    "partner": None, "partner_title": None,
    "why": {}, "label_names": {}, "label_short": {}, "prediction_names": {},
}


def context(results: schema.ResultsDict) -> dict[str, Any]:
    """The names ``report.html.jinja2`` and its parts read, for one JSON-plain results dict; ``figures``
    maps a figure id (``region-map``, ``ranked``, ``comparison-0``...) to its plotly figure.

    Sections added to results.json after its first version (``schema``: ``NotRequired``) are read with
    ``.get``: results written by older versions lack them."""
    run = results["run"]
    settings = _method_settings(run)  # what the methods ran with (IG steps, occlusion window...)
    method = method_info(run["method"])
    regions = results["regions"]
    face = results["canonical_face"]
    groups = results["groups"]
    task = _task_view(run)
    figures: dict[str, go.Figure] = {"region-map": region_map(face, regions, measure=task["score"])}
    # A grid with no number in it (no image had any attention to place) is left out, not drawn blue.
    if face["mean_attribution"] and np.isfinite(np.asarray(face["mean_attribution"], dtype=np.float64)).any():
        figures["mean-map"] = mean_map(face)
    if regions:
        figures["ranked"] = ranked_chart(regions, measure=task["score"])
    checks = _checks_view(results, run)
    deletion, sanity = results.get("faithfulness"), results.get("sanity")
    if deletion is not None:
        figures["checks-deletion"] = deletion_chart(deletion)
    if sanity is not None and any(is_number(step["rank_correlation"]) for step in sanity_steps(sanity)):
        figures["checks-sanity"] = sanity_chart(sanity)
    comparisons = []
    for index, comparison in enumerate(results["comparisons"]):
        view = _comparison_view(comparison, groups, task)
        figure_id = f"comparison-{index}"
        if view["maps"]:
            figures[figure_id] = comparison_maps(face, comparison, groups, names=(view["name_a"], view["name_b"]))
            view["figure"] = figure_id
        comparisons.append(view)
    patches = results["patches"]
    ranked_ids = [r["id"] for r in regions]
    patch_regions: list[schema.RegionRow | dict[str, Any]] = [r for r in regions if r["id"] in patches]
    patch_regions += [_region_stub(key) for key in patches if key not in ranked_ids]
    items = results.get("findings")  # render_html reads results without them too
    if not items:
        items = findings(results)
    failures = results["failures"]
    verification = _verification_view(results.get("verification"), groups, task)
    if verification:
        figures["verification-accuracy"] = accuracy_chart(verification)
        if any(r["histogram"] for r in verification["rows"]):
            figures["verification-similarity"] = similarity_histograms(verification)
    return {
        "results": results,
        "run": run,
        "tool": results["tool"],
        "counts": results["counts"],
        "analysed": _analysed(results["counts"]),
        "cell": _layer_cell(run) if method.needs_layer else None,
        "method": method,  # a methods.Method
        # its texts: templates/methods/<id>.html.jinja2 (other.html.jinja2 for a method this version lacks)
        "method_template": f"methods/{method.id if method.id in METHODS else 'other'}.html.jinja2",
        "baseline_name": BASELINES.get(str(run.get("baseline")), run.get("baseline") or BASELINES["mean"]),
        "occlusion_side": {"window": settings["occlusion_window"], "stride": settings["occlusion_stride"]}
                          if settings else None,
        "ig_steps": settings["ig_steps"] if settings else IG_STEPS,
        "effect_floor_points": points(settings["effect_floor"] if settings else EFFECT_FLOOR),
        "effects": any(is_number(r.get("effect")) for r in regions),
        "intervals": _intervals_view(run, results["comparisons"]),
        "checks": checks,
        "detection": [(DETECTION_NAMES.get(name, name), count) for name, count in results["detection"].items()],
        "findings": items,
        "regions": regions,
        "region_groups": results["region_groups"],
        "groups": [{**group, "key": key, "name": _title(group_name(key, groups, task)), "small": _small(group["n"])}
                   for key, group in groups.items()],
        "comparisons": comparisons,
        "patch_regions": patch_regions,
        "patches": patches,
        "examples": _examples_view(results["examples"], task),
        "views": results.get("views") or {},
        "task": task,
        "verification": verification,
        "reference_view": _reference_view(results.get("views") or {}, run),
        "browser": _browser_view(results.get("browser"), regions, run, task),
        "legend": _region_legend(),
        "failures_shown": failures[:FAILURES_SHOWN],
        "failure_reasons": Counter(f["reason"] for f in failures).most_common(),
        "figures": figures,
        "estimated_labels": [REGION_BY_ID[r].label for r in ESTIMATED if r != "background"],
        "config_text": to_toml(results["config"]),
        "small_group": SMALL_GROUP,
        "log2_limit": LOG2_LIMIT,
    }


def _method_settings(run: schema.Run) -> schema.MethodSettings | None:
    """The methods' settings as the run recorded them, or (older results) as computed for its input size;
    None when neither is known (the text then leaves the pixel sizes out)."""
    if recorded := run.get("method_settings"):
        return recorded
    size = run["input_size"]
    if len(size) == 2 and all(v > 0 for v in size):
        return method_settings((size[0], size[1]))
    return None


def _intervals_view(run: schema.Run, comparisons: list[schema.Comparison]) -> dict[str, Any]:
    """How the 95% intervals and the group tests were computed, for the glossary and the methods text."""
    resamples = run.get("bootstrap")
    if resamples is not None:
        kind = "bootstrap" if resamples > 0 else "t"
    else:
        kind = None  # results from before run.bootstrap existed: Student t
    tests = {test for c in comparisons for r in c["regions"] if (test := r.get("test"))}
    return {"kind": kind, "resamples": resamples if kind == "bootstrap" else None,
            "phrase": run.get("interval") or ("Student t over images" if kind != "bootstrap" else None),
            "tests": sorted(tests)}


def _region_name(region_id: str) -> str:
    region = REGION_BY_ID.get(region_id)
    return region.label if region else region_id


def _checks_view(results: schema.ResultsDict, run: schema.Run) -> dict[str, Any]:
    """The faithfulness (deletion) and sanity checks as the "Can this explanation be trusted?" section
    shows them, and the warnings the masthead repeats (a failed sanity check, an unfaithful explanation).
    Results from before the deletion curves and the randomisation cascade (``legacy``) keep their own
    numbers: one top and one random region, one randomisation of every layer."""
    deletion, sanity = results.get("faithfulness"), results.get("sanity")
    deletion_view = sanity_view = None
    warnings = []
    if deletion is not None:
        top_area, random_area = deletion.get("top_area"), deletion.get("random_area")
        deletion_view = {**deletion, "top_list": [(_region_name(rid), n) for rid, n in deletion["top_regions"].items()],
                         "baseline_name": BASELINES.get(deletion["baseline"], deletion["baseline"] or "the baseline"),
                         "legacy": "ranked_drop" not in deletion, "single": deletion.get("single_region") or {},
                         "evidence_name": deletion.get("evidence") or "evidence for the explained class",
                         "evidence_unit": evidence_unit(deletion.get("evidence")),
                         "probabilities": is_number(deletion.get("difference_probability")),
                         # the readers' companion scale: a verification model's similarity, else the probability
                         "points_words": ("points of similarity (hundredths)" if run.get("task") == "verification"
                                          else "percentage points of class probability"),
                         # older results: the random regions were much smaller than the top ones, so size may
                         # explain part of the gap (the curves compare at equal area)
                         "size_gap": is_number(top_area) and is_number(random_area) and top_area > 1.5 * random_area}
        if deletion["faithful"] is False:
            warnings.append("deletion")
    if sanity is not None:
        verdict = SANITY_VERDICTS.get(sanity["verdict"], SANITY_VERDICTS["unknown"])
        top, top_randomised = sanity["top_region"], sanity["top_region_randomised"]
        sanity_view = {**sanity, "verdict_label": verdict[0], "verdict_text": verdict[1],
                       "top_name": _region_name(top) if top else None,
                       "top_randomised_name": _region_name(top_randomised) if top_randomised else None,
                       "legacy": not sanity.get("steps"),
                       "step_rows": [{**step, "label": step_words(step["randomised"])} for step in sanity_steps(sanity)]}
        if sanity["verdict"] == "failed":
            warnings.append("sanity")
    check_images = run.get("check_images")
    return {"deletion": deletion_view, "sanity": sanity_view, "warnings": warnings,
            "off": check_images is not None and check_images <= 0, "check_images": check_images}


def _browser_view(browser: schema.Browser | None, regions: list[schema.RegionRow], run: schema.Run,
                  task: dict[str, Any]) -> dict[str, Any] | None:
    """What the image browser's controls offer: sort keys for the group columns (``column_options``: column,
    its name in the list) and each region."""
    if not browser or not browser["images"]:
        return None
    images = browser["images"]
    columns = list(dict.fromkeys(run["protected"] + [c for r in images for c in r["groups"]]))
    order = [r["id"] for r in regions] or list(browser["regions"])
    region_ids = [rid for rid in order if rid in browser["regions"]]
    labels = {r["id"]: r["label"] for r in regions}
    pair = "photo of the reference person or not" if task["reference"] else "genuine or impostor pair"
    names = {"pair": pair} if task["verification"] else {}
    return {**browser, "shown": len(images), "columns": columns,
            "column_options": [(column, f"{column} ({names[column]})" if column in names else column)
                               for column in columns],
            "region_options": [(rid, labels.get(rid) or _region_name(rid)) for rid in region_ids]}


def _examples_view(examples: list[schema.Example], task: dict[str, Any]) -> list[dict[str, Any]]:
    """The examples as the section shows them, each with its ``index`` in ``results.examples`` (where its
    pictures are) and its reason in the run's words. Both images of a verification pair have the same
    similarity, so a pair often comes twice, once from each side: it is shown once."""
    shown, pairs = [], set()
    for index, example in enumerate(examples):
        partner = example.get("partner")
        if task["verification"] and not task["reference"] and partner:
            pair = frozenset((example["image"], partner))
            if pair in pairs:
                continue
            pairs.add(pair)
        shown.append({**example, "index": index, "why": task["why"].get(example["why"], example["why"])})
    return shown


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


def _analysed(counts: schema.Counts) -> int:
    """Images behind the numbers: "scored" when the analysis reports it, else "aligned"."""
    return counts.get("scored", counts["aligned"])


def _layer_cell(run: schema.Run) -> dict[str, str] | None:
    """How coarse the explained layer is: its grid and the input pixels one cell covers, when known."""
    shape, size = run.get("layer_shape"), run["input_size"]
    if not (shape and len(shape) >= 2 and len(size) == 2):
        return None
    rows, cols = shape[-2], shape[-1]
    if not all(v > 0 for v in (rows, cols, *size)):
        return None
    return {"grid": f"{rows}×{cols}", "input": f"{size[0]}×{size[1]}",
            "pixels": f"{size[0] / rows:.0f}×{size[1] / cols:.0f}"}


def _region_stub(region_id: str) -> dict[str, Any]:
    region = REGION_BY_ID.get(region_id)
    return {"id": region_id, "label": region.label if region else region_id,
            "estimated": bool(region and region.estimated)}


def _small(n: int | None) -> bool:
    return n is not None and n < SMALL_GROUP


def _comparison_view(comparison: schema.Comparison, groups: dict[str, schema.Group],
                     task: dict[str, Any]) -> dict[str, Any]:
    a, b, n_a, n_b = comparison["a"], comparison["b"], comparison["n_a"], comparison["n_b"]
    rows = sorted(comparison["regions"], key=lambda r: -abs(difference) if is_number(difference := r["difference"]) else 0)
    return {**comparison, "rows": rows, "small": _small(n_a) or _small(n_b),
            "beyond": sum(1 for r in rows if r["beyond_noise"]), "figure": None,
            "maps": a in groups and b in groups, "name_a": group_name(a, groups, task),
            "name_b": group_name(b, groups, task), "title_b": _title(group_name(b, groups, task))}


# -- face verification -----------------------------------------------------------------------------------

def _task_view(run: schema.Run) -> dict[str, Any]:
    """The words for what is explained: ``CLASSIFIER_WORDS``, or for a face-verification run (``run.task``)
    the similarity (``run.target_class`` 1) or dissimilarity (0) of each image to the other image of its pair
    or to the reference photo. Records still carry the similarity in ``probability``, so "highest" and
    "lowest" order by similarity whichever score is explained."""
    if run.get("task") != "verification":
        return dict(CLASSIFIER_WORDS)
    reference = bool(run.get("reference"))
    score = "dissimilarity" if run["target_class"] == 0 else "similarity"
    partner = "the reference photo" if reference else "the other image of the pair"
    decided = is_number(run.get("threshold"))
    why = {"most confident": "highest similarity", "least confident": "lowest similarity",
           "highest confidence": "highest similarity", "lowest confidence": "lowest similarity"}
    return {
        "verification": True, "reference": reference, "score": score, "drop": f"{score} drop",
        "towards": f"a higher {score} with {partner}",
        "target": f"the {score} to {partner}", "class_score": score,
        "value": "Similarity", "value_sort": "Similarity",
        "label": "Truth", "prediction": "Decision" if decided else None,
        "label_sort": "Truth (same person or not)", "prediction_sort": "Decision at the threshold" if decided else None,
        "wrong_sort": "Wrong decisions first" if decided else None,
        "highest": "images with the highest similarity", "lowest": "the lowest",
        "partner": partner, "partner_title": "Reference photo" if reference else "Other image of the pair",
        "why": why,
        # the truth column: 1 = the same person (a genuine pair), 0 = two people (an impostor pair)
        "label_names": {"1": "same person as the reference", "0": "another person"} if reference
        else {"1": "same person (genuine pair)", "0": "different people (impostor pair)"},
        "label_short": {"1": "reference person", "0": "another person"} if reference
        else {"1": "genuine pair", "0": "impostor pair"},
        "prediction_names": {"1": "same person", "0": "different people"},
    }


# The group column a verification run adds (verification.PAIR_COLUMN), its values in words.
PAIR_NAMES = {"genuine": "genuine pairs (same person)", "impostor": "impostor pairs (different people)"}
REFERENCE_NAMES = {"genuine": "photos of the reference person", "impostor": "photos of other people"}


def group_name(key: str, groups: dict[str, schema.Group], task: dict[str, Any]) -> str:
    """A group as the page names it: its key (``race=African``), or for the genuine/impostor column of a
    verification run words (``genuine pairs (same person)``)."""
    group = groups.get(key)
    column, value = (group["column"], group["value"]) if group else (None, None)
    if column is None and "=" in key:
        column, value = key.split("=", 1)
    if task["verification"] and column == "pair":
        names = REFERENCE_NAMES if task["reference"] else PAIR_NAMES
        if value in names:
            return names[value]
    return key


def _title(name: str) -> str:
    """A group's name at the start of a heading or table cell: "Genuine pairs (same person)"."""
    return name if "=" in name else name[:1].upper() + name[1:]


def _verification_view(quality: schema.Verification | None, groups: dict[str, schema.Group],
                       task: dict[str, Any]) -> dict[str, Any] | None:
    """The "Verification quality" section: the threshold, one row per group (all pairs first) and the group
    comparisons of accuracy, the gaps beyond noise first; None without ``results.verification``."""
    if not task["verification"] or not quality:
        return None
    rows: list[dict[str, Any]] = [{**quality["overall"], "key": None,
                                   "name": "All pairs" if not task["reference"] else "All images"}]
    for key, entry in quality["groups"].items():
        rows.append({**entry, "key": key, "name": _title(group_name(key, groups, task)), "small": _small(entry["pairs"])})
    comparisons: list[dict[str, Any]] = []
    for c in quality["comparisons"]:
        small = _small(c["n_a"]) or _small(c["n_b"])
        comparisons.append({**c, "name_a": group_name(c["a"], groups, task), "name_b": group_name(c["b"], groups, task),
                            "small": small, "gap": c["beyond_noise"] and not small})
    gaps = sorted((c for c in comparisons if c["gap"]),
                  key=lambda c: -abs(c["difference"]) if is_number(c["difference"]) else 0)
    for gap in gaps:
        # The gap in words: the worse group first, its size and interval as positive points.
        difference = gap["difference"]
        worse_is_b = is_number(difference) and difference < 0
        ci = gap["ci"]
        gap.update(worse=gap["name_b"] if worse_is_b else gap["name_a"], better=gap["name_a"] if worse_is_b else gap["name_b"],
                   worse_accuracy=gap["accuracy_b"] if worse_is_b else gap["accuracy_a"],
                   better_accuracy=gap["accuracy_a"] if worse_is_b else gap["accuracy_b"],
                   size=abs(difference) if is_number(difference) else None,
                   size_ci=[-ci[1], -ci[0]] if worse_is_b and all(is_number(x) for x in ci) else ci)
    edges = quality["overall"]["histogram"]["edges"]
    return {"threshold": quality["threshold"], "chosen": quality["threshold_source"] != "option",
            "unlabelled": quality["unlabelled_pairs"], "rows": rows, "comparisons": comparisons,
            "gaps": gaps, "measure": task["score"],
            # the two kinds of pair (or of image, against a reference photo) in the similarity figure's legend
            "kinds": dict(REFERENCE_NAMES if task["reference"] else PAIR_NAMES),
            "unit": "images" if task["reference"] else "pairs", "one": "image" if task["reference"] else "pair",
            "bin_width": edges[1] - edges[0] if len(edges) > 1 else None}


def _reference_view(views: dict[str, schema.View], run: schema.Run) -> str | None:
    """The key of a whole-image view whose partner is the reference photo (its ``partner_uri`` is the
    reference's picture, shown in the run summary), or None."""
    reference = run.get("reference")
    if not reference:
        return None
    name = reference.replace("\\", "/").rsplit("/", 1)[-1]
    fallback = None
    for key, view in views.items():
        if view.get("partner_uri"):
            if view.get("partner") == name:
                return key
            fallback = fallback or key
    return fallback
