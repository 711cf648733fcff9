"""The fixed settings of the attribution methods, in one place that needs no torch.

``reportgen.attribution`` runs the methods with them; the report quotes them (from ``run.method_settings``
in the results, or computed here for results that lack it), so the text cannot drift from the code.
"""

from __future__ import annotations

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


def method_settings(input_size: tuple[int, int]) -> dict:
    """The settings for a model input of ``input_size`` (height, width) pixels, as results.json's
    ``run.method_settings``: occlusion window and stride and blur sigma in input pixels."""
    side = max(2, round(OCCLUSION_WINDOW * min(input_size)))
    return {"ig_steps": IG_STEPS, "occlusion_window": side, "occlusion_stride": max(1, side // 2),
            "effect_floor": EFFECT_FLOOR, "blur_sigma": max(1.0, BLUR_SIGMA * max(input_size))}
