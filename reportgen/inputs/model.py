"""Load the user's model (a Python file plus a state_dict) and describe its layers.

The model file is Python code and runs with the user's rights: use model files from trusted sources
only. Weights are loaded with ``torch.load(..., weights_only=True)``, which cannot run code.
"""

from __future__ import annotations

import difflib
import re
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError, require_file
from ..explain.heads import OutputChoice, choose_output
from ..explain.layer_grid import GridLayout, grid_layout


def _run_python_file(path: Path, option: str) -> dict:
    """Execute a user's Python file and return its variables; errors name the file and line.

    The file's folder is on the import path while it runs (as with ``python model.py``), so it can
    import a module that sits beside it.
    """
    path = require_file(path, option)
    with open(path, "rb") as handle:
        start = handle.read(8)
    if start.startswith((b"PK\x03\x04", b"\x80")) or b"\x00" in start:
        raise InputError(f"{option} {path}: a binary file (saved weights?), not Python code; "
                         f"{option} takes the .py file that builds the model"
                         + (", and --weights the saved state_dict" if option == "--model-file" else ""))
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        return runpy.run_path(str(path), run_name="reportgen_user_file")
    except SystemExit:
        raise InputError(f"{option} {path}: the file called exit() while being loaded") from None
    except Exception as error:  # the user's code can raise anything
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
        line = frames[-1].lineno if frames else None
        if isinstance(error, SyntaxError) and error.lineno and error.filename in (str(path), None):
            line = error.lineno
            reason = f"SyntaxError: {error.msg}"
        else:
            reason = f"{type(error).__name__}: {error}"
        where = f", line {line}" if line else ""
        raise InputError(f"{option} {path}{where}: loading the file failed: {reason}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


def load_model(model_file: Path, model_var: str | None = None, model_class: str | None = None) -> torch.nn.Module:
    """Build the architecture from ``model_file``: the variable ``model_var`` (default ``model``) or,
    with ``model_class``, a new instance of that class built with no arguments."""
    names = _run_python_file(model_file, "--model-file")
    if model_class:
        cls = names.get(model_class)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            found = [n for n, v in names.items() if isinstance(v, type) and issubclass(v, torch.nn.Module)]
            raise InputError(f"--model-file {model_file}: no torch.nn.Module class {model_class!r}; "
                             + _candidates(model_class, found, "classes"))
        try:
            return cls()
        except TypeError as error:
            raise InputError(f"--model-class {model_class}: cannot build it without arguments ({error}); "
                             "assign a built model to a variable in the file and use --model-var") from None
        except Exception as error:  # the user's constructor can raise anything
            raise InputError(f"--model-class {model_class}: building {model_class}() failed: "
                             f"{type(error).__name__}: {error}") from None
    name = model_var or "model"
    value = names.get(name)
    if not isinstance(value, torch.nn.Module):
        found = [n for n, v in names.items() if isinstance(v, torch.nn.Module)]
        what = "is not a torch.nn.Module" if name in names else "is not defined"
        if isinstance(value, type) and issubclass(value, torch.nn.Module):
            raise InputError(f"--model-file {model_file}: {name!r} is a class, not a built model; "
                             f"use --model-class {name}, or assign {name} = {name}() in the file")
        raise InputError(f"--model-file {model_file}: variable {name!r} {what}; "
                         + _candidates(name, found, "modules"))
    return value


def _candidates(name: str, found: list[str], kind: str) -> str:
    close = difflib.get_close_matches(name, found, n=1, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"{kind} in the file: {', '.join(found)}" if found else f"the file defines no {kind}"


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    with open(path, "rb") as handle:
        start = handle.read(10)
    return path.suffix == ".safetensors" or (len(start) == 10 and start[8:10] == b'{"')


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise InputError(f"--weights {path}: a safetensors file; install the safetensors package "
                         "(pip install safetensors) to read it, or convert it with "
                         "torch.save(safetensors.torch.load_file(path), 'weights.pt')") from None
    return load_file(str(path), device="cpu")


def _describe_load_failure(weights: Path, error: Exception) -> str:
    """Why ``torch.load(weights, weights_only=True)`` failed, in the user's words."""
    with open(weights, "rb") as handle:
        start = handle.read(64)
    message = str(error)
    if not start:
        return "the file is empty"
    if weights.suffix == ".safetensors" or (len(start) > 9 and start[8:10] == b'{"'):
        return ("a safetensors file; reportgen reads torch.save state_dicts: convert it with "
                "torch.save(safetensors.torch.load_file(path), 'weights.pt')")
    if start.startswith(b"\x93NUMPY"):
        return "a NumPy array file, not a state_dict; save the weights with torch.save(model.state_dict(), path)"
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if "Weights only load failed" in message and unsupported:
        return (f"not a state_dict: it holds pickled Python objects ({unsupported.group(1)}), e.g. a whole model "
                "saved with torch.save(model); reportgen loads weights with weights_only=True, which refuses "
                "them because unpickling can run code; save model.state_dict() instead")
    if sum(32 <= b < 127 or b in b"\t\r\n" for b in start) >= 0.9 * len(start):
        return "a text file, not saved weights; give the file written by torch.save(model.state_dict(), path)"
    return (f"not a loadable state_dict ({type(error).__name__}); save the weights with "
            "torch.save(model.state_dict(), path)")


def load_weights(model: torch.nn.Module, weights: Path) -> None:
    """Load a state_dict file into ``model`` (strictly); mismatches are listed in the error.

    Loaded with ``weights_only=True``: a file holding pickled objects (a whole model) is refused. A
    safetensors file (tensors only, no code) is read with the ``safetensors`` package when it is installed.
    """
    weights = require_file(weights, "--weights")
    try:
        state = _read_safetensors(weights) if _is_safetensors(weights) else \
            torch.load(weights, map_location="cpu", weights_only=True)
    except InputError:
        raise
    except Exception as error:
        raise InputError(f"--weights {weights}: {_describe_load_failure(weights, error)}") from None
    # Training scripts often wrap the state_dict in a checkpoint dict.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        what = f"a {type(state).__name__}" if not isinstance(state, dict) else \
            "an empty dict" if not state else "a dict that is not all tensors"
        raise InputError(f"--weights {weights}: not a state_dict (a dict of tensors) but {what}; save the "
                         "weights with torch.save(model.state_dict(), path)")
    # Weights saved from DataParallel carry a "module." prefix on every key.
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = model.state_dict()
    # Weights from before BatchNorm counted its batches lack num_batches_tracked; torch fills it in too.
    state = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked") and k not in state}, **state}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            problems.append(f"{label}: {', '.join(items[:4])}" + (f" (+{len(items) - 4} more)" if len(items) > 4 else ""))
    if problems:
        raise InputError(f"--weights {weights} does not match the model: " + "; ".join(problems)
                         + "; are these the weights for this model file?")
    try:
        model.load_state_dict(state)
    except Exception as error:  # a custom module's own loading hook, say
        raise InputError(f"--weights {weights}: loading into the model failed: {type(error).__name__}: {error}") from None


@dataclass
class LayerInfo:
    name: str  # as in model.named_modules()
    kind: str  # the module's class name
    output_shape: tuple[int, ...] | None  # for one image, without the batch dimension; None if not run
    parameters: int
    layout: GridLayout | None = None  # how the output reads as a grid over the image (None: it does not)
    gradient: bool | None = None  # whether the model's output depends on the grid's positions (None: not probed)
    features: int | None = None  # channels (conv) or the feature size of each token / position

    @property
    def spatial(self) -> bool:
        """True when the output is a grid of positions over the image (conv, channels-last or tokens):
        usable for Grad-CAM and HiResCAM."""
        return self.layout is not None

    def grid_text(self) -> str:
        return self.layout.describe() if self.layout else ""


# Modules that work on the last dimension: their 3-D output is (h, w, C), not (C, h, w).
_FEATURE_LAST = (torch.nn.LayerNorm, torch.nn.Linear)


def _probe_input(input_size: tuple[int, int], channels: int) -> torch.Tensor:
    """A fixed random image batch of one, roughly as normalised model inputs look."""
    return torch.randn(1, channels, *input_size, generator=torch.Generator().manual_seed(0)) * 0.5


def describe_layers(model: torch.nn.Module, input_size: tuple[int, int], channels: int = 3,
                    output: OutputChoice | None = None) -> list[LayerInfo]:
    """Every named module in the order the forward pass finishes them (input to output), with the
    output shape seen on one probe image of ``input_size`` (height, width) and ``channels``; unused modules
    go last. Layers whose output is a grid over the image get their ``layout`` and, from one backward pass,
    whether the model's output (``output``: which part of it; by default as ``choose_output`` picks)
    depends on the grid's positions at all: in a vision transformer whose head reads the class token only,
    the last block's output tokens get no gradient, and a CAM of that layer would be zero everywhere."""
    order: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    linear_inputs: list[torch.Tensor] = []
    modules = dict(model.named_modules())
    handles = []

    def hook(name):
        def record(module, _inputs, value):
            if name not in outputs and isinstance(value, torch.Tensor):
                outputs[name] = value
                order.append(name)
        return record

    def keep_input(_module, inputs):
        if inputs and isinstance(inputs[0], torch.Tensor):
            linear_inputs.append(inputs[0])

    for name, module in modules.items():
        if name:
            handles.append(module.register_forward_hook(hook(name)))
            if isinstance(module, torch.nn.Linear):
                handles.append(module.register_forward_pre_hook(keep_input))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            result = model(_probe_input(input_size, channels))
    except Exception as error:
        kind = "RGB" if channels == 3 else f"{channels}-channel"
        raise InputError(f"--model-file: the model fails on a {input_size[0]}x{input_size[1]} {kind} input: "
                         f"{type(error).__name__}: {error}; check the transform's image size and channels "
                         "(--transform or --image-size) against the input the model was built for") from None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    infos, patch_grid = [], None
    for name in order:
        module, value = modules[name], outputs[name]
        shape = tuple(value.shape[1:])
        layout = grid_layout(shape, input_size, patch_grid and patch_grid[:2],
                             feature_last=isinstance(module, _FEATURE_LAST))
        if layout is not None and layout.kind == "conv" and layout.fits_input:
            patch_grid = (layout.rows, layout.columns, shape[0])
        features = None if layout is None else shape[0] if layout.kind == "conv" else shape[-1]
        infos.append(LayerInfo(name, type(module).__name__, shape, sum(p.numel() for p in module.parameters()),
                               layout, None, features))
    _probe_gradients(infos, outputs, result, output, linear_inputs)
    unused = [name for name in modules if name and name not in outputs]
    return infos + [LayerInfo(name, type(modules[name]).__name__, None,
                              sum(p.numel() for p in modules[name].parameters())) for name in unused]


def _grid_gradient(gradient: torch.Tensor | None, layout: GridLayout) -> bool:
    """Whether a layer's gradient is non-zero at two or more positions of its grid."""
    if gradient is None:
        return False
    if layout.kind == "tokens":
        cells = gradient[0, layout.prefix:].abs().sum(-1)
    elif layout.kind == "channels-last":
        cells = gradient[0].abs().sum(-1)
    else:
        cells = gradient[0].abs().sum(0)
    return int((cells > 0).sum()) >= 2


def _probe_gradients(infos: list[LayerInfo], outputs: dict, result, output: OutputChoice | None,
                     linear_inputs: list[torch.Tensor]) -> None:
    """Set each grid layer's ``gradient``: does a random mix of the model's outputs change with its positions?

    When no layer gets any gradient (a head initialised to zero, as torchvision's ViT does), the features the
    last linear layer reads are probed instead, so the structure still decides the default layer."""
    grids = [info for info in infos if info.layout is not None and outputs[info.name].requires_grad]
    if not grids:
        return
    try:
        picked = (output or choose_output(result)).pick(result)
    except InputError:
        return  # the output is refused later, with its own message
    sources = [picked] + linear_inputs[-1:]
    for source in sources:
        if not isinstance(source, torch.Tensor) or not source.requires_grad:
            continue
        mix = torch.randn(source.shape, generator=torch.Generator().manual_seed(1))
        try:
            gradients = torch.autograd.grad((source.float() * mix).sum(), [outputs[i.name] for i in grids],
                                            allow_unused=True, retain_graph=True)
        except RuntimeError:  # an in-place operation or an unusual graph: leave it unprobed
            return
        # (every grid has a layout; the condition only tells the type checker so)
        found = [_grid_gradient(g, info.layout) for g, info in zip(gradients, grids) if info.layout is not None]
        if any(found):
            for info, flag in zip(grids, found):
                info.gradient = flag
            return


def pick_layer(layers: list[LayerInfo], wanted: str | None) -> LayerInfo:
    """The layer named ``wanted``, or by default the last layer whose output is a grid over the image that the
    model's output depends on (the final visual features, the usual Grad-CAM choice; for a vision transformer
    the input norm of the last block, whose tokens all feed the class token)."""
    by_name = {layer.name: layer for layer in layers}
    default = _default_layer(layers)
    if wanted:
        if wanted not in by_name:
            close = difflib.get_close_matches(wanted, list(by_name), n=3, cutoff=0.5)
            hint = ("did you mean " + " or ".join(repr(c) for c in close) + "?") if close else \
                "run 'reportgen layers' to list the names"
            raise InputError(f"--layer {wanted!r} not found in the model; {hint}")
        layer = by_name[wanted]
        if not layer.spatial:
            raise InputError(f"--layer {wanted!r} outputs shape {layer.output_shape}, not a grid over the image "
                             "(channels x height x width, or a transformer's patch tokens); Grad-CAM needs a "
                             "conv-like or token layer such as the last convolutional block; run 'reportgen layers' "
                             "to see the shapes")
        if layer.gradient is False:
            instead = f"; use e.g. --layer {default.name}" if default is not None else ""
            raise InputError(f"--layer {wanted!r}: the model's output does not depend on the positions of this "
                             "layer's grid (in a vision transformer, only the class token is read after the last "
                             f"block), so every map would be zero{instead}")
        return layer
    if default is None:
        raise InputError("the model has no layer whose output is a grid over the image (channels x height x "
                         "width, or a transformer's patch tokens); Grad-CAM and HiResCAM need one: use "
                         "--method integrated-gradients, occlusion or region-ablation, which work on the input")
    return default


def _default_layer(layers: list[LayerInfo]) -> LayerInfo | None:
    usable = [layer for layer in layers if layer.spatial and layer.gradient is not False]
    # Token layers of the model's own width (not the attention's q/k/v or the MLP's wider inside).
    widths = [layer.features for layer in layers
              if layer.layout and layer.layout.kind == "conv" and layer.layout.fits_input]
    width = widths[-1] if widths else None
    preferred = [layer for layer in usable if layer.layout is not None and layer.layout.fits_input
                 and (layer.layout.kind != "tokens" or width is None or layer.features == width)]
    chosen = preferred or usable
    return chosen[-1] if chosen else None


def use_channels_last(model: torch.nn.Module, input_size: tuple[int, int], device: torch.device,
                      channels: int = 3, forward=None) -> bool:
    """Switch a convolutional model to the channels-last memory format when running on the CPU, if the
    model gives the same output that way; returns whether it did (the batches must follow).

    Why: the CPU's convolution and pooling kernels (oneDNN) are much faster on channels-last tensors:
    Grad-CAM on a resnet18 at 224 px goes from 83 to 112 images/s on 2 cores (benchmarks/speed.py).
    A model whose forward uses ``.view`` on a conv output fails in that format, and any model whose
    output changes is kept as it is: the probe compares both formats on one random image. ``forward``: what
    to compare when calling ``model`` on images alone does not give a tensor (a verification model's embed)."""
    if device.type != "cpu" or not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return False
    forward = forward or model
    probe = torch.rand(1, channels, *input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = forward(probe)
        model.to(memory_format=torch.channels_last)
        try:
            same = torch.allclose(forward(probe.contiguous(memory_format=torch.channels_last)), expected,
                                  rtol=1e-3, atol=1e-4)
        except Exception:  # noqa: BLE001  (any failure means: not in this format)
            same = False
    if not same:
        model.to(memory_format=torch.contiguous_format)
    return same
