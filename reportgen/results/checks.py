"""Can the explanation be trusted? The statistics of the two checks: curves, correlations, bootstrap
intervals and verdicts, from one small record per sampled image. No torch here: ``state.py`` (shards,
resume, merge) and the report read this module; the model passes that make the records live in
``reportgen.explain.check_passes``.

Deletion (faithfulness; Samek et al., 2017, "Evaluating the visualization of what a deep neural network
has learned", in its region form): each sampled image's regions are replaced by the baseline one after
another, cumulatively, in the order the explanation ranks them (highest density first), and the model's
evidence for the explained class is measured after each step; so it is for a few random orders of the
same regions. Evidence is the model's own non-saturating scale (``evidence_name``): the log-odds
log(p / (1 - p)) of the class for a classifier, so a confident model (p = 0.9999) still shows how much a
deletion cost it. Both kinds of curve are read at the same removed *area* (linear interpolation between
steps, never "after k regions": a ranked order of large regions would otherwise look better only for
removing more of the picture), from 0 up to ``AREA_LIMIT`` of the image. Per image, the drop of the
ranked curve minus the mean drop of the random curves, averaged over that area range, is the area
between the curves divided by the range; its mean over images gets a bootstrap interval, and the check
passes when the whole interval lies above zero.

Sanity (Adebayo et al., 2018, "Sanity checks for saliency maps", cascading model parameter
randomisation): the region scores are computed again with the model's weights re-initialised from the
output layer down, cumulatively, in ``CASCADE`` steps (the output layer; the top half of the layers;
all of them). After each step, each image's Spearman rank correlation between its real and randomised
region densities is recorded. A map that becomes zero (or flat) ranks nothing: it counts as changed,
correlation 0, and the image stays in the numbers. The verdict reads the last step: an explanation of
what the model *learned* must change when all the learning is erased.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..faces.regions import REGION_IDS
from . import schema
from .schema import Interval
from .scores import json_float, percentile_interval

DEFAULT_CHECK_IMAGES = 64
CHECK_SEED = 1
RESAMPLES = 2000

# Deletion curves are compared from 0 to this fraction of the image removed. The face regions (brows to chin,
# cheek to cheek) cover 27% of the tutorial's aligned crops and 30% of the known-answer images on average,
# and more in tighter crops: half the image lets the ranked order remove the whole face and what it ranks
# next, while beyond half most of the input is baseline, every order has destroyed the evidence and the
# curves only converge. Measured (benchmarks/check_settings.py, docs/methods.md): the interval's width
# relative to the difference is 0.35 at 0.5 against 0.39 at 0.25 and 0.54 at 0.1 on the tutorial, 0.88 against
# 0.97 and 1.07 on the both-eyes known answer, for a third more forward passes than at 0.25.
AREA_LIMIT = 0.5
# A step of a deletion curve removes at least this fraction of the image: smaller regions (an eye, a brow,
# the mouth opening: 0.3-1.5% each) are removed together with the next ones, which saves forward passes
# where the curve changes least with area; the ranked order's first region is always a step of its own.
STEP_AREA = 0.025
# Points of the area grid (0 to AREA_LIMIT) at which curves are read and averaged (trapezoid rule).
AREA_POINTS = 51
# Random region orders per image. The verdict reads the bootstrap interval over images; each image's random
# curve adds its own noise, which more orders average out. On the tutorial the variance of an image's
# difference between orders (8.6, log-odds squared) exceeds that between images (5.8), so orders matter:
# the interval is 2.0 wide with 1 order, 1.5 with 2, 1.2 with 4 and 1.2 with 8, for 9.5, 14, 23 and 41
# forward passes per image (docs/methods.md). Four is where more orders stop paying.
RANDOM_ORDERS = 4

# Cascading randomisation steps, from the output down: (name, fraction of the model's layers randomised,
# counted from the output). The first is the output layer alone (``check_passes.randomisation_cascade``).
CASCADE = (("the output layer", 0.0), ("the top half of the layers", 0.5), ("every layer", 1.0))
# Methods that need many passes per image (integrated gradients 32, region ablation 18, occlusion ~170) run the
# cascade's earlier steps on this many of the sampled images (a fixed random subset) and only the last step,
# which gives the verdict, on all of them: the sanity check then costs 1.5x one explanation of the sample
# instead of 3x. One-pass methods (Grad-CAM, HiResCAM) run every step on every image.
CASCADE_SUBSET = 16
# Rank correlation between real and randomised-model region densities (after the last step) at or above
# which the method is judged blind to the weights; between the two, doubtful.
SANITY_FAIL = 0.7
SANITY_WARN = 0.4


def sample_rows(total: int, count: int, seed: int = CHECK_SEED) -> set[int]:
    """The rows the checks use: a fixed random sample of the dataset, the same in every shard."""
    if count <= 0 or total <= 0:
        return set()
    return set(np.random.default_rng(seed).permutation(total)[:count].tolist())


def cascade_subset(check_rows: set[int], count: int = CASCADE_SUBSET) -> set[int]:
    """The sampled rows on which an expensive method runs the cascade's earlier steps: a fixed random subset
    of ``count`` of them (the same in every shard: it depends only on the sample)."""
    rows = sorted(check_rows)
    return set(np.random.default_rng(CHECK_SEED + 1).permutation(rows)[:count].tolist()) if rows else set()


def area_grid(limit: float = AREA_LIMIT, points: int = AREA_POINTS) -> np.ndarray:
    """The removed areas (fractions of the image, 0 to ``limit``) at which the deletion curves are compared."""
    return np.linspace(0.0, limit, points)


# -- deletion: which regions go in which order ------------------------------------------------------------

def deletion_orders(row: int, densities: np.ndarray, areas: np.ndarray, orders: int = RANDOM_ORDERS,
                    limit: float = AREA_LIMIT, step_area: float = STEP_AREA,
                    ) -> tuple[list[list[int]], list[list[list[int]]]]:
    """The steps one image's deletion curves take: (ranked, [random order, ...]), each a list of steps and each
    step the regions (indices into REGION_IDS) removed together at that step.

    densities, areas: (len(REGION_IDS),) the image's region scores. Only regions the image shows (area > 0)
    take part. Ranked: highest density first; regions of equal density (region-ablation gives many zeros)
    in random order, since the explanation does not order them. Regions are removed one by one, except
    that a step smaller than ``step_area`` of the image takes the next region(s) with it (the ranked order's
    first region always stands alone: the single-region detail reads it). Each order stops at the first
    step whose cumulative area reaches ``limit``: later steps are never read. Random orders depend only on
    the row (seeded), so shards and resumed runs draw the same ones.
    """
    areas = np.asarray(areas, dtype=np.float64)[:len(REGION_IDS)]
    shown = np.flatnonzero(areas > 0)
    rng = np.random.default_rng([CHECK_SEED, row])
    tie_break = rng.random(len(shown))
    density = np.nan_to_num(np.asarray(densities, dtype=np.float64)[shown], nan=-np.inf)
    ranked = shown[np.lexsort((tie_break, -density))]
    randoms = [rng.permutation(shown) for _ in range(orders)]

    def steps(order: np.ndarray, first_alone: bool) -> list[list[int]]:
        grouped: list[list[int]] = []
        current: list[int] = []
        added = removed = 0.0
        for region in order.tolist():
            current.append(region)
            added += areas[region]
            removed += areas[region]
            if added >= step_area or removed >= limit - 1e-9 or (first_alone and not grouped):
                grouped.append(current)
                current, added = [], 0.0
            if removed >= limit - 1e-9:
                break
        if current:
            grouped.append(current)
        return grouped

    return steps(ranked, True), [steps(order, False) for order in randoms]


def deletion_record(row: int, before: tuple[float, float | None], ranked: list[list[int]], ranked_after: list,
                    randoms: list[list[list[int]]], randoms_after: list[list], areas: np.ndarray,
                    evidence_name: str) -> dict:
    """One image's deletion record (plain data for the run state).

    before: (evidence, probability or None) of the untouched image; ranked / randoms: the steps of each order
    (``deletion_orders``); ranked_after / randoms_after: (evidence, probability or None) after each
    cumulative step of that order; areas: (len(REGION_IDS),) the image's region areas.
    """
    areas = np.asarray(areas, dtype=np.float64)

    def curve(steps, after) -> dict:
        return {"area": [round(float(v), 6) for v in np.cumsum([areas[step].sum() for step in steps])],
                "evidence": [_rounded(e) for e, _ in after],
                "probability": None if before[1] is None else [_rounded(p) for _, p in after]}

    top = ranked[0][0]
    return {"row": row, "evidence_name": evidence_name, "evidence": _rounded(before[0]),
            "probability": None if before[1] is None else _rounded(before[1]),
            "top_region": REGION_IDS[top], "top_area": round(float(areas[top]), 6),
            "ranked": curve(ranked, ranked_after),
            "random": [curve(order, after) for order, after in zip(randoms, randoms_after)]}


def _rounded(value) -> float | None:
    value = float(value)
    return round(value, 5) if np.isfinite(value) else None


def drop_curve(curve: dict, before: float, grid: np.ndarray, kind: str = "evidence") -> np.ndarray:
    """(len(grid),) the drop ``before - value`` of one deletion curve at each removed area of ``grid``,
    linear between its steps (0 at area 0). kind: "evidence" or "probability"."""
    values = np.array([np.nan if v is None else v for v in curve[kind]], dtype=np.float64)
    areas = np.concatenate([[0.0], np.asarray(curve["area"], dtype=np.float64)])
    drops = np.concatenate([[0.0], before - values])
    return np.interp(grid, areas, drops)


def image_curves(record: dict, grid: np.ndarray, kind: str = "evidence") -> tuple[np.ndarray, np.ndarray] | None:
    """(ranked drop (G,), mean random drop (G,)) of one image on ``grid``; None when the record has no
    such measure (probabilities of a model without them)."""
    before = record.get(kind)
    if before is None or record["ranked"].get(kind) is None:
        return None
    ranked = drop_curve(record["ranked"], before, grid, kind)
    randoms = [drop_curve(curve, before, grid, kind) for curve in record["random"]]
    return ranked, np.mean(randoms, axis=0) if randoms else np.full_like(ranked, np.nan)


def mean_over_area(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The mean of ``values`` (..., G) over the area range of ``grid`` (trapezoid rule): the area under the
    curve divided by the range."""
    widths = np.diff(grid)
    return ((values[..., 1:] + values[..., :-1]) / 2 * widths).sum(-1) / (grid[-1] - grid[0])


