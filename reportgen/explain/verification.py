"""Face verification: explain an embedding model by the similarity of two faces.

A verification model maps a face image to an embedding (B, D). Two images are "the same person" when
their embeddings' cosine similarity is high. What is explained for an image is that similarity to its
partner: the other image of its pair (``--pairs``: a CSV whose first two columns are two images, as in
MAI-BIAS's ImagePairs) or one reference photo (``--reference``). The partner's embedding is computed first
and held fixed (no gradient flows through it), so the map shows which regions of *this* image make it look
like (or unlike) the partner. Each pair is explained on both of its images.

``SimilarityModel`` wraps the user's model in the shape every explained model has here:
``forward(inputs, partner)`` -> (B, 2) scores [1 - cosine, cosine]: class 1 is similarity (the default
``--target-class``), class 0 dissimilarity; ``probabilities`` and ``evidence`` are those scores themselves
(the checks measure drops of similarity). Captum passes the partner embeddings along as
``additional_forward_args``, expanded with the inputs.

``VerificationExplainer`` is the run's model side for pairs and references: it embeds every image of a batch
once, records the similarity of every labelled pair for the verification-quality figures
(``reportgen.explain.similarity``), and explains the images whose face was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis import Explainer
from ..errors import ImageError, InputError
from ..faces.images import PreparedImage, read_image
from ..inputs.preprocess import measure_geometry
from .heads import Head, OutputChoice

# Group column added to every verification run: genuine pairs (same person) against impostor pairs.
PAIR_COLUMN = "pair"
GENUINE, IMPOSTOR = "genuine", "impostor"


class SimilarityModel(torch.nn.Module):
    """The user's embedding model followed by the output choice; ``forward(inputs, partner)`` returns
    (B, 2) scores: [1 - cosine similarity, cosine similarity] of each image's embedding with its partner's
    fixed, unit-length embedding (B, D)."""

    evidence_name = "Fisher z of the cosine similarity, atanh(cos)"

    def __init__(self, model: torch.nn.Module, output: OutputChoice):
        super().__init__()
        self.model, self.output = model, output

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, D) unit-length embeddings."""
        embedding = self.output.pick(self.model(inputs)).float().flatten(1)
        return torch.nn.functional.normalize(embedding, dim=1)

    def forward(self, inputs: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        similarity = (self.embed(inputs) * partner.to(inputs.device)).sum(1)
        return torch.stack([1 - similarity, similarity], dim=1)

    def probabilities(self, inputs: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        """The scores themselves: region ablation measures drops of similarity, not of a probability."""
        return self(inputs, partner)

    def evidence(self, inputs: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        """(B,) what the checks measure drops of: the similarity's Fisher z, atanh(cosine) (target 1), or its
        negation (target 0, dissimilarity). Cosine similarity saturates near 1 as a probability does: two
        photos of one person sit at 0.99, and removing what makes them match moves them to 0.9, a drop a
        linear scale weighs like 0.5 to 0.41; atanh, like log-odds for a probability, does not saturate."""
        similarity = self(inputs, partner)[:, 1].double().clamp(-1 + 1e-6, 1 - 1e-6)
        sign = torch.where(targets.to(inputs.device) == 1, 1.0, -1.0).double()
        return (torch.atanh(similarity) * sign).float()


def check_embedding(raw, output: OutputChoice, model_file) -> int:
    """The embedding size of a verification model's (picked) output for one probe image; InputError when it is
    not (batch, dimensions)."""
    picked = output.pick(raw)
    if not isinstance(picked, torch.Tensor) or picked.ndim != 2 or picked.shape[1] < 2:
        shape = tuple(getattr(picked, "shape", ()))
        raise InputError(f"--model-file {model_file}: a verification model must output an embedding of shape "
                         f"(batch, dimensions); {output.description} has shape {shape}"
                         + ("; pick another element with --output" if output.key is not None else ""))
    return int(picked.shape[1])


@dataclass
class Side:
    """One image of a pair (or an image compared with the reference) as the explainer sees it."""

    item: PreparedImage  # the image explained (its failure, if any, says why it is not)
    partner: PreparedImage  # the other image of the pair, or the reference photo
    first: bool  # the pair's first image: the pair's similarity is recorded once, from its first side


class PairPreparer:
    """Prepares both images of a pair row with the run's ``ImagePreparer``: a list of two ``Side``s. An image
    without a face is still transformed (``keep_tensor``), since it is its partner's partner."""

    def __init__(self, preparer, partners: list[str]):
        self.preparer, self.partners = preparer, partners

    def __len__(self) -> int:
        return len(self.partners)

    def prepare(self, index: int) -> list[Side]:
        first = self.preparer.prepare(index, keep_tensor=True)
        second = self.preparer.prepare(index, keep_tensor=True, image=self.partners[index])
        return [Side(first, second, True), Side(second, first, False)]


class ReferencePreparer:
    """Prepares an ordinary dataset row as one ``Side`` whose partner is the reference photo."""

    def __init__(self, preparer, reference: PreparedImage):
        self.preparer, self.reference = preparer, reference

    def __len__(self) -> int:
        return len(self.preparer)

    def prepare(self, index: int) -> list[Side]:
        return [Side(self.preparer.prepare(index, keep_tensor=True), self.reference, True)]


def pair_label(value) -> str | None:
    """``genuine`` / ``impostor`` from a same-person label (1 / 0); None when unlabelled."""
    if value is None:
        return None
    return GENUINE if int(value) == 1 else IMPOSTOR


def partner_failure(side: Side) -> str | None:
    """Why an image cannot be explained because of its partner (None: it can)."""
    if side.partner.tensor is not None:
        return None
    return f"the other image of its pair ({side.partner.image}) could not be used: {side.partner.failure}"


def embeddings(model: SimilarityModel, sides: list[Side], device, memory_format) -> dict[int, torch.Tensor]:
    """Unit embeddings (D,) of every distinct image among the sides and their partners that has a tensor,
    keyed by ``id`` of its PreparedImage, in one forward pass without gradients."""
    images: dict[int, PreparedImage] = {}
    for side in sides:
        for item in (side.item, side.partner):
            if item.tensor is not None:
                images.setdefault(id(item), item)
    if not images:
        return {}
    tensors = [item.tensor for item in images.values() if item.tensor is not None]  # (all of them have one)
    batch = torch.stack(tensors).to(device).contiguous(memory_format=memory_format)
    with torch.no_grad():
        vectors = model.embed(batch).cpu()
    return dict(zip(images, vectors))


def similarity_of(side: Side, vectors: dict[int, torch.Tensor]) -> float | None:
    a, b = vectors.get(id(side.item)), vectors.get(id(side.partner))
    return None if a is None or b is None else float((a * b).sum())


def group_keys(groups: dict[str, str]) -> list[str]:
    return [f"{column}={value}" for column, value in groups.items()]


def similarity_head(raw, output: OutputChoice, config) -> tuple[Head, int]:
    """(the similarity head, the class explained) of a verification model whose probe output is ``raw``:
    class 1 (default) explains similarity, class 0 dissimilarity."""
    dimensions = check_embedding(raw, output, config.model_file)
    reason = "--pairs: two images per row" if config.pairs else f"--reference {Path(str(config.reference)).name}"
    head = Head("similarity", dimensions, "automatic", reason)
    value = 1 if config.target_class in (None, "") else config.target_class
    try:
        target = int(value)
    except (TypeError, ValueError):
        target = -1
    if target not in (0, 1):
        raise InputError(f"--target-class {value!r}: a verification run explains similarity (1, the default) or "
                         "dissimilarity (0)")
    return head, target


def prepare_reference(path, preprocessing) -> PreparedImage:
    """The reference photo as a partner: decoded and transformed (its face is not needed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--reference {path}: file not found")
    try:
        image, _notes, _digest = read_image(path)
        tensor = preprocessing.transform(image).float()
        seen = measure_geometry(preprocessing, image.size).picture(image, tensor)
    except ImageError as error:
        raise InputError(f"--reference {path}: {error}") from None
    except Exception as error:
        raise InputError(f"--reference {path}: the transform failed on it ({type(error).__name__}: {error})") from None
    return PreparedImage(-1, path.name, tensor=tensor, seen=seen)


class VerificationExplainer(Explainer):
    """The model's side of a verification run. For each batch of rows (pairs, or images with the reference):
    every image with a tensor is embedded once; each labelled pair's similarity goes to the quality figures
    (``state.similarity``, once per pair); then the images whose face was found are explained, each with its
    partner's embedding as the fixed second input."""

    def __init__(self, model: SimilarityModel, setup, config, device, check_rows: set[int], channels_last: bool):
        super().__init__(model, setup, config, device, check_rows, channels_last)
        self.reference: PreparedImage | None = None  # the reference photo, prepared with the run's transform
        self._partners: dict[int, PreparedImage] = {}  # while a batch is explained: id(image) -> its partner

    def preparer(self, images, dataset):
        if dataset.partners is not None:
            return PairPreparer(images, dataset.partners)
        self.reference = prepare_reference(self.config.reference, images.preprocessing)
        return ReferencePreparer(images, self.reference)

    def images_in(self, prepared: list) -> list:
        return [side.item for group in prepared for side in group]

    def explain_batch(self, prepared: list, state, dataset, true_labels) -> None:
        sides = [side for group in prepared for side in group]
        vectors = embeddings(self.model, sides, self.device, self.memory_format)  # type: ignore[arg-type]
        for side in sides:
            if not side.first:
                continue
            similarity = similarity_of(side, vectors)
            if similarity is not None:
                row = side.item.index
                groups = self.groups_of(side.item, dataset, true_labels[row])
                state.similarity.add(similarity, None if true_labels[row] is None else true_labels[row] == 1,
                                     group_keys({k: v for k, v in groups.items() if k != PAIR_COLUMN}))
        ready, partners = [], []
        for side in sides:
            why = side.item.failure or partner_failure(side)
            if why:
                state.add_failure(side.item.index, side.item.image, why)
                continue
            side.item.partner = side.partner.image
            self._partners[id(side.item)] = side.partner
            ready.append(side.item)
            partners.append(vectors[id(side.partner)])
        if ready:
            self.explain(ready, state, dataset, true_labels, extra=(torch.stack(partners).to(self.device),))
        self._partners.clear()

    def partner_picture(self, item, ready: list, maps: torch.Tensor) -> tuple | None:
        """The other image of the pair (or the reference): with its own map when it was explained in this batch."""
        partner = self._partners.get(id(item))
        if partner is None or partner.seen is None:
            return None
        for k, other in enumerate(ready):
            if other is partner:
                return (partner.seen, maps[k].numpy().astype(np.float32), partner.labels, partner.landmarks)
        return (partner.seen, None, None, None)

    def outcomes(self, ready: list, scores: torch.Tensor) -> list[dict]:
        threshold = self.config.threshold
        found = []
        for item, similarity in zip(ready, scores[:, 1].tolist()):
            found.append({"similarity": round(similarity, 4), "probability": round(similarity, 4),
                          "prediction": None if threshold is None else int(similarity >= threshold),
                          "partner": item.partner})
        return found

    def groups_of(self, item, dataset, label) -> dict[str, str]:
        groups = super().groups_of(item, dataset, label)
        kind = pair_label(label)
        if kind is not None:
            groups[PAIR_COLUMN] = kind
        return groups

    def nothing_for(self, target: int) -> str:
        return f"no evidence for {'similarity' if target == 1 else 'dissimilarity'} with {self.config.method}"
