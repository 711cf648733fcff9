"""The results dict as types: one ``TypedDict`` per section of results.json (schema ``reportgen/1``).

docs/results.md is the prose spec (what each field means, with an example); this module is the checked
one: the builders (``RunState.results`` and the section builders it calls) return these types, the report
(``reportgen/report/view.py``, ``figures.py``) reads them, mypy holds both sides to them, and
``tests/test_schema.py`` checks real results against them key by key.

Which keys are required: a key in the first results.json (docs/results.md as commit 0811fb6 wrote it) that
every run still writes is required. A key added since (older results.json files lack it, so a reader asks with ``.get``)
or written only for some runs (face verification, a multi-label model, region ablation, ``--dask``) is
``NotRequired``. A value that can be missing (not measured, not applicable) is ``X | None``; JSON has no
tuples, so pairs such as intervals are two-item lists. No torch and no numpy here: every stage may import it.
No ``from __future__ import annotations`` either: with it, Python 3.11 cannot see ``NotRequired`` at run time
and lists every key in ``__required_keys__``, which tests/test_schema.py reads.
"""

from typing import Any, NotRequired, TypedDict

SCHEMA = "reportgen/1"

Interval = list[float | None]  # [low, high] of a 95% interval; [None, None] when it could not be measured
Point = list[float]  # [x, y] in canvas (or image) pixels
Polygon = list[Point]
Grid = list[list[float | None]]  # rows top to bottom; None where nothing was measured
Config = dict[str, Any]  # RunConfig.to_dict(): every option of the run (reportgen/inputs/config.py owns the names)


# -- who made it, and with what -----------------------------------------------------------------------------

class Tool(TypedDict):
    name: str  # "reportgen"
    version: str
    python: str
    torch: str
    captum: str
    dlib: str
    numpy: NotRequired[str]


class MethodSettings(TypedDict):
    """The methods' fixed settings (``explain.methods.method_settings``); sizes in model-input pixels."""

    ig_steps: int
    occlusion_window: int
    occlusion_stride: int
    effect_floor: float  # region ablation: drops under this count as 0 (probability, 0-1)
    blur_sigma: float


class DaskRun(TypedDict):
    """``run.dask``: what ran on the cluster (``cluster.DaskRun``)."""

    scheduler: str  # "local" or the address given
    workers: int
    threads: int
    shards: int
    reused: list[int]
    resumed: list[int]
    seconds: float  # wall-clock


class RunSetup(TypedDict):
    """``run`` as decided before the first image (``analysis.run_context``); ``Run`` adds the totals."""

    target: str | None  # annotation column holding the true label
    target_class: int | None  # None: each image's predicted class
    target_class_name: NotRequired[str | None]
    head: NotRequired[str]  # softmax | sigmoid | similarity
    head_detail: NotRequired[str]
    head_source: NotRequired[str]  # "automatic" | "option"
    head_reason: NotRequired[str]
    outputs: NotRequired[int]
    classes: NotRequired[int]
    class_names: NotRequired[list[str] | None]
    output: NotRequired[str]
    label_column: NotRequired[str | None]
    layer: str | None  # None: a method without a layer on a model without a grid layer
    layer_source: str  # "option" | "default"
    layer_type: NotRequired[str | None]
    layer_shape: NotRequired[list[int] | None]
    layer_grid: NotRequired[list[int] | None]  # [rows, columns]
    layer_layout: NotRequired[str | None]  # conv | channels-last | tokens
    input_channels: NotRequired[int]
    method: str
    baseline: NotRequired[str]  # "mean" | "blur"
    task: NotRequired[str]  # "classification" | "verification"
    pairs: NotRequired[bool]
    reference: NotRequired[str | None]
    threshold: NotRequired[float | None]
    samples: NotRequired[int]
    bootstrap: NotRequired[int]
    check_images: NotRequired[int]
    method_settings: NotRequired[MethodSettings]
    interval: NotRequired[str]
    images: str
    annotations: str
    annotation_format: str  # csv | celeba | rows | list
    model_file: str
    model_name: str
    weights: str
    transform: str
    input_size: list[int]  # [height, width]
    protected: list[str]
    device: str
    batch_size: int
    workers: NotRequired[int | None]
    started: str  # ISO 8601, UTC
    channels_last: NotRequired[bool]
    dask: NotRequired[DaskRun]


