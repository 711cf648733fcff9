"""The pipeline: dataset + model -> attribution maps + face regions -> region scores -> results dict.

``analyze`` is the whole analysis; it returns plain data (see docs/results.md) and writes nothing.
Rendering that data to HTML or JSON is a separate step (``reportgen.report``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import __version__
from .errors import InputError
from .explain.attribution import BASELINES, METHODS, Method, make_method
from .explain.check_passes import CascadeStep, deletion_curves, randomisation_cascade
from .explain.heads import ExplainedModel, Head, OutputChoice, choose_head, choose_output, resolve_target_class
from .explain.methods import method_settings
from .faces.canonical import warp_batch
from .faces.images import ImagePreparer, Rows, prepared_batches
from .faces.landmarks import LandmarkCache, default_cache_dir
from .faces.regions import REGION_IDS
from .inputs.config import RunConfig, make_config
from .inputs.dataset import label_values
from .inputs.model import LayerInfo, describe_layers, pick_layer, use_channels_last
from .inputs.preprocess import Preprocessing, measure_geometry
from .inputs.run_inputs import GivenObjects, RunInputs, require_inputs, resolve_inputs, split_objects
from .results import Results, schema
from .results.checks import cascade_subset, sample_rows, sanity_record
from .results.manifest import build_manifest
from .results.privacy import machine_folders
from .results.scores import batch_scores, bootstrap_weights, region_scores, region_sums
from .results.state import RunContext, RunState, ScoredBatch, load_partial, save_partial

if TYPE_CHECKING:  # explain/verification.py builds on this module
    from .explain.verification import SimilarityModel

Progress = Callable[[int, int], None]


def _input_shape(preprocessing: Preprocessing) -> tuple[tuple[int, int], int]:
    """((height, width), channels) of the model's input, as the transform makes it."""
    geometry = measure_geometry(preprocessing, (256, 256))
    return geometry.input_size, geometry.channels


def _versions() -> schema.Tool:
    import captum
    import dlib

    return {"name": "reportgen", "version": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "captum": captum.__version__, "dlib": dlib.__version__,
            "numpy": np.__version__}


