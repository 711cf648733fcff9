"""How a model's output becomes the score that is explained and the probabilities the report shows.

Face models come with several kinds of output, and each needs its own reading:

  softmax   K >= 2 mutually exclusive classes (the usual classifier): probability = softmax of the logits,
            the prediction is the most probable class.
  sigmoid   independent yes/no outputs trained with a sigmoid (``BCEWithLogitsLoss``):
            - one output (binary): class 1 is the logit z, class 0 its negation -z; probability = sigmoid;
              the prediction is 1 when z > 0;
            - several outputs (multi-label, e.g. CelebA's 40 attributes): each output is one attribute,
              probability = sigmoid of its own logit; an attribute is predicted present when its
              probability exceeds 0.5. A softmax over independent attributes would be meaningless.

The head is chosen automatically (one output -> sigmoid; CelebA-format annotations with as many
attributes as outputs -> sigmoid; otherwise softmax) or with ``--head``. Before any of that, an output
that is not one tensor is reduced to one (``OutputChoice``): the first tensor of a tuple or list, the
``logits`` entry of a dict, or what ``--output INDEX|KEY`` names.

``ExplainedModel`` wraps the user's model so that its forward returns the *class scores* of the head,
(B, classes): the logits for softmax and multi-label, (-z, z) for a binary sigmoid. Attribution methods
(captum) explain ``scores[:, target]``; probabilities, log-odds and predictions are read from the same
scores, so every part of the tool follows the head.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch

from ..errors import InputError

HEADS = ("softmax", "sigmoid")


# -- which part of the output holds the scores ------------------------------------------------------------

@dataclass(frozen=True)
class OutputChoice:
    """Which element of the model's output holds the class scores (or, for verification, the embedding).

    ``key``: None when the output is a tensor itself; an int for a tuple or list; a str for a dict.
    """

    key: int | str | None = None
    description: str = "the model's output"

    def pick(self, output) -> torch.Tensor:
        if self.key is None:
            return output
        return output[self.key]


def _shape(value) -> str:
    if isinstance(value, torch.Tensor):
        return "tensor " + "x".join(str(s) for s in value.shape)
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        return "dict with keys " + ", ".join(repr(k) for k in list(value)[:6])
    return type(value).__name__


def choose_output(output, wanted: str | int | None = None) -> OutputChoice:
    """The element of ``output`` (what the model returned for a probe batch) that holds the scores.

    A tensor is used as it is; a tuple or list gives its first tensor; a dict its ``logits`` entry (or its
    only tensor). ``wanted`` (``--output``): an index into a tuple/list or a key of a dict.
    Raises InputError when nothing usable is found, naming what the model returned.
    """
    if isinstance(output, torch.Tensor):
        if wanted not in (None, ""):
            raise InputError(f"--output {wanted}: the model returns one tensor ({_shape(output)}); "
                             "--output is for models that return a tuple, list or dict")
        return OutputChoice()
    if hasattr(output, "logits") and not isinstance(output, (tuple, list, dict)):
        output = {"logits": output.logits}  # a dataclass output (Hugging Face style)
    if isinstance(output, (tuple, list)):
        kind = type(output).__name__
        if wanted not in (None, ""):
            try:
                index = int(wanted)
            except ValueError:
                raise InputError(f"--output {wanted!r}: the model returns a {kind} of {len(output)}; "
                                 f"give an index 0 to {len(output) - 1}") from None
            if not -len(output) <= index < len(output):
                raise InputError(f"--output {index}: the model returns a {kind} of {len(output)}; "
                                 f"give an index 0 to {len(output) - 1}")
            if not isinstance(output[index], torch.Tensor):
                raise InputError(f"--output {index}: element {index} of the model's {kind} is a "
                                 f"{_shape(output[index])}, not a tensor")
            return OutputChoice(index % len(output), f"element {index % len(output)} of the {kind} the model returns")
        for index, value in enumerate(output):
            if isinstance(value, torch.Tensor):
                return OutputChoice(index, f"element {index} of the {kind} of {len(output)} the model returns "
                                           "(the first tensor; --output picks another)")
        raise InputError(f"the model returns a {kind} with no tensor in it ({_shape(output)}); "
                         "reportgen needs class scores of shape (batch, classes)")
    if isinstance(output, dict):
        keys = [k for k, v in output.items() if isinstance(v, torch.Tensor)]
        if wanted not in (None, ""):
            if wanted not in output:
                close = difflib.get_close_matches(str(wanted), [str(k) for k in output], n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else "its keys: " + ", ".join(map(repr, output))
                raise InputError(f"--output {wanted!r}: not a key of the dict the model returns; {hint}")
            return OutputChoice(wanted, f"the {wanted!r} entry of the dict the model returns")
        if "logits" in keys:
            return OutputChoice("logits", "the 'logits' entry of the dict the model returns")
        if len(keys) == 1:
            return OutputChoice(keys[0], f"the {keys[0]!r} entry of the dict the model returns (its only tensor)")
        raise InputError(f"the model returns a dict ({_shape(output)}) without a 'logits' entry; "
                         "say which entry holds the class scores with --output KEY")
    raise InputError(f"the model's output is a {_shape(output)}; reportgen needs class scores of shape "
                     "(batch, classes)")


# -- how the scores become probabilities -----------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    """How the model's ``outputs`` numbers per image become class scores, probabilities and predictions.

    ``kind``: "softmax" or "sigmoid" ("similarity" for a verification model's embedding, see
    ``reportgen.explain.verification``); ``source``: "automatic" or "option"; ``reason``: why, in words;
    ``class_names``: a name per output where known (CelebA attribute names for a multi-label model).
    """

    kind: str
    outputs: int
    source: str = "automatic"
    reason: str = ""
    class_names: tuple[str, ...] | None = None

    @property
    def binary(self) -> bool:
        """One sigmoid output: class 1 is the logit, class 0 its negation."""
        return self.kind == "sigmoid" and self.outputs == 1

    @property
    def multi_label(self) -> bool:
        return self.kind == "sigmoid" and self.outputs > 1

    @property
    def classes(self) -> int:
        """How many classes can be explained (``--target-class`` 0 to classes - 1)."""
        return 2 if self.binary or self.kind == "similarity" else self.outputs

    def describe(self) -> str:
        """The head in words, for the console and the report."""
        if self.kind == "similarity":
            return (f"cosine similarity of {self.outputs}-d embeddings; class 1 = similarity, class 0 = dissimilarity "
                    "(1 - cosine)")
        if self.binary:
            return "sigmoid, binary: one output; class 1 = its logit, class 0 = the negated logit"
        if self.multi_label:
            return f"sigmoid, multi-label: {self.outputs} independent attributes, each present when its probability > 0.5"
        return f"softmax over {self.outputs} classes"

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        """Class scores (B, classes) from the picked output (B, outputs): what attribution explains."""
        if output.ndim == 1:  # a model that squeezes its single output away
            output = output[:, None]
        if self.binary:
            return torch.cat([-output, output], dim=1)
        return output

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """(B, classes) probability of each class: softmax, or each score's own sigmoid."""
        return torch.softmax(scores, 1) if self.kind == "softmax" else torch.sigmoid(scores)

    def log_odds(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B,) log(p / (1 - p)) of each image's target class, computed without saturating: for softmax
        z_k - logsumexp(z without k); for sigmoid the class score itself."""
        chosen = scores.gather(1, targets[:, None].to(scores.device))[:, 0]
        if self.kind != "softmax":
            return chosen
        others = scores.scatter(1, targets[:, None].to(scores.device), float("-inf"))
        return chosen - torch.logsumexp(others, dim=1)

    def predictions(self, scores: torch.Tensor, explained: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted class (B,), probability of that prediction (B,)).

        For a multi-label head the prediction is about the ``explained`` attribute: 1 when it is predicted
        present (probability > 0.5), with the probability of that answer (p or 1 - p)."""
        if self.multi_label:
            if explained is None:
                raise ValueError("a multi-label head predicts per attribute: say which one")
            probability = torch.sigmoid(scores[:, explained])
            predicted = (scores[:, explained] > 0).long()
            return predicted, torch.where(predicted == 1, probability, 1 - probability)
        probabilities = self.probabilities(scores)
        confidence, predicted = probabilities.max(1)
        return predicted, confidence

    def attribute_predictions(self, scores: torch.Tensor) -> torch.Tensor:
        """Multi-label: (B, outputs) 0/1, each attribute predicted present when its probability > 0.5."""
        return (scores > 0).long()


