"""The running totals of a run: what has been added so far, mergeable, saveable, and finished into results.

Everything the report needs is kept as sufficient statistics (sums, sums of squares, bounded heaps of
examples), never as per-image maps, so memory does not grow with the number of images, and two
states add up exactly. That one property gives three features:
  - shards: ``reportgen run --shard 2/4`` saves its state; ``reportgen merge`` adds the parts up;
  - resume: a long run checkpoints its state; run again after Ctrl-C and finished images are skipped;
  - the same report from either path as from a single run.
States are saved as JSON (arrays as base64 float64), never pickle: a part file from a cluster cannot
run code when merged.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

from ..errors import InputError
from ..explain.similarity import SimilarityCounts
from ..faces.canonical import CanonicalFace
from ..faces.regions import GROUPS, REGION_IDS
from . import schema
from .checks import faithfulness_summary, sanity_summary
from .patches import Examples, ImageBrowser, Later, TopPatches, draw_pictures
from .scores import BOOTSTRAPPED, METRICS, RunningScores, compare

# /2: bootstrap resamples, check records and the piecewise-affine canonical face; /3: the canonical face
# summed at 128 x 128 points (canonical.SAMPLES); /4: the checks' records hold deletion curves and the
# randomisation cascade. An older checkpoint is not resumed (the run starts over) and an older part is
# refused by merge.
FORMAT = "reportgen-partial/4"
# The counts kept per attribute of a multi-label model (RunState.add_attributes).
ATTRIBUTE_COUNTS = ("labelled", "correct", "predicted", "present")


class RunContext(TypedDict):
    """What a run is, apart from its images (``analysis.run_context``): kept with every partial state, and
    finished into the results with the state's totals (``RunState.results``)."""

    run: schema.RunSetup  # without the totals: seconds and detector_calls come from the state
    tool: schema.Tool
    config: schema.Config
    notes: list[str]
    fingerprint: str  # only partial states with the same fingerprint are resumed or merged
    manifest: NotRequired[schema.Manifest]
    machine: NotRequired[dict[str, str]]  # this machine's folders, which the shared results leave out (privacy.py)


def _array(values: np.ndarray) -> dict:
    values = np.ascontiguousarray(values, dtype=np.float64)
    return {"shape": list(values.shape), "float64": base64.b64encode(values.tobytes()).decode("ascii")}


def _unarray(data: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data["float64"]), dtype=np.float64).reshape(data["shape"]).copy()


def _scores_to_dict(scores: RunningScores) -> dict:
    return {"images": scores.images, "replicates": scores.replicates,
            **{f"{kind}_{m}": _array(getattr(scores, kind)[m]) for kind in ("n", "sum", "sumsq") for m in METRICS},
            **{f"{kind}_{m}": _array(getattr(scores, kind)[m]) for kind in ("boot_n", "boot_sum") for m in BOOTSTRAPPED}}


def _scores_from_dict(data: dict) -> RunningScores:
    scores = RunningScores(int(data["replicates"]))
    scores.images = int(data["images"])
    for kind in ("n", "sum", "sumsq"):
        for metric in METRICS:
            getattr(scores, kind)[metric] = _unarray(data[f"{kind}_{metric}"])
    for kind in ("boot_n", "boot_sum"):
        for metric in BOOTSTRAPPED:
            getattr(scores, kind)[metric] = _unarray(data[f"{kind}_{metric}"])
    return scores


def _face_to_dict(face: CanonicalFace) -> dict:
    return {"faces": face.faces, "attention": _array(face.attention), "coverage": _array(face.coverage),
            "landmark_sum": _array(face.landmark_sum)}


def _face_from_dict(data: dict) -> CanonicalFace:
    face = CanonicalFace()
    face.faces = int(data["faces"])
    face.attention, face.coverage = _unarray(data["attention"]), _unarray(data["coverage"])
    face.landmark_sum = _unarray(data["landmark_sum"])
    return face


