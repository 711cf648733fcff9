"""Where a run's dataset, model and preprocessing come from: files (the CLI, run.toml) or Python objects.

A notebook user already holds the model and the transform in memory, and maybe the table of images::

    reportgen.analyze(images="photos", annotations=[{"img": "a.jpg", "task": 1}, ...], target="task",
                      model=net, transform=preprocess, layer="layer4")

``split_objects`` takes such objects out of the options (they do not belong in a RunConfig, which is
plain data written to results.json and run.toml); ``resolve_inputs`` turns the RunConfig plus the
objects into what the analysis needs: the dataset rows with their labels, the model with its weights in
eval mode, the preprocessing, what the run summary shows for each input, and the manifest's entries.
After this point the analysis does not care which way the inputs came.

What objects cannot give: a file to digest (the manifest says so and records the model's class,
parameter digest and class names, the rows' digest and the transform's repr instead), a run.toml that
re-runs the same analysis, and — for a transform that does not pickle or is defined in ``__main__`` —
worker processes started fresh (``spawn``), which rebuild everything from files or pickles: such a
run prepares its images in the analysing process (a note says so).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InputError, one_line
from ..results.manifest import model_entry
from ..results.schema import ManifestInput
from .config import RunConfig
from .dataset import Dataset, _check_relative, _is_file, _suggest, label_values, read_dataset
from .model import load_model, load_weights
from .preprocess import Preprocessing, build_transform, load_transform

ROWS_NAME = "annotations=rows"  # how messages name a table given in Python
LIST_NAME = "images=list"  # ... and a list of image paths


@dataclass
class GivenObjects:
    """What ``reportgen.analyze`` received as Python objects instead of files (None: use the file options)."""

    model: torch.nn.Module | None = None
    transform: Callable | None = None
    image_list: list[str] | None = None  # image paths, with no annotation table (so no labels)
    rows: list[Mapping] | Mapping[str, Sequence] | None = None  # the annotation table: rows or columns


@dataclass
class RunInputs:
    """The run's inputs, loaded and checked."""

    dataset: Dataset
    labels: list[int | None]  # the true class of each row (None: unlabelled)
    model: torch.nn.Module  # weights loaded, eval mode; a copy when the model was given as an object
    preprocessing: Preprocessing
    shown: dict[str, str]  # the run summary's images, annotations, model_file, model_name, weights
    manifest: dict[str, ManifestInput | None]  # manifest["inputs"] entries that replace the file digests or add to them
    portable: bool  # the preprocessing can be rebuilt in a freshly spawned worker process
    notes: list[str] = field(default_factory=list)


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def split_objects(options: dict) -> tuple[dict, GivenObjects]:
    """(the file and plain options, the objects) from ``analyze``'s keyword options.

    ``model``: a torch.nn.Module. ``transform``: a callable (a path stays a file option). ``images``: a
    list of image paths (a folder stays a file option). ``annotations``: a list of row dicts or a dict of
    columns, first column the image path (a path stays a file option)."""
    options, given = dict(options), GivenObjects()
    if "model" in options:
        model = options.pop("model")
        if _is_path(model):
            raise InputError(f"model={str(model)!r}: model= takes a torch.nn.Module; give a model file as model_file=")
        if model is not None and not isinstance(model, torch.nn.Module):
            raise InputError(f"model= takes a torch.nn.Module, not {type(model).__name__}")
        given.model = model
    transform = options.get("transform")
    if transform is not None and not _is_path(transform):
        if not callable(transform):
            raise InputError(f"transform= takes a callable (PIL image -> tensor) or a file path, not "
                             f"{type(transform).__name__}")
        given.transform = options.pop("transform")
    images = options.get("images")
    if isinstance(images, (list, tuple)):
        given.image_list = [str(Path(p)) if isinstance(p, os.PathLike) else p for p in options.pop("images")]
    elif images is not None and not _is_path(images):
        raise InputError(f"images= takes the image folder or a list of image paths, not {type(images).__name__}")
    annotations = options.get("annotations")
    if isinstance(annotations, (list, tuple, Mapping)):
        given.rows = options.pop("annotations")
    elif hasattr(annotations, "to_dict") and hasattr(annotations, "columns"):
        # A pandas DataFrame (reportgen does not need pandas): its columns, the index left out as in to_csv(index=False).
        given.rows = options.pop("annotations").to_dict("list")
    elif annotations is not None and not _is_path(annotations):
        raise InputError(f"annotations= takes a file, a list of row dicts or a dict of columns, not "
                         f"{type(annotations).__name__}")
    return options, given