def choose_head(wanted: str | None, outputs: int, annotation_format: str | None = None,
                label_columns: list[str] | None = None) -> Head:
    """The head for a model with ``outputs`` outputs per image.

    ``wanted`` (``--head``): "softmax", "sigmoid" or None (automatic: one output -> sigmoid; CelebA-format
    annotations listing as many attributes as the model has outputs -> sigmoid, multi-label; otherwise
    softmax). ``label_columns``: the annotation's label columns, which name a multi-label model's outputs
    when there are as many of them.
    """
    columns = list(label_columns or [])
    # Only a CelebA attribute file names the outputs: a CSV's label columns also hold the protected attributes,
    # so matching their count to the outputs would be a coincidence, not a naming.
    names = tuple(columns) if annotation_format == "celeba" and outputs > 1 and len(columns) == outputs else None
    if wanted not in (None, "", *HEADS):
        raise InputError(f"--head {wanted!r}: use softmax or sigmoid (or leave it out to choose automatically)")
    if wanted == "softmax":
        if outputs == 1:
            raise InputError("--head softmax: the model has one output, and a softmax over one output is always 1; "
                             "use --head sigmoid (or leave --head out)")
        return Head("softmax", outputs, "option", "--head softmax")
    if wanted == "sigmoid":
        reason = "--head sigmoid"
        return Head("sigmoid", outputs, "option", reason, names if outputs > 1 else None)
    if outputs == 1:
        return Head("sigmoid", 1, "automatic", "the model has one output")
    if names is not None:
        return Head("sigmoid", outputs, "automatic",
                    f"CelebA-format annotations list {outputs} attributes and the model has {outputs} outputs",
                    names)
    return Head("softmax", outputs, "automatic", f"the model has {outputs} outputs")


