"""How a layer's output is read as a grid of positions over the image, for the layer methods (Grad-CAM, HiResCAM).

A CAM needs a layer output of shape (B, channels, rows, columns). Three layouts are found in face models:

  conv           (C, h, w) per image: convolutional networks (ResNets, MobileNets, ConvNeXt...), used as it is;
  channels-last  (h, w, C): Swin-style transformers, permuted to (C, h, w);
  tokens         (N, D): vision transformers (ViT, DeiT). The first ``prefix`` tokens (class, distillation,
                 register tokens) hold no position and are dropped; the other N - prefix tokens are the
                 patch grid, rows x columns, taken from the model's patch embedding (its convolution's output
                 grid) or, failing that, from the input size and a patch size that divides it. Never
                 assumed to be 14 x 14.

``GridLayout`` says which layout a layer has; ``grid_view`` lets captum see such a layer as the (B, C, h, w)
tensor it expects: while it is active, the layer's output passes through a small module that reshapes
it to the grid and back, and captum hooks that module instead of the layer.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

# Transformers put at most this many tokens without a position before the patch tokens.
MAX_PREFIX_TOKENS = 16
# A layer's (rows, columns) must have about the input's aspect ratio to be read as a grid over it.
ASPECT_TOLERANCE = 1.5


@dataclass(frozen=True)
class GridLayout:
    """``kind``: "conv", "channels-last" or "tokens"; ``rows`` x ``columns`` positions; ``prefix``: tokens
    before the patch tokens (tokens only)."""

    kind: str
    rows: int
    columns: int
    prefix: int = 0
    fits_input: bool = True  # rows x columns has about the input's aspect ratio (a grid over the image)

    def describe(self) -> str:
        if self.kind == "tokens":
            extra = f"{self.prefix} + " if self.prefix else ""
            return f"tokens {extra}{self.rows}x{self.columns}"
        if self.kind == "channels-last":
            return f"{self.rows}x{self.columns}, channels last"
        return f"{self.rows}x{self.columns}"


def _aspect_gap(rows: int, columns: int, input_size: tuple[int, int]) -> float:
    """How far rows/columns is from the input's height/width, as a log ratio (0 = the same shape)."""
    return abs(math.log((rows / columns) / (input_size[0] / input_size[1])))


def _fits(rows: int, columns: int, input_size: tuple[int, int]) -> bool:
    return (rows * columns > 1 and rows <= input_size[0] and columns <= input_size[1]
            and _aspect_gap(rows, columns, input_size) <= math.log(ASPECT_TOLERANCE))


def grid_layout(shape: tuple[int, ...] | None, input_size: tuple[int, int],
                patch_grid: tuple[int, int] | None = None, feature_last: bool = False) -> GridLayout | None:
    """The layout of a layer output of ``shape`` (one image, no batch dimension) for a model input of
    ``input_size`` (height, width); None when it is no grid over the image.

    ``patch_grid``: (rows, columns) of the last convolution-style grid before this layer (a transformer's
    patch embedding), used to read tokens. ``feature_last``: the layer works on the last dimension (a
    LayerNorm, a Linear...), which tells (h, w, C) from (C, h, w) when both would fit.
    """
    if shape is None:
        return None
    if len(shape) == 3:
        a, b, c = shape
        as_conv = b * c > 1 and (_fits(b, c, input_size) or not _fits(a, b, input_size))
        as_last = _fits(a, b, input_size) and c > 1
        if as_last and (feature_last or not _fits(b, c, input_size)):
            return GridLayout("channels-last", a, b)
        if as_conv:
            # Kept even when it does not look like a grid over the image (as before: any h x w > 1 counts),
            # but only a layer that fits the input's shape is chosen by default.
            return GridLayout("conv", b, c, fits_input=_fits(b, c, input_size))
        return None
    if len(shape) == 2:
        tokens = shape[0]
        if patch_grid is not None:
            prefix = tokens - patch_grid[0] * patch_grid[1]
            if 0 <= prefix <= MAX_PREFIX_TOKENS:
                return GridLayout("tokens", patch_grid[0], patch_grid[1], prefix)
        # No patch embedding seen: a patch size that divides the input and leaves a few prefix tokens.
        for prefix in range(MAX_PREFIX_TOKENS + 1):
            for patch in range(2, min(input_size) + 1):
                rows, columns = input_size[0] // patch, input_size[1] // patch
                if rows * columns == tokens - prefix and rows * columns > 1:
                    return GridLayout("tokens", rows, columns, prefix)
                if rows * columns < tokens - prefix:
                    break
    return None


class _ToGrid(torch.nn.Module):
    """(B, ...) layer output in ``layout`` -> (B, C, rows, columns); captum hooks this module's output."""

    def __init__(self, layout: GridLayout):
        super().__init__()
        self.layout = layout

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        layout = self.layout
        if layout.kind == "channels-last":
            return output.permute(0, 3, 1, 2)
        tokens = output[:, layout.prefix:]
        return tokens.transpose(1, 2).reshape(output.shape[0], -1, layout.rows, layout.columns)


def _from_grid(grid: torch.Tensor, output: torch.Tensor, layout: GridLayout) -> torch.Tensor:
    """The layer's own layout again, built from ``grid`` (so gradients reach the grid) and, for tokens,
    the prefix tokens of the original ``output``."""
    if layout.kind == "channels-last":
        return grid.permute(0, 2, 3, 1)
    tokens = grid.flatten(2).transpose(1, 2)
    return torch.cat([output[:, :layout.prefix], tokens], dim=1) if layout.prefix else tokens


@contextlib.contextmanager
def grid_view(layer: torch.nn.Module, layout: GridLayout | None):
    """The module to give captum's layer methods for ``layer``: the layer itself for a conv layout, else
    a grid module through which the layer's output is passed while this context is active."""
    if layout is None or layout.kind == "conv":
        yield layer
        return
    to_grid = _ToGrid(layout)

    def reshape(_module, _inputs, output):
        return _from_grid(to_grid(output), output, layout)

    handle = layer.register_forward_hook(reshape)
    try:
        yield to_grid
    finally:
        handle.remove()
