"""Every option of a run, in one place: defaults, a TOML file (``--config run.toml``), and the CLI.

Precedence: options given on the command line > the config file > defaults. Relative paths in a
config file are relative to the file's folder, so a run.toml can sit beside its data.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from ..errors import InputError
from ..explain.methods import BASELINES, METHODS

PATH_OPTIONS = ("images", "annotations", "model_file", "weights", "transform", "out", "json", "cache_dir", "partial",
                "reference")


@dataclass
class RunConfig:
    """Options of ``reportgen run``; field names are the CLI's long options with '_' for '-'."""

    images: Path | None = None
    annotations: Path | None = None
    target: str | None = None
    model_file: Path | None = None
    model_var: str | None = None
    model_class: str | None = None
    weights: Path | None = None
    layer: str | None = None  # None: the last layer whose output is a grid over the image (conv or tokens)
    # None: each image's predicted class; an index, or a multi-label model's attribute name ("Smiling").
    target_class: int | str | None = None
    head: str | None = None  # "softmax" | "sigmoid"; None: automatic (heads.choose_head)
    output: str | None = None  # which element of a tuple/list/dict output holds the scores; None: automatic
    # Face verification: the annotation rows are image pairs (img1,img2,labels...), or every image is compared
    # with one reference photo; threshold: the same/different decision threshold (None: best accuracy).
    pairs: bool = False
    reference: Path | None = None
    threshold: float | None = None
    transform: Path | None = None  # None: Resize(image_size), ToTensor, Normalize(mean, std)
    image_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    protected: list[str] = field(default_factory=list)
    method: str = "gradcam"
    baseline: str = "mean"  # what "removed" means for occlusion, ablation, IG and the deletion check
    samples: int = 0  # region-ablation: 0 = one region at a time; N = Shapley values from N permutations
    bootstrap: int = 2000  # resamples of images for the 95% intervals; 0 = Student t intervals
    check_images: int = 64  # images sampled for the faithfulness and sanity checks; 0 = no checks
    batch_size: int = 16
    # Processes that decode images and find faces while the model runs; one core stays with the model.
    workers: int | None = None  # None: automatic (analysis.choose_workers)
    device: str = "auto"  # auto: CUDA when available, else Apple's MPS, else the CPU
    patches: int = 12  # top patches kept per region
    cache_dir: Path | None = None  # None: the user's cache folder
    no_cache: bool = False
    out: Path = Path("report.html")
    json: Path | None = None
    shard: str | None = None  # "I/N": process every N-th image from the I-th, save a partial state
    partial: Path | None = None  # where partial state goes [default: beside --out]
    resume: bool = True  # continue from a matching checkpoint of an interrupted run
    checkpoint_seconds: float = 30.0  # how often a long run saves its partial state
    # False: the report and results.json name files without their folders (a report is shared widely and
    # folders reveal user names and layouts); True: absolute paths, as given.
    full_paths: bool = False
    dask: str | None = None  # a Dask scheduler's address, or "local": run the shards there (reportgen.cluster)
    shards: int | None = None  # with dask: how many shards [default: from the cluster's workers]

    def to_dict(self) -> dict:
        """Plain values (paths as strings) for results.json and the report."""
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            values[f.name] = value
        return values


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def read_config_file(path: Path) -> dict:
    """Options from a TOML file, keys as in the CLI ('model-file' or 'model_file'), paths resolved."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--config {path}: file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"--config {path}: not valid TOML ({error})") from None
    options = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise InputError(f"--config {path}: unknown option {key!r}; see 'reportgen run --help'")
        if name in PATH_OPTIONS and isinstance(value, str):
            value = (path.parent / value) if not Path(value).is_absolute() else Path(value)
        if name == "protected" and isinstance(value, str):
            value = [value]
        options[name] = value
    return options


def make_config(file: Path | None = None, **given) -> RunConfig:
    """A RunConfig from a config file (optional) overridden by the options given (None = not given)."""
    options = read_config_file(file) if file else {}
    options.update({k: v for k, v in given.items() if v is not None and v != [] and v != ()})
    for name in PATH_OPTIONS:
        if options.get(name) is not None:
            options[name] = Path(options[name])
    if isinstance(options.get("target_class"), str) and options["target_class"].strip().lstrip("-").isdigit():
        options["target_class"] = int(options["target_class"])  # "--target-class 1" is an index
    for name in ("mean", "std"):
        if name in options:
            options[name] = tuple(float(v) for v in options[name])
            if len(options[name]) != 3:
                raise InputError(f"--{name}: give three numbers (one per colour channel)")
    return RunConfig(**options)


# The commented run.toml of 'reportgen init'. {name} stays for the CLI to fill; the defaults come from
# RunConfig and the methods from reportgen.explain.methods (see init_template below).
_INIT = '''\
# reportgen run configuration. Use it with:  reportgen run --config {{name}}
# Options given on the command line override the values here. Relative paths are relative to
# this file's folder. Every option of 'reportgen run --help' can be set here (use - or _).

# --- the dataset -------------------------------------------------------------------------------
images = "images"                   # folder the annotation paths are relative to
annotations = "annotations.csv"     # CSV (first column: image path) or CelebA list_attr_celeba.txt
target = "task"                     # column with the true label
protected = ["protected"]           # group columns to compare (e.g. ["Male", "Eyeglasses"])

# --- the model ---------------------------------------------------------------------------------
model-file = "model.py"             # Python file that builds the architecture
model-var = "model"                 # the variable holding it (or set model-class = "MyNet")
weights = "weights.pt"              # a state_dict saved with torch.save(model.state_dict(), path)
transform = "transform.py"          # file assigning `transform`; or remove it and set:
# {image_size}
# {mean}
# {std}

# --- what to explain ---------------------------------------------------------------------------
# layer = "layer4"                  # default: the last layer with a spatial output ('reportgen layers')
# target-class = 1                  # default: each image's predicted class (a multi-label model: "Smiling")
# head = "softmax"                  # or "sigmoid"; default: automatic (one output or CelebA attributes: sigmoid)
# output = 0                        # a model returning a tuple/dict: which element holds the scores
{method:<35} # or {other_methods}
# {baseline:<33} # what replaces a removed region: {baselines}
# {samples:<33} # region-ablation: Shapley values from this many region orders
# {bootstrap:<33} # resamples for the 95% intervals (0: t intervals)
# {check_images:<33} # images for the faithfulness and sanity checks (0: skip)

# --- how to run --------------------------------------------------------------------------------
{batch_size}
# workers = 1                       # processes finding faces while the model runs [default: automatic]
{device:<35} # CUDA when available, else MPS, else CPU; or "cpu", "cuda", "mps"
# dask = "local"                    # or "tcp://HOST:8786": run the shards on a Dask cluster (reportgen[dask])
{patches:<35} # top patches shown per region
{out}
json = "results.json"
# full-paths = false                # true: the report shows absolute paths (default: file names only)
'''


def init_template() -> str:
    """The text 'reportgen init' writes, with ``{name}`` left for the file's name."""
    defaults = RunConfig()

    def setting(name: str) -> str:
        value = getattr(defaults, name)
        value = list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value
        return f"{name.replace('_', '-')} = {tomlkit.item(value).as_string()}"

    names = ("image_size", "mean", "std", "method", "baseline", "samples", "bootstrap", "check_images", "batch_size",
             "device", "patches", "out")
    return _INIT.format(**{name: setting(name) for name in names},
                        other_methods=", ".join(m for m in METHODS if m != defaults.method),
                        baselines=" or ".join(f"{key} ({words})" for key, words in BASELINES.items()))


