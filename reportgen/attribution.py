"""Attribution methods: a batch of model inputs in, one non-negative map per image out.

Every method has the same shape (as in captum): ``Method(model, layer).attribute(inputs, targets)``
returns a float tensor (B, H, W) in model-input pixels, non-negative, so nothing downstream needs to
know which method ran.
"""

from __future__ import annotations

import torch
from captum.attr import LayerAttribution, LayerGradCam


class GradCAM:
    """Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391) on one layer, via captum's LayerGradCam.

    The layer's activations are weighted by the spatially averaged gradient of the class score,
    summed over channels, passed through ReLU (only evidence *for* the class) and upsampled
    bilinearly to the model-input size. Caveat: the map is as coarse as the layer (7x7 for a
    ResNet's layer4 at 224 px), so small regions borrow attention from their neighbours.
    """

    name = "gradcam"

    def __init__(self, model: torch.nn.Module, layer: torch.nn.Module):
        self.method = LayerGradCam(model, layer)

    def attribute(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """inputs: float (B, 3, H, W); targets: long (B,) class indices. Returns float (B, H, W) >= 0."""
        maps = self.method.attribute(inputs, target=targets, relu_attributions=True)
        maps = LayerAttribution.interpolate(maps, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
        # Bilinear upsampling of non-negative values stays non-negative, but clamp rounding noise.
        return maps[:, 0].detach().clamp_min(0)


METHODS = {GradCAM.name: GradCAM}