class Run(RunSetup):
    """``run``: what was explained and how (contract: target, target_class, layer, method), with the totals."""

    seconds: float  # compute time, summed over resumes and shards
    detector_calls: NotRequired[int]  # images whose face was searched (not read from the landmark cache)


# manifest["inputs"] entries: a file's digest, or what an input given as a Python object can say of itself.
# One shape with every field optional, since the entries differ by input (reportgen/results/manifest.py,
# reportgen/inputs/run_inputs.py); "class" is a keyword, hence the call syntax.
ManifestInput = TypedDict("ManifestInput", {
    "path": str, "bytes": int, "sha256": str, "error": str,  # a file (error: it could not be read)
    "files": int, "missing": int,  # every image of the dataset (manifest.images_digest)
    "given": str, "note": str, "images": int, "rows": int, "columns": list[str], "repr": str,  # objects
    "class": str, "parameters": int, "parameters_sha256": str, "classes": list[str] | None,  # the model
}, total=False)


class Manifest(TypedDict):
    """``manifest``: versions, platform, input digests and options (reportgen/results/manifest.py)."""

    schema: str  # "reportgen-manifest/1"
    versions: dict[str, str | None]
    platform: dict[str, str]
    inputs: dict[str, ManifestInput | None]
    options: Config
    determinism: dict[str, bool | int]  # empty when torch was not loaded


# -- what was analysed ---------------------------------------------------------------------------------------

class Counts(TypedDict):
    """``counts`` (contract): images = annotation rows (2 per pair for a pair file)."""

    images: int
    aligned: int
    failed: int
    scored: NotRequired[int]
    pairs: NotRequired[int]  # a pair file: its rows


class Failure(TypedDict):
    image: str
    reason: str


class ImageNote(TypedDict):
    image: str
    note: str


# -- region scores -------------------------------------------------------------------------------------------

class RegionScores(TypedDict):
    """The numbers of a region row: means over the images with their 95% intervals."""

    share: float | None
    share_ci: Interval
    area: float | None
    density: float | None
    ci: Interval  # of density
    n: int
    effect: NotRequired[float | None]  # region ablation only: drop of the class probability (0-1)
    effect_ci: NotRequired[Interval]
    effect_n: NotRequired[int]


class RegionRow(RegionScores):
    """A row of ``regions`` (a face region) or ``region_groups`` (a group of regions), overall or per group."""

    id: str
    label: str
    estimated: NotRequired[bool]  # regions: outside the landmark hull, so a geometric estimate
    members: NotRequired[list[str]]  # region groups: their regions


class Group(TypedDict):
    """``groups[key]``: one value of a ``--protected`` column (key ``column=value``)."""

    column: str
    value: str
    n: int
    regions: list[RegionRow]
    region_groups: list[RegionRow]
    mean_attribution: Grid | None


class RegionDifference(TypedDict):
    """A region of a ``comparisons`` entry: density of group b minus group a."""

    id: str
    label: str
    density_a: float | None
    density_b: float | None
    difference: float | None
    ci: Interval
    p_value: NotRequired[float | None]
    test: NotRequired[str]  # "bootstrap" | "welch"
    p_adjusted: NotRequired[float | None]  # Holm-adjusted over the regions compared
    beyond_noise: bool


class Comparison(TypedDict):
    column: str
    a: str
    b: str
    n_a: int
    n_b: int
    regions: list[RegionDifference]


# -- the model's answers -------------------------------------------------------------------------------------

class AttributeRow(TypedDict):
    """A multi-label model's attribute (``predictions.attributes``)."""

    name: str
    n_labelled: int
    accuracy: float | None
    predicted_rate: float | None
    true_rate: float | None


class Predictions(TypedDict):
    accuracy: float | None
    n_labelled: int
    predicted_counts: dict[str, int]
    mean_probability: float | None
    attributes: NotRequired[list[AttributeRow] | None]


class SimilarityHistogram(TypedDict):
    edges: list[float]
    genuine: list[int]
    impostor: list[int]


