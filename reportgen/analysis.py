"""The pipeline: dataset + model -> attribution maps + face regions -> region scores -> results dict.

``analyze`` is the whole analysis; it returns plain data (see docs/results.md) and writes nothing.
Rendering that data to HTML or JSON is a separate step (``reportgen.report``).
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import torch

from . import __version__
from .attribution import METHODS
from .canonical import CanonicalFace
from .config import RunConfig, make_config
from .dataset import label_values, read_dataset
from .errors import InputError
from .images import ImagePreparer, prepared_batches
from .landmarks import LandmarkCache, default_cache_dir
from .model import describe_layers, load_model, load_weights, pick_layer
from .patches import Examples, TopPatches
from .preprocess import Preprocessing, build_transform, load_transform, measure_geometry
from .regions import REGION_IDS, GROUPS, label_image
from .scores import RunningScores, compare, region_scores

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


def analyze(config: RunConfig | None = None, progress: Progress | None = None, **options) -> dict:
    """Run the whole analysis and return the results dict (docs/results.md).

    Give a RunConfig, or the same options as keywords (``analyze(images=..., annotations=..., ...)``).
    ``progress(done, total)`` is called after every batch. Raises InputError for bad inputs before
    any heavy work; a bad image inside the dataset is recorded as a failure and the run goes on.
    """
    config = config or make_config(**options)
    started = time.time()
    for name in ("images", "annotations", "target", "model_file", "weights"):
        if getattr(config, name) in (None, ""):
            raise InputError(f"--{name.replace('_', '-')} is required")
    if config.method not in METHODS:
        raise InputError(f"--method {config.method!r}: available methods are {', '.join(METHODS)}")
    if config.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if config.workers < 0:
        raise InputError("--workers must be 0 (no extra processes) or more")
    device = _check_device(config.device)

    dataset = read_dataset(config.images, config.annotations, [config.target, *config.protected])
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
    method = METHODS[config.method](model, dict(model.named_modules())[layer.name])

    cache = LandmarkCache(None if config.no_cache else (config.cache_dir or default_cache_dir()))
    preparer = ImagePreparer(dataset, preprocessing, cache)
    overall = RunningScores()
    groups: dict[str, RunningScores] = {}
    group_faces: dict[str, CanonicalFace] = {}
    canonical = CanonicalFace()
    patches, examples = TopPatches(config.patches), Examples()
    failures: list[dict] = []
    detection: Counter = Counter()
    notes: list[str] = []
    several_faces = correct = labelled = 0
    predicted_counts: Counter = Counter()
    probability_sum = 0.0

    total, done, detector_calls = len(dataset), 0, 0
    for prepared in prepared_batches(preparer, config.batch_size, config.workers):
        detector_calls += sum(item.detected for item in prepared)
        for item in prepared:
            if item.face is not None:
                detection[item.face.detection] += 1
                several_faces += item.face.faces_found > 1
        ready = [item for item in prepared if item.failure is None]
        failures += [{"image": item.image, "reason": item.failure} for item in prepared if item.failure]
        if ready:
            batch = torch.stack([item.tensor for item in ready]).to(device)
            maps, logits = _explain(model, method, batch, config.target_class)
            probabilities = torch.softmax(logits, 1)
            predictions = probabilities.argmax(1)
            targets = predictions if config.target_class is None else torch.full_like(predictions, config.target_class)
            for j, item in enumerate(ready):
                attribution = maps[j].numpy().astype(np.float64)
                height, width = attribution.shape
                labels = label_image(item.landmarks, width, height)
                scores = region_scores(attribution, labels)
                if scores is None:
                    failures.append({"image": item.image, "reason": f"the attribution map is zero everywhere "
                                     f"(no evidence for class {int(targets[j])} at this layer)"})
                    continue
                overall.add(scores)
                row_groups = {c: dataset.columns[c][item.index] for c in config.protected}
                for column, value in row_groups.items():
                    key = f"{column}={value}"
                    groups.setdefault(key, RunningScores()).add(scores)
                    group_faces.setdefault(key, CanonicalFace()).add(attribution, item.landmarks)
                canonical.add(attribution, item.landmarks)
                prediction, label = int(predictions[j]), true_labels[item.index]
                probability = float(probabilities[j, prediction])
                predicted_counts[str(prediction)] += 1
                probability_sum += probability
                if label is not None:
                    labelled += 1
                    correct += label == prediction
                info = {"image": item.image, "label": None if label is None else str(label),
                        "prediction": prediction, "probability": round(probability, 4)}
                seen = preparer.geometry(item.image_size).seen_by_model(item.tensor)
                patches.offer(seen, attribution, labels, scores["share"][:len(REGION_IDS)], info)
                examples.offer(seen, attribution, labels, item.landmarks, info)
        done += len(prepared)
        if progress:
            progress(done, total)

    if several_faces:
        notes.append(f"{several_faces} image(s) showed several faces; the largest face was analysed")
    if dataset.missing:
        notes.append(f"{len(dataset.missing)} annotation row(s) point to missing files (listed under failures)")
    scored = overall.images
    results = {
        "schema": "reportgen/1",
        "tool": _versions(),
        "run": {
            "target": config.target, "target_class": config.target_class, "layer": layer.name,
            "layer_source": "option" if config.layer else "default", "layer_type": layer.kind,
            "layer_shape": list(layer.output_shape), "method": config.method,
            "images": str(config.images), "annotations": str(config.annotations),
            "annotation_format": dataset.format, "model_file": str(config.model_file),
            "model_name": config.model_class or config.model_var or "model", "weights": str(config.weights),
            "transform": preprocessing.description, "input_size": list(input_size),
            "protected": list(config.protected), "device": str(device), "batch_size": config.batch_size,
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 2),
            "detector_calls": detector_calls, "workers": config.workers,
        },
        "config": config.to_dict(),
        "counts": {"images": total, "aligned": sum(detection.values()), "failed": total - scored, "scored": scored},
        "failures": failures,
        "detection": dict(detection),
        "notes": notes,
        "regions": overall.table(),
        "region_groups": overall.table(tuple(GROUPS), sort=False),
        "groups": {key: {"column": key.split("=", 1)[0], "value": key.split("=", 1)[1], "n": stats.images,
                         "regions": stats.table(), "region_groups": stats.table(tuple(GROUPS), sort=False),
                         "mean_attribution": group_faces[key].mean_map()}
                   for key, stats in sorted(groups.items())},
        "comparisons": _comparisons(groups, config.protected),
        "predictions": {"accuracy": round(correct / labelled, 4) if labelled else None, "n_labelled": labelled,
                        "predicted_counts": dict(predicted_counts),
                        "mean_probability": round(probability_sum / scored, 4) if scored else None},
        "canonical_face": canonical.summary(),
        "patches": patches.summary(),
        "examples": examples.summary(),
    }
    from .findings import findings

    results["findings"] = findings(results)
    results["run"]["seconds"] = round(time.time() - started, 2)
    return results


def _comparisons(groups: dict[str, RunningScores], columns: list[str]) -> list[dict]:
    """For each group column: every other value against the first (sorted) value."""
    comparisons = []
    for column in columns:
        keys = sorted(k for k in groups if k.split("=", 1)[0] == column)
        for other in keys[1:]:
            a, b = groups[keys[0]], groups[other]
            comparisons.append({"column": column, "a": keys[0], "b": other, "n_a": a.images, "n_b": b.images,
                                "regions": compare(a, b)})
    return comparisons


def layers_output_count(model: torch.nn.Module, input_size: tuple[int, int]) -> int:
    """How many classes the model outputs (the size of its last dimension)."""
    with torch.no_grad():
        output = model(torch.zeros(1, 3, *input_size))
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise InputError(f"the model's output has shape {tuple(getattr(output, 'shape', ()))}; "
                         "reportgen needs class scores of shape (batch, classes)")
    return int(output.shape[1])


def _explain(model, method, batch: torch.Tensor, target_class: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attribution maps (B, H, W) on the CPU and the model's logits (B, K), in as few passes as possible."""
    if target_class is None:
        with torch.no_grad():
            logits = model(batch)
        targets = logits.argmax(1)
        maps = method.attribute(batch, targets)
        return maps.cpu(), logits.cpu()
    captured = {}
    # The attribution's own forward pass already computes the logits: keep them instead of a second pass.
    def keep_logits(_module, _inputs, output):
        captured["logits"] = output.detach()  # returns None: a hook's return value would replace the output

    handle = model.register_forward_hook(keep_logits)
    try:
        maps = method.attribute(batch, torch.full((len(batch),), target_class, dtype=torch.long, device=batch.device))
    finally:
        handle.remove()
    return maps.cpu(), captured["logits"].cpu()
