"""What a run used, so an audit can be repeated and checked: the manifest in results["manifest"].

It records the tool and library versions, the platform, the sha256 of every input file (annotations,
model file, weights, transform; optionally every image), a digest of the model's parameters and all
options. Two runs whose manifests are equal had the same inputs; see docs/inputs.md for what else
"same results" needs. Inputs given as Python objects (``reportgen.analyze(model=net, ...)``) have no
file to digest: their entries say so and record what can be known (class, parameter digest, repr).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

from . import schema

SCHEMA = "reportgen-manifest/1"
# Name in the manifest -> distribution names to ask importlib.metadata, first found wins.
LIBRARIES = {
    "torch": ("torch",), "torchvision": ("torchvision",), "captum": ("captum",),
    "dlib": ("dlib-bin", "dlib"), "numpy": ("numpy",), "pillow": ("pillow", "Pillow"),
    "plotly": ("plotly",), "jinja2": ("jinja2", "Jinja2"),
}
INPUT_FILES = ("annotations", "model_file", "weights", "transform", "reference")


def library_versions() -> dict[str, str | None]:
    """Versions of reportgen, Python and the libraries that shape the results (None: not installed).

    Read from the installed packages' metadata, so nothing heavy is imported.
    """
    from .. import __version__

    versions: dict[str, str | None] = {"reportgen": __version__, "python": platform.python_version()}
    for name, distributions in LIBRARIES.items():
        versions[name] = None
        for distribution in distributions:
            try:
                versions[name] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        module = sys.modules.get(name if name != "pillow" else "PIL")
        version = getattr(module, "__version__", None)
        if versions[name] is None and version:
            versions[name] = str(version)
    return versions


def file_digest(path: Path | str | None) -> schema.ManifestInput | None:
    """{"path", "bytes", "sha256"} of a file; None for no file; {"path", "error"} if it cannot be read."""
    if path is None or path == "":
        return None
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        size = path.stat().st_size
    except OSError as error:
        return {"path": str(path), "error": error.strerror or type(error).__name__}
    return {"path": str(path), "bytes": size, "sha256": digest.hexdigest()}


def images_digest(root: Path, paths: list[str]) -> schema.ManifestInput:
    """One sha256 over every listed image's path and content (missing files count as missing).

    The digest covers ``sha256  path`` lines, sorted by path, as ``sha256sum`` prints them; files
    that cannot be read are counted under ``missing`` and left out.
    """
    lines, missing = [], 0
    for name in sorted(paths):
        entry = file_digest(Path(root) / name)
        if entry is None or "sha256" not in entry:
            missing += 1
            continue
        lines.append(f"{entry['sha256']}  {name}\n")
    combined = hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
    return {"path": str(root), "files": len(lines), "missing": missing, "sha256": combined}


def parameters_digest(model) -> str:
    """sha256 over a torch model's state_dict: every entry's name, dtype, shape and raw bytes, in order.

    Equal digests mean equal weights whether the model came from a file or from memory, so a run on
    an in-memory model can be matched to a weights file (load it and compare digests)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def class_names(model) -> list[str] | None:
    """The model's class names if it carries them (``classes``, ``class_names``, or a Hugging Face
    ``config.id2label``); None if it does not."""
    for owner, name in ((model, "classes"), (model, "class_names"), (getattr(model, "config", None), "id2label")):
        value = getattr(owner, name, None) if owner is not None else None
        if isinstance(value, Mapping) and value:
            try:
                return [str(value[key]) for key in sorted(value, key=int)]
            except (TypeError, ValueError):
                continue
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, int)) for v in value):
            return [str(v) for v in value]
    return None


def model_entry(model, given_as_object: bool) -> schema.ManifestInput:
    """What the manifest records about the model itself: its class, parameter count and digest, and its
    class names when it carries them."""
    kind = type(model)
    return {"class": f"{kind.__module__}.{kind.__qualname__}", "given": "object" if given_as_object else "file",
            "parameters": sum(p.numel() for p in model.parameters()), "parameters_sha256": parameters_digest(model),
            "classes": class_names(model)}


def _determinism() -> dict[str, bool | int]:
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    return {"torch_deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "torch_threads": torch.get_num_threads()}


def build_manifest(config, versions: Mapping | None = None, dataset=None, inputs: Mapping | None = None) -> schema.Manifest:
    """The manifest of a run: plain, JSON-serialisable data.

    ``config``: the RunConfig (or its ``to_dict()``). ``versions``: versions already known (e.g.
    results["tool"]); they override what is looked up here, and ``{"name": "reportgen", "version": v}``
    is read as the reportgen version. ``dataset``: the run's Dataset, to also digest every image
    (reads every image file once more; leave it out to skip). ``inputs``: entries that replace the
    file digests (inputs given as objects, see ``reportgen.inputs.run_inputs``) or add to them (``model``).
    """
    options = dict(config) if isinstance(config, Mapping) else config.to_dict()
    known = library_versions()
    for key, value in (versions or {}).items():
        if key == "name":
            continue
        known["reportgen" if key == "version" else key] = None if value is None else str(value)
    entries: dict[str, schema.ManifestInput | None] = {name: file_digest(options.get(name)) for name in INPUT_FILES}
    entries.update(inputs or {})
    if dataset is not None:
        entries["images"] = images_digest(dataset.root, list(dataset.paths))
    return {
        "schema": SCHEMA,
        "versions": known,
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "python_implementation": platform.python_implementation(), "platform": platform.platform()},
        "inputs": entries,
        "options": options,
        "determinism": _determinism(),
    }
