"""Attribution methods: a batch of model inputs in, one non-negative map per image out.

Every method has the same shape (as in captum):
``Method(model, layer, options).attribute(inputs, targets, regions, extra)`` returns an ``Explanation``
whose ``maps`` are a float tensor (B, H, W) in model-input pixels, non-negative, so nothing downstream
needs to know which method ran. ``regions`` is the (B, H, W) region label image of each input
(indices into ``REGION_IDS``); only ``region-ablation`` uses it. Methods that measure regions directly
also give ``effects``: (B, R) signed changes of the class probability per region (NaN where the image
does not show the region). ``extra``: more per-image inputs of the model's forward, aligned with ``inputs``
(a verification model's fixed partner embeddings), passed on as captum's ``additional_forward_args``.

Which method answers what:
  gradcam               where the chosen layer's features that support the class are (coarse: the
                        layer's grid), the cheapest (one forward + backward pass).
  hirescam              the same layer, but gradient x activation per cell before summing channels, so
                        each cell is credited with its own gradient (Draelos & Collins, 2020).
  integrated-gradients  which input pixels the class score depends on, along a straight path from a
                        baseline image (Sundararajan et al., 2017); pixel-sharp, ``IG_STEPS`` passes.
  occlusion             how much the class score drops when a square window is covered by the baseline
                        (Zeiler & Fergus, 2014); model-agnostic, one forward pass per window position.
  region-ablation       how much the class *probability* drops when one whole face region is replaced
                        by the baseline: the regions themselves are captum's ``feature_mask``. Needs no
                        layer and measures regions directly. With ``samples`` > 0, Shapley values
                        (ShapleyValueSampling) share the drop fairly among regions that act together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from captum.attr import (
    FeatureAblation,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    LayerGradientXActivation,
    Occlusion,
    ShapleyValueSampling,
)
from torchvision.transforms.functional import gaussian_blur

from ..faces.regions import REGION_IDS
from . import methods
from .layer_grid import GridLayout, grid_view
from .methods import EFFECT_FLOOR, IG_STEPS, method_settings

BASELINES = tuple(methods.BASELINES)


@dataclass
class Explanation:
    maps: torch.Tensor  # (B, H, W) >= 0, model-input pixels
    effects: torch.Tensor | None = None  # (B, len(REGION_IDS)) probability drops; region-ablation only


def baseline_images(inputs: torch.Tensor, kind: str) -> torch.Tensor:
    """What "removed" means: ``mean`` (all-zero model input, which after the usual Normalize(mean, std)
    is the mean colour of the data the model was trained on; the default) or ``blur`` (a heavily blurred
    copy: stays closer to a natural image, but keeps colour, so a cue carried by colour, such as a
    coloured sticker or skin tone, survives it)."""
    if kind == "mean":
        return torch.zeros_like(inputs)
    if kind != "blur":
        raise ValueError(f"unknown baseline {kind!r}; use one of {BASELINES}")
    sigma = method_settings((inputs.shape[-2], inputs.shape[-1]))["blur_sigma"]
    kernel = 2 * math.ceil(3 * sigma) + 1
    kernel = min(kernel, 2 * ((min(inputs.shape[-2:]) - 1) // 2) + 1)  # reflect padding needs kernel < side
    return gaussian_blur(inputs, [kernel, kernel], [sigma, sigma])


def _args(extra: tuple) -> tuple | None:
    """captum's ``additional_forward_args``: None when the model takes the images alone."""
    return tuple(extra) if extra else None


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    maps = LayerAttribution.interpolate(maps, tuple(size), interpolate_mode="bilinear")
    # Bilinear upsampling of non-negative values stays non-negative, but clamp rounding noise.
    return maps[:, 0].detach().clamp_min(0)


class Method:
    """Common options. ``about``: the method's entry in ``reportgen.explain.methods`` (id, name, needs_layer...)."""

    about: methods.Method
    single_forward = False  # one forward pass of the inputs themselves (its logits can be reused)

    def __init__(self, model: torch.nn.Module, layer: torch.nn.Module | None, baseline: str = "mean",
                 samples: int = 0, layout: GridLayout | None = None):
        self.model, self.layer, self.baseline, self.samples = model, layer, baseline, samples
        self.layout = layout  # how the layer's output reads as a grid (tokens, channels-last); None: conv

    def _layer(self) -> torch.nn.Module:
        """The layer of a method that needs one (``about.needs_layer``); the run resolves it before."""
        if self.layer is None:
            raise ValueError(f"{self.about.id} needs a layer")
        return self.layer

    def probabilities(self, inputs: torch.Tensor, *extra) -> torch.Tensor:
        """(B, classes) class probabilities as the model's head defines them (softmax or sigmoid)."""
        head = getattr(self.model, "probabilities", None)  # an ExplainedModel's, a plain module has none
        if head is not None:
            return head(inputs, *extra)
        return torch.softmax(self.model(inputs, *extra), 1)

    def attribute(self, inputs: torch.Tensor, targets: torch.Tensor,
                  regions: torch.Tensor | None = None, extra: tuple = ()) -> Explanation:
        raise NotImplementedError


