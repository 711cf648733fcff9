"""The command line: a thin layer that parses options, calls the Python API and prints a summary."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import InputError
from .explain.methods import BASELINES, METHODS
from .inputs.config import RunConfig
from .report.format import points_text, signed_text

app = typer.Typer(
    help="Find the face regions that drive a vision model's decisions; write one self-contained HTML report.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # not "rich": its markup would swallow "[default: 16]" as a tag
)
# soft_wrap: summary lines stay whole when piped or logged (rich would break them at 80 columns).
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

DATA, MODEL, EXPLAIN, OUTPUT, RUNNING = "Dataset", "Model", "What to explain", "Output", "How to run"
# RunConfig holds the option defaults and reportgen.explain.methods the methods: the help texts quote both.
DEFAULT = RunConfig()
METHOD_HELP = ("; ".join(f"{m.id}: {m.summary}" for m in METHODS.values())
               + f" (see docs/methods.md) [default: {DEFAULT.method}].")
BASELINE_HELP = ("What replaces a removed region or window ("
                 + ", ".join([m.id for m in METHODS.values() if m.uses_baseline] + ["deletion check"]) + "): "
                 + " or ".join(f"{key} ({words})" for key, words in BASELINES.items()) + f" [default: {DEFAULT.baseline}].")
MEAN_DEFAULT, STD_DEFAULT = " ".join(map(str, DEFAULT.mean)), " ".join(map(str, DEFAULT.std))


def _version(show: bool):
    if show:
        from . import __version__

        out.print(f"reportgen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print reportgen's version and exit."),
):
    """Find the face regions that drive a vision model's decisions; write one self-contained HTML report."""


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _guarded(action, debug: bool):
    """Run ``action``; bad input becomes one red line and exit code 2 (a traceback only with --debug)."""
    try:
        return action()
    except InputError as error:
        if debug:
            raise
        _fail(str(error).replace("[", r"\["))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as error:  # a bug or an environment problem: say so in one line unless debugging
        if debug:
            raise
        _fail(f"{type(error).__name__}: {error} (run again with --debug for the traceback)".replace("[", r"\["), 1)