@dataclass
class ScoredBatch:
    """A batch of analysed images as plain arrays, row i of each for image i: what ``RunState.add_batch`` adds.

    Made by the model's side (``analysis.Explainer``) from one pass over the batch on the model's device,
    brought to the CPU once; images whose map has nothing in it and that have no effects are left out
    before (they are failures)."""

    rows: list[int]  # dataset rows
    scores: dict[str, np.ndarray]  # {metric: float64 (k, len(SCORED_IDS))}, scores.batch_scores
    maps: list[np.ndarray]  # float32 (H, W) attribution per image, model-input pixels (own arrays, not views)
    warped: np.ndarray  # float64 (k, SAMPLES, SAMPLES): the maps on the canonical face (canonical.warp_batch)
    inside: np.ndarray  # bool (k, SAMPLES, SAMPLES): where each face's image reaches on the canvas
    aligned: np.ndarray  # bool (k,): maps with attention to place on the average face (sum > 0)
    landmarks: list[np.ndarray]  # (68, 2) per image, model-input pixels
    labels: list[np.ndarray]  # uint8 (H, W) region label image per image
    groups: list[dict[str, str]]  # {column: value} per image
    infos: list[dict]  # {"image", "label", "prediction", "probability"} per image
    true_labels: list  # the true label per image (None: unlabelled), for the accuracy
    seen: list  # the picture the model saw per image (PIL image or patches.Later)
    weights: np.ndarray | None = None  # (k, replicates) bootstrap weights (scores.bootstrap_weights rows)
    partners: list | None = None  # face verification: per image, its partner's pictures (see add_image)