# -- bootstrap over images -------------------------------------------------------------------------------

def _resample_counts(images: int, seed: int) -> np.ndarray:
    """(RESAMPLES, images) how often each image is drawn in each bootstrap resample (fixed seed)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, images, (RESAMPLES, images))
    return np.stack([np.bincount(d, minlength=images) for d in draws]).astype(np.float64)


def _mean_and_interval(values: np.ndarray, counts: np.ndarray) -> tuple[float | None, Interval]:
    """Mean of (n,) values over images and its 95% bootstrap interval, with the resample ``counts``
    (RESAMPLES, n)."""
    n = len(values)
    interval: Interval = percentile_interval(counts @ values / n) if n >= 2 else [None, None]
    return json_float(values.mean()), interval


def _curve_and_band(values: np.ndarray, counts: np.ndarray) -> tuple[list[float | None], list[Interval]]:
    """Mean of (n, G) curves over images and its pointwise 95% bootstrap band ([low, high] at each of the G
    points), with the resample ``counts`` (RESAMPLES, n)."""
    n = len(values)
    if n < 2:
        return [json_float(v) for v in values.mean(0)], [[None, None]] * values.shape[1]
    low, high = np.percentile(counts @ values / n, [2.5, 97.5], axis=0)
    return [json_float(v) for v in values.mean(0)], [[json_float(a), json_float(b)] for a, b in zip(low, high)]


class _Deletion(NamedTuple):
    """One measure's deletion numbers over the checked images (evidence, or class probability): each a
    (mean, interval) or, for the curves, (mean curve, band)."""

    ranked_mean: tuple[float | None, Interval]  # each curve averaged over the area range
    random_mean: tuple[float | None, Interval]
    ranked_drop: tuple[list[float | None], list[Interval]]
    random_drop: tuple[list[float | None], list[Interval]]
    difference: tuple[float | None, Interval]  # ranked minus random, averaged over the area range
    top_drop: tuple[float | None, Interval]  # the top region alone (the ranked curve's first step)
    random_at_top: tuple[float | None, Interval]  # random orders at the top region's area
    per_image: np.ndarray  # (n,) each image's difference


def _deletion(records: list[dict], grid: np.ndarray, counts: np.ndarray, kind: str) -> _Deletion | None:
    """The deletion numbers of one measure (``kind``: "evidence" or "probability"); None when the records do
    not have it (probabilities of a model without them)."""
    curves = [image_curves(r, grid, kind) for r in records]
    pairs = [c for c in curves if c is not None]
    if len(pairs) < len(curves):
        return None
    ranked, random = np.stack([c[0] for c in pairs]), np.stack([c[1] for c in pairs])
    differences = mean_over_area(ranked - random, grid)
    top = np.array([r[kind] - _value(r["ranked"][kind][0]) for r in records])
    at_top = np.array([np.mean([drop_curve(c, r[kind], np.array([r["top_area"]]), kind)[0] for c in r["random"]])
                       for r in records])
    return _Deletion(_mean_and_interval(mean_over_area(ranked, grid), counts),
                     _mean_and_interval(mean_over_area(random, grid), counts),
                     _curve_and_band(ranked, counts), _curve_and_band(random, counts),
                     _mean_and_interval(differences, counts), _mean_and_interval(top, counts),
                     _mean_and_interval(at_top, counts), differences)


# -- deletion summary ------------------------------------------------------------------------------------

def faithfulness_summary(records: list[dict], baseline: str, limit: float = AREA_LIMIT,
                         orders: int | None = None) -> schema.Faithfulness | None:
    """results.json ``faithfulness``: the mean deletion curves (ranked and random orders, evidence drop
    against removed area, with pointwise 95% bands), their difference averaged over the area range with
    its interval, the verdict (``faithful``: the interval lies above zero), and the same read in
    probability points for readers, plus the single-region detail (the top region alone). ``limit`` and
    ``orders`` (the first that many random orders of each image; default all) are for measuring the
    check's settings (benchmarks/check_settings.py); records must reach ``limit``."""
    # In row order: the intervals' resamples must not depend on batch order, shards or resuming.
    records = sorted((r for r in records if r.get("ranked") and _finite_curves(r)), key=lambda r: r["row"])
    if not records:
        return None
    if orders is not None:
        records = [dict(r, random=r["random"][:orders]) for r in records]
    grid = area_grid(limit)
    counts = _resample_counts(len(records), CHECK_SEED)
    evidence = _deletion(records, grid, counts, "evidence")
    if evidence is None:  # not reached: _finite_curves kept only records with evidence everywhere
        return None
    probability = _deletion(records, grid, counts, "probability")  # None: a model without probabilities
    in_probability: schema.DeletionInProbability = {} if probability is None else {
        "ranked_mean_probability": probability.ranked_mean[0], "ranked_mean_probability_ci": probability.ranked_mean[1],
        "random_mean_probability": probability.random_mean[0], "random_mean_probability_ci": probability.random_mean[1],
        "ranked_drop_probability": probability.ranked_drop[0], "ranked_drop_probability_ci": probability.ranked_drop[1],
        "random_drop_probability": probability.random_drop[0], "random_drop_probability_ci": probability.random_drop[1],
        "difference_probability": probability.difference[0], "difference_probability_ci": probability.difference[1]}
    single_in_probability: schema.SingleRegionInProbability = {} if probability is None else {
        "top_drop_probability": probability.top_drop[0], "top_drop_probability_ci": probability.top_drop[1],
        "random_drop_probability": probability.random_at_top[0],
        "random_drop_probability_ci": probability.random_at_top[1]}
    top_regions: dict[str, int] = {}
    for r in records:
        top_regions[r["top_region"]] = top_regions.get(r["top_region"], 0) + 1
    low = evidence.difference[1][0]
    return {
        "images": len(records), "baseline": baseline,
        "evidence": records[0].get("evidence_name") or "evidence for the explained class",
        "area_limit": limit, "random_orders": max(len(r["random"]) for r in records),
        "areas": [round(float(a), 4) for a in grid],
        "ranked_mean": evidence.ranked_mean[0], "ranked_mean_ci": evidence.ranked_mean[1],
        "random_mean": evidence.random_mean[0], "random_mean_ci": evidence.random_mean[1],
        "ranked_drop": evidence.ranked_drop[0], "ranked_drop_ci": evidence.ranked_drop[1],
        "random_drop": evidence.random_drop[0], "random_drop_ci": evidence.random_drop[1],
        "difference": evidence.difference[0], "difference_ci": evidence.difference[1],
        "single_region": {"top_drop": evidence.top_drop[0], "top_drop_ci": evidence.top_drop[1],
                          "random_drop": evidence.random_at_top[0], "random_drop_ci": evidence.random_at_top[1],
                          **single_in_probability,
                          "top_area": json_float(np.mean([r["top_area"] for r in records]))},
        **in_probability,
        "faithful": low is not None and low > 0,
        "top_regions": dict(sorted(top_regions.items(), key=lambda kv: -kv[1])),
        "per_image": [{"row": r["row"], "top_region": r["top_region"], "top_area": r["top_area"],
                       "evidence": r["evidence"], "probability": r["probability"], "difference": json_float(d)}
                      for r, d in zip(records, evidence.per_image)],
    }