def require_inputs(config: RunConfig, given: GivenObjects | None = None) -> None:
    """The inputs a run needs, from files or objects; InputError names the missing or doubled one."""
    given = given or GivenObjects()
    if given.image_list is not None:
        if config.annotations is not None or given.rows is not None:
            raise InputError("images= is a list of image paths, which has no annotation table; leave out "
                             "annotations=, or give images= the folder and annotations= the table")
        for name, value in (("target", config.target), ("protected", config.protected)):
            if value:
                raise InputError(f"{name}={value!r}: a list of images has no label columns; give images= the "
                                 "folder and annotations= a table (or file) with the columns")
    else:
        for name, present in (("images", config.images), ("annotations", config.annotations or given.rows),
                              ("target", config.target)):
            if present in (None, ""):
                raise InputError(f"--{name} is required")
    if given.model is not None:
        if config.model_file or config.model_var or config.model_class:
            raise InputError("give the model as model= (an object) or as model_file= (a file), not both")
    else:
        for name in ("model_file", "weights"):
            if getattr(config, name) in (None, ""):
                raise InputError(f"--{name.replace('_', '-')} is required")
    if given.transform is not None and config.transform:
        raise InputError("give the transform as an object or as a file, not both")


def resolve_inputs(config: RunConfig, given: GivenObjects | None = None) -> RunInputs:
    """Load and check the dataset, the model and the preprocessing, from files or objects (in that order:
    a broken annotation file is reported before the model file runs)."""
    given = given or GivenObjects()
    require_inputs(config, given)
    needed = {column: "--protected" for column in config.protected}
    if config.target:
        needed[config.target] = "--target"
    shown: dict[str, str] = {}
    entries: dict[str, ManifestInput | None] = {}
    if config.pairs and (given.image_list is not None or given.rows is not None):
        raise InputError("pairs=True: give the pair file as annotations= (a CSV whose first two columns are the two "
                         "images); tables and image lists given in Python are for ordinary datasets")
    if given.image_list is not None:
        dataset = dataset_from_list(given.image_list, config.images)
        shown.update(images=str(dataset.root), annotations=f"list of {len(dataset)} images given in Python")
        entries["annotations"] = {"given": "list", "images": len(dataset),
                                  "note": "image paths given in Python: no annotation file, no labels"}
    elif given.rows is not None:
        dataset = dataset_from_rows(config.images, given.rows, needed)
        shown.update(images=str(config.images), annotations=f"table of {len(dataset)} rows given in Python")
        entries["annotations"] = {"given": "rows", "rows": len(dataset), "columns": list(dataset.columns),
                                  "sha256": _table_digest(dataset),
                                  "note": "rows given in Python: no file to digest; sha256 is over the rows "
                                          "as JSON (path and columns)"}
    else:
        assert config.images is not None and config.annotations is not None  # require_inputs checked them
        dataset = read_dataset(config.images, config.annotations, needed, pairs=config.pairs)
        shown.update(images=str(config.images), annotations=str(config.annotations))
    labels: list[int | None] = label_values(dataset, config.target) if config.target else [None] * len(dataset)

    notes = []
    if given.model is not None:
        model, problem = _private_copy(given.model)
        if problem:
            notes.append(f"the model object could not be copied ({problem}); reportgen set it to eval mode and "
                         "moved it to the run's device in place")
        if config.weights:
            load_weights(model, config.weights)
        name = type(given.model).__name__
        shown.update(model_file=f"{name} object given in Python", model_name=name,
                     weights=str(config.weights) if config.weights else "the object's own parameters")
        if not config.weights:
            entries["weights"] = {"given": "object", "note": "the object's own parameters: see "
                                                             "model.parameters_sha256"}
    else:
        assert config.model_file is not None and config.weights is not None  # require_inputs checked them
        model = load_model(config.model_file, config.model_var, config.model_class)
        load_weights(model, config.weights)
        shown.update(model_file=str(config.model_file), weights=str(config.weights),
                     model_name=config.model_class or config.model_var or "model")
    model.eval()
    entries["model"] = model_facts = model_entry(model, given.model is not None)
    if given.model is not None:
        entries["model_file"] = {"given": "object", "class": model_facts["class"],
                                 "note": "a Python object: no file to digest; see model.parameters_sha256"}

    if given.transform is not None:
        described = one_line(repr(given.transform))
        preprocessing = Preprocessing(given.transform, f"transform given in Python: {described}")
        entries["transform"] = {"given": "object", "repr": described[:2000],
                                "note": "a Python object: no file to digest"}
        portable = crosses_processes(given.transform)
        if not portable:
            notes.append("the transform given in Python does not pickle or is defined in __main__, so worker "
                         "processes cannot rebuild it: images were prepared in the analysing process")
    elif config.transform:
        preprocessing, portable = load_transform(config.transform), True
    else:
        preprocessing, portable = build_transform(config.image_size, config.mean, config.std), True
    return RunInputs(dataset, labels, model, preprocessing, shown, entries, portable, notes)


def _private_copy(model: torch.nn.Module) -> tuple[torch.nn.Module, str | None]:
    """A copy of the user's model, so the run's eval mode, device move and memory format do not change the
    object in their notebook; the model itself when it cannot be copied (second item: why not)."""
    try:
        return copy.deepcopy(model), None
    except Exception as error:  # noqa: BLE001  (a module holding an uncopyable handle, say)
        return model, one_line(f"{type(error).__name__}: {error}")