class GradCAM(Method):
    """Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391) on one layer, via captum's LayerGradCam.

    The layer's activations are weighted by the spatially averaged gradient of the class score,
    summed over channels, passed through ReLU (only evidence *for* the class) and upsampled
    bilinearly to the model-input size. Caveat: the map is as coarse as the layer (7x7 for a
    ResNet's layer4 at 224 px), so small regions borrow attention from their neighbours.
    """

    about = methods.METHODS["gradcam"]
    single_forward = True

    def attribute(self, inputs, targets, regions=None, extra=()) -> Explanation:
        with grid_view(self._layer(), self.layout) as layer:
            maps = LayerGradCam(self.model, layer).attribute(inputs, target=targets, relu_attributions=True,
                                                      additional_forward_args=_args(extra))
        return Explanation(_upsample(maps, inputs.shape[-2:]))


class HiResCAM(Method):
    """HiResCAM (Draelos & Collins, 2020, arXiv:2011.08891): gradient x activation element-wise, then
    summed over channels and ReLU. Unlike Grad-CAM it does not average the gradient over the layer's
    grid first, so a cell gets credit only for its own contribution (provably so for models that end
    in global average pooling + one linear layer, like ResNets)."""

    about = methods.METHODS["hirescam"]
    single_forward = True

    def attribute(self, inputs, targets, regions=None, extra=()) -> Explanation:
        with grid_view(self._layer(), self.layout) as layer:
            products = LayerGradientXActivation(self.model, layer).attribute(inputs, target=targets,
                                                                             additional_forward_args=_args(extra))
        maps = products.sum(1, keepdim=True).clamp_min(0)
        return Explanation(_upsample(maps, inputs.shape[-2:]))


class IntegratedGradientsMethod(Method):
    """Integrated gradients from the baseline image to the input (``IG_STEPS`` steps); the map is the
    magnitude summed over colour channels (a pixel that matters either way counts)."""

    about = methods.METHODS["integrated-gradients"]

    def attribute(self, inputs, targets, regions=None, extra=()) -> Explanation:
        method = IntegratedGradients(self.model)
        values = method.attribute(inputs, baselines=baseline_images(inputs, self.baseline), target=targets,
                                  n_steps=IG_STEPS, internal_batch_size=max(len(inputs), 16),
                                  additional_forward_args=_args(extra))
        return Explanation(values.abs().sum(1).detach())


class OcclusionMethod(Method):
    """captum Occlusion: a square window (``OCCLUSION_WINDOW`` of the input side, stride half a window;
    see ``method_settings``)
    replaced by the baseline image; each pixel gets the mean drop of the class score over the windows
    that covered it. Only drops count (ReLU): covering that area lowered the score."""

    about = methods.METHODS["occlusion"]

    def attribute(self, inputs, targets, regions=None, extra=()) -> Explanation:
        settings = method_settings(tuple(inputs.shape[-2:]))
        side, stride = settings["occlusion_window"], settings["occlusion_stride"]
        values = Occlusion(self.model).attribute(
            inputs, sliding_window_shapes=(inputs.shape[1], side, side), strides=(inputs.shape[1], stride, stride),
            baselines=baseline_images(inputs, self.baseline), target=targets, perturbations_per_eval=4,
            additional_forward_args=_args(extra))
        # The drop is the same in every channel of a window: one channel is the map.
        return Explanation(values[:, 0].detach().clamp_min(0))


class RegionAblation(Method):
    """Each face region replaced by the baseline, one at a time (captum FeatureAblation with the region
    label image as ``feature_mask``), or Shapley values over regions (ShapleyValueSampling, ``samples``
    permutations). The effect of a region is the drop of the class probability; the map paints every
    pixel of a region with that region's drop (ReLU), so the region's density ranks regions by effect."""

    about = methods.METHODS["region-ablation"]

    def attribute(self, inputs, targets, regions=None, extra=()) -> Explanation:
        if regions is None:
            raise ValueError("region-ablation needs each image's region label image")
        mask = regions.to(inputs.device).long()[:, None]  # (B, 1, H, W): broadcast over colour channels
        baselines = baseline_images(inputs, self.baseline)
        if self.samples > 0:
            values = ShapleyValueSampling(self.probabilities).attribute(
                inputs, baselines=baselines, target=targets, feature_mask=mask, n_samples=self.samples,
                perturbations_per_eval=4, additional_forward_args=_args(extra))
        else:
            values = FeatureAblation(self.probabilities).attribute(
                inputs, baselines=baselines, target=targets, feature_mask=mask, perturbations_per_eval=4,
                additional_forward_args=_args(extra))
        values = values[:, 0].detach()  # (B, H, W): each pixel holds its region's effect
        # Every pixel of a region holds the same value, so scattering pixels onto their region ids leaves
        # each region's effect (NaN for regions the image does not show).
        effects = torch.full((len(inputs), len(REGION_IDS)), float("nan"), dtype=values.dtype).scatter_(
            1, mask[:, 0].flatten(1).cpu(), values.flatten(1).cpu())
        # Drops under EFFECT_FLOOR are noise (an image with no evidence for the class changes by 1e-6 whatever
        # is removed); left in, they would be shared out as if they meant something.
        return Explanation(torch.where(values >= EFFECT_FLOOR, values, torch.zeros_like(values)), effects)


METHODS = {method.about.id: method for method in
           (GradCAM, HiResCAM, IntegratedGradientsMethod, OcclusionMethod, RegionAblation)}


def make_method(name: str, model: torch.nn.Module, layer: torch.nn.Module | None, baseline: str = "mean",
                samples: int = 0, layout: GridLayout | None = None) -> Method:
    """Method ``name`` on ``model`` (whose forward returns class scores, e.g. ``heads.ExplainedModel``);
    ``layer``/``layout``: the module the layer methods explain and how its output reads as a grid."""
    return METHODS[name](model, layer, baseline=baseline, samples=samples, layout=layout)