def _check_device(device: str) -> torch.device:
    """The torch device for --device; ``auto``: CUDA when available, else Apple's MPS, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here; use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: Apple's MPS is not available here; use --device cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise InputError(f"--device {device!r}: use auto, cpu, cuda (or cuda:N) or mps")
    return torch.device(device)


def run_context(config: RunConfig, dataset, setup: ModelSetup, preprocessing: Preprocessing, device,
                inputs: RunInputs | None = None) -> RunContext:
    """What a run is, apart from its images: the report's run summary, the config, the tool versions,
    and a fingerprint of the inputs so that only matching partial states are resumed or merged.
    ``inputs``: where the dataset, model and transform came from (files or objects, see run_inputs)."""
    layer, head, input_size = setup.layer, setup.head, setup.input_size
    shown = inputs.shown if inputs else {
        "images": str(config.images), "annotations": str(config.annotations), "model_file": str(config.model_file),
        "model_name": config.model_class or config.model_var or "model", "weights": str(config.weights)}
    run: schema.RunSetup = {
        "target": config.target, "target_class": setup.target_class, "target_class_name": setup.target_class_name,
        "head": head.kind, "head_detail": head.describe(), "head_source": head.source, "head_reason": head.reason,
        "outputs": head.outputs, "classes": head.classes,
        "class_names": list(head.class_names) if head.class_names else None,
        "output": setup.output.description, "label_column": setup.label_column,
        "layer": layer.name if layer else None,
        "layer_source": "option" if config.layer else "default", "layer_type": layer.kind if layer else None,
        "layer_shape": list(layer.output_shape) if layer and layer.output_shape is not None else None,
        "layer_grid": ([layer.layout.rows, layer.layout.columns] if layer and layer.layout else None),
        "layer_layout": layer.layout.kind if layer and layer.layout else None,
        "input_channels": setup.channels, "method": config.method, "baseline": config.baseline,
        "task": "verification" if verifying(config) else "classification",
        "pairs": bool(config.pairs), "reference": str(config.reference) if config.reference else None,
        "threshold": config.threshold,
        "samples": config.samples, "bootstrap": config.bootstrap, "check_images": config.check_images,
        "method_settings": method_settings(input_size),
        "interval": (f"bootstrap over images ({config.bootstrap} resamples)" if config.bootstrap
                     else "Student t over images"),
        "images": shown["images"], "annotations": shown["annotations"], "annotation_format": dataset.format,
        "model_file": shown["model_file"], "model_name": shown["model_name"], "weights": shown["weights"],
        "transform": preprocessing.description, "input_size": list(input_size),
        "protected": list(config.protected), "device": str(device), "batch_size": config.batch_size,
        "workers": config.workers, "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    notes = list(inputs.notes) if inputs else []
    if dataset.missing:
        notes.append(f"{len(dataset.missing)} annotation row(s) point to missing files (listed under failures)")
    versions = _versions()
    manifest = build_manifest(config, versions, inputs=inputs.manifest if inputs else None)
    # "machine": the folders that say whose machine this is, which the shared results leave out (privacy.py).
    return {"run": run, "tool": versions, "config": config.to_dict(), "notes": notes,
            "fingerprint": run_fingerprint(config, manifest["inputs"]), "manifest": manifest,
            "machine": machine_folders()}


# Options that do not change what is computed: outputs, batch size, how paths are shown, where and how the
# run is spread.
NOT_FINGERPRINTED = ("out", "json", "partial", "shard", "resume", "workers", "batch_size", "device", "cache_dir",
                     "no_cache", "full_paths", "checkpoint_seconds", "dask", "shards")


def run_fingerprint(config: RunConfig, inputs: dict) -> str:
    """sha256 over the options that change the results and the input files (``inputs``: manifest["inputs"]);
    only partial states with the same fingerprint are resumed or merged."""
    same_when = {k: v for k, v in config.to_dict().items() if k not in NOT_FINGERPRINTED}
    # The manifest already holds the sha256 of the annotation, model, weights and transform files, and of the
    # model's parameters (which is all there is to compare for a model given as an object).
    digests = {name: (entry or {}).get("sha256") or (entry or {}).get("parameters_sha256") or (entry or {}).get("repr")
               for name, entry in inputs.items()}
    return hashlib.sha256(json.dumps({"options": same_when, "files": digests}, sort_keys=True).encode()).hexdigest()


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4): the second of four shards (1-based)."""
    if not text:
        return None
    try:
        part, parts = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: write it as I/N, e.g. 2/4 for the second of four shards") from None
    if not 1 <= part <= parts:
        raise InputError(f"--shard {text!r}: I must be between 1 and N")
    return part, parts


def checkpoint_path(config: RunConfig) -> Path | None:
    """Where a run keeps its partial state: --partial, or for a shard beside the report
    (report.shard-2-of-4.partial.json). None: no checkpoints (the Python API's default; the CLI
    passes --partial report.partial.json so that an interrupted command resumes)."""
    if config.partial:
        return Path(config.partial)
    shard = parse_shard(config.shard)
    if shard is None:
        return None
    out = Path(config.out)
    return out.with_name(f"{out.stem}.shard-{shard[0]}-of-{shard[1]}.partial.json")


def choose_workers(requested: int | None) -> int:
    """--workers when given; by default one worker process per spare core (at most 4), and none on a machine
    with two cores or fewer: there the model's two threads already fill both cores, so a worker only adds
    the hand-over of tensors and pictures (measured in docs/scaling.md: in-process is faster on first runs
    and on re-runs alike)."""
    if requested is not None:
        return requested
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores - 1)


class _Rows(Rows):
    """The rows of the dataset this run still has to process (a shard, or what a resumed run has left)."""

    def __init__(self, preparer, indices: list[int]):
        self.preparer, self.indices = preparer, indices

    def __len__(self) -> int:
        return len(self.indices)

    def prepare(self, position: int):
        return self.preparer.prepare(self.indices[position])


