"""Region scores for one image, and their running means over many images (overall and per group).

For one image with non-negative attribution A over model-input pixels and region mask R:
  share   = sum(A in R) / sum(A)       fraction of the model's attention that falls in R
  area    = |R| / |image|              fraction of the picture R covers
  density = share / area               1.0 = attention spread evenly; 3.0 = three times the average
Over images, each score is a mean with a 95% confidence interval (Student t). The running sums are
sufficient statistics: two partial aggregates can be added, so shards merge exactly.
"""

from __future__ import annotations

import math

import numpy as np

from .regions import GROUP_LABELS, GROUPS, REGION_BY_ID, REGION_IDS

# Scores are kept for every region and then every region group, in this order.
SCORED_IDS: tuple[str, ...] = REGION_IDS + tuple(GROUPS)
_GROUP_MEMBERS = np.array([[rid in members for rid in REGION_IDS] for members in GROUPS.values()], dtype=float)
METRICS = ("share", "area", "density")


def region_scores(attribution: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray] | None:
    """Per-region share, area and density for one image, in ``SCORED_IDS`` order.

    attribution: float (H, W), non-negative, model-input pixels; labels: uint8 (H, W) region indices.
    Returns None when the attribution is zero everywhere (nothing to share out). Density is NaN for a
    region the image does not show (area 0).
    """
    total = float(attribution.sum())
    if not total > 0:
        return None
    count = len(REGION_IDS)
    share = np.bincount(labels.ravel(), weights=attribution.ravel(), minlength=count)[:count] / total
    area = np.bincount(labels.ravel(), minlength=count)[:count] / labels.size
    share = np.concatenate([share, _GROUP_MEMBERS @ share])
    area = np.concatenate([area, _GROUP_MEMBERS @ area])
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(area > 0, share / np.where(area > 0, area, 1), np.nan)
    return {"share": share, "area": area, "density": density}


# Two-sided 95% Student t quantiles for small samples; beyond 30 the normal approximation below is
# accurate to 3 decimals.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t_quantile_975(degrees: float) -> float:
    if degrees < 1:
        return math.inf
    if degrees <= 30:
        return _T975[int(degrees) - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * degrees) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * degrees ** 2)


class RunningScores:
    """Running count, sum and sum of squares of every score, for one set of images."""

    def __init__(self):
        size = len(SCORED_IDS)
        self.n = {m: np.zeros(size) for m in METRICS}
        self.sum = {m: np.zeros(size) for m in METRICS}
        self.sumsq = {m: np.zeros(size) for m in METRICS}
        self.images = 0

    def add(self, scores: dict[str, np.ndarray]) -> None:
        self.images += 1
        for metric in METRICS:
            values = scores[metric]
            seen = np.isfinite(values)
            self.n[metric] += seen
            self.sum[metric] += np.where(seen, values, 0.0)
            self.sumsq[metric] += np.where(seen, values * values, 0.0)

    def merge(self, other: "RunningScores") -> None:
        self.images += other.images
        for metric in METRICS:
            self.n[metric] += other.n[metric]
            self.sum[metric] += other.sum[metric]
            self.sumsq[metric] += other.sumsq[metric]

    def mean_and_error(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance of one observation, n) per scored id; NaN where undefined."""
        n = self.n[metric]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum[metric] / n
            variance = np.maximum(self.sumsq[metric] - n * mean * mean, 0) / (n - 1)
        return mean, variance, n

    def table(self, ids: tuple[str, ...] = REGION_IDS, sort: bool = True) -> list[dict]:
        """Rows for ``ids`` with share, share_ci, area, density, ci (density) and n; by density, highest first."""
        stats = {metric: self.mean_and_error(metric) for metric in METRICS}
        rows = []
        for rid in ids:
            index = SCORED_IDS.index(rid)
            row = {"id": rid}
            if rid in REGION_BY_ID:
                row.update(label=REGION_BY_ID[rid].label, estimated=REGION_BY_ID[rid].estimated)
            else:
                row.update(label=GROUP_LABELS[rid], members=list(GROUPS[rid]))
            for metric, interval_name in (("share", "share_ci"), ("area", None), ("density", "ci")):
                mean, variance, n = (values[index] for values in stats[metric])
                row[metric] = _number(mean)
                if interval_name:
                    row[interval_name] = confidence_interval(mean, variance, n)
            row["n"] = int(stats["density"][2][index])
            rows.append(row)
        if sort:
            rows.sort(key=lambda r: -1 if r["density"] is None else r["density"], reverse=True)
        return rows


def confidence_interval(mean: float, variance: float, n: float) -> list[float | None]:
    """95% confidence interval of a mean from one observation's variance and the count."""
    if not (n >= 2 and np.isfinite(mean) and np.isfinite(variance)):
        return [None, None]
    half = t_quantile_975(n - 1) * math.sqrt(variance / n)
    return [_number(mean - half), _number(mean + half)]


def compare(a: RunningScores, b: RunningScores, ids: tuple[str, ...] = REGION_IDS) -> list[dict]:
    """Density difference b - a per region, with a Welch 95% interval and a p-value.

    Testing 17 regions at once makes about one "significant" difference likely by chance, so
    ``beyond_noise`` uses Holm's correction over the regions compared (``p_adjusted`` < 0.05), not the
    single interval. p-values use the normal approximation to Welch's t (the report flags groups
    under 20 images as too small to conclude anyway).
    """
    mean_a, var_a, n_a = a.mean_and_error("density")
    mean_b, var_b, n_b = b.mean_and_error("density")
    rows = []
    for rid in ids:
        i = SCORED_IDS.index(rid)
        difference = mean_b[i] - mean_a[i]
        interval: list[float | None] = [None, None]
        p_value = None
        if n_a[i] >= 2 and n_b[i] >= 2:
            sa, sb = var_a[i] / n_a[i], var_b[i] / n_b[i]
            se = math.sqrt(sa + sb)
            if se > 0:
                # Welch-Satterthwaite degrees of freedom.
                df = (sa + sb) ** 2 / ((sa ** 2) / (n_a[i] - 1) + (sb ** 2) / (n_b[i] - 1))
                half = t_quantile_975(df) * se
                interval = [_number(difference - half), _number(difference + half)]
                p_value = math.erfc(abs(difference) / se / math.sqrt(2))
        rows.append({
            "id": rid, "label": REGION_BY_ID[rid].label if rid in REGION_BY_ID else GROUP_LABELS[rid],
            "density_a": _number(mean_a[i]), "density_b": _number(mean_b[i]),
            "difference": _number(difference), "ci": interval, "p_value": p_value,
        })
    for row, adjusted in zip(rows, holm([row["p_value"] for row in rows])):
        row["p_value"] = None if row["p_value"] is None else _number(row["p_value"])
        row["p_adjusted"] = None if adjusted is None else _number(adjusted)
        row["beyond_noise"] = adjusted is not None and adjusted < 0.05
    rows.sort(key=lambda r: -abs(r["difference"] or 0))
    return rows


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None): controls the chance of any false alarm."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[index] = running
    return adjusted


def _number(value) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None