def resolve_target_class(value, head: Head, target: str | None = None) -> int | None:
    """``--target-class`` as a class index (None: each image's predicted class).

    Accepts an index, or for a head with class names (multi-label CelebA attributes) a name such as
    ``Smiling``. A multi-label model has no single "predicted class": without ``--target-class`` the
    attribute named by ``--target`` is explained when it is one of the outputs.
    """
    names = list(head.class_names or ())
    if value is None or value == "":
        if not head.multi_label:
            return None
        if target in names:
            return names.index(target)
        hint = f" or name (e.g. {names[0]!r})" if names else ""
        raise InputError(f"--target-class: a multi-label model has no single predicted class; say which of its "
                         f"{head.outputs} attributes to explain with --target-class INDEX{hint}")
    if isinstance(value, bool):
        raise InputError(f"--target-class {value!r}: give a class index or name")
    text = str(value).strip()
    try:
        index = int(text)
    except ValueError:
        if text in names:
            return names.index(text)
        if not names:
            raise InputError(f"--target-class {text!r}: give a class index 0 to {head.classes - 1} (class names are "
                             "known only for a multi-label model whose outputs match the annotation's attributes)") from None
        close = difflib.get_close_matches(text, names, n=3, cutoff=0.5) or [n for n in names if n.lower() == text.lower()]
        hint = ("did you mean " + " or ".join(repr(c) for c in close) + "?") if close else \
            f"give an index 0 to {head.classes - 1} or one of the attribute names"
        raise InputError(f"--target-class {text!r} is not one of the model's attributes; {hint}") from None
    if not 0 <= index < head.classes:
        what = ("a binary sigmoid model explains class 1 (its logit) or 0 (the negated logit)" if head.binary
                else f"the model has {head.classes} outputs (classes 0 to {head.classes - 1})")
        raise InputError(f"--target-class {index}: {what}")
    return index


class ExplainedModel(torch.nn.Module):
    """The user's model followed by the output choice and the head: ``forward(x)`` returns the class scores
    (B, classes) that attribution targets index. The user's model is ``self.model`` (its module names are
    the user's own, e.g. ``layer4``)."""

    def __init__(self, model: torch.nn.Module, output: OutputChoice, head: Head):
        super().__init__()
        self.model, self.output, self.head = model, output, head

    # What ``evidence`` measures, in words (the deletion check reports drops of it).
    evidence_name = "log-odds of the explained class"

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        picked = self.output.pick(self.model(inputs))
        return self.head.scores(picked.float() if picked.dtype in (torch.float16, torch.bfloat16) else picked)

    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, classes) probabilities: what region-ablation measures drops of."""
        return self.head.probabilities(self(inputs))

    def evidence(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B,) how strongly each image supports its target class, on a scale that does not saturate: the
        log-odds log(p / (1 - p)) of the class (``Head.log_odds``). The checks measure drops of it.

        Every model wrapper the analysis explains has this shape: ``forward(inputs, *extra)`` -> (B, classes)
        scores, ``probabilities(inputs, *extra)``, ``evidence(inputs, targets, *extra)``, where ``extra`` are
        per-image tensors aligned with ``inputs`` (none for a classifier; a verification model's fixed
        partner embeddings)."""
        return self.head.log_odds(self(inputs), targets)
