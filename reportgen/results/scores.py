"""Region scores for one image, and their running means over many images (overall and per group).

For one image with non-negative attribution A over model-input pixels and region mask R:
  share   = sum(A in R) / sum(A)       fraction of the model's attention that falls in R
  area    = |R| / |image|              fraction of the picture R covers
  density = share / area               1.0 = attention spread evenly; 3.0 = three times the average
With region-ablation, each region also has an ``effect``: the drop of the class probability when the
region is replaced by the baseline (a region group's effect is the sum of its members').

Over images, each score is a mean with a 95% interval. By default the interval is a bootstrap over
images (2.5th and 97.5th percentiles of the resampled means), computed while streaming: the Poisson
bootstrap gives image i the weight w_ib ~ Poisson(1) in resample b, drawn from a generator seeded by
(seed, row index), so the B resampled means are running sums too. With ``bootstrap=0`` the interval is
Student t. All running sums are sufficient statistics: two partial aggregates add up exactly, so
shards and resumed runs give the same numbers as one run.
"""

from __future__ import annotations

import math

import numpy as np

from ..faces.regions import GROUP_LABELS, GROUPS, REGION_BY_ID, REGION_IDS
from . import schema
from .schema import Interval

# Scores are kept for every region and then every region group, in this order.
SCORED_IDS: tuple[str, ...] = REGION_IDS + tuple(GROUPS)
_GROUP_MEMBERS = np.array([[rid in members for rid in REGION_IDS] for members in GROUPS.values()], dtype=float)
METRICS = ("share", "area", "density", "effect")
BOOTSTRAPPED = ("share", "density", "effect")  # the metrics whose intervals the report shows
DEFAULT_BOOTSTRAP = 2000
# Images collected before they are added to the bootstrap resamples in one matrix product (at least).
PENDING_IMAGES = 64
BOOTSTRAP_SEED = 0


def region_scores(attribution: np.ndarray, labels: np.ndarray,
                  effects: np.ndarray | None = None) -> dict[str, np.ndarray] | None:
    """Per-region share, area, density and effect for one image, in ``SCORED_IDS`` order.

    attribution: float (H, W), non-negative, model-input pixels; labels: uint8 (H, W) region indices;
    effects: the method's signed per-region effects in ``REGION_IDS`` order (region-ablation) or None.
    Returns None when the attribution is zero everywhere (nothing to share out) and there are no
    effects; with effects, share and density are NaN then (an image where no region changes the class
    probability still counts towards the mean effect). Density and effect are NaN for a region the
    image does not show (area 0).
    """
    total = float(attribution.sum())
    if not total > 0 and effects is None:
        return None
    count = len(REGION_IDS)
    area = np.bincount(labels.ravel(), minlength=count)[:count] / labels.size
    if total > 0:
        share = np.bincount(labels.ravel(), weights=attribution.ravel(), minlength=count)[:count] / total
    else:
        share = np.full(count, np.nan)
    share = np.concatenate([share, _GROUP_MEMBERS @ share])
    area = np.concatenate([area, _GROUP_MEMBERS @ area])
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(area > 0, share / np.where(area > 0, area, 1), np.nan)
    effect = np.full(len(SCORED_IDS), np.nan)
    if effects is not None:
        effects = np.asarray(effects, dtype=np.float64)
        shown = np.isfinite(effects)
        grouped = _GROUP_MEMBERS @ np.where(shown, effects, 0.0)
        effect = np.concatenate([effects, np.where(_GROUP_MEMBERS @ shown > 0, grouped, np.nan)])
    return {"share": share, "area": area, "density": density, "effect": effect}


def region_areas(labels: np.ndarray) -> np.ndarray:
    """Fraction of the picture each region covers, float64 (R,) in ``REGION_IDS`` order, from a label image
    (uint8 (H, W)). It needs no model, so the prepare stage computes it beside the label image."""
    return np.bincount(labels.ravel(), minlength=len(REGION_IDS))[:len(REGION_IDS)] / labels.size


def region_sums(maps, labels):
    """Each map summed over each region: float64 tensor (B, R) on the maps' device, R = len(REGION_IDS).

    maps: float tensor (B, H, W) >= 0; labels: integer tensor (B, H, W) of region indices (uint8 is fine),
    same device. Summed in float64: a region's 50,000 float32 pixels summed in float32 would lose up to the
    4th digit of its share. On a GPU, one scatter-add of every pixel of the batch onto ``image * R + region``
    (``_scattered_sums``); on the CPU numpy's bincount per image is twice as fast (2.3 against 4.2 ms for 16
    maps of 224 x 224) and gives ``region_scores``'s sums to the last bit."""
    import torch

    if maps.device.type != "cpu":
        return _scattered_sums(maps, labels)
    count = len(REGION_IDS)
    pixels, regions = maps.detach().numpy(), labels.numpy()
    return torch.from_numpy(np.stack([np.bincount(regions[k].ravel(), weights=pixels[k].ravel(), minlength=count)[:count]
                                      for k in range(len(pixels))]).reshape(len(pixels), count))