class PairQuality(TypedDict):
    """Verification quality of a set of pairs (``verification.overall``, ``verification.groups[key]``)."""

    pairs: int
    genuine: int
    impostor: int
    accuracy: float | None
    accuracy_ci: Interval  # Wilson
    true_accept_rate: float | None
    false_accept_rate: float | None
    mean_genuine: float | None
    mean_impostor: float | None
    histogram: SimilarityHistogram


class AccuracyComparison(TypedDict):
    column: str
    a: str
    b: str
    n_a: int
    n_b: int
    accuracy_a: float | None
    accuracy_b: float | None
    difference: float | None  # b - a
    ci: Interval  # Newcombe
    beyond_noise: bool


class Verification(TypedDict):
    """``verification``: face verification only (``--pairs``, ``--reference``)."""

    threshold: float
    threshold_source: str  # "option" | "best accuracy on these pairs"
    unlabelled_pairs: int
    overall: PairQuality
    groups: dict[str, PairQuality]
    comparisons: list[AccuracyComparison]


# -- pictures ------------------------------------------------------------------------------------------------

class CanonicalFace(TypedDict):
    """``canonical_face``: where the face-region maps are drawn."""

    size: list[int]  # [width, height] of the canvas
    landmarks: list[Point] | None
    polygons: dict[str, list[Polygon]]  # region id -> polygons; none for the background
    paint_order: list[str]
    mean_attribution: Grid | None


class Patch(TypedDict):
    """A record of ``patches[region id]``: one image's crop around the region."""

    image: str
    label: str | None
    similarity: NotRequired[float]  # face verification (also in "probability")
    probability: float
    prediction: int | None
    partner: NotRequired[str]  # face verification: the other image
    groups: NotRequired[dict[str, str]]
    score: float  # the region's share of the image's attention
    uri: str
    view: NotRequired[str]  # its key in "views"


class View(TypedDict):
    """``views[image]``: one whole image, with its map and with its regions."""

    uri: str
    regions_uri: str
    label: str | None
    prediction: int | None
    probability: float
    groups: NotRequired[dict[str, str]]
    similarity: NotRequired[float]
    partner: NotRequired[str]
    partner_uri: NotRequired[str]
    partner_regions_uri: NotRequired[str]


class Example(TypedDict):
    image: str
    label: str | None
    similarity: NotRequired[float]
    probability: float
    prediction: int | None
    partner: NotRequired[str]
    groups: NotRequired[dict[str, str]]
    why: str  # "most confident" | "least confident"
    uri: str
    regions_uri: str
    partner_uri: NotRequired[str]


class BrowserImage(TypedDict):
    image: str
    label: str | None
    prediction: int | None
    probability: float
    groups: dict[str, str]
    shares: list[float]  # in the order of browser.regions
    uri: str
    similarity: NotRequired[float]
    partner: NotRequired[str]
    why: str  # "highest confidence" | "lowest confidence" | "random"


class Browser(TypedDict):
    """``browser``: a bounded, representative sample of all scored images."""

    total_seen: int
    sampled: bool
    size: int
    highest: int
    lowest: int
    random: int
    seed: int
    regions: list[str]
    images: list[BrowserImage]


# -- can the explanation be trusted? -------------------------------------------------------------------------

class SingleRegionInProbability(TypedDict, total=False):
    """``faithfulness.single_region`` in class probability (0-1); absent for a model without probabilities."""

    top_drop_probability: float | None
    top_drop_probability_ci: Interval
    random_drop_probability: float | None
    random_drop_probability_ci: Interval


class SingleRegion(SingleRegionInProbability):
    """``faithfulness.single_region``: the top-ranked region alone against random orders at its area."""

    top_drop: float | None
    top_drop_ci: Interval
    random_drop: float | None
    random_drop_ci: Interval
    top_area: float | None


class DeletionImage(TypedDict):
    """A row of ``faithfulness.per_image``."""

    row: int
    top_region: str
    top_area: float
    evidence: NotRequired[float | None]  # the deletion curves (before them: top_drop and random_*)
    probability: float | None
    difference: NotRequired[float | None]
    top_drop: NotRequired[float | None]  # results from before the deletion curves
    random_region: NotRequired[str]
    random_drop: NotRequired[float | None]
    random_area: NotRequired[float]