INIT_TEMPLATE = init_template()


def to_toml(config: dict) -> str:
    """``config`` (``RunConfig.to_dict()``, or any dict of plain values) as the text of a run.toml: nested
    dicts as tables, None items left out of lists, and an unset option (None) as a comment
    ``# key = (not set)``, so the reader sees every option and can set one with a single edit."""
    document = tomlkit.document()
    _add_table(document, config)
    return tomlkit.dumps(document).strip("\n")


def _add_table(table, values: dict) -> None:
    # Plain keys before the sub-tables: in TOML every key after a [table] header belongs to that table.
    for key, value in values.items():
        if value is None:
            table.add(tomlkit.comment(f"{tomlkit.key(str(key)).as_string()} = (not set)"))
        elif not isinstance(value, dict):
            table.add(str(key), _toml_value(value))
    for key, value in values.items():
        if isinstance(value, dict):
            nested = tomlkit.table()
            _add_table(nested, value)
            table.add(str(key), nested)


def _toml_value(value):
    """A TOML value; dicts inside lists become inline tables (tomlkit would make an array of tables)."""
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        array.extend(_toml_value(item) for item in value if item is not None)
        return array
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        inline.update({str(key): _toml_value(item) for key, item in value.items() if item is not None})
        return inline
    return value if isinstance(value, (bool, int, float, str)) else str(value)
