"""Plain-language findings: the three to five sentences an auditor reads before any chart.

``findings(results)`` is a pure function of a results dict (schema ``reportgen/1``, see docs/results.md).
Every sentence states its numbers with their 95% confidence interval and claims no more than the
intervals support: a difference counts only when its interval excludes zero ("beyond noise"), groups
under ``SMALL_GROUP`` images are named as too small to conclude, and a lone difference among many
compared regions is flagged as possibly due to chance.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TypeGuard

from ..report.format import (
    correlation_text,
    percent,
    percent_number_text,
    percent_text,
    points_text,
    signed_text,
    times_text,
)
from . import schema

# Fewer images than this in a group: its numbers are shown but not interpreted.
SMALL_GROUP = 20
# More than this share of attention outside the face suggests the model uses context, not the face.
OUTSIDE_FACE_WARNING = 0.40
# More than this fraction of images failing to align may bias the results towards easy images.
FAILURE_WARNING = 0.10
MAX_FINDINGS = 5
# Sanity check verdicts come from reportgen.results.checks (rank correlation with a randomised model).
# Chance of a single difference looking "beyond noise" when there is none (95% intervals).
FALSE_ALARM_RATE = 0.05

Found = list[tuple[float, schema.Finding]]  # what each finding below returns: (priority, finding), or nothing


def findings(results: schema.Sections) -> list[schema.Finding]:
    """Three to five findings, most important first: ``{"kind", "severity": "info"|"warning", "text"}``.

    Kinds: ``top_region``, ``no_regions``, ``sanity``, ``faithfulness``, ``failures``, ``small_sample``,
    ``outside_face``, ``group_difference``, ``no_group_difference``, ``small_groups``, ``low_region``,
    ``verification``, ``verification_gap``. Warnings are kept ahead of information when there are more
    candidates than ``MAX_FINDINGS``; the output keeps the order above (a finding's place says how important
    it is, its severity how worrying).
    """
    candidates: list[tuple[float, schema.Finding]] = []
    regions = list(results.get("regions") or [])
    candidates += _top_region(regions, (results.get("run") or {}).get("task") == "verification")
    candidates += _sanity(results.get("sanity"))
    candidates += _faithfulness(results.get("faithfulness"))
    candidates += _failures(results)
    candidates += _verification(results.get("verification"))
    candidates += _outside_face(results.get("region_groups") or [])
    groups = results.get("groups") or {}
    for index, comparison in enumerate(results.get("comparisons") or []):
        candidates += _comparison(comparison, groups, order=index)
    candidates += _small_groups(groups)
    candidates += _low_region(regions)
    candidates.sort(key=lambda item: item[0])
    warnings = [item for item in candidates if item[1]["severity"] == "warning"][:MAX_FINDINGS]
    infos = [item for item in candidates if item[1]["severity"] != "warning"]
    chosen = warnings + infos[: MAX_FINDINGS - len(warnings)]
    chosen.sort(key=lambda item: item[0])
    return [finding for _, finding in chosen]


def _finding(kind: str, severity: str, text: str) -> schema.Finding:
    return {"kind": kind, "severity": severity, "text": text}


# -- the individual findings (each returns [(priority, finding)], empty when it has nothing to say) --

def _top_region(regions: list[schema.RegionRow], verification: bool = False) -> Found:
    scored = [(density, r) for r in regions if _finite(density := r.get("density"))]
    if not scored:
        return [(0, _finding("no_regions", "warning",
                             "No image could be scored, so there are no region results to interpret."))]
    density, top = max(scored, key=lambda pair: pair[0])
    ci = _interval(top.get("ci"))
    name = _the(top)
    if ci and ci[0] <= 1.0:
        text = (f"No region clearly stands out: the highest is {name} at {times_text(density)}x an even spread "
                f"(95% CI {_range(ci, times_text)}), which is within noise of an even spread.")
        return [(0, _finding("top_region", "info", text))]
    text = f"The model looks most at {name}: {times_text(density)}x an even spread"
    if ci:
        text += f" (95% CI {_range(ci, times_text)})"
    if _finite(share := top.get("share")):
        text += f", {percent_text(share)} of its attention"
    text += "."
    runner_up = sorted(scored, key=lambda pair: -pair[0])[1:2]
    if runner_up and ci:
        second_density, second = runner_up[0]
        second_ci = _interval(second.get("ci"))
        if second_ci and second_ci[1] >= ci[0]:
            text += (f" {_capital(_the(second))} is close behind ({times_text(second_density)}x, 95% CI "
                     f"{_range(second_ci, times_text)}), so their order is not certain.")
    effect_ci = _interval(top.get("effect_ci"))
    if _finite(effect := top.get("effect")) and effect_ci:
        measure = "similarity" if verification else "class probability"
        text += (f" Replacing it alone lowers the {measure} by {points_text(effect)} percentage points "
                 f"(95% CI {_range(effect_ci, points_text)}).")
    if top.get("estimated"):
        text += " This region is estimated from the face's proportions, so its outline is approximate."
    return [(0, _finding("top_region", "info", text))]


def _sanity(sanity: schema.Sanity | None) -> Found:
    if not sanity or not _finite(rho := sanity.get("rank_correlation")):
        return []
    ci = _interval(sanity.get("rank_correlation_ci"))
    numbers = f"rank correlation {correlation_text(rho)}" + (f", 95% CI {_range(ci, correlation_text)}" if ci else "")
    numbers += f", {sanity['images']} images"
    zero = sanity.get("zero_maps")
    if sanity.get("steps") and zero:
        numbers += f", {zero} of them with a map that became zero, counted as changed"
    randomised = "every weight of the model randomised" if sanity.get("steps") else "the model's weights randomised"
    if sanity.get("verdict") == "failed":
        text = (f"Sanity check failed: with {randomised}, the regions rank almost the same "
                f"({numbers}). This method shows mostly the image, not what the model learned, so do not read "
                f"its region ranking as the model's reasons; try another method or layer.")
        return [(-1, _finding("sanity", "warning", text))]
    if sanity.get("verdict") == "doubtful":
        text = (f"Sanity check doubtful: with {randomised}, the region ranking changes only "
                f"partly ({numbers}). Part of what this map shows is the image itself rather than what the model "
                f"learned; compare with another method before relying on small differences.")
        return [(5, _finding("sanity", "warning", text))]
    text = (f"Sanity check passed: with {randomised} the region ranking changes ({numbers}), "
            f"so the map reflects what the model learned, not just the image.")
    return [(7.5, _finding("sanity", "info", text))]


def _faithfulness(check: schema.Faithfulness | None) -> Found:
    if not check:
        return []
    if not isinstance(check.get("ranked_drop"), list):
        return _single_region_check(check)  # results from before the deletion curves
    if not _finite(difference := check.get("difference")):
        return []
    ci = _interval(check.get("difference_ci"))
    evidence = check.get("evidence") or "evidence for the explained class"
    limit = percent_text(area_limit) if _finite(area_limit := check.get("area_limit")) else "half"
    numbers = f"{signed_text(difference)} in {evidence}" + (f", 95% CI {_range(ci, signed_text)}" if ci else "")
    if _finite(in_probability := check.get("difference_probability")):
        numbers += f"; {points_text(in_probability)} points of class probability"
    numbers += f"; {check['images']} images"
    how = "a blurred copy" if check.get("baseline") == "blur" else "the mean colour"
    if not check.get("faithful"):
        text = (f"The explanation may not be faithful: replacing each image's regions with {how} in the order the "
                f"explanation ranks them does not lower the model's evidence for the class clearly faster than "
                f"random orders of the same regions (difference averaged over 0-{limit} of the image removed: "
                f"{numbers}). The map may not show what this model uses.")
        return [(0.5, _finding("faithfulness", "warning", text))]
    text = (f"Deletion check: replacing each image's regions with {how} in the order the explanation ranks them "
            f"lowers the model's evidence for the class faster than random orders of the same regions, at equal "
            f"area removed (averaged over 0-{limit} of the image: {numbers}), so the ranking points at what the "
            f"model uses.")
    return [(7, _finding("faithfulness", "info", text))]


def _single_region_check(check: schema.Faithfulness) -> Found:
    """The deletion check of older results: the top region against one random region, in probability points."""
    top, random = check.get("top_drop"), check.get("random_drop")
    if not _finite(top) or not _finite(random):
        return []
    top_ci, random_ci = _interval(check.get("top_drop_ci")), _interval(check.get("random_drop_ci"))
    top_text = f"{points_text(top)} points" + (f" (95% CI {_range(top_ci, points_text)})" if top_ci else "")
    random_text = f"{points_text(random)}" + (f" (95% CI {_range(random_ci, points_text)})" if random_ci else "")
    how = "a blurred copy" if check.get("baseline") == "blur" else "the mean colour"
    if not check.get("faithful"):
        text = (f"The explanation may not be faithful: replacing each image's top-ranked region with {how} lowers "
                f"the class probability by {top_text}, not clearly more than replacing a random region of similar "
                f"area ({random_text}; {check['images']} images). The map may not show what this model uses.")
        return [(0.5, _finding("faithfulness", "warning", text))]
    text = (f"Deletion check: replacing each image's top-ranked region with {how} lowers the class probability by "
            f"{top_text}, against {random_text} for a random region of similar area ({check['images']} images), "
            f"so the ranking points at what the model uses.")
    return [(7, _finding("faithfulness", "info", text))]


def _verification(quality: schema.Verification | None) -> Found:
    """Face verification: accuracy of same/different decisions, and the largest gap between groups."""
    if not quality or not quality.get("overall") or not _finite(accuracy := quality["overall"].get("accuracy")):
        return []
    overall, threshold = quality["overall"], quality.get("threshold")
    how = ("the threshold given" if quality.get("threshold_source") == "option"
           else "the threshold with the best accuracy on these pairs")
    ci = _interval(overall.get("accuracy_ci"))
    base = (f"at similarity {threshold:.2f} ({how}) the model decides same/different correctly for "
            f"{percent_text(accuracy)} of {overall['pairs']} labelled pairs"
            + (f" (95% CI {_range(ci, percent_number_text)}%)" if ci else ""))
    gaps = [(difference, c) for c in quality.get("comparisons") or [] if _finite(difference := c.get("difference"))
            and min(c.get("n_a") or 0, c.get("n_b") or 0) >= SMALL_GROUP]
    beyond = [(difference, c) for difference, c in gaps if c.get("beyond_noise")]
    if beyond:
        difference, gap = max(beyond, key=lambda pair: abs(pair[0]))
        worse, better = (gap["b"], gap["a"]) if difference < 0 else (gap["a"], gap["b"])
        # (a difference is measured only between two measured accuracies)
        worse_accuracy = gap["accuracy_b"] if difference < 0 else gap["accuracy_a"]
        better_accuracy = gap["accuracy_a"] if difference < 0 else gap["accuracy_b"]
        gap_ci = _interval(gap.get("ci"))
        if gap_ci and difference < 0:
            gap_ci = (-gap_ci[1], -gap_ci[0])
        text = (f"Verification accuracy differs between groups: {percent(worse_accuracy)} for {worse} against "
                f"{percent(better_accuracy)} for {better}"
                + (f" (a gap of {signed_text(100 * abs(difference))} percentage points, 95% CI "
                   f"{_range((100 * gap_ci[0], 100 * gap_ci[1]), signed_text)})" if gap_ci else "")
                + f"; overall, {base}. The model's errors fall unevenly on the groups.")
        return [(0.8, _finding("verification_gap", "warning", text))]
    if gaps:
        text = (f"Verification: {base}; no group's accuracy differs from another's beyond noise "
                f"({len(gaps)} {_plural(len(gaps), 'comparison')}).")
    else:
        text = f"Verification: {base}."
    return [(2.5, _finding("verification", "info", text))]


def _failures(results: schema.Sections) -> Found:
    counts = results.get("counts")
    if counts is None:
        return []
    images, failed = counts.get("images") or 0, counts.get("failed") or 0
    # "scored" (images that made it into the numbers) when the analysis reports it, else "aligned".
    aligned = counts.get("scored", counts.get("aligned"))
    found: Found = []
    if images and failed:
        fraction = failed / images
        reasons = Counter(str(f.get("reason", "unknown")) for f in results.get("failures") or [])
        common = ""
        if len(reasons) == 1:
            common = f" ({next(iter(reasons))})"
        elif reasons:
            reason, count = reasons.most_common(1)[0]
            common = f" (most often: {reason}, {count} {_plural(count, 'image')})"
        rest = images - failed if aligned is None else aligned
        if fraction > FAILURE_WARNING:
            text = (f"{failed} of {images} images ({percent_text(fraction)}) could not be analysed{common}. "
                    f"The results describe the other {rest} only, which may not represent the whole dataset.")
            found.append((1, _finding("failures", "warning", text)))
        else:
            text = (f"{failed} of {images} {_plural(images, 'image')} ({percent_text(fraction)}) could not be "
                    f"analysed{common}; the results describe the other {rest}.")
            found.append((9, _finding("failures", "info", text)))
    if aligned is not None and 0 < aligned < SMALL_GROUP:
        text = (f"Only {aligned} {_plural(aligned, 'image was', 'images were')} analysed: too few for firm "
                f"conclusions, so read every number here as a rough indication.")
        found.append((1.5, _finding("small_sample", "warning", text)))
    return found


def _outside_face(region_groups: list[schema.RegionRow]) -> Found:
    outside = next((g for g in region_groups if g.get("id") == "outside_face"), None)
    if outside is None or not _finite(share := outside.get("share")):
        return []
    ci = _interval(outside.get("share_ci"))
    interval = f" (95% CI {_range(ci, percent_number_text)}%)" if ci else ""
    if share > OUTSIDE_FACE_WARNING:
        text = (f"{_capital(percent_text(share))} of the model's attention{interval} falls outside the face "
                f"(hair, ears, neck, background): possible environment bias. The model may be using the surroundings rather "
                f"than the face itself.")
        if ci and ci[0] <= OUTSIDE_FACE_WARNING:
            text += f" The interval reaches below {percent_text(OUTSIDE_FACE_WARNING)}, so this is borderline."
        return [(2, _finding("outside_face", "warning", text))]
    text = (f"{_capital(percent_text(share))} of the model's attention{interval} falls outside the face (hair, ears, "
            f"neck, background); the rest is on the face itself.")
    return [(2, _finding("outside_face", "info", text))]


def _comparison(comparison: schema.Comparison, groups: dict[str, schema.Group], order: int) -> Found:
    a, b = comparison.get("a", "a"), comparison.get("b", "b")
    group_a, group_b = groups.get(a), groups.get(b)
    n_a = comparison.get("n_a", group_a.get("n") if group_a else None)
    n_b = comparison.get("n_b", group_b.get("n") if group_b else None)
    if (n_a is not None and n_a < SMALL_GROUP) or (n_b is not None and n_b < SMALL_GROUP):
        return []  # said once, for every small group, by _small_groups
    rows = [(difference, r) for r in comparison.get("regions") or [] if _finite(difference := r.get("difference"))]
    if not rows:
        return []
    priority = 3 + order / 100
    beyond = [(difference, r) for difference, r in rows if r.get("beyond_noise")]
    if not beyond:
        text = (f"No region's attention differs beyond noise between {a} and {b} (none of the {len(rows)} "
                f"differences stays significant after correcting for comparing {len(rows)} regions). This shows "
                f"no clear difference in this data; it does not prove that the groups are treated alike.")
        return [(priority, _finding("no_group_difference", "info", text))]
    difference, row = max(beyond, key=lambda pair: abs(pair[0]))
    name = _the(row)
    density_a, density_b = row.get("density_a"), row.get("density_b")
    ci = _interval(row.get("ci"))
    detail = f"difference {signed_text(difference)}"
    if ci:
        detail += f", 95% CI {_range(ci, signed_text)}"
    densities = (density_a, density_b) if _finite(density_a) and _finite(density_b) else None
    ratio = densities[1] / densities[0] if densities and densities[0] > 0 else None
    if difference > 0:
        how = f"{times_text(ratio)}x more" if ratio is not None else "more"
        text = f"For {b} the model looks {how} at {name} than for {a}"
    elif ratio is not None:
        text = f"For {b} the model looks at {name} only {times_text(ratio)}x as much as for {a}"
    else:
        text = f"For {b} the model looks less at {name} than for {a}"
    if densities:
        text += f" ({times_text(densities[1])}x vs {times_text(densities[0])}x an even spread; {detail})."
    else:
        text += f" ({detail})."
    count = len(beyond)
    text += f" {count} of {len(rows)} regions differ beyond noise"
    expected = FALSE_ALARM_RATE * len(rows)
    if count <= max(1, math.ceil(expected)) and len(rows) >= 10:
        text += (f"; with {len(rows)} regions compared about {max(1, round(expected))} may do so by chance alone, "
                 f"so treat this as a lead to check, not a conclusion.")
    else:
        text += "."
    return [(priority, _finding("group_difference", "warning", text))]


def _small_groups(groups: dict[str, schema.Group]) -> Found:
    small = [(key, n) for key, group in groups.items() if isinstance(n := group.get("n"), int) and n < SMALL_GROUP]
    if not small:
        return []
    if len(small) == 1:
        key, n = small[0]
        text = (f"Too small to conclude: {key} has only {n} {_plural(n, 'image')} (fewer than {SMALL_GROUP}); "
                f"its numbers are shown but not interpreted.")
    else:
        listed = ", ".join(f"{key} ({n})" for key, n in small)
        text = (f"Too small to conclude: {listed} have fewer than {SMALL_GROUP} images each; their numbers are "
                f"shown but not interpreted.")
    return [(4, _finding("small_groups", "warning", text))]


def _low_region(regions: list[schema.RegionRow]) -> Found:
    scored = [(density, ci, r) for r in regions
              if _finite(density := r.get("density")) and (ci := _interval(r.get("ci"))) is not None]
    if len(scored) < 2:
        return []
    density, ci, low = min(scored, key=lambda item: item[0])
    if ci[1] >= 1.0:
        return []
    text = (f"The model pays least attention to {_the(low)}: {times_text(density)}x an even spread "
            f"(95% CI {_range(ci, times_text)}).")
    return [(8, _finding("low_region", "info", text))]


# -- wording and numbers (the report words its numbers with the same functions) --

def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _interval(value) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_finite(v) for v in value):
        return float(value[0]), float(value[1])
    return None


def _the(row: schema.RegionRow | schema.RegionDifference) -> str:
    """'the left eye' from a region row's label (falls back to its id)."""
    label = str(row.get("label") or str(row.get("id", "region")).replace("_", " "))
    return "the " + label[:1].lower() + label[1:]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _plural(count: int, one: str, many: str | None = None) -> str:
    return one if count == 1 else (many or one + "s")


def _range(interval: tuple[float, float], number) -> str:
    """'2.7-3.5', or '-1.2 to -0.4' when a bound is negative (a hyphen would read as a minus)."""
    low, high = (number(v) for v in interval)
    return f"{low} to {high}" if interval[0] < 0 or interval[1] < 0 else f"{low}-{high}"