def _progress_bar(label: str):
    """A progress bar over images (count, time taken and time left) on the error stream, shown on a terminal only."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _run_with_progress(config, debug: bool):
    """(state, context) of the analysis, with a progress bar (count and time left) on a terminal."""
    from .analysis import run_analysis

    with _progress_bar("analysing images") as bar:
        task = bar.add_task("images", total=None)
        return _guarded(lambda: run_analysis(
            config, progress=lambda done, total: bar.update(task, completed=done, total=total)), debug)


def _run_on_dask(config, debug: bool, started: float) -> None:
    """--dask: the shards on a Dask cluster, a progress bar over all their images, the merged report."""
    from .cluster import remove_parts, run_on_dask

    with _progress_bar("analysing images on Dask") as bar:
        task = bar.add_task("images", total=None)
        results = _guarded(lambda: run_on_dask(
            config, progress=lambda done, total: bar.update(task, completed=done, total=total),
            say=lambda text: out.print(text.replace("[", r"\["))), debug)
    _write_outputs(results, config, debug, started)
    remove_parts(config)  # the report is written: the parts have done their job
    dask = results["run"]["dask"]
    computed = dask["shards"] - len(dask["reused"])
    out.print(f"dask: {dask['shards']} shards ({computed} computed, {len(dask['reused'])} reused) on "
              f"{dask['workers']} worker(s) in {dask['seconds']:.1f} s; compute time over all shards "
              f"{results['run']['seconds']:.1f} s")


def _write_outputs(results: dict, config, debug: bool, started: float) -> None:
    from .report import write_html, write_json

    def write():
        write_html(results, config.out)
        if config.json:
            write_json(results, config.json)

    _guarded(write, debug)
    counts, run = results["counts"], results["run"]
    top = results["regions"][0] if results["regions"] and results["regions"][0]["density"] is not None else None
    out.print(_explained_line(run))
    if top:
        out.print(f"top region: {top['label']} (density {top['density']:.2f}, {100 * top['share']:.1f}% of attention)")
    checks = _checks_line(results.get("faithfulness"), results.get("sanity"),
                          "similarity" if (results.get("run") or {}).get("task") == "verification" else "probability")
    if checks:
        out.print(checks)
    outputs = str(config.out) + (f" and {config.json}" if config.json else "")
    out.print(f"[green]wrote[/] {outputs}: {counts['images']} images, {counts['aligned']} aligned, "
              f"{counts['failed']} failed, in {time.time() - started:.1f} s")
    if not counts.get("scored", counts.get("aligned")):
        _fail(nothing_scored(results), 1)


def _explained_line(run: dict) -> str:
    """What was explained, in one line: layer (or input), method, head, output and class."""
    where = (f"layer: {run['layer']}" + (" (default: last layer with a grid over the image"
                                         + (f", {_grid(run)}" if _grid(run) else "") + ")"
                                         if run.get("layer_source") == "default" else "")) if run.get("layer") else "input"
    if run.get("target_class") is None:
        what = "predicted"
    else:
        what = str(run["target_class"]) + (f" ({run['target_class_name']})" if run.get("target_class_name") else "")
    head = run.get("head") or "softmax"
    head_source = " (automatic)" if run.get("head_source") == "automatic" else ""
    line = f"{where}; method: {run['method']}; head: {head}{head_source}; class: {what}; device: {run.get('device')}"
    if run.get("output") and run["output"] != "the model's output":
        line += f"; scores: {run['output']}"
    return line


def _grid(run: dict) -> str:
    grid, layout = run.get("layer_grid"), run.get("layer_layout")
    if not grid:
        return ""
    text = f"{grid[0]}x{grid[1]}"
    return text + (" tokens" if layout == "tokens" else " channels-last" if layout == "channels-last" else "")


def nothing_scored(results: dict) -> str:
    """Why a run scored no image, and what to try, in one line."""
    reasons = Counter(f.get("reason", "") for f in results.get("failures") or [])
    if not reasons:
        return "no image could be scored (the annotation file lists none that could be analysed)"
    reason, count = reasons.most_common(1)[0]
    total = sum(reasons.values())
    run = results.get("run") or {}
    if "attribution map is zero" in reason:
        hint = ("try another --layer (run 'reportgen layers' to list them) or another --method, e.g. "
                "integrated-gradients or region-ablation" if run.get("layer") else "try another --method")
        if run.get("target_class") is not None:
            hint += f", or check --target-class {run['target_class']}"
        return f"no image could be scored: every attribution map was zero ({count} of {total}); {hint}"
    if reason == "no face found":
        return (f"no image could be scored: no face was found in {count} of {total} images; check that the images "
                "show faces, large enough to see (the report lists every image and why)")
    return f"no image could be scored; most common reason ({count} of {total}): {reason}"


def _checks_line(faithfulness: dict | None, sanity: dict | None, points_of: str = "probability") -> str | None:
    """One console line on the trust checks; failures in red (the report explains them). ``points_of``: what the
    readers' companion numbers are points of (a classifier's probability, a verification model's similarity)."""
    parts = []
    if faithfulness and isinstance(faithfulness.get("ranked_drop"), list):
        verdict = "passed" if faithfulness["faithful"] else "[red]NOT FAITHFUL[/]"
        low, high = faithfulness.get("difference_ci") or (None, None)
        evidence = faithfulness.get("evidence") or "evidence"
        numbers = (f"{signed_text(faithfulness['difference'])} in {evidence}" if faithfulness.get("difference") is not None
                   else "–")
        if low is not None and high is not None:
            numbers += f", 95% CI {signed_text(low)} to {signed_text(high)}"
        if faithfulness.get("difference_probability") is not None:
            numbers += f"; {points_text(faithfulness['difference_probability'])} {points_of} points"
        parts.append(f"deletion check {verdict} (ranked minus random orders, mean evidence drop over "
                     f"0-{100 * faithfulness['area_limit']:.0f}% removed: {numbers})")
    elif faithfulness:
        verdict = "passed" if faithfulness["faithful"] else "[red]NOT FAITHFUL[/]"
        parts.append(f"deletion check {verdict} (class probability drop: top region "
                     f"{points_text(faithfulness['top_drop'])} points, random region {points_text(faithfulness['random_drop'])})")
    if sanity and sanity.get("rank_correlation") is not None:
        verdict = {"failed": "[red]FAILED[/]", "doubtful": "[yellow]doubtful[/]"}.get(sanity["verdict"], sanity["verdict"])
        steps = sanity.get("steps") or []
        detail = f"{sanity['rank_correlation']:.2f}"
        if len(steps) > 1 and steps[0].get("rank_correlation") is not None:
            detail += f"; output layer alone {steps[0]['rank_correlation']:.2f}"
        parts.append(f"sanity check {verdict} (rank correlation with a randomised model {detail}; "
                     f"{sanity['images']} images)")
    return "checks: " + "; ".join(parts) if parts else None


