"""The checks' model passes (torch): the deletion curves and the cascade of randomised models.

What they compute and why is in ``reportgen.results.checks`` (the torch-free statistics that turn these records
into verdicts) and docs/methods.md. The model is any wrapper the analysis explains
(``heads.ExplainedModel``, a verification model): ``model(inputs, *extra)`` -> (B, classes) scores,
``model.evidence(inputs, targets, *extra)`` -> (B,) evidence on a non-saturating scale, and for a
classifier ``model.probabilities``. ``extra``: per-image tensors aligned with ``inputs`` (a verification
model's partner embeddings); every perturbed copy of image j is passed image j's extras.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

from ..results.checks import AREA_LIMIT, CASCADE, CHECK_SEED, RANDOM_ORDERS, deletion_orders, deletion_record
from .attribution import baseline_images

# Perturbed images per forward pass when no batch size is given (forward only, no gradients).
DELETION_BATCH = 64


def measure(model, inputs: torch.Tensor, targets: torch.Tensor, extra: tuple = ()) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(evidence (N,), probability of each target (N,) or None) for a batch, on the CPU, in one forward pass.

    A classifier wrapper (``heads.ExplainedModel``) gives both from one set of class scores (evidence = the
    head's log-odds); another wrapper gives its ``evidence`` and, when it has them, its probabilities."""
    targets = targets.to(inputs.device)
    with torch.no_grad():
        head = getattr(model, "head", None)
        if head is not None and hasattr(head, "log_odds") and hasattr(head, "probabilities"):
            scores = model(inputs, *extra)
            evidence = head.log_odds(scores, targets)
            probability = head.probabilities(scores).gather(1, targets[:, None])[:, 0]
        else:
            evidence = model.evidence(inputs, targets, *extra)
            probability = (model.probabilities(inputs, *extra).gather(1, targets[:, None])[:, 0]
                           if hasattr(model, "probabilities") else None)
    return evidence.float().cpu(), None if probability is None else probability.float().cpu()


def deletion_curves(model, inputs: torch.Tensor, targets: torch.Tensor, regions: torch.Tensor,
                    densities: np.ndarray, areas: np.ndarray, rows: list[int], baseline: str, extra: tuple = (),
                    orders: int = RANDOM_ORDERS, limit: float = AREA_LIMIT,
                    batch_size: int = DELETION_BATCH) -> list[dict]:
    """The deletion record (``checks.deletion_record``) of each image.

    inputs: (B, C, H, W) model inputs; targets: (B,) the explained class of each; regions: (B, H, W) region
    label images (indices into REGION_IDS); densities, areas: (B, len(REGION_IDS)) the images' region
    scores; rows: their dataset rows (they seed the random orders); baseline: what replaces a removed
    region (``attribution.baseline_images``). Each order removes its regions cumulatively until ``limit``
    of the image is gone: one forward pass per step, ``batch_size`` perturbed images at a time.
    """
    filler = baseline_images(inputs, baseline)
    regions = regions.to(inputs.device)
    plans = [deletion_orders(row, densities[j], areas[j], orders, limit) for j, row in enumerate(rows)]
    after: dict[tuple[int, int], list] = {}
    pending: list[tuple[int, int, torch.Tensor]] = []  # (image, order, its perturbed copies (K, C, H, W))

    def run_pending() -> None:
        images = torch.cat([copies for _, _, copies in pending])
        which = torch.cat([torch.full((len(copies),), j, dtype=torch.long) for j, _, copies in pending])
        index = which.to(inputs.device)
        evidence, probability = measure(model, images, targets[index], tuple(e[index] for e in extra))
        start = 0
        for j, o, copies in pending:
            end = start + len(copies)
            after[j, o] = [(float(evidence[k]), None if probability is None else float(probability[k]))
                           for k in range(start, end)]
            start = end
        pending.clear()

    waiting = 0
    for j, (ranked, randoms) in enumerate(plans):
        for o, order in enumerate([ranked, *randoms]):
            steps = torch.stack([torch.isin(regions[j], torch.tensor(step, device=regions.device))
                                 for step in order])
            removed = steps.cumsum(0) > 0  # (K, H, W): what is gone after each step
            pending.append((j, o, torch.where(removed[:, None], filler[j], inputs[j])))
            waiting += len(order)
            if waiting >= batch_size:
                run_pending()
                waiting = 0
    if pending:
        run_pending()
    evidence, probability = measure(model, inputs, targets, extra)
    name = getattr(model, "evidence_name", "evidence for the explained class")
    records = []
    for j, (row, (ranked, randoms)) in enumerate(zip(rows, plans)):
        if not ranked:
            continue  # an image that shows no region (cannot happen with a label image; kept safe)
        before = (float(evidence[j]), None if probability is None else float(probability[j]))
        records.append(deletion_record(row, before, ranked, after[j, 0], randoms,
                                       [after[j, o + 1] for o in range(len(randoms))], areas[j], name))
    return records


