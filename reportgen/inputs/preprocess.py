"""The model's preprocessing, and where each image pixel lands in the model's input.

The transform is the user's own (a Python file that assigns ``transform``) or is built from plain
options (size, mean, std). Region masks must line up with the attribution map whatever the transform
does (Resize, CenterCrop, Pad...), so instead of interpreting transform classes we *measure* the
geometry: we pass two ramp images (brightness = x, brightness = y) through the transform and fit the
affine map from model-input pixels back to image pixels. The fit is done once per image size.
The same measurement undoes the transform's colour normalisation, so we can show exactly what the
model sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from .model import _run_python_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    """A callable PIL image -> float tensor (C, H, W) (C = 3 for RGB models, 1 for grayscale ones...), with a
    description for the report.

    ``source`` says how to build it again — ("file", path, variable) or ("options", size, mean, std) —
    so a worker process started fresh rebuilds it instead of unpickling the user's objects.
    """

    transform: Callable[[Image.Image], torch.Tensor]
    description: str
    source: tuple | None = None

    def __reduce__(self):
        if self.source is None:
            return (Preprocessing, (self.transform, self.description))
        return (_rebuild, (self.source,))


def _rebuild(source: tuple) -> Preprocessing:
    kind, *arguments = source
    return load_transform(*arguments) if kind == "file" else build_transform(*arguments)


def build_transform(size: int | tuple[int, int] = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Preprocessing:
    """Resize to ``size`` (an int: square), ToTensor, Normalize(mean, std)."""
    from torchvision import transforms

    hw = (size, size) if isinstance(size, int) else tuple(size)
    transform = transforms.Compose([transforms.Resize(hw), transforms.ToTensor(),
                                    transforms.Normalize(mean=list(mean), std=list(std))])
    return Preprocessing(transform, f"Resize({hw}), ToTensor, Normalize(mean={list(mean)}, std={list(std)})",
                         ("options", size, tuple(mean), tuple(std)))


def load_transform(path: Path, variable: str = "transform") -> Preprocessing:
    """The callable assigned to ``variable`` in the Python file ``path`` (MAI-BIAS convention)."""
    names = _run_python_file(path, "--transform")
    transform = names.get(variable)
    if not callable(transform):
        raise InputError(f"--transform {path}: the file must assign a callable {variable!r} "
                         "(e.g. transform = transforms.Compose([...]))")
    return Preprocessing(transform, f"{Path(path).name}: {transform!r}".replace("\n", " "),
                         ("file", str(path), variable))


@dataclass
class InputGeometry:
    """How one image size maps into the model input.

    ``to_image``: 2x3 affine taking model-input pixel coordinates (x, y, 1) to image pixel coordinates.
    ``to_input``: its inverse, image -> model-input pixels (for landmarks).
    ``black``/``white``: the transform's output for an all-black / all-white image (C, H, W), which
    undo the colour normalisation: seen = (output - black) / (white - black).
    ``rgb``: the output's channels are the image's red, green and blue in that order, so undoing the
    normalisation shows the picture; False for a grayscale model, a BGR model and any other channel layout,
    whose picture is the colour photo resampled onto the model's input pixels instead.
    """

    input_size: tuple[int, int]  # model-input (height, width)
    to_image: np.ndarray
    to_input: np.ndarray
    black: torch.Tensor
    white: torch.Tensor
    rgb: bool = True

    @property
    def channels(self) -> int:
        return int(self.black.shape[0])

    def landmarks_to_input(self, points: np.ndarray) -> np.ndarray:
        """Image-pixel points (N, 2) -> model-input pixel points (N, 2)."""
        return points @ self.to_input[:, :2].T + self.to_input[:, 2]

    def picture(self, image: Image.Image, tensor: torch.Tensor) -> Image.Image:
        """The RGB picture of the model's input pixels for the report: what the model sees (``seen_by_model``)
        for an RGB model, else the colour photo ``image`` resampled through the measured geometry, so region
        overlays and patches of a grayscale or BGR model still show the face in its own colours."""
        if self.rgb:
            return self.seen_by_model(tensor)
        return self.photo_on_input(image)

    def photo_on_input(self, image: Image.Image) -> Image.Image:
        """``image`` (RGB) resampled onto the model-input pixels (the crop, resize and padding of the transform)."""
        height, width = self.input_size
        matrix = self.to_image.astype(np.float64).copy()
        # Shrink first when the input is much smaller than the image: a plain affine resampling would alias.
        factor = int(max(1, np.floor(min(np.hypot(*matrix[:, 0]), np.hypot(*matrix[:, 1])))))
        if factor > 1:
            image = image.reduce(factor)
            matrix /= factor
        return image.convert("RGB").transform((width, height), Image.Transform.AFFINE, tuple(matrix.reshape(-1)),
                                              resample=Image.Resampling.BILINEAR)

    def seen_by_model(self, tensor: torch.Tensor) -> Image.Image:
        """The transformed tensor (C, H, W) as the picture the model sees (normalisation undone; one channel
        shows as gray)."""
        # In numpy: small torch operations pay for waking torch's thread pool, which the model is using.
        black = self.black.numpy()
        span = self.white.numpy() - black
        span = np.where(np.abs(span) < 1e-8, 1.0, span)
        seen = np.clip((tensor.numpy() - black) / span, 0, 1)
        if seen.shape[0] != 3:
            seen = np.repeat(seen.mean(0, keepdims=True), 3, axis=0)
        return Image.fromarray((seen.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8), "RGB")


def _apply(transform, image: Image.Image, path: str) -> torch.Tensor:
    try:
        output = transform(image)
    except Exception as error:
        raise InputError(f"--transform {path}: fails on a {image.width}x{image.height} RGB image: "
                         f"{type(error).__name__}: {error}") from None
    if not isinstance(output, torch.Tensor) or output.ndim != 3 or not 1 <= output.shape[0] <= 16:
        raise InputError(f"--transform {path}: must turn a PIL image into a float tensor (channels, H, W), e.g. "
                         f"(3, H, W) for RGB or (1, H, W) for grayscale; got {type(output).__name__} "
                         f"{tuple(getattr(output, 'shape', ()))}")
    return output.float()


def _keeps_rgb(transform, image_size: tuple[int, int], black: torch.Tensor, where: str) -> bool:
    """Whether the transform's three output channels are red, green and blue in that order (pure red lights
    channel 0 most, and so on); False for other channel counts and orders (grayscale, BGR)."""
    if black.shape[0] != 3:
        return False
    for channel, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        response = (_apply(transform, Image.new("RGB", image_size, colour), where) - black).abs().mean((1, 2))
        if int(response.argmax()) != channel:
            return False
    return True


def measure_geometry(preprocessing: Preprocessing, image_size: tuple[int, int]) -> InputGeometry:
    """Fit the model-input -> image pixel map for images of ``image_size`` (width, height); any number of
    output channels (the ramps are gray, so every channel carries the coordinate)."""
    transform, where = preprocessing.transform, preprocessing.description.split(":")[0]
    width, height = image_size
    black = _apply(transform, Image.new("RGB", image_size, (0, 0, 0)), where)
    white = _apply(transform, Image.new("RGB", image_size, (255, 255, 255)), where)
    span = (white - black).mean(0)
    # Padding shows no image content (black and white give the same output there): leave it out.
    content = (span.abs() > 0.5 * span.abs().max()).numpy()
    span = torch.where(torch.from_numpy(content), span, torch.ones_like(span))
    ramps = []
    for axis, length in ((1, width), (0, height)):
        # Brightness at pixel centre i is (i + 0.5) / length; 16 bits would be nicer, 8 bits are enough
        # because the fit below averages over thousands of pixels.
        line = ((np.arange(length) + 0.5) / length * 255).round().astype(np.uint8)
        grid = np.broadcast_to(line[None, :] if axis == 1 else line[:, None], (height, width))
        ramp = Image.fromarray(np.ascontiguousarray(grid), "L").convert("RGB")
        output = _apply(transform, ramp, where)
        if not torch.equal(output, _apply(transform, ramp, where)):
            raise InputError(f"--transform {where}: gives different outputs for the same image (random "
                             "augmentation?); use the deterministic evaluation transform")
        ramps.append(((output - black).mean(0) / span).numpy() * length)  # image pixel coordinate
    out_h, out_w = black.shape[1:]
    ys, xs = np.mgrid[0:out_h, 0:out_w]
    design = np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs, dtype=float)], -1).reshape(-1, 3)
    # Pixels at the border see the resampling filter's edge clamp; fit on the interior.
    inner = np.zeros((out_h, out_w), bool)
    inner[2:-2, 2:-2] = True
    inner = (inner & content).reshape(-1)
    if inner.sum() < 16:
        raise InputError(f"--transform {where}: the output shows almost nothing of the input image")
    rows = []
    for coordinate in ramps:
        target = coordinate.reshape(-1)
        solution, *_ = np.linalg.lstsq(design[inner], target[inner], rcond=None)
        error = np.abs(design[inner] @ solution - target[inner])
        if np.quantile(error, 0.95) > max(2.0, 0.01 * max(width, height)):
            raise InputError(f"--transform {where}: its geometry is not a resize/crop/pad (an affine map); "
                             "reportgen cannot place the face regions on the model's input")
        rows.append(solution)
    to_image = np.stack(rows)
    square = np.vstack([to_image, [0, 0, 1]])
    to_input = np.linalg.inv(square)[:2]
    return InputGeometry((out_h, out_w), to_image, to_input, black, white,
                         _keeps_rgb(transform, image_size, black, where))