@app.command()
def run(
    images: Optional[Path] = typer.Option(None, help="Folder the annotation file's image paths are relative to.", rich_help_panel=DATA),
    annotations: Optional[Path] = typer.Option(None, help="CSV with a header (first column: image path) or CelebA list_attr_celeba.txt.", rich_help_panel=DATA),
    target: Optional[str] = typer.Option(None, help="Annotation column with the true label (class numbers; CelebA -1/1 reads as 0/1).", rich_help_panel=DATA),
    protected: Optional[list[str]] = typer.Option(None, help="Group column to compare (repeatable), e.g. a protected attribute or Eyeglasses.", rich_help_panel=DATA),
    pairs: bool = typer.Option(False, "--pairs", help="Face verification: the annotation rows are image pairs (MAI-BIAS ImagePairs: img1,img2,is_same,race...); each pair's similarity is explained on both images.", rich_help_panel=DATA),
    reference: Optional[Path] = typer.Option(None, help="Face verification: explain every image's similarity to this one reference photo (e.g. an ID photo against selfies).", rich_help_panel=DATA),
    threshold: Optional[float] = typer.Option(None, help="Face verification: cosine similarity at or above which two faces count as the same person [default: the threshold with the best accuracy on the data, stated in the report].", rich_help_panel=EXPLAIN),
    model_file: Optional[Path] = typer.Option(None, help="Python file that builds the architecture (runs as code: trusted files only).", rich_help_panel=MODEL),
    model_var: Optional[str] = typer.Option(None, help="Variable in the model file holding the model [default: model].", rich_help_panel=MODEL),
    model_class: Optional[str] = typer.Option(None, help="Or: a class in the model file, built with no arguments.", rich_help_panel=MODEL),
    weights: Optional[Path] = typer.Option(None, help="state_dict file (torch.save(model.state_dict())); loaded with weights_only=True.", rich_help_panel=MODEL),
    transform: Optional[Path] = typer.Option(None, help="Python file assigning a torchvision `transform` (else --image-size/--mean/--std).", rich_help_panel=MODEL),
    image_size: Optional[int] = typer.Option(None, help=f"Without --transform: resize to this square size [default: {DEFAULT.image_size}].", rich_help_panel=MODEL),
    mean: Optional[list[float]] = typer.Option(None, help=f"Without --transform: normalisation mean, three values [default: ImageNet's, {MEAN_DEFAULT}].", rich_help_panel=MODEL),
    std: Optional[list[float]] = typer.Option(None, help=f"Without --transform: normalisation std, three values [default: ImageNet's, {STD_DEFAULT}].", rich_help_panel=MODEL),
    layer: Optional[str] = typer.Option(None, help="Module name to explain (see 'reportgen layers') [default: the last layer whose output is a grid over the image, conv or transformer tokens, that the output depends on].", rich_help_panel=EXPLAIN),
    target_class: Optional[str] = typer.Option(None, help="Class index to explain, or a multi-label model's attribute name (e.g. Smiling) [default: each image's predicted class; multi-label: the --target attribute].", rich_help_panel=EXPLAIN),
    head: Optional[str] = typer.Option(None, help="How outputs become probabilities: softmax (exclusive classes) or sigmoid (one logit, or independent attributes) [default: automatic: one output or CelebA attributes = outputs -> sigmoid, else softmax].", rich_help_panel=MODEL),
    output: Optional[str] = typer.Option(None, help="For a model returning a tuple, list or dict: the INDEX or KEY holding the class scores [default: the first tensor; a dict's 'logits'].", rich_help_panel=MODEL),
    method: Optional[str] = typer.Option(None, help=METHOD_HELP, rich_help_panel=EXPLAIN),
    baseline: Optional[str] = typer.Option(None, help=BASELINE_HELP, rich_help_panel=EXPLAIN),
    samples: Optional[int] = typer.Option(None, help=f"region-ablation: Shapley values from N random region orders instead of one region at a time [default: {DEFAULT.samples}].", rich_help_panel=EXPLAIN),
    bootstrap: Optional[int] = typer.Option(None, help=f"Resamples of images for 95% intervals and group tests; 0 = t intervals [default: {DEFAULT.bootstrap}].", rich_help_panel=EXPLAIN),
    check_images: Optional[int] = typer.Option(None, help=f"Images sampled for the faithfulness and sanity checks; 0 = skip them [default: {DEFAULT.check_images}].", rich_help_panel=EXPLAIN),
    out_path: Optional[Path] = typer.Option(None, "--out", help=f"HTML report to write [default: {DEFAULT.out}].", rich_help_panel=OUTPUT),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here.", rich_help_panel=OUTPUT),
    patches: Optional[int] = typer.Option(None, help=f"Top patches shown per region [default: {DEFAULT.patches}].", rich_help_panel=OUTPUT),
    full_paths: bool = typer.Option(False, "--full-paths", help="Show absolute paths of the inputs in the report and JSON [default: file names only, image paths relative to --images].", rich_help_panel=OUTPUT),
    config: Optional[Path] = typer.Option(None, help="TOML file with any of these options ('reportgen init' writes one); options given here win.", rich_help_panel=RUNNING),
    batch_size: Optional[int] = typer.Option(None, help=f"Images per model batch [default: {DEFAULT.batch_size}].", rich_help_panel=RUNNING),
    workers: Optional[int] = typer.Option(None, help="Processes decoding images and finding faces while the model runs; 0 = none (a thread of this process does it, one batch ahead) [default: cores - 1, at most 4; none on a machine with 2 cores or fewer].", rich_help_panel=RUNNING),
    device: Optional[str] = typer.Option(None, help=f"auto, cpu, cuda (or cuda:N) or mps; auto: CUDA when available, else MPS, else CPU [default: {DEFAULT.device}].", rich_help_panel=RUNNING),
    cache_dir: Optional[Path] = typer.Option(None, help="Landmark cache folder [default: ~/.cache/reportgen/landmarks].", rich_help_panel=RUNNING),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the landmark cache.", rich_help_panel=RUNNING),
    shard: Optional[str] = typer.Option(None, help="I/N: process every N-th image from the I-th and save partial results; combine with 'reportgen merge'.", rich_help_panel=RUNNING),
    partial: Optional[Path] = typer.Option(None, help="Partial-results / checkpoint file [default: beside --out, e.g. report.partial.json].", rich_help_panel=RUNNING),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if an interrupted run left a checkpoint.", rich_help_panel=RUNNING),
    dask: Optional[str] = typer.Option(None, "--dask", metavar="ADDRESS|local", help="Run the shards on a Dask cluster and merge them here: a scheduler's address (tcp://host:8786), or local for one worker process per core (needs reportgen[dask]; docs/scaling.md).", rich_help_panel=RUNNING),
    shards: Optional[int] = typer.Option(None, help="With --dask: how many shards [default: 2 per worker thread, at least 32 images each; when continuing an interrupted run, its count].", rich_help_panel=RUNNING),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors.", rich_help_panel=RUNNING),
):
    """Explain a model on a face dataset and write the HTML report (and optionally results.json)."""
    from .inputs.config import make_config

    started = time.time()
    settings = _guarded(lambda: make_config(
        config, images=images, annotations=annotations, target=target, protected=protected,
        model_file=model_file, model_var=model_var, model_class=model_class, weights=weights, transform=transform,
        pairs=pairs or None, reference=reference, threshold=threshold,
        image_size=image_size, mean=mean, std=std, layer=layer, target_class=target_class, head=head, output=output,
        method=method,
        baseline=baseline, samples=samples, bootstrap=bootstrap, check_images=check_images,
        out=out_path, json=json_path, patches=patches, batch_size=batch_size, workers=workers, device=device, cache_dir=cache_dir,
        no_cache=no_cache or None, shard=shard, partial=partial, resume=False if no_resume else None,
        full_paths=full_paths or None, dask=dask, shards=shards), debug)
    if settings.shards is not None and not settings.dask:
        _fail("--shards needs --dask; to run one shard of a run by hand, use --shard I/N")
    if settings.dask:
        _run_on_dask(settings, debug, started)
        return
    if settings.partial is None and not settings.shard:
        # The command line checkpoints beside the report, so running it again after Ctrl-C resumes.
        settings.partial = settings.out.with_name(settings.out.stem + ".partial.json")
    state, context = _run_with_progress(settings, debug)
    if settings.shard:
        from .analysis import checkpoint_path

        out.print(f"[green]wrote[/] partial results {checkpoint_path(settings)} ({int(state.done.sum())} images); "
                  f"combine all shards with: reportgen merge PARTS... --out report.html")
        return
    _write_outputs(_guarded(lambda: state.results(context), debug), settings, debug, started)