# -- cascading randomisation ------------------------------------------------------------------------------

Model = TypeVar("Model", bound=torch.nn.Module)


@dataclass
class CascadeStep(Generic[Model]):
    """One step of the cascade: ``name`` says in words what is randomised (stored with each record);
    ``layers``: the randomised modules' names; ``model``: a copy of the model with them randomised."""

    name: str
    layers: list[str]
    model: Model


def layers_in_forward_order(model: torch.nn.Module, probe: torch.Tensor, extra: tuple = ()) -> list[str]:
    """Names of the modules that own parameters, in the order one forward pass of ``probe`` reaches them
    (input first); modules the pass never reaches come first, so they are randomised only with every layer."""
    owners = {name: module for name, module in model.named_modules()
              if any(True for _ in module.parameters(recurse=False))}
    reached: list[str] = []

    def note(name):
        def hook(_module, _inputs):
            if name not in reached:
                reached.append(name)  # returns None: a pre-hook's return value would replace the inputs
        return hook

    handles = [module.register_forward_pre_hook(note(name)) for name, module in owners.items()]
    try:
        with torch.no_grad():
            model(probe, *extra)
    finally:
        for handle in handles:
            handle.remove()
    return [name for name in owners if name not in reached] + reached


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Re-initialise the parameters the module owns itself: its own ``reset_parameters`` (the default
    initialisation, and fresh running statistics for batch norm) on a CPU copy, else Gaussian noise of
    each parameter's own spread. Seeded and drawn on the CPU, so every device gives the same weights and
    the run's random state is left as it was."""
    own = dict(module.named_parameters(recurse=False))
    with torch.no_grad():
        if hasattr(module, "reset_parameters") and not any(True for _ in module.children()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                fresh = copy.deepcopy(module).cpu()
                fresh.reset_parameters()  # type: ignore[operator]  # (Module.__getattr__ reads as a Tensor)
            for name, value in fresh.named_parameters(recurse=False):
                own[name].copy_(value)
            buffers = dict(module.named_buffers(recurse=False))
            for name, buffer in fresh.named_buffers(recurse=False):
                if name in buffers:
                    buffers[name].copy_(buffer)
            return
        generator = torch.Generator().manual_seed(seed)
        for parameter in own.values():
            spread = float(parameter.float().std()) if parameter.numel() > 1 else 1.0
            noise = torch.randn(parameter.shape, generator=generator) * spread
            parameter.copy_(noise.to(parameter.dtype))


def _module_seed(seed: int, index: int) -> int:
    # The same module gets the same random weights in every step that randomises it.
    return seed * 1_000_003 + index


def _display(name: str) -> str:
    """A module's name as the user's model knows it (the wrapper's ``model.`` prefix dropped)."""
    return name.removeprefix("model.") or name


def randomisation_cascade(model: Model, probe: torch.Tensor, extra: tuple = (),
                          seed: int = CHECK_SEED) -> list[CascadeStep[Model]]:
    """Copies of ``model`` randomised from the output layer down, cumulatively (``checks.CASCADE``): the
    last module with parameters in forward order; then the top half of them; then all. A step that would
    randomise no more than the one before is left out (a model with one or two layers). ``probe``: one
    input (1, C, H, W) for the forward pass that finds the order. Memory: one copy of the model per step."""
    order = layers_in_forward_order(model, probe, extra)
    total = len(order)
    steps: list[CascadeStep[Model]] = []
    for words, fraction in CASCADE:
        count = max(1, math.ceil(fraction * total))
        if steps and count <= len(steps[-1].layers):
            continue
        chosen = order[total - count:]
        randomised = copy.deepcopy(model)
        modules = dict(randomised.named_modules())
        for index, name in enumerate(order):
            if name in chosen:
                _randomise(modules[name], _module_seed(seed, index))
        if count == 1:
            detail = _display(chosen[0])
        elif count < total:
            detail = f"{count} of {total}, from {_display(chosen[0])} up"
        else:
            detail = f"{total}"
        steps.append(CascadeStep(f"{words} ({detail})", [_display(n) for n in chosen], randomised.eval()))
    return steps


def randomised_copy(model: torch.nn.Module, seed: int = CHECK_SEED) -> torch.nn.Module:
    """A copy of the model with every parameter re-initialised (the cascade's last step, without needing
    a forward pass), the run's random state left untouched."""
    randomised = copy.deepcopy(model)
    for index, (_name, module) in enumerate(randomised.named_modules()):
        if any(True for _ in module.parameters(recurse=False)):
            _randomise(module, _module_seed(seed, index))
    return randomised.eval()
