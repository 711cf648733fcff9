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
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__
from .attribution import BASELINES, METHODS, make_method
from .checks import deletion_drops, randomised_copy, sample_rows, sanity_record
from .config import RunConfig, make_config
from .dataset import label_values, read_dataset
from .errors import InputError
from .images import ImagePreparer, prepared_batches
from .landmarks import LandmarkCache, default_cache_dir
from .manifest import build_manifest
from .method_settings import method_settings
from .model import describe_layers, load_model, load_weights, pick_layer, use_channels_last
from .preprocess import Preprocessing, build_transform, load_transform, measure_geometry
from .regions import REGION_IDS
from .scores import bootstrap_weights, region_scores
from .state import RunState, load_partial, save_partial

Progress = Callable[[int, int], None]


def _preprocessing(config: RunConfig) -> Preprocessing:
    if config.transform:
        return load_transform(config.transform)
    return build_transform(config.image_size, config.mean, config.std)


def _input_size(preprocessing: Preprocessing) -> tuple[int, int]:
    return measure_geometry(preprocessing, (256, 256)).input_size


def _versions() -> dict:
    import captum
    import dlib

    return {"name": "reportgen", "version": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "captum": captum.__version__, "dlib": dlib.__version__,
            "numpy": np.__version__}


def _check_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here; use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: Apple's MPS is not available here; use --device cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise InputError(f"--device {device!r}: use cpu, cuda (or cuda:N) or mps")
    return torch.device(device)