def analyze(config: RunConfig | None = None, progress: Progress | None = None, **options) -> Results:
    """Run the whole analysis and return the results (docs/results.md): a dict that also shows itself
    in Jupyter.

    Give a RunConfig, or the same options as keywords (``analyze(images=..., annotations=..., ...)``).
    Inputs may be Python objects instead of files: ``model=`` a torch.nn.Module (with ``weights=`` a
    state_dict file, or its own parameters), ``transform=`` a callable, ``images=`` a list of image
    paths (no labels) or ``annotations=`` a table, as a list of row dicts or a dict of columns whose
    first column holds image paths relative to ``images`` (see reportgen.inputs.run_inputs).
    ``progress(done, total)`` is called after every batch. Raises InputError for bad inputs before
    any heavy work; a bad image inside the dataset is recorded as a failure and the run goes on.
    With ``shard="I/N"`` only every N-th image is processed and the partial state is saved (see
    ``reportgen.results.state``); finish it with ``merge_partials``. A run that finds a matching checkpoint
    (``resume=True``, the default) continues from it. With ``dask="local"`` or a scheduler's address the
    shards run on a Dask cluster and are merged here (``reportgen.cluster``).
    """
    options, given = split_objects(options)
    config = config or make_config(**options)
    if config.dask:  # the shards run on a Dask cluster; this process merges them
        from .cluster import remove_parts, run_on_dask

        if any(value is not None for value in vars(given).values()):
            raise InputError("dask: the Dask workers load the inputs from files; give model_file=, transform=, "
                             "images= (a folder) and annotations= (a file) rather than Python objects")
        results = run_on_dask(config, progress)
        remove_parts(config)
        return Results(results)
    state, context = run_analysis(config, progress, given)
    return Results(state.results(context))