def _finite_curves(record: dict) -> bool:
    """Whether the record's evidence is a number everywhere (a model that returned NaN or infinite scores for
    an image leaves that image out of the deletion check rather than poisoning its means)."""
    curves = [record["ranked"], *record["random"]]
    return record.get("evidence") is not None and all(v is not None for c in curves for v in c["evidence"])


def _value(value) -> float:
    return np.nan if value is None else float(value)


# -- sanity ----------------------------------------------------------------------------------------------

def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two score vectors over the entries both define (average ranks for
    ties); None with fewer than 3 entries or no spread."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return None
    ranks = [_ranks(values[keep]) for values in (a, b)]
    if ranks[0].std() == 0 or ranks[1].std() == 0:
        return None
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties share their average rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def step_correlation(real: np.ndarray, randomised: np.ndarray | None) -> float | None:
    """The rank correlation of one image's real and randomised-model region densities, with the two cases
    a plain correlation leaves undefined settled: a randomised map that is zero everywhere (None) or flat
    over the regions the image shows ranks nothing, so it shares nothing with the real ranking: 0. None
    only when the *real* densities rank nothing (fewer than 3 regions or no spread), which the checked
    images never are in practice."""
    real = np.asarray(real, dtype=np.float64)
    if rank_correlation(real, real) is None:
        return None
    if randomised is None:
        return 0.0
    correlation = rank_correlation(real, np.asarray(randomised, dtype=np.float64))
    return 0.0 if correlation is None else correlation


