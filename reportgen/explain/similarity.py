"""Verification quality: how well a face-verification model's similarities tell genuine pairs (the same
person) from impostor pairs (two people), overall and per group, at a decision threshold.

Similarities are kept as histograms (``BINS`` bins over the cosine range [-1, 1]) of genuine and impostor
pairs per group, so memory does not grow with the number of pairs and shards add up exactly. The default
threshold is the bin edge that maximises the accuracy over all labelled pairs (stated in the results as
chosen on the data; a threshold chosen on the data it is evaluated on flatters the accuracy a little, and
that optimism is the same for every group). A threshold given with ``--threshold`` is counted exactly at
each pair. Group gaps in accuracy come with a 95% interval (Newcombe's hybrid score interval for a
difference of two proportions) so a gap is called one only when its interval excludes zero.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # types only: results.json's sections
    from ..results import schema

BINS = 800  # 0.0025 of cosine similarity per bin
EDGES = np.linspace(-1.0, 1.0, BINS + 1)
REPORT_BINS = 40  # the report's histograms are drawn coarser
Z95 = 1.959964
ALL = "all"


def _bin(similarity: float) -> int:
    return int(min(BINS - 1, max(0, math.floor((similarity + 1.0) / 2.0 * BINS))))


class SimilarityCounts:
    """Histograms of labelled pair similarities: ``counts[key]`` is (2, BINS): row 0 impostor, row 1 genuine.
    ``key`` is ``"all"`` or a group key such as ``"race=African"``. With a fixed ``threshold`` the correct
    decisions are also counted exactly (``decided[key]``: [impostor below, genuine at or above])."""

    def __init__(self, threshold: float | None = None):
        self.threshold = threshold
        self.counts: dict[str, np.ndarray] = {}
        self.decided: dict[str, np.ndarray] = {}
        self.unlabelled = 0

    def add(self, similarity: float, genuine: bool | None, keys: list[str]) -> None:
        """One pair's similarity, whether it is genuine (None: unlabelled), and the group keys it belongs to."""
        if genuine is None or not math.isfinite(similarity):
            self.unlabelled += 1
            return
        column = _bin(similarity)
        for key in [ALL, *keys]:
            self.counts.setdefault(key, np.zeros((2, BINS)))[int(genuine), column] += 1
            if self.threshold is not None:
                correct = (similarity >= self.threshold) == bool(genuine)
                self.decided.setdefault(key, np.zeros(2))[int(genuine)] += correct

    def merge(self, other: SimilarityCounts) -> None:
        for key, counts in other.counts.items():
            self.counts.setdefault(key, np.zeros((2, BINS)))[:] += counts
        for key, decided in other.decided.items():
            self.decided.setdefault(key, np.zeros(2))[:] += decided
        self.unlabelled += other.unlabelled

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "unlabelled": self.unlabelled,
                "counts": {k: v.tolist() for k, v in self.counts.items()},
                "decided": {k: v.tolist() for k, v in self.decided.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> SimilarityCounts:
        counts = cls(data.get("threshold"))
        counts.unlabelled = int(data.get("unlabelled", 0))
        counts.counts = {k: np.asarray(v, dtype=np.float64) for k, v in data.get("counts", {}).items()}
        counts.decided = {k: np.asarray(v, dtype=np.float64) for k, v in data.get("decided", {}).items()}
        return counts

    # -- finishing ------------------------------------------------------------------------------------------

    def best_threshold(self) -> float | None:
        """The bin edge that maximises accuracy over all labelled pairs (the middle of the best run of edges)."""
        counts = self.counts.get(ALL)
        if counts is None or counts.sum() == 0:
            return None
        impostor_below = np.concatenate([[0.0], np.cumsum(counts[0])])  # impostors under edge k
        genuine_above = counts[1].sum() - np.concatenate([[0.0], np.cumsum(counts[1])])
        correct = impostor_below + genuine_above
        best = np.flatnonzero(correct == correct.max())
        run_end = best[0]
        while run_end + 1 in best:
            run_end += 1
        return float(EDGES[(best[0] + run_end) // 2])

    def _at(self, key: str, threshold: float, exact: bool) -> tuple[schema.PairQuality, int]:
        """The quality of group ``key``'s pairs at ``threshold`` and how many it decides correctly."""
        counts = self.counts[key]
        impostors, genuine = int(counts[0].sum()), int(counts[1].sum())
        if exact and key in self.decided:
            impostor_correct, genuine_correct = (int(v) for v in self.decided[key])
        else:
            edge = int(np.clip(np.searchsorted(EDGES, threshold - 1e-12), 0, BINS))
            impostor_correct, genuine_correct = int(counts[0][:edge].sum()), int(counts[1][edge:].sum())
        total = impostors + genuine
        centres = (EDGES[:-1] + EDGES[1:]) / 2
        coarse = counts.reshape(2, REPORT_BINS, BINS // REPORT_BINS).sum(2)
        quality: schema.PairQuality = {
            "pairs": total, "genuine": genuine, "impostor": impostors,
            "accuracy": _ratio(impostor_correct + genuine_correct, total),
            "accuracy_ci": wilson(impostor_correct + genuine_correct, total),
            "true_accept_rate": _ratio(genuine_correct, genuine),
            "false_accept_rate": _ratio(impostors - impostor_correct, impostors),
            "mean_genuine": _mean(centres, counts[1]), "mean_impostor": _mean(centres, counts[0]),
            "histogram": {"edges": [round(float(e), 4) for e in np.linspace(-1, 1, REPORT_BINS + 1)],
                          "genuine": coarse[1].astype(int).tolist(), "impostor": coarse[0].astype(int).tolist()},
        }
        return quality, impostor_correct + genuine_correct

    def summary(self, group_keys: dict[str, list[str]]) -> schema.Verification | None:
        """results.json ``verification``: the threshold, quality overall and per group, and per group column
        every other value's accuracy against the first value's (difference b - a with a 95% interval)."""
        if ALL not in self.counts:
            return None
        exact = self.threshold is not None
        threshold = self.threshold if self.threshold is not None else self.best_threshold()
        if threshold is None:  # no labelled pair: nothing to decide with
            return None
        overall, _ = self._at(ALL, threshold, exact)
        measured = {key: self._at(key, threshold, exact) for key in sorted(self.counts) if key != ALL}
        groups = {key: quality for key, (quality, _) in measured.items()}
        correct = {key: count for key, (_, count) in measured.items()}
        comparisons: list[schema.AccuracyComparison] = []
        columns = sorted({column for column, _ in (group_keys.get(k, [k, ""]) for k in groups)})
        for column in columns:
            keys = sorted(k for k in groups if group_keys.get(k, [None])[0] == column)
            for other in keys[1:]:
                a, b = groups[keys[0]], groups[other]
                low, high = newcombe(correct[keys[0]], a["pairs"], correct[other], b["pairs"])
                difference = None if a["accuracy"] is None or b["accuracy"] is None else b["accuracy"] - a["accuracy"]
                comparisons.append({"column": column, "a": keys[0], "b": other, "n_a": a["pairs"], "n_b": b["pairs"],
                                    "accuracy_a": a["accuracy"], "accuracy_b": b["accuracy"],
                                    "difference": None if difference is None else round(difference, 4),
                                    "ci": [low, high],
                                    "beyond_noise": low is not None and high is not None and (low > 0 or high < 0)})
        return {"threshold": round(threshold, 4),
                "threshold_source": "option" if exact else "best accuracy on these pairs",
                "unlabelled_pairs": self.unlabelled, "overall": overall, "groups": groups,
                "comparisons": comparisons}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(centres: np.ndarray, counts: np.ndarray) -> float | None:
    return round(float((centres * counts).sum() / counts.sum()), 4) if counts.sum() else None


def wilson(successes: int, trials: int) -> list[float | None]:
    """95% Wilson score interval of a proportion; [None, None] without trials."""
    return [None, None] if trials <= 0 else list(_wilson(successes, trials))


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    """wilson() for trials > 0."""
    p = successes / trials
    centre = (p + Z95 ** 2 / (2 * trials)) / (1 + Z95 ** 2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + Z95 ** 2 / (4 * trials ** 2)) / (1 + Z95 ** 2 / trials)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def newcombe(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> list[float | None]:
    """95% interval of p_b - p_a (Newcombe's hybrid score method, from the two Wilson intervals)."""
    if trials_a <= 0 or trials_b <= 0:
        return [None, None]
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    (low_a, high_a), (low_b, high_b) = _wilson(successes_a, trials_a), _wilson(successes_b, trials_b)
    difference = p_b - p_a
    low = difference - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = difference + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return [round(low, 4), round(high, 4)]
