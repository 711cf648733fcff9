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

import numpy as np
import plotly.graph_objects as go

from ..explain.methods import BASELINES, EFFECT_FLOOR, IG_STEPS, METHODS, method_info, method_settings
from ..faces.regions import ESTIMATED, REGION_BY_ID, REGION_IDS
from ..inputs.config import to_toml
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


def context(results: dict) -> dict:
    """The names ``report.html.jinja2`` and its parts read, for one JSON-plain results dict; ``figures``
    maps a figure id (``region-map``, ``ranked``, ``comparison-0``...) to its plotly figure."""
    run = results.get("run") or {}
    settings = _method_settings(run)  # what the methods ran with (IG steps, occlusion window...)
    method = method_info(run.get("method"))
    regions = [r for r in results.get("regions") or [] if isinstance(r, dict)]
    face = results.get("canonical_face") or {}
    groups = results.get("groups") or {}
    task = _task_view(run)
    figures: dict[str, go.Figure] = {}
    if face.get("polygons") is not None and face.get("size"):
        figures["region-map"] = region_map(face, regions, measure=task["score"])
        # A grid with no number in it (no image had any attention to place) is left out, not drawn blue.
        if face.get("mean_attribution") and np.isfinite(np.asarray(face["mean_attribution"], dtype=np.float64)).any():
            figures["mean-map"] = mean_map(face)
    if regions:
        figures["ranked"] = ranked_chart(regions, measure=task["score"])
    checks = _checks_view(results, run)
    if checks["deletion"]:
        figures["checks-deletion"] = deletion_chart(checks["deletion"])
    if checks["sanity"] and any(is_number(step.get("rank_correlation")) for step in checks["sanity"]["step_rows"]):
        figures["checks-sanity"] = sanity_chart(checks["sanity"])
    comparisons = []
    for index, comparison in enumerate(results.get("comparisons") or []):
        view = _comparison_view(comparison, groups, task)
        figure_id = f"comparison-{index}"
        if face.get("polygons") is not None and face.get("size") and view["maps"]:
            figures[figure_id] = comparison_maps(face, comparison, groups, names=(view["name_a"], view["name_b"]))
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
    verification = _verification_view(results.get("verification"), groups, task)
    if verification:
        figures["verification-accuracy"] = accuracy_chart(verification)
        if any(r.get("histogram") for r in verification["rows"]):
            figures["verification-similarity"] = similarity_histograms(verification)
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
        "groups": [dict(group, key=key, name=_title(group_name(key, groups, task)), small=_small(group.get("n")))
                   for key, group in groups.items()],
        "comparisons": comparisons,
        "patch_regions": patch_regions,
        "patches": patches,
        "examples": _examples_view(results.get("examples") or [], task),
        "views": results.get("views") or {},
        "task": task,
        "verification": verification,
        "reference_view": _reference_view(results.get("views") or {}, run),
        "browser": _browser_view(results.get("browser"), regions, run, task),
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
    shows them, and the warnings the masthead repeats (a failed sanity check, an unfaithful explanation).
    Results from before the deletion curves and the randomisation cascade (``legacy``) keep their own
    numbers: one top and one random region, one randomisation of every layer."""
    deletion = results.get("faithfulness") if isinstance(results.get("faithfulness"), dict) else None
    sanity = results.get("sanity") if isinstance(results.get("sanity"), dict) else None
    warnings = []
    if deletion is not None:
        counts = deletion.get("top_regions") if isinstance(deletion.get("top_regions"), dict) else {}
        single = deletion.get("single_region") if isinstance(deletion.get("single_region"), dict) else {}
        top_area, random_area = deletion.get("top_area"), deletion.get("random_area")
        deletion = dict(deletion, top_list=[(_region_name(rid), n) for rid, n in counts.items()],
                        baseline_name=BASELINES.get(str(deletion.get("baseline")),
                                                         deletion.get("baseline") or "the baseline"),
                        legacy=not isinstance(deletion.get("ranked_drop"), list), single=single,
                        evidence_name=deletion.get("evidence") or "evidence for the explained class",
                        evidence_unit=evidence_unit(deletion.get("evidence")),
                        probabilities=is_number(deletion.get("difference_probability")),
                        # the readers' companion scale: a verification model's similarity, else the probability
                        points_words=("points of similarity (hundredths)" if run.get("task") == "verification"
                                      else "percentage points of class probability"),
                        # older results: the random regions were much smaller than the top ones, so size may
                        # explain part of the gap (the curves compare at equal area)
                        size_gap=is_number(top_area) and is_number(random_area) and top_area > 1.5 * random_area)
        if deletion.get("faithful") is False:
            warnings.append("deletion")
    if sanity is not None:
        verdict = SANITY_VERDICTS.get(str(sanity.get("verdict")), SANITY_VERDICTS["unknown"])
        sanity = dict(sanity, verdict_label=verdict[0], verdict_text=verdict[1],
                      top_name=_region_name(sanity.get("top_region")) if sanity.get("top_region") else None,
                      top_randomised_name=_region_name(sanity.get("top_region_randomised"))
                      if sanity.get("top_region_randomised") else None,
                      legacy=not sanity.get("steps"),
                      step_rows=[dict(step, label=step_words(step.get("randomised")))
                                 for step in sanity_steps(sanity)])
        if sanity.get("verdict") == "failed":
            warnings.append("sanity")
    check_images = run.get("check_images")
    return {"deletion": deletion, "sanity": sanity, "warnings": warnings,
            "off": isinstance(check_images, int) and not isinstance(check_images, bool) and check_images <= 0,
            "check_images": check_images}


def _browser_view(browser, regions: list[dict], run: dict, task: dict | None = None) -> dict | None:
    """What the image browser's controls offer: sort keys for the group columns (``column_options``: column,
    its name in the list) and each region."""
    if not isinstance(browser, dict) or not browser.get("images"):
        return None
    images = [r for r in browser["images"] if isinstance(r, dict)]
    columns = list(dict.fromkeys([c for c in run.get("protected") or [] if isinstance(c, str)] +
                                 [c for r in images for c in (r.get("groups") or {})]))
    order = [r.get("id") for r in regions] or list(browser.get("regions") or REGION_IDS)
    region_ids = [rid for rid in order if rid in (browser.get("regions") or REGION_IDS)]
    labels = {r.get("id"): r.get("label") for r in regions}
    pair = "photo of the reference person or not" if (task or {}).get("reference") else "genuine or impostor pair"
    names = {"pair": pair} if (task or {}).get("verification") else {}
    return dict(browser, shown=len(images), columns=columns,
                column_options=[(column, f"{column} ({names[column]})" if column in names else column) for column in columns],
                region_options=[(rid, labels.get(rid) or getattr(REGION_BY_ID.get(rid), "label", rid))
                                for rid in region_ids])


def _examples_view(examples: list, task: dict) -> list[dict]:
    """The examples as the section shows them, each with its ``index`` in ``results.examples`` (where its
    pictures are) and its reason in the run's words. Both images of a verification pair have the same
    similarity, so a pair often comes twice, once from each side: it is shown once."""
    shown, pairs = [], set()
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            continue
        if task.get("verification") and not task.get("reference") and example.get("partner"):
            pair = frozenset((str(example.get("image")), str(example["partner"])))
            if pair in pairs:
                continue
            pairs.add(pair)
        shown.append(dict(example, index=index, why=task["why"].get(example.get("why"), example.get("why"))))
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


def _comparison_view(comparison: dict, groups: dict, task: dict) -> dict:
    a, b = comparison.get("a"), comparison.get("b")
    rows = sorted((r for r in comparison.get("regions") or [] if isinstance(r, dict)),
                  key=lambda r: -abs(r["difference"]) if isinstance(r.get("difference"), (int, float)) else 0)
    n_a = comparison.get("n_a", (groups.get(a) or {}).get("n"))
    n_b = comparison.get("n_b", (groups.get(b) or {}).get("n"))
    return dict(comparison, rows=rows, n_a=n_a, n_b=n_b, small=_small(n_a) or _small(n_b),
                beyond=sum(1 for r in rows if r.get("beyond_noise")), figure=None,
                maps=a in groups and b in groups, name_a=group_name(a, groups, task),
                name_b=group_name(b, groups, task), title_b=_title(group_name(b, groups, task)))


# -- face verification -----------------------------------------------------------------------------------

def _task_view(run: dict) -> dict:
    """The words for what is explained: ``CLASSIFIER_WORDS``, or for a face-verification run (``run.task``)
    the similarity (``run.target_class`` 1) or dissimilarity (0) of each image to the other image of its pair
    or to the reference photo. Records still carry the similarity in ``probability``, so "highest" and
    "lowest" order by similarity whichever score is explained."""
    if run.get("task") != "verification":
        return dict(CLASSIFIER_WORDS)
    reference = bool(run.get("reference"))
    score = "dissimilarity" if run.get("target_class") == 0 else "similarity"
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


def group_name(key, groups: dict, task: dict) -> str:
    """A group as the page names it: its key (``race=African``), or for the genuine/impostor column of a
    verification run words (``genuine pairs (same person)``)."""
    group = groups.get(key) if isinstance(groups, dict) else None
    column, value = (group.get("column"), group.get("value")) if isinstance(group, dict) else (None, None)
    if column is None and isinstance(key, str) and "=" in key:
        column, value = key.split("=", 1)
    if task.get("verification") and column == "pair":
        names = REFERENCE_NAMES if task.get("reference") else PAIR_NAMES
        if value in names:
            return names[value]
    return str(key)


def _title(name: str) -> str:
    """A group's name at the start of a heading or table cell: "Genuine pairs (same person)"."""
    return name if "=" in name else name[:1].upper() + name[1:]


