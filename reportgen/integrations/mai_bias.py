"""reportgen as a MAI-BIAS module: the face-region report for the toolkit's own image datasets and models.

MAI-BIAS modules are functions decorated with ``mammoth_commons.integration.metric`` that take the
toolkit's objects — ``dataset: Image`` (or ``ImagePairs``), ``model: Pytorch``, ``sensitive: List[str]``,
then options with defaults — and return ``mammoth_commons.exports.HTML``. The toolkit's loaders already
hold the model and the transform in memory (``model.model``, ``dataset.data_transform``), so this module
hands them to ``reportgen.analyze`` as objects (see reportgen.inputs.run_inputs), with the annotation CSV and
the image folder as files, and returns the full self-contained report.

Install: ``pip install ".[mai-bias]"`` from reportgen's checkout, in the toolkit's environment (the name
``reportgen`` on the package index belongs to another project). The toolkit's decorator, when this file
is imported, checks that the current folder contains this file and writes
``component_metadata/reportgen_face_regions_meta.yaml`` beside it, as for its own catalogue: run the
toolkit from a folder above the environment reportgen is installed in. To list the module in the
toolkit's app, register it beside FaceX in ``mai_bias/backend/catalogue_loaders.py``::

    from reportgen.integrations.mai_bias import reportgen_face_regions
    registry.analysis(reportgen_face_regions)

How the toolkit shows the result: its desktop app displays and saves ``HTML.text()`` (the body alone),
its console wraps the body in a page of its own (``HTML.all()``). So the body is the whole report as
one page (styles, scripts and data inlined, nothing fetched from the network), and the header repeats
the report's Content-Security-Policy, which a policy inside the body cannot enforce.
"""


import re
from typing import Literal

from mammoth_commons.datasets import Image, ImagePairs
from mammoth_commons.exports import HTML
from mammoth_commons.integration import metric
from mammoth_commons.models.pytorch import Pytorch

# reportgen's methods (reportgen.explain.attribution.METHODS; a test keeps the two lists equal). A Literal
# becomes a drop-down list in the toolkit's interface.
Method = Literal["gradcam", "hirescam", "integrated-gradients", "occlusion", "region-ablation"]

# reportgen's errors name its command-line options; in the toolkit the user set these fields instead.
TOOLKIT_NAMES = (
    ("--target-class", "target_class"), ("--target", "target"), ("--protected", "sensitive"),
    ("--images", "image_root_dir"), ("--annotations", "path"), ("--layer", "target_layer"),
    ("--method", "method"), ("--check-images", "check_images"), ("--transform", "data_transform_path"),
)
POLICY = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def _optional(value):
    """The toolkit's interface passes text ("None", "" for no value); its pipelines pass None."""
    return None if value is None or str(value).strip() in ("", "None") else value


def _whole_number(value, name: str) -> int | None:
    value = _optional(value)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        from reportgen.errors import InputError

        raise InputError(f"{name} {value!r}: give a whole number") from None


def _in_toolkit_terms(message: str) -> str:
    for option, field in TOOLKIT_NAMES:
        message = re.sub(rf"{re.escape(option)}(?![\w-])", field, message)
    return message


@metric(namespace="reportgen", version="v010", python="3.11", packages=())
def reportgen_face_regions(
    dataset: Image,
    model: Pytorch,
    sensitive: list[str],
    method: Method = "gradcam",
    # The toolkit draws its form from these annotations and knows str and int, not Optional: None means "empty".
    target_layer: str = None,  # type: ignore[assignment]
    target_class: int = None,  # type: ignore[assignment]
    check_images: int = 64,
) -> HTML:
    """
    <h3>face regions that drive an image classifier (reportgen)</h3>

    reportgen finds the 68 landmarks of each face and turns them into named regions (eyes, brows, nose,
    lips, forehead, cheeks, chin, hair, ears, neck and background). It then measures how much of the
    model's attention falls in each region, over the whole dataset and for each group of every
    sensitive attribute, with 95% bootstrap intervals, and tests the differences between groups.
    The result is one self-contained report that opens offline in any browser.

    <details><summary><i>How to read the report.</i></summary>
    A region's density is its share of the attention divided by its share of the picture, so 1.0
    means attention spread evenly and 3.0 means three times the average. Regions are ranked by density.
    The report also checks the explanation itself. Deleting each image's top region must lower the class
    probability more than deleting a random region of similar size (faithfulness), and the ranking
    must change when the model's weights are randomised (sanity check). Regions outside the landmarks
    (hair, ears, neck, the top of the forehead) are geometric estimates and are marked as such.
    </details>

    <details><summary><i>Responsible use.</i></summary>
    An explanation shows where a model looks, not why, and not whether that is fair. Attention on
    the background or on accessories can reveal a shortcut, but a small dataset gives wide intervals,
    and the landmark model behind the regions was trained on the iBUG 300-W faces (research use only).
    </details>

    Args:
        method: How the attention of the model is measured. gradcam is the default and the fastest. hirescam is a sharper variant. integrated-gradients works at pixel level. occlusion and region-ablation measure how the class probability drops when a window or a face region is removed (slower).
        target_layer: The layer of the model to explain, by its module name, for example layer4 in a ResNet. Leave empty for the last layer with a spatial output, usually the right choice for the gradcam and hirescam methods.
        target_class: The class whose evidence is explained, for example 1. Leave empty to explain each image's predicted class.
        check_images: How many images are sampled for the faithfulness and sanity checks of the explanation. Set 0 to skip the checks.
    """
    from reportgen.inputs.config import FIELDS

    options = _options(dataset, model, sensitive, method, target_layer, target_class, check_images)
    if getattr(model, "threshold", 0) and "head" in FIELDS:
        # The toolkit's non-zero threshold means: each output is a separate yes/no class.
        options["head"] = "sigmoid"
    return _report(options)


