"""Can the explanation be trusted? Two checks on a bounded sample of images.

Faithfulness (region deletion): for each sampled image, its top region (highest density) is replaced
by the baseline image and the drop of the class probability is recorded; so is the drop for another
region of similar area, picked at random. If the explanation points at what the model uses, deleting
the top region must hurt clearly more than deleting a random one (Samek et al., 2017, "Evaluating the
visualization of what a deep neural network has learned", in its region form).

Sanity (Adebayo et al., 2018, "Sanity checks for saliency maps", model parameter randomisation): the
region scores are computed again with every weight of the model re-initialised at random (all layers at
once). An explanation of what the model *learned* must change; a high rank correlation between the
real and the randomised region densities means the method mostly shows the image (edges, the face)
whatever the weights, and its region ranking says little about the model.

Both checks keep one small record per sampled image, so they merge across shards like everything else.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .attribution import baseline_images
from .regions import REGION_IDS
from .scores import _number, percentile_interval

DEFAULT_CHECK_IMAGES = 64
CHECK_SEED = 1
# Another region "of similar area": within this factor of the top region's area, else the closest.
SIMILAR_AREA = 2.0
# "Clearly larger": the paired difference's 95% interval lies above zero and the mean difference is at
# least this (1 percentage point of class probability); smaller drops matter to no decision.
MIN_DIFFERENCE = 0.01
# Rank correlation between real and randomised-model region densities above which the method is judged
# blind to the weights; between the two, partly.
SANITY_FAIL = 0.7
SANITY_WARN = 0.4
RESAMPLES = 1000


def sample_rows(total: int, count: int, seed: int = CHECK_SEED) -> set[int]:
    """The rows the checks use: a fixed random sample of the dataset, the same in every shard."""
    if count <= 0 or total <= 0:
        return set()
    return set(np.random.default_rng(seed).permutation(total)[:count].tolist())


def randomised_copy(model: torch.nn.Module, seed: int = CHECK_SEED) -> torch.nn.Module:
    """A copy of the model with every parameter re-initialised (each layer's own ``reset_parameters``,
    else Gaussian noise of the parameter's own spread), the global random state left untouched."""
    randomised = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        reset = set()
        for module in randomised.modules():
            if hasattr(module, "reset_parameters") and any(True for _ in module.parameters(recurse=False)):
                module.reset_parameters()
                reset.update(id(p) for p in module.parameters(recurse=False))
        for parameter in randomised.parameters():
            if id(parameter) not in reset:
                parameter.normal_(0.0, float(parameter.std()) if parameter.numel() > 1 else 1.0)
    return randomised.eval()


def _other_region(areas: np.ndarray, top: int, rng: np.random.Generator) -> int | None:
    """A region other than ``top`` whose area is within SIMILAR_AREA of it (random among those), else
    the one closest in area; None when the image shows no other region."""
    others = [r for r in range(len(REGION_IDS)) if r != top and areas[r] > 0]
    if not others:
        return None
    ratio = {r: abs(np.log(areas[r] / areas[top])) for r in others}
    similar = [r for r in others if ratio[r] <= np.log(SIMILAR_AREA)]
    return int(rng.choice(similar)) if similar else min(others, key=ratio.get)


def deletion_drops(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, regions: torch.Tensor,
                   densities: np.ndarray, areas: np.ndarray, rows: list[int], baseline: str,
                   probabilities: torch.Tensor | None = None, extra: tuple = ()) -> list[dict]:
    """For each image: top region by density, a random region of similar area, and the class
    probability drop when each is replaced by the baseline. densities/areas: (B, R) per image;
    probabilities: the model's (B, K) class probabilities for ``inputs`` when already known."""
    plans = []
    for j, row in enumerate(rows):
        shown = np.where(areas[j] > 0, densities[j], -np.inf)
        top = int(np.argmax(shown))
        other = _other_region(areas[j], top, np.random.default_rng([CHECK_SEED, row]))
        plans.append((top, other))
    filler = baseline_images(inputs, baseline)
    regions = regions.to(inputs.device)
    deleted = []
    for j, (top, other) in enumerate(plans):
        for region in (top, other if other is not None else top):
            mask = (regions[j] == region)[None]
            deleted.append(torch.where(mask, filler[j], inputs[j]))
    twice = tuple(tensor.repeat_interleave(2, dim=0) for tensor in extra)  # each image is deleted twice

    def probability(batch, *more):  # the model's head decides: softmax, or each class's own sigmoid
        return model.probabilities(batch, *more) if hasattr(model, "probabilities") else torch.softmax(model(batch), 1)

    with torch.no_grad():
        if probabilities is None:
            probabilities = probability(inputs, *extra)
        before = probabilities.to(targets.device).gather(1, targets[:, None])[:, 0].cpu()
        after = probability(torch.stack(deleted), *twice).cpu()
    records = []
    for j, (row, (top, other)) in enumerate(zip(rows, plans)):
        target = int(targets[j])
        top_drop = float(before[j] - after[2 * j, target])
        record = {"row": row, "top_region": REGION_IDS[top], "top_drop": top_drop,
                  "top_area": float(areas[j][top]), "probability": float(before[j])}
        if other is not None:
            record.update(random_region=REGION_IDS[other], random_drop=float(before[j] - after[2 * j + 1, target]),
                          random_area=float(areas[j][other]))
        records.append(record)
    return records


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two score vectors over the entries both define (average ranks for
    ties); None with fewer than 3 entries or no spread."""
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


def sanity_record(row: int, real: np.ndarray, randomised: np.ndarray | None) -> dict:
    """One image's sanity record: region densities (REGION_IDS order) from the real and the randomised
    model (None: the randomised model's map was zero everywhere) and their rank correlation."""
    record = {"row": row, "real": [_number(v) for v in real], "randomised": None, "rank_correlation": None}
    if randomised is not None:
        record["randomised"] = [_number(v) for v in randomised]
        record["rank_correlation"] = rank_correlation(real, randomised)
    return record


def _mean_interval(values: list[float], seed: int) -> tuple[float | None, list[float | None]]:
    """Mean and its 95% bootstrap interval (fixed seed) of a small list of numbers."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return None, [None, None]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(1)
    return _number(values.mean()), percentile_interval(means) if len(values) >= 2 else [None, None]


def _column_means(rows: list[list[float | None]]) -> np.ndarray:
    """Mean of each column over the rows that define it (None = undefined); NaN for an empty column."""
    values = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    counts = np.isfinite(values).sum(0)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.nansum(values, 0) / counts, np.nan)


def faithfulness_summary(records: list[dict], baseline: str) -> dict | None:
    """results.json ``faithfulness``: mean drops for top vs random regions and whether top is clearly
    larger (the 95% interval of the paired difference lies above zero and the difference is at least
    ``MIN_DIFFERENCE``)."""
    # In row order: the intervals' resamples must not depend on batch order, shards or resuming.
    paired = sorted((r for r in records if "random_drop" in r), key=lambda r: r["row"])
    if not paired:
        return None
    top, top_ci = _mean_interval([r["top_drop"] for r in paired], CHECK_SEED)
    random, random_ci = _mean_interval([r["random_drop"] for r in paired], CHECK_SEED + 1)
    difference, difference_ci = _mean_interval([r["top_drop"] - r["random_drop"] for r in paired], CHECK_SEED + 2)
    faithful = difference_ci[0] is not None and difference_ci[0] > 0 and difference >= MIN_DIFFERENCE
    counts: dict[str, int] = {}
    for r in paired:
        counts[r["top_region"]] = counts.get(r["top_region"], 0) + 1
    return {
        "images": len(paired), "baseline": baseline, "top_drop": top, "top_drop_ci": top_ci,
        "random_drop": random, "random_drop_ci": random_ci, "difference": difference,
        "difference_ci": difference_ci, "faithful": faithful,
        "top_area": _number(np.mean([r["top_area"] for r in paired])),
        "random_area": _number(np.mean([r["random_area"] for r in paired])),
        "top_regions": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "per_image": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in paired],
    }


def sanity_summary(records: list[dict]) -> dict | None:
    """results.json ``sanity``: rank correlation of real vs randomised-model region densities, per image
    (mean with interval) and of the mean ranking; a verdict in words."""
    if not records:
        return None
    records = sorted(records, key=lambda r: r["row"])
    correlations = [r["rank_correlation"] for r in records if r["rank_correlation"] is not None]
    mean, interval = _mean_interval(correlations, CHECK_SEED + 3)
    real = _column_means([r["real"] for r in records])
    usable = [r for r in records if r["randomised"] is not None]
    if usable:
        randomised = _column_means([r["randomised"] for r in usable])
        ranking_correlation = rank_correlation(real, randomised)
        top_randomised = REGION_IDS[int(np.nanargmax(randomised))] if np.isfinite(randomised).any() else None
    else:
        ranking_correlation, top_randomised = None, None
    if mean is None:
        verdict = "unknown"
    elif mean >= SANITY_FAIL:
        verdict = "failed"
    elif mean >= SANITY_WARN:
        verdict = "doubtful"
    else:
        verdict = "passed"
    return {
        "images": len(records), "randomisation": "all layers at once (each layer's default initialisation)",
        "rank_correlation": mean, "rank_correlation_ci": interval, "mean_ranking_correlation":
            None if ranking_correlation is None else _number(ranking_correlation),
        "top_region": REGION_IDS[int(np.nanargmax(real))] if np.isfinite(real).any() else None,
        "top_region_randomised": top_randomised, "zero_maps": len(records) - len(usable), "verdict": verdict,
        "thresholds": {"failed": SANITY_FAIL, "doubtful": SANITY_WARN},
    }