def _verification_view(quality, groups: dict, task: dict) -> dict | None:
    """The "Verification quality" section: the threshold, one row per group (all pairs first) and the group
    comparisons of accuracy, the gaps beyond noise first; None without ``results.verification``."""
    if not task.get("verification") or not isinstance(quality, dict) or not isinstance(quality.get("overall"), dict):
        return None
    rows = [dict(quality["overall"], key=None, name="All pairs" if not task["reference"] else "All images")]
    for key, entry in (quality.get("groups") or {}).items():
        if isinstance(entry, dict):
            rows.append(dict(entry, key=key, name=_title(group_name(key, groups, task)), small=_small(entry.get("pairs"))))
    comparisons = []
    for c in quality.get("comparisons") or []:
        if not isinstance(c, dict):
            continue
        small = _small(c.get("n_a")) or _small(c.get("n_b"))
        comparisons.append(dict(c, name_a=group_name(c.get("a"), groups, task), name_b=group_name(c.get("b"), groups, task),
                                small=small, gap=bool(c.get("beyond_noise")) and not small))
    gaps = sorted((c for c in comparisons if c["gap"]),
                  key=lambda c: -abs(c["difference"]) if is_number(c.get("difference")) else 0)
    for gap in gaps:
        # The gap in words: the worse group first, its size and interval as positive points.
        worse_is_b = is_number(gap.get("difference")) and gap["difference"] < 0
        ci: list = gap["ci"] if isinstance(gap.get("ci"), list) and len(gap["ci"]) == 2 else [None, None]
        gap.update(worse=gap["name_b"] if worse_is_b else gap["name_a"], better=gap["name_a"] if worse_is_b else gap["name_b"],
                   worse_accuracy=gap.get("accuracy_b") if worse_is_b else gap.get("accuracy_a"),
                   better_accuracy=gap.get("accuracy_a") if worse_is_b else gap.get("accuracy_b"),
                   size=abs(gap["difference"]) if is_number(gap.get("difference")) else None,
                   size_ci=[-ci[1], -ci[0]] if worse_is_b and all(is_number(x) for x in ci) else ci)
    edges = next((r["histogram"].get("edges") for r in rows if isinstance(r.get("histogram"), dict)), None) or []
    return {"threshold": quality.get("threshold"), "chosen": quality.get("threshold_source") != "option",
            "unlabelled": quality.get("unlabelled_pairs") or 0, "rows": rows, "comparisons": comparisons,
            "gaps": gaps, "measure": task["score"],
            # the two kinds of pair (or of image, against a reference photo) in the similarity figure's legend
            "kinds": dict(REFERENCE_NAMES if task["reference"] else PAIR_NAMES),
            "unit": "images" if task["reference"] else "pairs", "one": "image" if task["reference"] else "pair",
            "bin_width": edges[1] - edges[0] if len(edges) > 1 and all(is_number(e) for e in edges[:2]) else None}


def _reference_view(views: dict, run: dict) -> str | None:
    """The key of a whole-image view whose partner is the reference photo (its ``partner_uri`` is the
    reference's picture, shown in the run summary), or None."""
    if not run.get("reference"):
        return None
    name = str(run["reference"]).replace("\\", "/").rsplit("/", 1)[-1]
    fallback = None
    for key, view in views.items():
        if isinstance(view, dict) and view.get("partner_uri"):
            if view.get("partner") == name:
                return key
            fallback = fallback or key
    return fallback