def sanity_record(row: int, real: np.ndarray, randomised: list[np.ndarray | None], steps: list[str],
                  skipped: list[bool] | None = None) -> dict:
    """One image's sanity record: its real region densities (REGION_IDS order), and for each cascade step
    (``steps``: what it randomised, in words) the randomised model's densities (None: the map was zero
    everywhere) and their rank correlation with the real ones (``step_correlation``). ``skipped``: the steps
    not run on this image (an expensive method's earlier steps outside ``cascade_subset``); their
    correlation is None and they count in no number."""
    skipped = list(skipped or [False] * len(steps))
    return {"row": row, "real": [json_float(v) for v in real],
            "randomised": [None if r is None or skip else [json_float(v) for v in r] for r, skip in zip(randomised, skipped)],
            "rank_correlation": [None if skip else step_correlation(real, r) for r, skip in zip(randomised, skipped)],
            "steps": list(steps), "skipped": skipped}


def _skipped(record: dict, step: int) -> bool:
    return bool((record.get("skipped") or [False] * (step + 1))[step])


def _column_means(rows: list[list[float | None]]) -> np.ndarray:
    """Mean of each column over the rows that define it (None = undefined); NaN for an empty column."""
    values = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    counts = np.isfinite(values).sum(0)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.nansum(values, 0) / counts, np.nan)