def crosses_processes(transform) -> bool:
    """Whether a spawned worker process can rebuild ``transform`` from a pickle: it must pickle, and not by
    reference to ``__main__`` (a notebook's own class or function), which a fresh process does not have."""
    try:
        data = pickle.dumps(transform)
    except Exception:  # noqa: BLE001  (lambdas, local functions, open handles...)
        return False
    return b"__main__" not in data


def _text(value) -> str:
    """A table cell as the annotation file would hold it (None: empty, an unlabelled row)."""
    if value is None:
        return ""
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _columns(rows) -> dict[str, list]:
    """A list of row dicts or a dict of columns, as columns (first: the image path)."""
    if isinstance(rows, Mapping):
        if not rows:
            raise InputError(f"{ROWS_NAME}: the table has no columns")
        columns = {}
        for name, values in rows.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                raise InputError(f"{ROWS_NAME}: column {name!r} is not a list of values")
            columns[str(name)] = list(values)
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"{ROWS_NAME}: the columns have different lengths ({lengths}); give one value per row "
                             "in every column")
        return columns
    if not rows:
        raise InputError(f"{ROWS_NAME}: the table has no rows")
    first = rows[0]
    if not isinstance(first, Mapping) or not first:
        raise InputError(f"{ROWS_NAME}: give each row as a dict like {{'img': 'a.jpg', 'task': 1}} (image path first)")
    names = [str(name) for name in first]
    columns = {name: [] for name in names}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping) or [str(name) for name in row] != names:
            keys = list(row) if isinstance(row, Mapping) else type(row).__name__
            raise InputError(f"{ROWS_NAME}, row {number}: has {keys} but row 1 has {names}; give every row the "
                             "same keys in the same order")
        for name, value in zip(names, row.values()):
            columns[name].append(value)
    return columns


def dataset_from_rows(images, rows, needed_columns: Mapping[str, str]) -> Dataset:
    """A Dataset from a table given in Python: a list of row dicts or a dict of columns, the first column
    holding image paths relative to ``images`` (the CSV convention). Checked like an annotation file:
    paths stay inside the folder, no duplicates, the columns asked for exist, not every image missing."""
    root = Path(images)
    if not root.is_dir():
        raise InputError(f"--images {root}: {'not a folder' if root.exists() else 'folder not found'}; give the "
                         "folder the table's image paths are relative to")
    columns = _columns(rows)
    path_column, *label_columns = columns
    paths: list[str] = []
    seen: dict[str, int] = {}
    for number, value in enumerate(columns[path_column], start=1):
        image = _text(value)
        key = _check_relative(Path(ROWS_NAME), image, f"row {number}")
        if key in seen:
            raise InputError(f"{ROWS_NAME}: image {image!r} appears twice (rows {seen[key]} and {number}); remove "
                             "the duplicate row")
        seen[key] = number
        paths.append(key)
    table = {name: [_text(value) for value in columns[name]] for name in label_columns}
    for name, option in needed_columns.items():
        if name not in table:
            what = "is the image path column, not a label column" if name == path_column else "is not a column"
            raise InputError(f"{option} {name}: {name!r} {what} of {ROWS_NAME}; {_suggest(name, list(table))}")
    missing = [image for image in paths if not _is_file(root / image)]
    if missing and len(missing) == len(paths):
        raise InputError(f"--images {root}: none of the {len(paths)} images in {ROWS_NAME} exist there "
                         f"(first: {paths[0]!r}); is images= the right folder?")
    return Dataset(root, Path(ROWS_NAME), "rows", paths, table, missing)


def dataset_from_list(paths: Sequence, images=None) -> Dataset:
    """A Dataset from a list of image paths: relative to ``images`` when it is given, else as given (absolute
    or relative to the current folder), with the folder they share as the image folder. No labels."""
    if not paths:
        raise InputError(f"{LIST_NAME}: the list of images is empty")
    texts = [_text(p) for p in paths]
    if images is not None:
        root = Path(images)
        full = [os.path.abspath(root / p) for p in texts]
    else:
        full = [os.path.abspath(p) for p in texts]
        root = Path(os.path.commonpath([os.path.dirname(p) for p in full]))
    relative: list[str] = []
    seen: dict[str, int] = {}
    for number, (text, path) in enumerate(zip(texts, full), start=1):
        inside = os.path.relpath(path, root)
        if inside == ".." or inside.startswith(".." + os.sep):
            raise InputError(f"{LIST_NAME}, item {number}: {text!r} is outside the image folder {root}")
        inside = Path(inside).as_posix()
        if inside in seen:
            raise InputError(f"{LIST_NAME}: image {text!r} appears twice (items {seen[inside]} and {number})")
        seen[inside] = number
        relative.append(inside)
    missing = [image for image in relative if not _is_file(root / image)]
    if len(missing) == len(relative):
        raise InputError(f"{LIST_NAME}: none of the {len(relative)} images exist (first: {texts[0]!r})")
    return Dataset(root, Path(LIST_NAME), "list", relative, {}, missing)


def _table_digest(dataset: Dataset) -> str:
    """sha256 of a table given in Python, as JSON: the same rows give the same digest."""
    table = {"paths": dataset.paths, "columns": dataset.columns}
    return hashlib.sha256(json.dumps(table, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