def run_analysis(config: RunConfig, progress: Progress | None = None, given: GivenObjects | None = None):
    """The analysis itself: returns (RunState, context), saving checkpoints on the way. ``given``: inputs
    passed as Python objects instead of files."""
    started = time.time()
    torch.manual_seed(0)  # the same inputs give the same results (methods with randomness draw from here)
    require_inputs(config, given)
    if config.method not in METHODS:
        raise InputError(f"--method {config.method!r}: available methods are {', '.join(METHODS)}")
    if config.baseline not in BASELINES:
        raise InputError(f"--baseline {config.baseline!r}: use one of {', '.join(BASELINES)}")
    for name in ("samples", "bootstrap", "check_images"):
        if getattr(config, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be 0 (off) or more")
    if config.bootstrap == 1:
        raise InputError("--bootstrap 1: one resample gives no interval; use 0 (t intervals) or e.g. 1000")
    if config.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if config.workers is not None and config.workers < 0:
        raise InputError("--workers must be 0 (no extra processes) or more")
    shard = parse_shard(config.shard)
    device = _check_device(config.device)

    if config.pairs and config.reference:
        raise InputError("--pairs and --reference: give one; pairs compare the two images of each row, a reference "
                         "photo is compared with every image")
    inputs = resolve_inputs(config, given)  # from files or objects
    dataset, true_labels, model, preprocessing = inputs.dataset, inputs.labels, inputs.model, inputs.preprocessing
    setup = set_up_model(model, config, dataset, preprocessing)
    if setup.label_column != config.target and setup.label_column is not None:
        true_labels = label_values(dataset, setup.label_column)  # a multi-label model's explained attribute
    # Pairs are explained on both images: half as many sampled pairs give the usual number of checked images.
    check_rows = sample_rows(len(dataset), config.check_images // 2 if config.pairs else config.check_images)
    explainer: Explainer
    if verifying(config):
        from .explain.verification import SimilarityModel, VerificationExplainer

        similarity = SimilarityModel(model, setup.output).to(device)
        channels_last = use_channels_last(similarity, setup.input_size, device, setup.channels, similarity.embed)
        explainer = VerificationExplainer(similarity, setup, config, device, check_rows, channels_last)
    else:
        explained = ExplainedModel(model, setup.output, setup.head).to(device)
        channels_last = use_channels_last(explained, setup.input_size, device, setup.channels)
        explainer = Explainer(explained, setup, config, device, check_rows, channels_last)
        explainer.attribute_labels = _attribute_labels(dataset, setup)
    context = run_context(config, dataset, setup, preprocessing, device, inputs)
    context["run"]["channels_last"] = channels_last

    checkpoint = checkpoint_path(config)
    state = None
    if checkpoint and config.resume and checkpoint.exists():
        try:
            saved, saved_context = load_partial(checkpoint)
            if saved_context.get("fingerprint") == context["fingerprint"] and saved.total == len(dataset):
                state = saved
        except InputError:
            state = None  # an unreadable checkpoint is only lost time, never a reason to stop
    state = state or RunState(len(dataset), config.patches, config.bootstrap, images_per_row=2 if config.pairs else 1,
                              threshold=config.threshold if verifying(config) else None)
    wanted = range(len(dataset)) if shard is None else range(shard[0] - 1, len(dataset), shard[1])
    todo = [i for i in wanted if not state.done[i]]

    cache = LandmarkCache(None if config.no_cache else (config.cache_dir or default_cache_dir()))
    preparer = explainer.preparer(ImagePreparer(dataset, preprocessing, cache, config.bootstrap), dataset)
    workers = choose_workers(config.workers) if inputs.portable else 0  # see run_inputs.crosses_processes
    context["run"]["workers"] = workers
    total, done = len(wanted), len(wanted) - len(todo)
    last_save = time.time()
    seconds_before = state.seconds
    for prepared in prepared_batches(_Rows(preparer, todo), config.batch_size, workers):
        for item in explainer.images_in(prepared):
            state.detector_calls += item.detected
            if item.face is not None:
                state.detection[item.face.detection] += 1
                state.several_faces += item.face.faces_found > 1
            if item.notes and not item.failure:
                state.add_notes(item.index, item.image, item.notes)
        explainer.explain_batch(prepared, state, dataset, true_labels)
        done += len(prepared)
        state.seconds = seconds_before + time.time() - started
        if checkpoint and time.time() - last_save > config.checkpoint_seconds and done < total:
            save_partial(state, context, checkpoint)
            last_save = time.time()
        if progress:
            progress(done, total)
    if shard is not None:
        assert checkpoint is not None  # checkpoint_path gives every shard its part file
        save_partial(state, context, checkpoint)
    elif checkpoint and checkpoint.exists():
        checkpoint.unlink()  # finished: the results supersede the checkpoint
    return state, context


class Explainer:
    """The model's side of a run: attribution maps for a batch of prepared images, their region scores,
    and the faithfulness and sanity checks for the images in the check sample."""

    def __init__(self, model: ExplainedModel | SimilarityModel, setup: ModelSetup, config: RunConfig, device,
                 check_rows: set[int], channels_last: bool = False):
        self.model, self.setup, self.config, self.device, self.check_rows = model, setup, config, device, check_rows
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.method = self._method(model)
        # The sanity check's randomised models with their methods, made when first needed.
        self._cascade: list[tuple[CascadeStep[ExplainedModel | SimilarityModel], Method]] | None = None
        # An expensive method (many passes per image) runs the cascade's earlier steps on a subset only.
        self.cascade_rows = check_rows if self.method.single_forward else cascade_subset(check_rows)
        # Multi-label models: every attribute's true 0/1 per dataset row (-1 unlabelled), for per-attribute accuracy.
        self.attribute_labels: np.ndarray | None = None

    def _method(self, model: ExplainedModel | SimilarityModel) -> Method:
        layer = self.setup.layer
        module = dict(model.model.named_modules())[layer.name] if layer else None
        return make_method(self.config.method, model, module, baseline=self.config.baseline,
                           samples=self.config.samples, layout=layer.layout if layer else None)

    def preparer(self, images: ImagePreparer, dataset):
        """What prepares one row of the dataset: here the row's image (a verification run: its pair)."""
        return images

    def images_in(self, prepared: list) -> list:
        """The prepared images of a batch of prepared rows (for the face-finding counts and notes)."""
        return prepared

    def explain_batch(self, prepared: list, state: RunState, dataset, true_labels) -> None:
        """Everything the model does for one prepared batch: here, explain the images whose face was found
        (a verification run also measures every pair's similarity; see verification.VerificationExplainer)."""
        for item in prepared:
            if item.failure:
                state.add_failure(item.index, item.image, item.failure)
        ready = [item for item in prepared if item.failure is None]
        if ready:
            self.explain(ready, state, dataset, true_labels)

    def targets_for(self, scores: torch.Tensor) -> torch.Tensor:
        """(B,) the class explained for each image: ``--target-class``, else the predicted class."""
        explained = self.setup.target_class
        return scores.argmax(1) if explained is None else torch.full((len(scores),), explained, dtype=torch.long)

    def outcomes(self, ready: list, scores: torch.Tensor) -> list[dict]:
        """Per image, what the report says of the model's answer: the prediction and its probability."""
        predictions, confidence = self.setup.head.predictions(scores, self.setup.target_class)
        return [{"prediction": int(p), "probability": round(float(c), 4)} for p, c in zip(predictions, confidence)]

    def groups_of(self, item, dataset, label) -> dict[str, str]:
        """The image's value in each group column (``--protected``)."""
        return {column: dataset.columns[column][item.index] for column in self.config.protected}

    def nothing_for(self, target: int) -> str:
        return f"no evidence for class {target} with {self.config.method}"

    def explain(self, ready, state: RunState, dataset, true_labels, extra: tuple = ()) -> None:
        """Score one batch of prepared images and add them to the state. ``extra``: more per-image inputs of
        the model (a verification model's partner embeddings), aligned with ``ready``.

        After the model, the batch is scored as a whole on the model's device (region sums, the average-face
        warp) and brought to the CPU once (docs/scaling.md); what needs no model came with the prepared images."""
        head = self.setup.head
        batch = torch.stack([item.tensor for item in ready]).to(self.device).contiguous(
            memory_format=self.memory_format)
        regions = torch.from_numpy(np.stack([item.labels for item in ready]))
        explanation, scores_out = _explain(self.model, self.method, batch, regions, self.setup.target_class,
                                           extra=extra)
        targets = self.targets_for(scores_out)
        outcomes = self.outcomes(ready, scores_out)
        maps = explanation.maps  # (B, H, W), still on the model's device
        if maps.device.type == "mps":
            maps = maps.cpu()  # Apple's MPS has no float64, which the sums need: they run on the CPU there
        sums = region_sums(maps, regions.to(maps.device))
        controls = torch.from_numpy(np.stack([item.control for item in ready])).to(maps.device)
        warped, inside = warp_batch(maps, controls, sums.sum(1))
        # To the CPU once per batch: the maps (for the report's pictures), region sums and warped maps.
        maps, sums, warped, inside = (t.cpu().numpy() for t in (maps, sums, warped, inside))
        effects = None if explanation.effects is None else explanation.effects.cpu().numpy()
        scores, scored = batch_scores(sums, np.stack([item.areas for item in ready]), effects)
        kept = []
        for j, item in enumerate(ready):
            if scored[j]:
                kept.append(j)
            else:
                state.add_failure(item.index, item.image, f"the attribution map is zero everywhere "
                                  f"({self.nothing_for(int(targets[j]))})")
        labels = [true_labels[ready[j].index] for j in kept]
        pictures = torch.from_numpy(maps)
        state.add_batch(ScoredBatch(
            rows=[ready[j].index for j in kept], scores={metric: values[kept] for metric, values in scores.items()},
            maps=[maps[j].copy() for j in kept], warped=warped[kept], inside=inside[kept],
            aligned=sums[kept].sum(1) > 0, landmarks=[ready[j].landmarks for j in kept],
            labels=[ready[j].labels for j in kept],
            groups=[self.groups_of(ready[j], dataset, label) for j, label in zip(kept, labels)],
            infos=[{"image": ready[j].image, "label": None if label is None else str(label), **outcomes[j]}
                   for j, label in zip(kept, labels)],
            true_labels=labels, seen=[ready[j].seen for j in kept], weights=self._weights([ready[j] for j in kept]),
            partners=[self.partner_picture(ready[j], ready, pictures) for j in kept]))
        if self.attribute_labels is not None:
            for j in kept:
                state.add_attributes(self.attribute_labels[ready[j].index],
                                     head.attribute_predictions(scores_out[j:j + 1])[0].numpy())
        # The check sample's images (an image with nothing to share out has no top region).
        checked = [j for j in kept if ready[j].index in self.check_rows and np.isfinite(scores["density"][j]).any()]
        if checked:
            rows = [ready[j].index for j in checked]
            per_image = [{metric: values[j] for metric, values in scores.items()} for j in checked]
            self._check(checked, rows, per_image, batch, targets, regions.long(), state, extra=extra)

    def _weights(self, items: list) -> np.ndarray | None:
        """(k, replicates) bootstrap weights of the images: the prepare stage's (seeded by the dataset row),
        or drawn here where ``bootstrap_row`` picks another seed."""
        if not self.config.bootstrap or not items:
            return None
        return np.stack([item.weights if item.weights is not None and self.bootstrap_row(item) == item.index
                         else bootstrap_weights(self.bootstrap_row(item), self.config.bootstrap) for item in items])

    def partner_picture(self, item, ready: list, maps: torch.Tensor) -> tuple | None:
        """The picture an image is shown beside (face verification: its pair's other image); None here."""
        return None

    def bootstrap_row(self, item) -> int:
        """The number that seeds the image's bootstrap weights: its dataset row."""
        return item.index

    def _check(self, positions, rows, scores, batch, targets, regions, state: RunState, extra: tuple = ()) -> None:
        """Faithfulness (deletion curves) and sanity (cascading randomisation) for the sampled images: their
        positions in the batch, their dataset rows and their region scores; ``extra``: the batch's per-image
        model inputs beyond the images (none for a classifier)."""
        count = len(REGION_IDS)
        picked = torch.tensor(positions)  # a CPU index: it picks from the batch (any device) and the CPU labels
        inputs, wanted, labels = batch[picked], targets[picked].to(batch.device), regions[picked]
        extra = tuple(tensor[picked.to(tensor.device)] for tensor in extra)
        densities = np.stack([s["density"][:count] for s in scores])
        areas = np.stack([s["area"][:count] for s in scores])
        state.faithfulness += deletion_curves(self.model, inputs, wanted, labels, densities, areas, rows,
                                              self.config.baseline, extra, batch_size=2 * self.config.batch_size)
        if self._cascade is None:
            steps = randomisation_cascade(self.model, inputs[:1], tuple(e[:1] for e in extra))
            self._cascade = [(step, self._method(step.model)) for step in steps]
        randomised = []  # per step: each image's randomised region densities (None: zero map, or not run)
        skipped = []  # per step: which images it was not run on (an expensive method's earlier steps)
        last = len(self._cascade) - 1
        for index, (_step, method) in enumerate(self._cascade):
            run = [k for k, row in enumerate(rows) if index == last or row in self.cascade_rows]
            skipped.append([k not in run for k in range(len(rows))])
            densities_of_step: list = [None] * len(rows)
            if run:
                chosen = torch.tensor(run)
                explanation, _ = _explain(method.model, method, inputs[chosen], labels[chosen], None, wanted[chosen],
                                              tuple(tensor[chosen.to(tensor.device)] for tensor in extra))
                for position, k in enumerate(run):
                    effects = None if explanation.effects is None else explanation.effects[position].cpu().numpy()
                    other = region_scores(explanation.maps[position].cpu().numpy().astype(np.float64), labels[k].numpy(),
                                          effects)
                    densities_of_step[k] = None if other is None else other["density"][:count]
            randomised.append(densities_of_step)
        names = [step.name for step, _ in self._cascade]
        for k, row in enumerate(rows):
            state.sanity.append(sanity_record(row, densities[k], [step[k] for step in randomised], names,
                                              [step[k] for step in skipped]))


@dataclass
class ModelSetup:
    """What was decided about the model before any image: its input, which output and head read it, which
    class is explained, which layer the layer methods use, and which annotation column holds true labels."""

    input_size: tuple[int, int]  # model-input (height, width)
    channels: int  # model-input channels (3 RGB, 1 grayscale...)
    output: OutputChoice
    head: Head
    target_class: int | None  # None: each image's predicted class
    layer: LayerInfo | None  # None only for methods that need no layer, on a model with no grid layer
    label_column: str | None  # the true labels of the explained class (--target, or a multi-label model's
    # attribute); None: no labels (no --target)

    @property
    def target_class_name(self) -> str | None:
        names = self.head.class_names
        return names[self.target_class] if names and self.target_class is not None else None


def set_up_model(model: torch.nn.Module, config: RunConfig, dataset, preprocessing: Preprocessing) -> ModelSetup:
    """Probe the model once to decide its output, head, class and layer (``ModelSetup``); InputError for a
    model whose output cannot be read as class scores, a class it does not have, or a layer that cannot
    be explained."""
    geometry = measure_geometry(preprocessing, (256, 256))
    input_size, channels = geometry.input_size, geometry.channels
    try:
        with torch.no_grad():
            raw = model(torch.zeros(1, channels, *input_size))
    except Exception as error:
        kind = "RGB" if channels == 3 else f"{channels}-channel"
        raise InputError(f"--model-file {config.model_file}: the model fails on a {input_size[0]}x{input_size[1]} "
                         f"{kind} input (the transform's output): {type(error).__name__}: {error}; check the "
                         "transform's image size and channels (--transform or --image-size) against the input the "
                         "model was built for") from None
    output = choose_output(raw, config.output)
    label_column = config.target
    target_class: int | None
    if verifying(config):
        from .explain.verification import similarity_head

        head, target_class = similarity_head(raw, output, config)
    else:
        scores = output.pick(raw)
        if scores.ndim not in (1, 2):
            raise InputError(f"the model's output ({output.description}) has shape {tuple(scores.shape)} for one "
                             "image; reportgen needs class scores of shape (batch, classes)"
                             + ("; pick another element with --output" if output.key is not None else ""))
        outputs = 1 if scores.ndim == 1 else int(scores.shape[1])
        head = choose_head(config.head, outputs, dataset.format, list(dataset.columns))
        target_class = resolve_target_class(config.target_class, head, config.target)
        if (head.multi_label and head.class_names and target_class is not None
                and head.class_names[target_class] in dataset.columns):
            label_column = head.class_names[target_class]  # the explained attribute's own column
    layers = describe_layers(model, input_size, channels, output)
    needs_layer = METHODS[config.method].about.needs_layer
    try:
        layer = pick_layer(layers, config.layer)
    except InputError:
        if needs_layer or config.layer:
            raise
        layer = None  # integrated gradients, occlusion and region ablation work on the input
    return ModelSetup(input_size, channels, output, head, target_class, layer, label_column)


def verifying(config: RunConfig) -> bool:
    """A face-verification run: image pairs (--pairs) or a reference photo (--reference)."""
    return bool(config.pairs or config.reference)


def _attribute_labels(dataset, setup: ModelSetup) -> np.ndarray | None:
    """(images, outputs) true 0/1 value of every attribute of a multi-label model whose outputs are named by
    the annotation's columns; -1 where unlabelled. None for other heads."""
    names = setup.head.class_names
    if not setup.head.multi_label or not names or not all(name in dataset.columns for name in names):
        return None
    labels = np.full((len(dataset), len(names)), -1, dtype=np.int8)
    for k, name in enumerate(names):
        try:
            values = label_values(dataset, name)
        except InputError:
            continue  # a column that is not 0/1: its accuracy is not computed
        labels[:, k] = [-1 if v is None or v not in (0, 1) else v for v in values]
    return labels


def _explain(model, method, batch: torch.Tensor, regions: torch.Tensor, target_class: int | None,
             targets: torch.Tensor | None = None, extra: tuple = ()):
    """(Explanation with maps (B, H, W) on the model's device, the model's logits (B, K) on the CPU), in as few
    passes as possible. Targets: ``targets`` if given, else ``target_class``, else each image's prediction."""
    if (targets is None and target_class is None) or not method.single_forward:
        with torch.no_grad():
            logits = model(batch, *extra)
        if targets is None:
            targets = logits.argmax(1) if target_class is None else torch.full(
                (len(batch),), target_class, dtype=torch.long, device=batch.device)
        explanation = method.attribute(batch, targets, regions, extra)
    else:
        if targets is None:
            assert target_class is not None  # (the first branch explains each image's predicted class)
            targets = torch.full((len(batch),), target_class, dtype=torch.long, device=batch.device)
        captured: dict[str, torch.Tensor] = {}
        # A CAM's own single forward pass already computes the logits: keep them instead of a second pass.
        def keep_logits(_module, _inputs, output):
            captured.setdefault("logits", output.detach())  # returns None: a return value would replace the output

        handle = model.register_forward_hook(keep_logits)
        try:
            explanation = method.attribute(batch, targets, regions, extra)
        finally:
            handle.remove()
        logits = captured["logits"]
    return explanation, logits.cpu()