def _top(means: np.ndarray) -> str | None:
    return REGION_IDS[int(np.nanargmax(means))] if np.isfinite(means).any() else None


def sanity_summary(records: list[dict]) -> schema.Sanity | None:
    """results.json ``sanity``: for each cascade step, the mean rank correlation of real vs randomised region
    densities over the images (zero maps counted as 0) with its interval and the number of images behind
    it; the last step's numbers at the top level, with the verdict they give."""
    records = sorted((r for r in records if r.get("steps")), key=lambda r: r["row"])
    if not records:
        return None
    real = _column_means([r["real"] for r in records])
    steps: list[schema.SanityStep] = []
    for k, name in enumerate(records[0]["steps"]):
        used = [r for r in records if r["rank_correlation"][k] is not None]
        correlations = np.array([r["rank_correlation"][k] for r in used], dtype=np.float64)
        mean: float | None = None
        interval: Interval = [None, None]
        if used:
            mean, interval = _mean_and_interval(correlations, _resample_counts(len(used), CHECK_SEED + 3 + k))
        run = [r for r in records if not _skipped(r, k)]
        drawn = [r["randomised"][k] for r in run if r["randomised"][k] is not None]
        randomised = _column_means(drawn) if drawn else np.full(len(REGION_IDS), np.nan)
        ranking = rank_correlation(_column_means([r["real"] for r in run]) if run else real, randomised)
        steps.append({"randomised": name, "images": len(used), "rank_correlation": mean,
                      "rank_correlation_ci": interval,
                      "mean_ranking_correlation": None if ranking is None else json_float(ranking),
                      "zero_maps": sum(1 for r in run if r["randomised"][k] is None),
                      "top_region_randomised": _top(randomised)})
    last = steps[-1]
    rho = last["rank_correlation"]
    if rho is None:
        verdict = "unknown"
    elif rho >= SANITY_FAIL:
        verdict = "failed"
    elif rho >= SANITY_WARN:
        verdict = "doubtful"
    else:
        verdict = "passed"
    return {
        "images": last["images"], "checked_images": len(records),
        "randomisation": "cascading, from the output layer down (each layer's default initialisation): "
                         + "; ".join(step["randomised"] for step in steps),
        "rank_correlation": rho, "rank_correlation_ci": last["rank_correlation_ci"],
        "mean_ranking_correlation": last["mean_ranking_correlation"], "top_region": _top(real),
        "top_region_randomised": last["top_region_randomised"], "zero_maps": last["zero_maps"],
        "steps": steps, "verdict": verdict, "thresholds": {"failed": SANITY_FAIL, "doubtful": SANITY_WARN},
    }