def _scattered_sums(maps, labels):
    """``region_sums`` for any device: one bincount (a scatter-add) of every pixel of the batch."""
    import torch

    count, images = len(REGION_IDS), len(maps)
    offsets = torch.arange(0, images * count, count, device=maps.device)
    index = (labels.reshape(images, -1).long() + offsets[:, None]).reshape(-1)
    return torch.bincount(index, weights=maps.reshape(-1).to(torch.float64), minlength=images * count).reshape(
        images, count)


def batch_scores(sums: np.ndarray, areas: np.ndarray,
                 effects: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``region_scores`` for a whole batch: ({metric: float64 (B, len(SCORED_IDS))}, scored (B,) bool).

    sums: float64 (B, R) attribution per region (``region_sums``); areas: float64 (B, R) (``region_areas``);
    effects: the method's (B, R) per-region effects or None. Row i equals ``region_scores`` of image i (to
    rounding) where ``scored[i]``; an image with ``scored`` False has nothing to share out and no effects
    (``region_scores`` gives None for it) and its row is not meaningful.
    """
    sums, areas = np.asarray(sums, dtype=np.float64), np.asarray(areas, dtype=np.float64)
    totals = sums.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(totals[:, None] > 0, sums / np.where(totals > 0, totals, 1)[:, None], np.nan)
    share = np.concatenate([share, share @ _GROUP_MEMBERS.T], axis=1)
    area = np.concatenate([areas, areas @ _GROUP_MEMBERS.T], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(area > 0, share / np.where(area > 0, area, 1), np.nan)
    effect = np.full(share.shape, np.nan)
    if effects is not None:
        effects = np.asarray(effects, dtype=np.float64)
        shown = np.isfinite(effects)
        grouped = np.where(shown, effects, 0.0) @ _GROUP_MEMBERS.T
        effect = np.concatenate([effects, np.where(shown @ _GROUP_MEMBERS.T > 0, grouped, np.nan)], axis=1)
    scored = totals > 0 if effects is None else np.ones(len(sums), dtype=bool)
    return {"share": share, "area": area, "density": density, "effect": effect}, scored


def bootstrap_weights(row: int, replicates: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Image ``row``'s weight in each of the bootstrap resamples: Poisson(1) draws that depend only on
    (seed, row), so shards, resumed runs and batch order all give the same resamples."""
    return np.random.default_rng([seed, row]).poisson(1.0, replicates).astype(np.float64)


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
    """Running count, sum and sum of squares of every score for one set of images, and the weighted
    counts and sums of the ``replicates`` bootstrap resamples (``boot_n``, ``boot_sum``: (B, ids))."""

    def __init__(self, replicates: int = 0):
        size = len(SCORED_IDS)
        self.n = {m: np.zeros(size) for m in METRICS}
        self.sum = {m: np.zeros(size) for m in METRICS}
        self.sumsq = {m: np.zeros(size) for m in METRICS}
        self.images = 0
        self.replicates = replicates
        self._boot_n = {m: np.zeros((replicates, size)) for m in BOOTSTRAPPED}
        self._boot_sum = {m: np.zeros((replicates, size)) for m in BOOTSTRAPPED}
        self._pending: list[tuple[np.ndarray, dict]] = []  # batches not yet added to the resamples
        self._pending_images = 0

    def add(self, scores: dict[str, np.ndarray], weights: np.ndarray | None = None) -> None:
        """One image's scores; ``weights``: its bootstrap weights (``bootstrap_weights``), needed
        when the scores keep bootstrap resamples."""
        self.add_batch({metric: scores[metric][None] for metric in METRICS},
                       None if weights is None else np.asarray(weights)[None])

    def add_batch(self, scores: dict[str, np.ndarray], weights: np.ndarray | None = None) -> None:
        """Several images' scores at once: {metric: (k, len(SCORED_IDS))} and their bootstrap weights
        (k, replicates) (rows of ``bootstrap_weights``; any number type), needed when resamples are kept."""
        count = len(scores["share"])
        if not count:
            return
        self.images += count
        for metric in METRICS:
            values = scores[metric]
            seen = np.isfinite(values)
            values = np.where(seen, values, 0.0)
            self.n[metric] += seen.sum(0)
            self.sum[metric] += values.sum(0)
            self.sumsq[metric] += (values * values).sum(0)
        if self.replicates:
            if weights is None:
                raise ValueError("scores that keep bootstrap resamples need each image's bootstrap weights")
            self._pending.append((weights, {m: scores[m] for m in BOOTSTRAPPED}))
            self._pending_images += count
            if self._pending_images >= PENDING_IMAGES:
                self._flush()

    def _flush(self) -> None:
        """Add the pending images to the resamples in one matrix product: (B, k) x (k, 2 x metrics x ids)
        costs a fraction of k outer products.

        torch's matrix product, not numpy's: numpy's BLAS would start its own threads, which fight the model's
        for the cores (and numpy's einsum, used before, is 10x slower: 6 ms per 64 images and metric)."""
        if not self._pending:
            return
        import torch

        weights = np.concatenate([np.asarray(w, dtype=np.float64) for w, _ in self._pending])  # (k, B)
        columns = []
        for metric in BOOTSTRAPPED:
            values = np.concatenate([v[metric] for _, v in self._pending])
            seen = np.isfinite(values)
            columns += [seen.astype(np.float64), np.where(seen, values, 0.0)]
        sums = (torch.from_numpy(weights).T @ torch.from_numpy(np.concatenate(columns, axis=1))).numpy()
        size = len(SCORED_IDS)
        for k, metric in enumerate(BOOTSTRAPPED):
            self._boot_n[metric] += sums[:, 2 * k * size:(2 * k + 1) * size]
            self._boot_sum[metric] += sums[:, (2 * k + 1) * size:(2 * k + 2) * size]
        self._pending, self._pending_images = [], 0

    @property
    def boot_n(self) -> dict[str, np.ndarray]:
        """Weighted image count of each resample, (B, ids) per metric."""
        self._flush()
        return self._boot_n

    @property
    def boot_sum(self) -> dict[str, np.ndarray]:
        """Weighted sum of each resample, (B, ids) per metric."""
        self._flush()
        return self._boot_sum

    def merge(self, other: RunningScores) -> None:
        if other.replicates != self.replicates:
            raise ValueError("cannot add scores kept with different numbers of bootstrap resamples")
        self.images += other.images
        for metric in METRICS:
            self.n[metric] += other.n[metric]
            self.sum[metric] += other.sum[metric]
            self.sumsq[metric] += other.sumsq[metric]
        for metric in BOOTSTRAPPED:
            self.boot_n[metric] += other.boot_n[metric]
            self.boot_sum[metric] += other.boot_sum[metric]

    def resampled_means(self, metric: str) -> np.ndarray:
        """(B, ids) mean of each bootstrap resample; NaN where a resample holds no image of a region."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.boot_n[metric] > 0, self.boot_sum[metric] / self.boot_n[metric], np.nan)

    def intervals(self, metric: str) -> list[Interval]:
        """95% interval of the mean of ``metric`` for every scored id (``SCORED_IDS`` order): bootstrap
        percentiles when resamples are kept, else Student t."""
        mean, variance, n = self.mean_and_error(metric)
        if not self.replicates:
            return [confidence_interval(*values) for values in zip(mean, variance, n)]
        resampled = self.resampled_means(metric)  # once for all ids: (B, ids)
        return [percentile_interval(resampled[:, i]) if n[i] >= 2 and np.isfinite(mean[i]) else [None, None]
                for i in range(len(SCORED_IDS))]

    def mean_and_error(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance of one observation, n) per scored id; NaN where undefined."""
        n = self.n[metric]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum[metric] / n
            variance = np.maximum(self.sumsq[metric] - n * mean * mean, 0) / (n - 1)
        return mean, variance, n

    def table(self, ids: tuple[str, ...] = REGION_IDS, sort: bool = True) -> list[schema.RegionRow]:
        """Rows for ``ids`` with share, share_ci, area, density, ci (density) and n; by density, highest first."""
        stats = {metric: self.mean_and_error(metric) for metric in METRICS}
        intervals = {metric: self.intervals(metric) for metric in BOOTSTRAPPED}
        rows: list[schema.RegionRow] = []
        for rid in ids:
            index = SCORED_IDS.index(rid)
            numbers: schema.RegionScores = {
                "share": json_float(stats["share"][0][index]), "share_ci": intervals["share"][index],
                "area": json_float(stats["area"][0][index]),
                "density": json_float(stats["density"][0][index]), "ci": intervals["density"][index],
                "n": int(stats["density"][2][index])}
            if stats["effect"][2][index] > 0:  # only methods that measure regions directly have effects
                numbers["effect"] = json_float(stats["effect"][0][index])
                numbers["effect_ci"] = intervals["effect"][index]
                numbers["effect_n"] = int(stats["effect"][2][index])  # images showing the region (n: with attention)
            region = REGION_BY_ID.get(rid)
            rows.append({"id": rid, "label": region.label, "estimated": region.estimated, **numbers} if region
                        else {"id": rid, "label": GROUP_LABELS[rid], "members": list(GROUPS[rid]), **numbers})
        if sort:
            rows.sort(key=lambda r: -1 if r["density"] is None else r["density"], reverse=True)
        return rows