class RunState:
    """Totals over the images processed so far; ``total`` is the number of rows in the dataset."""

    def __init__(self, total: int, patches_per_region: int = 12, replicates: int = 0, images_per_row: int = 1,
                 threshold: float | None = None):
        self.total = total
        self.images_per_row = images_per_row  # 2 for a pair file: both images of a pair are explained
        self.replicates = replicates  # bootstrap resamples kept by every RunningScores
        self.done = np.zeros(total, dtype=bool)  # rows already processed (analysed or failed)
        self.overall = RunningScores(replicates)
        self.groups: dict[str, RunningScores] = {}
        self.canonical = CanonicalFace()
        self.group_faces: dict[str, CanonicalFace] = {}
        self.patches = TopPatches(patches_per_region)
        self.examples = Examples()
        self.browser = ImageBrowser()
        self.group_keys: dict[str, list[str]] = {}  # "column=value" -> [column, value] (names may hold '=')
        self.failures: list[dict] = []  # {"index", "image", "reason"}
        self.image_notes: list[dict] = []  # {"index", "image", "note"}: conversions etc. (image still analysed)
        self.detection: Counter = Counter()
        self.several_faces = self.detector_calls = self.correct = self.labelled = 0
        self.predicted_counts: Counter = Counter()
        self.faithfulness: list[dict] = []  # one record per sampled image (reportgen.results.checks)
        self.sanity: list[dict] = []
        self.probability_sum = 0.0
        self.seconds = 0.0  # time spent computing, added up over resumes and shards
        # Multi-label models: per attribute, images labelled, predicted correctly, predicted present, truly present.
        self.attributes: dict[str, np.ndarray] | None = None
        # Verification runs: similarity histograms of genuine and impostor pairs per group (threshold: --threshold).
        self.similarity = SimilarityCounts(threshold)

    # --- adding images ---------------------------------------------------------------------------
    def add_failure(self, index: int, image: str, reason: str) -> None:
        self.done[index] = True
        self.failures.append({"index": index, "image": image, "reason": reason})

    def add_notes(self, index: int, image: str, notes: list[str]) -> None:
        self.image_notes += [{"index": index, "image": image, "note": note} for note in notes]

    def add_batch(self, batch: ScoredBatch) -> None:
        """A batch of analysed images (``ScoredBatch``): the same totals as ``add_image`` for each in turn
        (to float rounding), with the scores, bootstrap sums and average-face sums added per batch."""
        if not batch.rows:
            return
        self.done[batch.rows] = True
        self.overall.add_batch(batch.scores, batch.weights)
        self.canonical.add_batch(batch.warped[batch.aligned], batch.inside[batch.aligned])
        members: dict[str, list[int]] = {}
        for position, groups in enumerate(batch.groups):
            for column, value in groups.items():
                key = f"{column}={value}"
                self.group_keys[key] = [column, value]
                members.setdefault(key, []).append(position)
        for key, positions in members.items():
            self.groups.setdefault(key, RunningScores(self.replicates)).add_batch(
                {metric: values[positions] for metric, values in batch.scores.items()},
                None if batch.weights is None else batch.weights[positions])
            face = self.group_faces.setdefault(key, CanonicalFace())
            aligned = [p for p in positions if batch.aligned[p]]
            face.add_batch(batch.warped[aligned], batch.inside[aligned])
        shares = np.nan_to_num(batch.scores["share"][:, :len(REGION_IDS)], nan=0.0)
        for position, info in enumerate(batch.infos):
            self._keep(batch.seen[position], batch.maps[position], batch.landmarks[position], batch.labels[position],
                       batch.groups[position], info, batch.true_labels[position], shares[position],
                       batch.partners[position] if batch.partners else None)

    def add_image(self, index: int, scores: dict, attribution: np.ndarray, landmarks: np.ndarray,
                  labels: np.ndarray, groups: dict[str, str], info: dict, label: int | None, seen,
                  weights: np.ndarray | None = None, partner: tuple | None = None) -> None:
        """One analysed image: its region scores, its map and landmarks (model-input pixels), its label
        image, group values {column: value}, info (image, label, prediction, probability), the picture
        the model saw (for patches and examples) and its bootstrap weights (``scores.bootstrap_weights``).
        ``partner`` (face verification): the compared image's (seen, attribution, labels, landmarks), any but
        the picture None, for side-by-side views.

        The per-image reference of ``add_batch`` (which runs use), kept for the tests that compare the two."""
        self.done[index] = True
        self.overall.add(scores, weights)
        # Warp once, for the overall and group means; a map with nothing in it (region-ablation found no
        # region that matters) has no attention to place on the average face.
        aligned = CanonicalFace.align(attribution, landmarks) if attribution.sum() > 0 else None
        for column, value in groups.items():
            key = f"{column}={value}"
            self.group_keys[key] = [column, value]
            self.groups.setdefault(key, RunningScores(self.replicates)).add(scores, weights)
            face = self.group_faces.setdefault(key, CanonicalFace())
            if aligned is not None:
                face.add_aligned(aligned)
        if aligned is not None:
            self.canonical.add_aligned(aligned)
        # An image with nothing to share out (region-ablation found no region that matters) has NaN shares.
        shares = np.nan_to_num(scores["share"][:len(REGION_IDS)], nan=0.0)
        # Pictures are drawn later from what the heaps keep (patches.Later): half-size numbers are plenty.
        self._keep(seen, attribution.astype(np.float32), landmarks, labels, groups, info, label, shares, partner)

    def _keep(self, seen, attribution: np.ndarray, landmarks: np.ndarray, labels: np.ndarray,
              groups: dict[str, str], info: dict, label, shares: np.ndarray, partner: tuple | None = None) -> None:
        """One image's counts (predictions, accuracy) and its offers to the report's pictures; attribution is
        float32 and the image's own array (the heaps may keep it); partner as in ``add_image``."""
        self.predicted_counts[str(info["prediction"])] += 1
        self.probability_sum += info["probability"]
        if label is not None:
            self.labelled += 1
            self.correct += int(label == info["prediction"])
        info = dict(info, groups=groups)
        kept = self.patches.offer(seen, attribution, labels, shares, info, landmarks=landmarks, partner=partner)
        kept |= self.examples.offer(seen, attribution, labels, landmarks, info, partner=partner)
        kept |= self.browser.offer(seen, attribution, labels, landmarks, info, shares)
        if kept:
            # The picture the model saw, drawn now that a heap keeps the image: 150 kB of pixels instead of the
            # model's float input (600 kB at 224 px), for the few hundred images the heaps hold at a time.
            for picture in (seen, partner[0] if partner else None):
                if isinstance(picture, Later):
                    picture.get()

    def add_attributes(self, labels: np.ndarray, predicted: np.ndarray) -> None:
        """One scored image of a multi-label model: every attribute's true value (0/1, -1 unlabelled) and its
        prediction (0/1, probability > 0.5), in output order."""
        known = labels >= 0
        if self.attributes is None:
            self.attributes = {name: np.zeros(len(labels)) for name in ATTRIBUTE_COUNTS}
        self.attributes["labelled"] += known
        self.attributes["correct"] += known & (labels == predicted)
        self.attributes["predicted"] += known & (predicted == 1)
        self.attributes["present"] += known & (labels == 1)

    # --- combining ---------------------------------------------------------------------------------
    def merge(self, other: RunState) -> None:
        if other.total != self.total:
            raise InputError(f"the parts cover datasets of different sizes ({self.total} and {other.total} rows)")
        overlap = int((self.done & other.done).sum())
        if overlap:
            raise InputError(f"two parts both processed {overlap} of the same images; merge each shard once")
        self.done |= other.done
        self.overall.merge(other.overall)
        for key, scores in other.groups.items():
            self.groups.setdefault(key, RunningScores(self.replicates)).merge(scores)
        self.canonical.merge(other.canonical)
        for key, face in other.group_faces.items():
            self.group_faces.setdefault(key, CanonicalFace()).merge(face)
        self.patches.merge(other.patches)
        self.examples.merge(other.examples)
        self.browser.merge(other.browser)
        self.group_keys.update(other.group_keys)
        self.failures += other.failures
        self.image_notes += other.image_notes
        self.faithfulness += other.faithfulness
        self.sanity += other.sanity
        self.detection += other.detection
        self.predicted_counts += other.predicted_counts
        for name in ("several_faces", "detector_calls", "correct", "labelled", "probability_sum", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.similarity.merge(other.similarity)
        if other.attributes is not None:
            if self.attributes is None:
                self.attributes = {name: values.copy() for name, values in other.attributes.items()}
            else:
                for name, values in other.attributes.items():
                    self.attributes[name] += values

    # --- saving --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        draw_pictures(self.patches, self.examples, self.browser)  # pending pictures now: the state is plain data
        return {
            "total": self.total, "replicates": self.replicates, "images_per_row": self.images_per_row,
            "similarity": self.similarity.to_dict(), "done": base64.b64encode(np.packbits(self.done).tobytes()).decode("ascii"),
            "overall": _scores_to_dict(self.overall),
            "groups": {k: _scores_to_dict(v) for k, v in self.groups.items()},
            "canonical": _face_to_dict(self.canonical),
            "group_faces": {k: _face_to_dict(v) for k, v in self.group_faces.items()},
            "patches": self.patches.to_dict(), "examples": self.examples.to_dict(),
            "browser": self.browser.to_dict(), "group_keys": self.group_keys,
            "failures": self.failures, "image_notes": self.image_notes, "detection": dict(self.detection),
            "faithfulness": self.faithfulness, "sanity": self.sanity,
            "predicted_counts": dict(self.predicted_counts),
            "attributes": None if self.attributes is None else {k: v.tolist() for k, v in self.attributes.items()},
            **{name: getattr(self, name) for name in ("several_faces", "detector_calls", "correct", "labelled",
                                                      "probability_sum", "seconds")},
        }

    @classmethod
    def from_dict(cls, data: dict) -> RunState:
        state = cls(int(data["total"]), int(data["patches"]["per_region"]), int(data["replicates"]),
                    int(data.get("images_per_row", 1)))
        if data.get("similarity"):
            state.similarity = SimilarityCounts.from_dict(data["similarity"])
        bits = np.frombuffer(base64.b64decode(data["done"]), dtype=np.uint8)
        state.done = np.unpackbits(bits)[:state.total].astype(bool)
        state.overall = _scores_from_dict(data["overall"])
        state.groups = {k: _scores_from_dict(v) for k, v in data["groups"].items()}
        state.canonical = _face_from_dict(data["canonical"])
        state.group_faces = {k: _face_from_dict(v) for k, v in data["group_faces"].items()}
        state.patches = TopPatches.from_dict(data["patches"])
        state.examples = Examples.from_dict(data["examples"])
        if "browser" in data:
            state.browser = ImageBrowser.from_dict(data["browser"])
        state.group_keys = {k: list(v) for k, v in data.get("group_keys", {}).items()}
        state.failures = list(data["failures"])
        state.image_notes = list(data.get("image_notes", []))
        state.faithfulness, state.sanity = list(data["faithfulness"]), list(data["sanity"])
        state.detection = Counter(data["detection"])
        state.predicted_counts = Counter(data["predicted_counts"])
        if data.get("attributes"):
            state.attributes = {k: np.asarray(v, dtype=np.float64) for k, v in data["attributes"].items()}
        for name in ("several_faces", "detector_calls", "correct", "labelled"):
            setattr(state, name, int(data[name]))
        state.probability_sum, state.seconds = float(data["probability_sum"]), float(data["seconds"])
        return state

    # --- finishing -----------------------------------------------------------------------------------
    def results(self, context: RunContext) -> schema.ResultsDict:
        """The results dict (docs/results.md). ``context``: what the run was (see analysis.run_context)."""
        from .findings import findings
        from .privacy import shareable

        draw_pictures(self.patches, self.examples, self.browser)  # all at once, in threads
        scored = self.overall.images
        notes = list(context.get("notes", []))
        if self.several_faces:
            notes.append(f"{self.several_faces} image(s) showed several faces; the largest face was analysed")
        missing = self.total - int(self.done.sum())
        if missing:
            rows = "pairs" if self.images_per_row == 2 else "images"
            notes.append(f"{missing} of {self.total} {rows} were not processed (an incomplete set of shards?)")
        run: schema.Run = {**context["run"], "seconds": round(self.seconds, 2), "detector_calls": self.detector_calls}
        verifying = run.get("task") == "verification"
        counts: schema.Counts = {"images": self.total * self.images_per_row, "aligned": sum(self.detection.values()),
                                 "failed": self.total * self.images_per_row - scored, "scored": scored}
        if self.images_per_row == 2:
            counts["pairs"] = self.total
        sections: schema.Sections = {
            "schema": schema.SCHEMA,
            "tool": context["tool"],
            "run": run,
            "config": context["config"],
            "counts": counts,
            "failures": [{"image": f["image"], "reason": f["reason"]}
                         for f in sorted(self.failures, key=lambda f: f["index"])],
            "image_notes": [{"image": n["image"], "note": n["note"]}
                            for n in sorted(self.image_notes, key=lambda n: n["index"])],
            "manifest": context.get("manifest"),
            "detection": dict(sorted(self.detection.items())),
            "notes": notes,
            "regions": self.overall.table(),
            "region_groups": self.overall.table(tuple(GROUPS), sort=False),
            "groups": {key: {"column": self.group_keys[key][0], "value": self.group_keys[key][1], "n": stats.images,
                             "regions": stats.table(), "region_groups": stats.table(tuple(GROUPS), sort=False),
                             "mean_attribution": self.group_faces[key].mean_map()}
                       for key, stats in sorted(self.groups.items())},
            # A verification run also compares genuine with impostor pairs (the "pair" column it adds).
            "comparisons": self._comparisons(list(run.get("protected", [])) + (["pair"] if verifying else [])),
            # Class predictions do not apply to face verification: "verification" holds its decisions.
            "predictions": None if verifying else {
                "accuracy": round(self.correct / self.labelled, 4) if self.labelled else None,
                "n_labelled": self.labelled,
                "predicted_counts": dict(sorted(self.predicted_counts.items())),
                "mean_probability": round(self.probability_sum / scored, 4) if scored else None,
                "attributes": self._attribute_table(run.get("class_names"))},
            "canonical_face": self.canonical.summary(),
            "patches": self.patches.summary(),
            "examples": self.examples.summary(),
            "views": self.patches.views(),
            "browser": self.browser.summary(),
            "faithfulness": faithfulness_summary(self.faithfulness, context["run"].get("baseline", "mean")),
            "sanity": sanity_summary(self.sanity),
        }
        if verifying:
            sections["verification"] = self.similarity.summary(self.group_keys)
        results: schema.ResultsDict = {**sections, "findings": findings(sections)}
        return shareable(results, context)  # no folder of this machine in what is shared (unless --full-paths)

    def _attribute_table(self, names: list[str] | None) -> list[schema.AttributeRow] | None:
        """Multi-label models: per attribute, accuracy of "present when probability > 0.5" against its own
        annotation column, and how often it is predicted and truly present (among labelled images)."""
        if self.attributes is None:
            return None
        counts = self.attributes
        names = names or [str(k) for k in range(len(counts["labelled"]))]
        rows: list[schema.AttributeRow] = []
        for k, name in enumerate(names):
            labelled = int(counts["labelled"][k])
            rate = {kind: round(float(counts[kind][k]) / labelled, 4) if labelled else None
                    for kind in ("correct", "predicted", "present")}
            rows.append({"name": name, "n_labelled": labelled, "accuracy": rate["correct"],
                         "predicted_rate": rate["predicted"], "true_rate": rate["present"]})
        return rows

    def _comparisons(self, columns: list[str]) -> list[schema.Comparison]:
        """For each group column: every other value against the first (sorted) value."""
        comparisons: list[schema.Comparison] = []
        for column in columns:
            keys = sorted(k for k in self.groups if self.group_keys[k][0] == column)
            for other in keys[1:]:
                a, b = self.groups[keys[0]], self.groups[other]
                comparisons.append({"column": column, "a": keys[0], "b": other, "n_a": a.images, "n_b": b.images,
                                    "regions": compare(a, b)})
        return comparisons


def save_partial(state: RunState, context: RunContext, path: Path) -> None:
    """Write the state and its run context atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"format": FORMAT, "context": context, "state": state.to_dict()}))
    os.replace(temporary, path)


def load_partial(path: Path) -> tuple[RunState, RunContext]:
    """(state, context) from a file written by ``save_partial``; InputError names a bad file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError("not a reportgen partial-results file")
        return RunState.from_dict(data["state"]), data["context"]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a readable reportgen partial-results file ({error})") from None


def merge_partials(paths: list[Path]) -> schema.ResultsDict:
    """Add up the parts of a sharded run and finish them into the results dict."""
    if not paths:
        raise InputError("give the part files to merge")
    state, context = load_partial(paths[0])
    for path in paths[1:]:
        other, other_context = load_partial(path)
        if other_context.get("fingerprint") != context.get("fingerprint"):
            raise InputError(f"{path}: made with other inputs or options than {paths[0]}; "
                             "merge only the shards of one run")
        state.merge(other)
    return state.results(context)