def _options(dataset, model, sensitive, method, target_layer, target_class, check_images) -> dict:
    """reportgen.analyze's options from the toolkit's dataset (Image or ImagePairs), model and form fields."""
    return dict(
        images=dataset.root_dir, annotations=dataset.path, target=dataset.target,
        protected=[str(column) for column in sensitive or []],
        model=model.model, transform=dataset.data_transform,
        method=str(method), layer=_optional(target_layer), target_class=_whole_number(target_class, "target_class"),
        check_images=_whole_number(check_images, "check_images"), device="auto",
    )


def _report(options: dict) -> HTML:
    """Run reportgen with ``options`` and wrap its self-contained report for the toolkit; errors name the
    toolkit's fields, not reportgen's options."""
    import reportgen
    from reportgen.errors import InputError

    try:
        results = reportgen.analyze(**options)
    except InputError as error:
        raise InputError(_in_toolkit_terms(str(error))) from None
    page = reportgen.render_html(results)
    policy = POLICY.search(page)
    return HTML(page, header=policy.group(0) if policy else "")


# The toolkit picks a module by the dataset's type, so face verification (ImagePairs) has its own module beside
# the classifier's rather than one module branching on it.
@metric(namespace="reportgen", version="v010", python="3.11", packages=())
def reportgen_face_verification(
    dataset: ImagePairs,
    model: Pytorch,
    sensitive: list[str],
    method: Method = "gradcam",
    target_layer: str = None,  # type: ignore[assignment]
    target_class: int = 1,
    check_images: int = 64,
) -> HTML:
    """
    <h3>face regions that make two faces look alike to a face-recognition model (reportgen)</h3>

    For a model that turns a face into an embedding, reportgen explains the cosine similarity of the two
    images of each pair: which named face regions (eyes, brows, nose, lips, forehead, cheeks, chin, hair, ears,
    neck and background) of each image make it look like the other one, whose embedding is held fixed. It
    measures this over all pairs, for genuine pairs (the same person) and impostor pairs, and for each group of
    every sensitive attribute, with 95% bootstrap intervals and tests of the differences between groups. Beside
    it, the quality of the model's same/different decisions per group: the accuracy at the threshold with the
    best accuracy on these pairs, true and false accept rates, and the similarity distributions.
    The result is one self-contained report that opens offline in any browser.

    <details><summary><i>How to read the report.</i></summary>
    A region's density is its share of the attention divided by its share of the picture, so 1.0
    means attention spread evenly and 3.0 means three times the average. Each image is shown beside the
    other image of its pair. The report also checks the explanation itself: removing the regions it ranks
    first must lower the similarity faster than removing them in random order, and the ranking must change
    when the model's weights are randomised. A gap in decision accuracy between groups beyond noise is
    called out first.
    </details>

    Args:
        method: How the attention of the model is measured. gradcam is the default and the fastest. hirescam is a sharper variant. integrated-gradients works at pixel level. occlusion and region-ablation measure how much the similarity drops when a window or a face region is removed (slower; the better choice when genuine pairs are almost identical to the model).
        target_layer: The layer of the model to explain, by its module name. Leave empty for the last layer with a spatial output.
        target_class: 1 explains what makes the two faces similar, 0 what makes them different.
        check_images: How many images are sampled for the faithfulness and sanity checks of the explanation. Set 0 to skip the checks.
    """
    return _report(dict(_options(dataset, model, sensitive, method, target_layer, target_class, check_images),
                        pairs=True))