def confidence_interval(mean: float, variance: float, n: float) -> Interval:
    """95% confidence interval of a mean from one observation's variance and the count."""
    if not (n >= 2 and np.isfinite(mean) and np.isfinite(variance)):
        return [None, None]
    half = t_quantile_975(n - 1) * math.sqrt(variance / n)
    return [json_float(mean - half), json_float(mean + half)]


def percentile_interval(values: np.ndarray) -> Interval:
    """2.5th and 97.5th percentiles of bootstrap resamples (NaN resamples left out)."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return [None, None]
    low, high = np.percentile(values, [2.5, 97.5])
    return [json_float(low), json_float(high)]


def bootstrap_p_value(differences: np.ndarray) -> float | None:
    """Two-sided p-value of "no difference" from bootstrap resamples of a difference: twice the smaller
    tail beyond zero, with the +1 correction that keeps it from being 0 with finitely many resamples."""
    differences = differences[np.isfinite(differences)]
    if len(differences) < 2:
        return None
    below = (1 + np.sum(differences <= 0)) / (len(differences) + 1)
    above = (1 + np.sum(differences >= 0)) / (len(differences) + 1)
    return float(min(1.0, 2 * min(below, above)))


def compare(a: RunningScores, b: RunningScores, ids: tuple[str, ...] = REGION_IDS) -> list[schema.RegionDifference]:
    """Density difference b - a per region, with a 95% interval and a p-value.

    With bootstrap resamples (the default), the interval and p-value come from the resampled
    differences (the two groups hold different images, so their resamples are independent);
    otherwise from Welch's t (normal approximation for the p-value). Testing 17 regions at once makes
    about one "significant" difference likely by chance, so ``beyond_noise`` uses Holm's correction
    over the regions compared (``p_adjusted`` < 0.05), not the single interval. The report flags
    groups under 20 images as too small to conclude anyway.
    """
    mean_a, var_a, n_a = a.mean_and_error("density")
    mean_b, var_b, n_b = b.mean_and_error("density")
    resampled = a.replicates and b.replicates
    if resampled:
        differences = b.resampled_means("density") - a.resampled_means("density")
    tested: list[tuple[str, int, Interval, float | None]] = []  # (region id, its index, interval, p-value)
    for rid in ids:
        i = SCORED_IDS.index(rid)
        difference = mean_b[i] - mean_a[i]
        interval: Interval = [None, None]
        p_value = None
        if resampled and n_a[i] >= 2 and n_b[i] >= 2:
            interval = percentile_interval(differences[:, i])
            p_value = bootstrap_p_value(differences[:, i])
        elif n_a[i] >= 2 and n_b[i] >= 2:
            sa, sb = var_a[i] / n_a[i], var_b[i] / n_b[i]
            se = math.sqrt(sa + sb)
            if se > 0:
                # Welch-Satterthwaite degrees of freedom.
                df = (sa + sb) ** 2 / ((sa ** 2) / (n_a[i] - 1) + (sb ** 2) / (n_b[i] - 1))
                half = t_quantile_975(df) * se
                interval = [json_float(difference - half), json_float(difference + half)]
                p_value = math.erfc(abs(difference) / se / math.sqrt(2))
        tested.append((rid, i, interval, p_value))
    rows: list[schema.RegionDifference] = []
    for (rid, i, interval, p_value), adjusted in zip(tested, holm([p for *_, p in tested])):
        rows.append({
            "id": rid, "label": REGION_BY_ID[rid].label if rid in REGION_BY_ID else GROUP_LABELS[rid],
            "density_a": json_float(mean_a[i]), "density_b": json_float(mean_b[i]),
            "difference": json_float(mean_b[i] - mean_a[i]), "ci": interval,
            "p_value": None if p_value is None else json_float(p_value),
            "test": "bootstrap" if resampled else "welch",
            "p_adjusted": None if adjusted is None else json_float(adjusted),
            "beyond_noise": adjusted is not None and adjusted < 0.05,
        })
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


def json_float(value) -> float | None:
    """A number as results.json keeps it: a float rounded to 6 digits, None when not finite (NaN, inf)."""
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None