@app.command()
def merge(
    parts: list[Path] = typer.Argument(..., help="Partial-results files written by 'reportgen run --shard I/N'."),
    out_path: Path = typer.Option(Path("report.html"), "--out", help="HTML report to write."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here."),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors."),
):
    """Combine the shards of a run into the report a single run would give."""
    from types import SimpleNamespace

    from .results.state import merge_partials

    started = time.time()
    results = _guarded(lambda: merge_partials(parts), debug)
    _write_outputs(results, SimpleNamespace(out=out_path, json=json_path), debug, started)


@app.command()
def demo(
    out_path: Optional[Path] = typer.Option(None, "--out", help="HTML report to write [default: demo_report.html; with --pairs verification_report.html]."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here."),
    pairs: bool = typer.Option(False, "--pairs", help="The face-verification demo: pairs of the sample images and an embedding model."),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors."),
):
    """Run on the bundled samples (a small face dataset with a planted cue and a model trained on it; with
    --pairs, face verification over pairs of the same images)."""
    from .inputs.config import make_config
    from .resources import samples_dir

    started = time.time()
    name, default_out = ("verification.toml", "verification_report.html") if pairs else ("demo.toml", "demo_report.html")
    settings = _guarded(lambda: make_config(samples_dir() / name, out=out_path or Path(default_out), json=json_path),
                        debug)
    what = "the pairs (photos of two people) are" if pairs else "the planted cue is"
    out.print(f"demo: {settings.images} with {settings.model_file.name}; {what} described in "
              f"{samples_dir() / 'README.md'}")
    state, context = _run_with_progress(settings, debug)
    _write_outputs(_guarded(lambda: state.results(context), debug), settings, debug, started)


@app.command()
def layers(
    model_file: Path = typer.Option(..., help="Python file that builds the architecture."),
    model_var: Optional[str] = typer.Option(None, help="Variable holding the model [default: model]."),
    model_class: Optional[str] = typer.Option(None, help="Or: a class in the model file, built with no arguments."),
    weights: Optional[Path] = typer.Option(None, help="Optional state_dict: checks that it fits the model."),
    transform: Optional[Path] = typer.Option(None, help="Transform file, to use its input size."),
    image_size: int = typer.Option(224, help="Without --transform: the square input size for the dummy image."),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors."),
):
    """List the model's layers from input to output with their output shapes, to pick --layer."""
    from rich.table import Table

    from .analysis import _input_shape
    from .inputs.model import describe_layers, load_model, load_weights, pick_layer
    from .inputs.preprocess import load_transform

    def inspect():
        model = load_model(model_file, model_var, model_class)
        if weights:
            load_weights(model, weights)
        size, channels = _input_shape(load_transform(transform)) if transform else ((image_size, image_size), 3)
        found = describe_layers(model, size, channels)
        return size, channels, found, pick_layer(found, None)

    size, channels, found, default = _guarded(inspect, debug)
    kind = "" if channels == 3 else f" {channels}-channel"
    table = Table(title=f"{model_file} on a {size[0]}x{size[1]}{kind} input (first run to last)", title_justify="left")
    table.add_column("name", overflow="fold", min_width=12)
    for column in ("type", "output shape", "parameters", "grid", ""):
        table.add_column(column, no_wrap=True)
    for info in found:
        shape = "not used in forward" if info.output_shape is None else " x ".join(map(str, info.output_shape))
        if info.name == default.name:
            mark = "default for Grad-CAM"
        elif info.spatial and info.gradient is False:
            mark = "no gradient: output ignores it"
        else:
            mark = ""
        table.add_row(info.name, info.kind, shape, f"{info.parameters:,}", info.grid_text(), mark)
    # Piped output gets a wide table rather than names folded at 80 columns.
    (out if out.is_terminal else Console(highlight=False, width=170)).print(table)
    out.print("Grad-CAM and HiResCAM need a layer whose output is a grid over the image: channels x height x width, "
              "channels last, or a transformer's patch tokens (grid: rows x columns after any class tokens). "
              f"Default: --layer {default.name}")


@app.command()
def regions(
    image: Path = typer.Argument(..., help="A face image to check."),
    out_path: Path = typer.Option(Path("regions.png"), "--out", help="PNG to write."),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors."),
):
    """Draw the face regions and the 68 landmarks on one image, to check them by eye."""
    from .results.drawing import region_sheet

    def draw():
        from .faces.images import ImageError, decode_image
        from .faces.landmarks import detect_face, pose_note

        if not image.is_file():
            raise InputError(f"{image}: file not found")
        try:
            picture, _notes = decode_image(image)  # the same decoding as a run: EXIF, 16-bit, CMYK...
        except ImageError as error:
            raise InputError(f"{image}: {error}") from None
        face = detect_face(picture)
        if face is None:
            raise InputError(f"{image}: no face found")
        region_sheet(picture, face).save(out_path)
        return face, pose_note(face.landmarks)

    face, turned = _guarded(draw, debug)
    out.print(f"wrote {out_path} (face found by: {face.detection}"
              + (f"; {face.faces_found} faces, the largest drawn" if face.faces_found > 1 else "") + ")")
    if turned:
        out.print(f"note: {turned}")


@app.command()
def init(
    path: Path = typer.Argument(Path("run.toml"), help="Where to write the configuration."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
):
    """Write a commented run.toml to edit; then: reportgen run --config run.toml"""
    from .inputs.config import INIT_TEMPLATE

    if path.exists() and not force:
        _fail(f"{path} already exists; pass --force to overwrite it")
    path.write_text(INIT_TEMPLATE.format(name=path.name))
    out.print(f"wrote {path}; edit it, then run: reportgen run --config {path}")


if __name__ == "__main__":
    sys.exit(app())
