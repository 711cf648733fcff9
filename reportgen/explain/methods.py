"""The attribution methods as facts, in one place that needs no torch: ids, names, what each needs and
measures, and the fixed settings they run with.

``reportgen.explain.attribution`` implements them (one class per entry, ``about = METHODS[id]``); the CLI's
``--method`` help, the report's text and its templates read the entries here, so a method's name,
whether it uses ``--layer`` or ``--baseline``, and its settings are stated once. Option defaults (the
default method, the default baseline) live in ``config.RunConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: results.json's run.method_settings
    from ..results.schema import MethodSettings


@dataclass(frozen=True)
class Method:
    """One attribution method, as the user, the CLI and the report see it.

    ``removes_parts``: the map comes from replacing parts of the image by the baseline and watching the
    class score fall (not from gradients). ``measures_regions``: the face regions are what is removed, so
    each region gets a probability drop of its own (``effect`` in results.json).
    """

    id: str  # --method and results.json run.method
    name: str  # at the start of a sentence: "Integrated gradients"
    inline_name: str  # mid-sentence: "what integrated gradients measures", but "what Grad-CAM measures"
    needs_layer: bool  # explains one layer's output, so --layer matters
    uses_baseline: bool  # replaces pixels by the baseline (--baseline)
    removes_parts: bool
    measures_regions: bool
    units: str  # what the map's values are
    summary: str  # a few words for --help
    reference: str  # the paper or the library behind it


METHODS: dict[str, Method] = {method.id: method for method in (
    Method("gradcam", "Grad-CAM", "Grad-CAM", needs_layer=True, uses_baseline=False, removes_parts=False,
           measures_regions=False, units="share of the attribution map", summary="Grad-CAM at --layer",
           reference="Selvaraju et al., 2017, arXiv:1610.02391"),
    Method("hirescam", "HiResCAM", "HiResCAM", needs_layer=True, uses_baseline=False, removes_parts=False,
           measures_regions=False, units="share of the attribution map", summary="HiResCAM at --layer",
           reference="Draelos & Collins, 2020, arXiv:2011.08891"),
    Method("integrated-gradients", "Integrated gradients", "integrated gradients", needs_layer=False,
           uses_baseline=True, removes_parts=False, measures_regions=False, units="share of the attribution map",
           summary="pixel-sharp input gradients", reference="Sundararajan et al., 2017, arXiv:1703.01365"),
    Method("occlusion", "Occlusion", "occlusion", needs_layer=False, uses_baseline=True, removes_parts=True,
           measures_regions=False, units="share of the class-score drop under occlusion",
           summary="a sliding window covered", reference="Zeiler & Fergus, 2014, arXiv:1311.2901"),
    Method("region-ablation", "Region ablation", "region ablation", needs_layer=False, uses_baseline=True,
           removes_parts=True, measures_regions=True,
           units="drop of the class probability when the region is replaced",
           summary="each face region removed in turn", reference="captum FeatureAblation / ShapleyValueSampling"),
)}
# run.method values of older results, and the method they name now.
ALIASES = {"layergradcam": "gradcam"}

# What replaces a removed region or window (--baseline, results.json run.baseline), in words.
BASELINES = {"mean": "the mean colour", "blur": "a blurred copy of the image"}

# Integrated-gradients path steps (Gauss-Legendre): 32 keeps the completeness error of a ResNet's
# class score small while costing 32 forward + backward passes per image.
IG_STEPS = 32
# Occlusion window side and stride as fractions of the input side: 1/7 of 224 px = 32 px windows
# (about an eye) moved by half a window, 13 x 13 positions.
OCCLUSION_WINDOW = 1 / 7
# Blur baseline: Gaussian sigma as a fraction of the input side (9 px at 224): removes the detail of
# an eye or a sticker but keeps the overall colour and light of the picture, so the model sees a
# plausible image rather than a black hole.
BLUR_SIGMA = 0.04
# region-ablation: probability drops below this (0.1 percentage points) do not count in the map.
EFFECT_FLOOR = 1e-3


def method_info(method_id) -> Method:
    """The entry for a ``run.method`` value (any case; older names included). A method this version does
    not know (results from a newer one) gets an entry named after its id, taken to explain a layer."""
    given = str(method_id or "gradcam")
    key = ALIASES.get(given.lower(), given.lower())
    if key in METHODS:
        return METHODS[key]
    name = str(method_id or "unknown")
    return Method(key, name, name if "CAM" in name else name[:1].lower() + name[1:], needs_layer=True,
                  uses_baseline=False, removes_parts=False, measures_regions=False,
                  units="share of the attribution map", summary="", reference="")


def method_settings(input_size: tuple[int, int]) -> MethodSettings:
    """The settings for a model input of ``input_size`` (height, width) pixels, as results.json's
    ``run.method_settings``: occlusion window and stride and blur sigma in input pixels."""
    side = max(2, round(OCCLUSION_WINDOW * min(input_size)))
    return {"ig_steps": IG_STEPS, "occlusion_window": side, "occlusion_stride": max(1, side // 2),
            "effect_floor": EFFECT_FLOOR, "blur_sigma": max(1.0, BLUR_SIGMA * max(input_size))}