class DeletionInProbability(TypedDict, total=False):
    """The deletion curves read in class probability (0-1; the report shows percentage points); absent for a
    model without probabilities."""

    ranked_mean_probability: float | None
    ranked_mean_probability_ci: Interval
    random_mean_probability: float | None
    random_mean_probability_ci: Interval
    ranked_drop_probability: list[float | None]
    ranked_drop_probability_ci: list[Interval]
    random_drop_probability: list[float | None]
    random_drop_probability_ci: list[Interval]
    difference_probability: float | None
    difference_probability_ci: Interval


class Faithfulness(DeletionInProbability):
    """``faithfulness``: the deletion check. Results from before the deletion curves have ``top_drop`` and
    a single-number ``random_drop`` (in probability) in place of the curves; the report still reads them."""

    images: int
    baseline: str
    evidence: NotRequired[str]  # what the curves measure ("log-odds of the explained class")
    area_limit: NotRequired[float]
    random_orders: NotRequired[int]
    areas: NotRequired[list[float]]
    ranked_mean: NotRequired[float | None]
    ranked_mean_ci: NotRequired[Interval]
    random_mean: NotRequired[float | None]
    random_mean_ci: NotRequired[Interval]
    ranked_drop: NotRequired[list[float | None]]
    ranked_drop_ci: NotRequired[list[Interval]]
    random_drop: NotRequired[list[float | None] | float | None]  # a curve; before the curves, one number
    random_drop_ci: NotRequired[list[Interval] | Interval]
    difference: float | None
    difference_ci: Interval
    single_region: NotRequired[SingleRegion]
    faithful: bool
    top_drop: NotRequired[float | None]  # results from before the deletion curves
    top_drop_ci: NotRequired[Interval]
    top_area: NotRequired[float | None]
    random_area: NotRequired[float | None]
    top_regions: dict[str, int]  # region id -> images that had it as top region
    per_image: list[DeletionImage]


class SanityStep(TypedDict):
    """A step of ``sanity.steps``: the model randomised from the output layer down to here."""

    randomised: str
    images: int
    rank_correlation: float | None
    rank_correlation_ci: Interval
    mean_ranking_correlation: float | None
    zero_maps: int
    top_region_randomised: str | None


class SanityThresholds(TypedDict):
    failed: float
    doubtful: float


class Sanity(TypedDict):
    """``sanity``: cascading model parameter randomisation; the top-level numbers are the last step's.
    Results from before the cascade have no ``steps`` (one randomisation of every layer)."""

    images: int
    checked_images: NotRequired[int]
    randomisation: str
    rank_correlation: float | None
    rank_correlation_ci: Interval
    mean_ranking_correlation: float | None
    top_region: str | None
    top_region_randomised: str | None
    zero_maps: int
    steps: NotRequired[list[SanityStep]]
    verdict: str  # "passed" | "doubtful" | "failed" | "unknown"
    thresholds: SanityThresholds


class Finding(TypedDict):
    kind: str  # findings.findings lists the kinds
    severity: str  # "info" | "warning"
    text: str


# -- the whole ------------------------------------------------------------------------------------------------

class Sections(TypedDict):
    """Every section but ``findings``, which are read from the others (``findings.findings``)."""

    schema: str  # "reportgen/1" (contract)
    tool: Tool
    run: Run
    config: Config
    counts: Counts
    failures: list[Failure]
    image_notes: NotRequired[list[ImageNote]]
    manifest: NotRequired[Manifest | None]  # None: a run context without one (a checkpoint from before it)
    detection: dict[str, int]  # how faces were found -> images
    notes: list[str]
    regions: list[RegionRow]  # by density, highest first (contract)
    region_groups: list[RegionRow]
    groups: dict[str, Group]  # (contract)
    comparisons: list[Comparison]
    predictions: Predictions | None  # None for face verification
    canonical_face: CanonicalFace
    patches: dict[str, list[Patch]]  # region id -> best first
    examples: list[Example]
    views: NotRequired[dict[str, View]]
    browser: NotRequired[Browser]
    faithfulness: NotRequired[Faithfulness | None]  # None: checks off, or no image could be checked
    sanity: NotRequired[Sanity | None]
    verification: NotRequired[Verification | None]


class ResultsDict(Sections):
    """The results of a run: what results.json holds and the report embeds (docs/results.md)."""

    findings: list[Finding]  # most important first