def run_context(config: RunConfig, dataset, layer, preprocessing: Preprocessing, input_size, device) -> dict:
    """What a run is, apart from its images: the report's run summary, the config, the tool versions,
    and a fingerprint of the inputs so that only matching partial states are resumed or merged."""
    run = {
        "target": config.target, "target_class": config.target_class, "layer": layer.name,
        "layer_source": "option" if config.layer else "default", "layer_type": layer.kind,
        "layer_shape": list(layer.output_shape), "method": config.method, "baseline": config.baseline,
        "samples": config.samples, "bootstrap": config.bootstrap, "check_images": config.check_images,
        "method_settings": method_settings(tuple(input_size)),
        "interval": (f"bootstrap over images ({config.bootstrap} resamples)" if config.bootstrap
                     else "Student t over images"),
        "images": str(config.images), "annotations": str(config.annotations),
        "annotation_format": dataset.format, "model_file": str(config.model_file),
        "model_name": config.model_class or config.model_var or "model", "weights": str(config.weights),
        "transform": preprocessing.description, "input_size": list(input_size),
        "protected": list(config.protected), "device": str(device), "batch_size": config.batch_size,
        "workers": config.workers, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    notes = []
    if dataset.missing:
        notes.append(f"{len(dataset.missing)} annotation row(s) point to missing files (listed under failures)")
    versions = _versions()
    manifest = build_manifest(config, versions)
    return {"run": run, "tool": versions, "config": config.to_dict(), "notes": notes,
            "fingerprint": run_fingerprint(config, manifest["inputs"]), "manifest": manifest}


# Options that do not change what is computed: outputs, batch size, where and how the run is spread.
NOT_FINGERPRINTED = ("out", "json", "partial", "shard", "resume", "workers", "batch_size", "device", "cache_dir",
                     "no_cache", "checkpoint_seconds", "dask", "shards")


def run_fingerprint(config: RunConfig, inputs: dict) -> str:
    """sha256 over the options that change the results and the sha256 of the input files (``inputs``:
    manifest["inputs"]); only partial states with the same fingerprint are resumed or merged."""
    same_when = {k: v for k, v in config.to_dict().items() if k not in NOT_FINGERPRINTED}
    digests = {name: (entry or {}).get("sha256") for name, entry in inputs.items()}
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
    if not config.shard:
        return None
    out = Path(config.out)
    shard = parse_shard(config.shard)
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


class _Rows(torch.utils.data.Dataset):
    """The rows of the dataset this run still has to process (a shard, or what a resumed run has left)."""

    def __init__(self, preparer: ImagePreparer, indices: list[int]):
        self.preparer, self.indices = preparer, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        return self.preparer.prepare(self.indices[position])

    prepare = __getitem__


def analyze(config: RunConfig | None = None, progress: Progress | None = None, **options) -> dict:
    """Run the whole analysis and return the results dict (docs/results.md).

    Give a RunConfig, or the same options as keywords (``analyze(images=..., annotations=..., ...)``).
    ``progress(done, total)`` is called after every batch. Raises InputError for bad inputs before
    any heavy work; a bad image inside the dataset is recorded as a failure and the run goes on.
    With ``shard="I/N"`` only every N-th image is processed and the partial state is saved (see
    ``reportgen.state``); finish it with ``merge_partials``. A run that finds a matching checkpoint
    (``resume=True``, the default) continues from it. With ``dask="local"`` or a scheduler's address the
    shards run on a Dask cluster and are merged here (``reportgen.cluster``).
    """
    config = config or make_config(**options)
    if config.dask:  # the shards run on a Dask cluster; this process merges them
        from .cluster import remove_parts, run_on_dask

        results = run_on_dask(config, progress)
        remove_parts(config)
        return results
    state, context = run_analysis(config, progress)
    return state.results(context)


def run_analysis(config: RunConfig, progress: Progress | None = None):
    """The analysis itself: returns (RunState, context), saving checkpoints on the way."""
    started = time.time()
    torch.manual_seed(0)  # the same inputs give the same results (methods with randomness draw from here)
    for name in ("images", "annotations", "target", "model_file", "weights"):
        if getattr(config, name) in (None, ""):
            raise InputError(f"--{name.replace('_', '-')} is required")
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

    dataset = read_dataset(config.images, config.annotations,
                           {**{column: "--protected" for column in config.protected}, config.target: "--target"})
    true_labels = label_values(dataset, config.target)
    model = load_model(config.model_file, config.model_var, config.model_class)
    load_weights(model, config.weights)
    model.eval()
    preprocessing = _preprocessing(config)
    input_size = _input_size(preprocessing)
    layers = describe_layers(model, input_size)
    layer = pick_layer(layers, config.layer)
    outputs = layers_output_count(model, input_size)
    if config.target_class is not None and not 0 <= config.target_class < outputs:
        raise InputError(f"--target-class {config.target_class}: the model has {outputs} outputs "
                         f"(classes 0 to {outputs - 1})")
    model.to(device)
    channels_last = use_channels_last(model, input_size, device)
    explainer = Explainer(model, layer.name, config, device, sample_rows(len(dataset), config.check_images),
                          channels_last)
    context = run_context(config, dataset, layer, preprocessing, input_size, device)
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
    state = state or RunState(len(dataset), config.patches, config.bootstrap)
    wanted = range(len(dataset)) if shard is None else range(shard[0] - 1, len(dataset), shard[1])
    todo = [i for i in wanted if not state.done[i]]

    cache = LandmarkCache(None if config.no_cache else (config.cache_dir or default_cache_dir()))
    preparer = ImagePreparer(dataset, preprocessing, cache)
    workers = choose_workers(config.workers)
    context["run"]["workers"] = workers
    total, done = len(wanted), len(wanted) - len(todo)
    last_save = time.time()
    seconds_before = state.seconds
    for prepared in prepared_batches(_Rows(preparer, todo), config.batch_size, workers):
        state.detector_calls += sum(item.detected for item in prepared)
        for item in prepared:
            if item.face is not None:
                state.detection[item.face.detection] += 1
                state.several_faces += item.face.faces_found > 1
            if item.failure:
                state.add_failure(item.index, item.image, item.failure)
            elif item.notes:
                state.add_notes(item.index, item.image, item.notes)
        ready = [item for item in prepared if item.failure is None]
        if ready:
            explainer.explain(ready, state, dataset, true_labels)
        done += len(prepared)
        state.seconds = seconds_before + time.time() - started
        if checkpoint and time.time() - last_save > config.checkpoint_seconds and done < total:
            save_partial(state, context, checkpoint)
            last_save = time.time()
        if progress:
            progress(done, total)
    if shard is not None:
        save_partial(state, context, checkpoint)
    elif checkpoint and checkpoint.exists():
        checkpoint.unlink()  # finished: the results supersede the checkpoint
    return state, context


class Explainer:
    """The model's side of a run: attribution maps for a batch of prepared images, their region scores,
    and the faithfulness and sanity checks for the images in the check sample."""

    def __init__(self, model, layer_name: str, config: RunConfig, device, check_rows: set[int],
                 channels_last: bool = False):
        self.model, self.config, self.device, self.check_rows = model, config, device, check_rows
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.layer_name = layer_name
        self.method = self._method(model)
        self._randomised = None  # the sanity check's model, made when first needed

    def _method(self, model):
        return make_method(self.config.method, model, dict(model.named_modules())[self.layer_name],
                           baseline=self.config.baseline, samples=self.config.samples)

    def explain(self, ready, state: RunState, dataset, true_labels) -> None:
        """Score one batch of prepared images and add them to the state."""
        config = self.config
        batch = torch.stack([item.tensor for item in ready]).to(self.device).contiguous(
            memory_format=self.memory_format)
        regions = torch.from_numpy(np.stack([item.labels for item in ready]).astype(np.int64))
        explanation, logits = _explain(self.model, self.method, batch, regions, config.target_class)
        probabilities = torch.softmax(logits, 1)
        predictions = probabilities.argmax(1)
        targets = predictions if config.target_class is None else torch.full_like(predictions, config.target_class)
        checked = []  # (position in batch, row, scores) of images in the check sample
        for j, item in enumerate(ready):
            attribution = explanation.maps[j].numpy().astype(np.float64)
            effects = None if explanation.effects is None else explanation.effects[j].numpy()
            scores = region_scores(attribution, item.labels, effects)
            if scores is None:
                state.add_failure(item.index, item.image, f"the attribution map is zero everywhere "
                                  f"(no evidence for class {int(targets[j])} with {config.method})")
                continue
            prediction, label = int(predictions[j]), true_labels[item.index]
            info = {"image": item.image, "label": None if label is None else str(label),
                    "prediction": prediction, "probability": round(float(probabilities[j, prediction]), 4)}
            groups = {column: dataset.columns[column][item.index] for column in config.protected}
            weights = bootstrap_weights(item.index, config.bootstrap) if config.bootstrap else None
            state.add_image(item.index, scores, attribution, item.landmarks, item.labels, groups, info, label,
                            item.seen, weights)
            if item.index in self.check_rows and np.isfinite(scores["density"]).any():
                checked.append((j, item.index, scores))  # (an image with nothing to share out has no top region)
        if checked:
            positions, rows, scores = zip(*checked)
            self._check(list(positions), list(rows), scores, batch, targets, regions, probabilities, state)

    def _check(self, positions, rows, scores, batch, targets, regions, probabilities, state: RunState) -> None:
        """Faithfulness (region deletion) and sanity (randomised weights) for the sampled images: their
        positions in the batch, their dataset rows and their region scores."""
        count = len(REGION_IDS)
        picked = torch.tensor(positions)
        inputs, wanted, labels = batch[picked], targets[picked].to(batch.device), regions[picked]
        densities = np.stack([s["density"][:count] for s in scores])
        areas = np.stack([s["area"][:count] for s in scores])
        state.faithfulness += deletion_drops(self.model, inputs, wanted, labels, densities, areas, rows,
                                             self.config.baseline, probabilities[picked])
        if self._randomised is None:
            self._randomised = self._method(randomised_copy(self.model))
        randomised, _ = _explain(self._randomised.model, self._randomised, inputs, labels, None, wanted)
        for k, row in enumerate(rows):
            effects = None if randomised.effects is None else randomised.effects[k].numpy()
            other = region_scores(randomised.maps[k].numpy().astype(np.float64), labels[k].numpy(), effects)
            state.sanity.append(sanity_record(row, densities[k], None if other is None else other["density"][:count]))


def layers_output_count(model: torch.nn.Module, input_size: tuple[int, int]) -> int:
    """How many classes the model outputs (the size of its last dimension)."""
    with torch.no_grad():
        output = model(torch.zeros(1, 3, *input_size))
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise InputError(f"the model's output has shape {tuple(getattr(output, 'shape', ()))}; "
                         "reportgen needs class scores of shape (batch, classes)")
    return int(output.shape[1])


def _explain(model, method, batch: torch.Tensor, regions: torch.Tensor, target_class: int | None,
             targets: torch.Tensor | None = None):
    """(Explanation with maps (B, H, W) on the CPU, the model's logits (B, K) on the CPU), in as few
    passes as possible. Targets: ``targets`` if given, else ``target_class``, else each image's prediction."""
    if (targets is None and target_class is None) or not method.single_forward:
        with torch.no_grad():
            logits = model(batch)
        if targets is None:
            targets = logits.argmax(1) if target_class is None else torch.full(
                (len(batch),), target_class, dtype=torch.long, device=batch.device)
        explanation = method.attribute(batch, targets, regions)
    else:
        if targets is None:
            targets = torch.full((len(batch),), target_class, dtype=torch.long, device=batch.device)
        captured = {}
        # A CAM's own single forward pass already computes the logits: keep them instead of a second pass.
        def keep_logits(_module, _inputs, output):
            captured.setdefault("logits", output.detach())  # returns None: a return value would replace the output

        handle = model.register_forward_hook(keep_logits)
        try:
            explanation = method.attribute(batch, targets, regions)
        finally:
            handle.remove()
        logits = captured["logits"]
    explanation.maps = explanation.maps.cpu()
    return explanation, logits.cpu()
