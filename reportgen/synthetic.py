"""Bundled samples and "planted cue" datasets: face classifiers whose right answer is known.

A planted-cue dataset is built from two public-domain portraits (Grace Hopper, Eileen Collins; see
``samples/sources/README.md``). Each image is a random augmentation of one portrait; in half of them a
conspicuous sticker (saturated lime green with a magenta core) is painted inside one named face region,
and the label ``task`` says whether it is there. A small CNN trained on such data can only tell the classes
apart by the sticker, so an explanation of its class-1 decisions must point at that region: a
known-answer test for the whole pipeline (landmarks -> regions -> attribution -> scores).

Units: images are RGB PIL images; landmarks are float (68, 2) arrays of (x, y) in that image's pixels
(dlib order, as ``reportgen.faces.landmarks.detect_face`` returns them); the model sees 128x128 inputs.

Entry points:
  ``augment_portrait``        one random variant of a portrait,
  ``plant_cue``               paint the sticker inside a region,
  ``make_planted_dataset``    images/ + annotations.csv,
  ``train_small_cnn``         train ``SmallFaceNet`` on such a folder,
  ``make_known_answer_case``  all of the above plus model.py / weights.pt / transform.py for the CLI.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from torch import nn

from .faces.landmarks import detect_face
from .faces.regions import REGION_IDS, label_image
from .resources import samples_dir

# train_classifier hands back the model it was given (its own class), trained.
TrainedModel = TypeVar("TrainedModel", bound=nn.Module)

# Model input side in pixels; sample_transform resizes every image to this.
INPUT_SIZE = 128
# Name of SmallFaceNet's last convolutional stage (32x32 output for a 128x128 input): the Grad-CAM layer.
TARGET_LAYER = "conv4"
# The two source portraits: file name prefix, file in samples/sources, value of the ``protected`` column.
SOURCES: tuple[tuple[str, str, int], ...] = (
    ("hopper", "grace_hopper.jpg", 0),
    ("collins", "astronaut.jpg", 1),
)
# Sticker colours. Neither occurs in the portraits (flag red/white/blue, orange suit, navy uniform,
# skin, blue sky), so "is there lime/magenta anywhere" is a feature a small CNN finds in a few epochs.
# Lime is the main colour: it differs from skin and lips in two channels (red down, green up), so even
# a small sticker (an eye) stands out after the 2x downscale to the model input.
CUE_COLOUR = (0, 255, 0)
CUE_CORE_COLOUR = (255, 0, 255)
# A second sticker, for a second attribute of a multi-label model: azure with a yellow core, told apart
# from the lime/magenta one by colour alone (the small CNN's features are local, its pooling is global).
SECOND_CUE_COLOURS = ((0, 170, 255), (255, 255, 0))
# For grayscale models: black with a white core, which keeps its contrast when colour is dropped.
GRAY_CUE_COLOURS = ((0, 0, 0), (255, 255, 255))
# Largest sticker radius as a fraction of the face width (jaw point 0 to 16). Big enough to survive the
# 2x downscale to the model input, small enough to sit inside the forehead or a cheek.
CUE_MAX_RADIUS = 0.15
# The background sticker is a disc of this radius (fraction of face width) in a corner.
BACKGROUND_CUE_RADIUS = 0.12
# Minimum fraction of sticker pixels that must lie in the region's mask.
CUE_INSIDE_MIN = 0.9
# After JPEG encoding the landmarks are detected again (as reportgen will), and the sticker must still
# lie in the region by those landmarks too, or the image is drawn again. A sticker can move dlib's
# points (lip points most); with a looser 75%, the part of a mouth sticker left on the lower lip was
# enough to make reportgen rank the lower lip above the mouth.
CUE_INSIDE_REDETECTED_MIN = 0.9
JPEG_QUALITY = 88
DEFAULT_EPOCHS = 60
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
MAX_ATTEMPTS = 60  # augmentations tried per image before giving up
# A known-answer model must rely on the sticker: below this held-out accuracy it does not, reliably.
MIN_ACCURACY = 0.95


# Cues that span several regions: one sticker over the union of the regions (both eye almonds; the lips
# with the mouth opening between them). Deleting the top region alone leaves such a cue in the other
# region(s), which a deletion check must not misread as an unfaithful explanation (issue 13).
MULTI_REGION_CUES: dict[str, tuple[str, ...]] = {
    "both_eyes": ("left_eye", "right_eye"),
    "lips_and_mouth": ("upper_lip", "lower_lip", "mouth"),
}


def cue_regions(cue: str) -> tuple[str, ...]:
    """The regions a cue covers: ``(cue,)`` for a region id, the regions of a ``MULTI_REGION_CUES`` entry."""
    if cue in MULTI_REGION_CUES:
        return MULTI_REGION_CUES[cue]
    if cue not in REGION_IDS:
        raise ValueError(f"unknown region {cue!r}; expected one of {', '.join(REGION_IDS + tuple(MULTI_REGION_CUES))}")
    return (cue,)


class CueDoesNotFit(ValueError):
    """The region is too small (or absent) in this image to hold a sticker."""


class CueNotLearned(RuntimeError):
    """The trained model misses the sticker too often (held-out accuracy below MIN_ACCURACY), so the
    known answer would not hold: the region is too small for the sticker to be learned reliably."""


# ---------------------------------------------------------------------------------------------- model


def _conv_block(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    # ReLU is not in-place: captum's hooks read this block's output after the forward pass.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class SmallFaceNet(nn.Module):
    """A small CNN for (N, 3, 128, 128) inputs normalised to [-1, 1]; returns (N, 2) class logits.

    Shapes for a 128x128 input: conv1 (N,16,64,64) -> conv2 (N,32,32,32) -> conv3 (N,64,32,32) ->
    conv4 (N,64,32,32) -> max over space (N,64) -> classifier (N,2). About 16k parameters (~70 kB).

    ``conv4`` is the last stage with a spatial output: the Grad-CAM target layer. The design makes the
    *location* of the answer known, not only the class:
      * Small receptive field. conv1/conv2 are 4x4 stride-2 convolutions, conv3/conv4 are 1x1, so a
        conv4 cell sees 10 input pixels. A model with wider context (3x3 at 32x32, 23-26 px) was free
        to detect the sticker from a cell beside it, and its map then sat on the cheek below a
        planted eye; here the map cannot stray more than ~5 px from what caused it.
      * Aligned grid. A 4x4/stride-2/padding-1 stage centres output cell j on input 2j+0.5, exactly
        where bilinear upsampling (align_corners=False, as captum's LayerAttribution.interpolate does)
        puts it. The usual 3x3/stride-2/padding-1 centres it on 2j, which after two stages shifts
        every map 1.5 px down and right: enough to move a closed mouth's attention onto the lower lip.
      * Global *max* pooling, not mean: the question is "is there a sticker anywhere", and a sticker of
        a few pixels (an eye, a nearly closed mouth) hardly moves a mean over 1024 cells; mean-pooled
        versions did not learn the small regions. With max pooling Grad-CAM's channel weights are the
        classifier weights / 1024, so Grad-CAM equals CAM.
    Pooling is done in ``forward`` (not a module), so no later module has a 1x1 "spatial" output that
    a default-layer search could pick instead.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3):
        super().__init__()
        self.conv1 = _conv_block(in_channels, 16, kernel=4, stride=2, padding=1)
        self.conv2 = _conv_block(16, 32, kernel=4, stride=2, padding=1)
        self.conv3 = _conv_block(32, 64, kernel=1, stride=1, padding=0)
        self.conv4 = _conv_block(64, 64, kernel=1, stride=1, padding=0)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.classifier(x.amax(dim=(2, 3)))


def sample_transform():
    """The evaluation transform: PIL RGB image -> float tensor (3, 128, 128) in [-1, 1]."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize((INPUT_SIZE, INPUT_SIZE)),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5] * 3, std=[0.5] * 3),
    ])


# Written next to the weights; kept in step with sample_transform() (spelled out so users can copy it).
TRANSFORM_FILE = '''"""Evaluation transform of the planted-cue models (the same as sample_transform() in the synthetic module).

No import but torchvision: the MAI-BIAS toolkit runs transform files only when every name they mention is
an allowed library."""

from torchvision import transforms

transform = transforms.Compose([
    transforms.Resize((128, 128)),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
])
'''

MODEL_FILE = '''"""The planted-cue classifier: class 1 = a lime-green sticker is painted on the {region}.

Weights: weights.pt (a state_dict). Grad-CAM layer: {layer}. Input: transform.py (128x128, [-1, 1]).
"""

from reportgen.synthetic import SmallFaceNet

model = SmallFaceNet()
'''


# ------------------------------------------------------------------------------------ augmentation


def _face_width(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[16] - landmarks[0]))


# Source-portrait landmarks by content hash, so a dataset of 100 variants detects each portrait once.
_SOURCE_LANDMARKS: dict[str, np.ndarray] = {}


def _source_landmarks(source: Image.Image) -> np.ndarray:
    key = hashlib.sha1(source.tobytes()).hexdigest() + f"{source.size}"
    if key not in _SOURCE_LANDMARKS:
        face = detect_face(source)
        if face is None:
            raise ValueError("no face found in the source portrait")
        _SOURCE_LANDMARKS[key] = face.landmarks
    return _SOURCE_LANDMARKS[key]


def augment_portrait(source: Image.Image, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """One random variant of a portrait: an RGB ``size`` x ``size`` PIL image.

    The face (jaw width, landmarks 0-16) fills 35-65% of the frame width, centred a little below the
    frame centre (+-6% jitter) so hair, neck and background stay in view; rotated by up to +-12 degrees,
    flipped left-right half of the time, colour-jittered (brightness and contrast x0.75-1.25,
    saturation x0.7-1.3, hue +-0.03 of a turn), and sometimes (20% each) mildly blurred or noised.
    Areas outside the source are filled by mirroring its edges, so no flat borders give the crop away.
    """
    source = source.convert("RGB")
    points = _source_landmarks(source)
    fraction = rng.uniform(0.35, 0.65)
    scale = fraction * size / _face_width(points)
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))
    offset = rng.uniform(-0.06, 0.06, size=2) * size
    flip = rng.random() < 0.5
    brightness, contrast = rng.uniform(0.75, 1.25, size=2)
    saturation = rng.uniform(0.7, 1.3)
    hue = rng.uniform(-0.03, 0.03)
    blur = rng.uniform(0.4, 1.0) if rng.random() < 0.2 else 0.0
    noise = rng.uniform(2.0, 6.0) if rng.random() < 0.2 else 0.0

    # Mirror-pad, then resize once with PIL's antialiased resampling (the affine step below only
    # rotates and shifts, so a strong downscale does not alias).
    pad = max(source.size) // 2
    padded = np.pad(np.asarray(source), ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    padded_image = Image.fromarray(padded)
    scaled_size = (max(1, round(padded_image.width * scale)), max(1, round(padded_image.height * scale)))
    scaled = padded_image.resize(scaled_size, Image.Resampling.BILINEAR)
    actual_scale = np.array(scaled_size) / np.array(padded_image.size)

    # Face centre: landmark centroid (about the nose) moved up a little so the frame shows hair.
    face_centre = points.mean(0) - np.array([0.0, 0.1 * _face_width(points)])
    centre = (face_centre + pad) * actual_scale
    target = np.array([size / 2, size / 2]) + offset
    # Inverse map (output pixel -> scaled-source pixel) for Image.transform: rotation about ``target``.
    cos, sin = np.cos(angle), np.sin(angle)
    a, b, d, e = cos, sin, -sin, cos
    c = centre[0] - (a * target[0] + b * target[1])
    f = centre[1] - (d * target[0] + e * target[1])
    image = scaled.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BICUBIC)
    if flip:
        image = ImageOps.mirror(image)

    image = ImageEnhance.Brightness(image).enhance(brightness)
    image = ImageEnhance.Contrast(image).enhance(contrast)
    image = ImageEnhance.Color(image).enhance(saturation)
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(hue * 256)) % 256  # hue wraps around
    image = Image.fromarray(hsv, "HSV").convert("RGB")
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        pixels = np.asarray(image).astype(np.float32) + rng.normal(0.0, noise, (size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


# --------------------------------------------------------------------------------------------- cue


def _inner_distance(mask: np.ndarray, limit: int) -> np.ndarray:
    """Chessboard distance (pixels, capped at ``limit``) from each mask pixel to the nearest pixel
    outside the mask or outside the image; 0 outside the mask.

    Computed by repeated 3x3 erosion (no scipy in reportgen's dependencies). A Euclidean disc of radius
    r < distance at its centre lies inside the mask, because Euclidean >= chessboard distance.
    """
    distance = np.zeros(mask.shape, dtype=np.int32)
    current = mask.copy()
    for step in range(1, limit + 1):
        if not current.any():
            break
        distance[current] = step
        padded = np.pad(current, 1, constant_values=False)  # outside the image counts as outside
        eroded = np.ones_like(current)
        for dy in range(3):
            for dx in range(3):
                eroded &= padded[dy:dy + current.shape[0], dx:dx + current.shape[1]]
        current = eroded
    return distance


def _disc(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius ** 2


def _cue_mask(labels: np.ndarray, landmarks: np.ndarray, region_id: str,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Where the sticker goes: (bool (height, width) mask, centre (x, y), core radius in pixels).

    ``labels`` is the image's label image (``label_image``) for ``landmarks``.
    """
    height, width = labels.shape
    region = labels == REGION_IDS.index(region_id)
    face_width = _face_width(landmarks)

    if region_id == "background":
        # A disc in a corner that the label image marks as background, i.e. off the head, ears and neck.
        radius = max(5.0, BACKGROUND_CUE_RADIUS * face_width)
        distance = _inner_distance(region, int(radius) + 3)
        fits = distance > radius + 1
        if not fits.any():
            raise CueDoesNotFit("no background area is large enough for the sticker")
        ys, xs = np.nonzero(fits)
        corners = [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)]
        near = []
        for cx, cy in corners:
            k = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
            # Only corners whose nearest fitting spot is really in the corner (not halfway across).
            if np.hypot(xs[k] - cx, ys[k] - cy) < 0.35 * min(width, height):
                near.append((xs[k], ys[k]))
        if near:
            centre = np.array(near[int(rng.integers(len(near)))], dtype=np.float64)
        else:  # fall back to the fitting spot farthest from the face
            face_centre = landmarks.mean(0)
            k = int(np.argmax((xs - face_centre[0]) ** 2 + (ys - face_centre[1]) ** 2))
            centre = np.array([xs[k], ys[k]], dtype=np.float64)
        mask = _disc(region.shape, centre, radius) & region
        return mask, centre, radius

    # Inner regions: fill the region (shrunk by a 1-pixel margin, so antialiasing and JPEG do not
    # bleed the sticker over the edge) within a disc around a point deep inside it. Round in big
    # regions, the region's own shape (an almond, a bar) in small ones: as many cue pixels as it allows.
    max_radius = CUE_MAX_RADIUS * face_width
    distance = _inner_distance(region, int(0.5 * face_width))
    peak = int(distance.max())
    if peak < 2:
        # No pixel two steps from the edge: a sliver, such as the opening of a closed mouth. Painting
        # it whole was tried: a line one model-input pixel high is too faint to learn reliably, and
        # what the model learned sat on the lips beside it, so the known answer was wrong.
        raise CueDoesNotFit(f"region {region_id!r} is too small here to hold a sticker")
    # Centre it near the region's deepest point, so the attention it draws (which spreads a few pixels
    # at the model's resolution) lands in this region rather than a small neighbour (brow, eye, lip).
    deep = distance >= max(2, int(np.ceil(0.9 * peak)))
    ys, xs = np.nonzero(deep)
    k = int(rng.integers(len(xs)))
    centre = np.array([xs[k], ys[k]], dtype=np.float64)
    mask = (distance > 1) & _disc(region.shape, centre, max_radius)
    return mask, centre, min(max_radius, float(distance[ys[k], xs[k]]))


def _union_mask(labels: np.ndarray, landmarks: np.ndarray, cue: str) -> tuple[np.ndarray, np.ndarray]:
    """Where a multi-region sticker goes: (bool mask, bool core), both (height, width). The mask is the union
    of the cue's regions shrunk by one pixel (as a single-region sticker, so antialiasing and JPEG do not
    bleed it over the edge); the core (second colour) is its thickest part. Every region of the cue must
    hold part of it, or CueDoesNotFit: a cue "over both eyes" with one eye bare would be a one-region cue."""
    ids = [REGION_IDS.index(region) for region in MULTI_REGION_CUES[cue]]
    union = np.isin(labels, ids)
    distance = _inner_distance(union, int(0.5 * _face_width(landmarks)))
    mask = distance > 1
    if not all((mask & (labels == i)).any() for i in ids):
        raise CueDoesNotFit(f"cue {cue!r}: one of its regions is too small here to hold part of the sticker")
    peak = int(distance.max())
    return mask, distance >= max(3, int(np.ceil(0.6 * peak)))


def _plant(image: Image.Image, landmarks: np.ndarray, region_id: str, rng: np.random.Generator,
           colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (CUE_COLOUR, CUE_CORE_COLOUR),
           ) -> tuple[Image.Image, np.ndarray]:
    regions = cue_regions(region_id)
    image = image.convert("RGB")
    landmarks = np.asarray(landmarks, dtype=np.float64)
    labels = label_image(landmarks, image.width, image.height)
    if len(regions) > 1:
        mask, core = _union_mask(labels, landmarks, region_id)
        pixels = np.asarray(image).copy()
        pixels[mask] = colours[0]
        pixels[core] = colours[1]
        return Image.fromarray(pixels), mask
    mask, centre, radius = _cue_mask(labels, landmarks, region_id, rng)
    if not mask.any():
        raise CueDoesNotFit(f"region {region_id!r} is too small here to hold a sticker")
    pixels = np.asarray(image).copy()
    pixels[mask] = colours[0]
    if radius >= 2:  # a core of at least a pixel or so
        # A magenta core: a second unusual colour, and an edge inside the sticker, make it a "texture"
        # rather than a flat patch; it still reads as one object at 128 px.
        pixels[mask & _disc(mask.shape, centre, 0.45 * radius)] = colours[1]

    # The scored masks are label-image pixels, so that is what the sticker is checked against.
    inside = float((labels[mask] == REGION_IDS.index(region_id)).mean())
    assert inside >= CUE_INSIDE_MIN, f"only {inside:.0%} of the {region_id} sticker is inside the region"
    return Image.fromarray(pixels), mask


def plant_cue(image: Image.Image, landmarks: np.ndarray, region_id: str, rng: np.random.Generator,
              colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (CUE_COLOUR, CUE_CORE_COLOUR),
              ) -> Image.Image:
    """A copy of ``image`` (RGB PIL) with the sticker painted inside ``region_id``.

    ``landmarks``: float (68, 2) in the image's pixels. Inner regions get the region itself, shrunk by
    one pixel, within a disc of radius 0.15 x face width around the region's thickest point; the
    ``background`` gets a disc (radius 0.12 x face width) in a corner that ``label_image`` marks as
    background. At least 90% of the sticker's pixels lie in the region's label-image mask (asserted;
    by construction it is 100%). Raises ``CueDoesNotFit`` when the region is too small in this image
    (no pixel two steps from its edge, e.g. the mouth opening of a closed mouth). ``colours``: the sticker's
    ring and core colours (lime and magenta by default).
    """
    return _plant(image, landmarks, region_id, rng, colours)[0]


# ------------------------------------------------------------------------------------------ dataset


def _load_sources() -> list[tuple[str, Image.Image, int]]:
    folder = samples_dir() / "sources"
    return [(prefix, Image.open(folder / name).convert("RGB"), protected)
            for prefix, name, protected in SOURCES]


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    # 4:4:4 chroma: the default 4:2:0 subsampling would smear the sticker's colour over its edge.
    image.save(buffer, "JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


@dataclass(frozen=True)
class Cue:
    """A sticker for one image: the region it goes in, its (ring, core) colours, and whether it is painted."""

    region: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (CUE_COLOUR, CUE_CORE_COLOUR)
    planted: bool = True


def _one_image(source: Image.Image, cues: list[Cue], rng: np.random.Generator, size: int,
               quality: int, who: str) -> bytes:
    """One JPEG (bytes) of ``source`` with the planted ``cues`` painted; raises after MAX_ATTEMPTS."""
    misses = {"no face found": 0, "region too small for a sticker": 0, "the sticker moved the landmarks": 0}
    for _ in range(MAX_ATTEMPTS):
        image = augment_portrait(source, rng, size)
        face = detect_face(image)
        if face is None:  # e.g. small and rotated: draw another variant
            misses["no face found"] += 1
            continue
        try:
            # Placed whether planted or not, kept only when planted: every image is then drawn from the
            # variants whose regions can hold a sticker, so that condition says nothing about the labels.
            placed = image
            masks = []
            for cue in cues:
                painted, mask = _plant(placed, face.landmarks, cue.region, rng, cue.colours)
                if cue.planted:
                    placed = painted
                    masks.append((cue.region, mask))
        except CueDoesNotFit:
            misses["region too small for a sticker"] += 1
            continue
        data = _jpeg(placed, quality)
        # reportgen will detect the face on the saved file, stickers included: make sure it still can,
        # and that each planted sticker is still in its region by the landmarks it will find.
        again = detect_face(Image.open(io.BytesIO(data)).convert("RGB"))
        if again is None:
            misses["no face found"] += 1
            continue
        if masks:
            labels = label_image(again.landmarks, size, size)
            if any(np.isin(labels[mask], [REGION_IDS.index(r) for r in cue_regions(region)]).mean()
                   < CUE_INSIDE_REDETECTED_MIN for region, mask in masks):
                misses["the sticker moved the landmarks"] += 1
                continue
        return data
    counts = ", ".join(f"{reason}: {n}" for reason, n in misses.items() if n)
    regions = " and ".join(repr(cue.region) for cue in cues)
    message = f"no usable {who} image with a sticker in {regions} in {MAX_ATTEMPTS} variants ({counts})"
    region_misses = misses["region too small for a sticker"] + misses["the sticker moved the landmarks"]
    if region_misses > MAX_ATTEMPTS // 2:
        if any(cue.region == "mouth" for cue in cues) and who == "hopper":
            message += "; Grace Hopper's mouth is closed, so its opening is a sliver"
        raise CueDoesNotFit(message + "; plant the cue in another region, e.g. nose, chin or left_eye")
    raise RuntimeError(message)


def make_planted_dataset(out_dir: Path, region_id: str, count: int, seed: int, size: int = 256,
                         quality: int = JPEG_QUALITY,
                         colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (CUE_COLOUR, CUE_CORE_COLOUR),
                         ) -> Path:
    """Write ``count`` augmented portraits to ``out_dir/images/`` and ``out_dir/annotations.csv``.

    CSV header ``img,task,protected``: img is the file name relative to images/ (``hopper_000.jpg``),
    task is 1 when the sticker is planted in ``region_id`` and 0 otherwise, protected is the source
    portrait (0 Grace Hopper, 1 Eileen Collins). Half the images come from each portrait, and half of
    each portrait's images carry the sticker. Images are ``size`` x ``size`` JPEGs. Deterministic for
    a given seed. Returns the path of annotations.csv. Raises ``CueDoesNotFit`` for a region that
    cannot hold a sticker in one of the portraits: ``mouth`` (the opening; Grace Hopper's is closed).
    ``colours``: the sticker's (ring, core) colours (``GRAY_CUE_COLOURS`` for a grayscale model).
    ``region_id`` may also name a multi-region cue (``MULTI_REGION_CUES``: ``both_eyes``, ``lips_and_mouth``):
    one sticker over the union of its regions.
    """
    cue_regions(region_id)  # ValueError for an unknown region or cue
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for index, (prefix, source, protected) in enumerate(_load_sources()):
        n = count // 2 + (1 if index < count % 2 else 0)
        # Shuffled, not alternating, so file order says nothing about the label.
        tasks = rng.permutation(np.array([1] * (n // 2) + [0] * (n - n // 2)))
        for number, task in enumerate(tasks):
            name = f"{prefix}_{number:03d}.jpg"
            data = _one_image(source, [Cue(region_id, colours, bool(task))], rng, size, quality, prefix)
            (images_dir / name).write_bytes(data)
            rows.append((name, int(task), protected))
    annotations = out_dir / "annotations.csv"
    with open(annotations, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["img", "task", "protected"])
        writer.writerows(rows)
    return annotations


def make_multi_label_dataset(out_dir: Path, cues: dict[str, tuple[str, tuple]], count: int, seed: int,
                             size: int = 256, quality: int = JPEG_QUALITY) -> Path:
    """A dataset for a multi-label model: one attribute per entry of ``cues`` ({name: (region id, (ring, core)
    colours)}), each present (its sticker painted in its region) in half of each portrait's images,
    independently of the others. Writes ``images/``, CelebA's ``list_attr_celeba.txt`` (row count, attribute
    names, ``file -1 1 ...`` rows) and ``annotations.csv`` (``img``, the attributes as 0/1, ``protected``);
    returns the path of list_attr_celeba.txt. Deterministic for a seed."""
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(cues)
    rows = []
    for index, (prefix, source, protected) in enumerate(_load_sources()):
        n = count // 2 + (1 if index < count % 2 else 0)
        present = np.stack([rng.permutation(np.array([1] * (n // 2) + [0] * (n - n // 2))) for _ in names], 1)
        for number in range(n):
            name = f"{prefix}_{number:03d}.jpg"
            chosen = [Cue(cues[attribute][0], cues[attribute][1], bool(present[number, k]))
                      for k, attribute in enumerate(names)]
            (images_dir / name).write_bytes(_one_image(source, chosen, rng, size, quality, prefix))
            rows.append((name, [int(v) for v in present[number]], protected))
    attributes = out_dir / "list_attr_celeba.txt"
    lines = [str(len(rows)), " ".join(names)]
    lines += [f"{name} " + " ".join("1" if v else "-1" for v in values) for name, values, _ in rows]
    attributes.write_text("\n".join(lines) + "\n")
    with open(out_dir / "annotations.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["img", *names, "protected"])
        writer.writerows([name, *values, protected] for name, values, protected in rows)
    return attributes


# ----------------------------------------------------------------------------------------- training


def _load_dataset(dataset_dir: Path, columns: tuple[str, ...] = ("task",), transform=None,
                  annotations: str = "annotations.csv") -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(inputs (N, C, 128, 128), labels (N,) or (N, len(columns)) for several columns, protected (N,)) from
    images/ and the ``annotations`` CSV; ``transform`` defaults to ``sample_transform()``."""
    dataset_dir = Path(dataset_dir)
    transform = transform or sample_transform()
    inputs, labels, groups = [], [], []
    with open(dataset_dir / annotations, newline="") as handle:
        for row in csv.DictReader(handle):
            with Image.open(dataset_dir / "images" / row["img"]) as image:
                inputs.append(transform(image.convert("RGB")))
            labels.append([int(row[column]) for column in columns])
            groups.append(int(row["protected"]))
    table = torch.tensor(labels)
    return torch.stack(inputs), table[:, 0] if len(columns) == 1 else table, np.array(groups)


def _split(labels: np.ndarray, groups: np.ndarray, seed: int, held_out: float = 0.25):
    """Train and held-out indices, stratified by (label, group) so both splits stay balanced."""
    rng = np.random.default_rng(seed + 1)
    train, test = [], []
    for key in sorted(set(zip(labels.tolist(), groups.tolist()))):
        members = np.flatnonzero((labels == key[0]) & (groups == key[1]))
        members = rng.permutation(members)
        cut = max(1, int(round(held_out * len(members)))) if len(members) > 1 else 0
        test.extend(members[:cut].tolist())
        train.extend(members[cut:].tolist())
    return np.array(sorted(train)), np.array(sorted(test))


def _shift(x: torch.Tensor, generator: torch.Generator, most: int = 8) -> torch.Tensor:
    """Translate a batch (N, C, H, W) by one random offset of up to ``most`` pixels (edges replicated):
    with so few images, this keeps the model from tying the class to where things sit in the frame."""
    dx, dy = (int(v) for v in torch.randint(-most, most + 1, (2,), generator=generator))
    padded = torch.nn.functional.pad(x, (most, most, most, most), mode="replicate")
    return padded[:, :, most + dy:most + dy + x.shape[2], most + dx:most + dx + x.shape[3]]


def train_classifier(model: TrainedModel, inputs: torch.Tensor, labels: torch.Tensor, groups: np.ndarray,
                     epochs: int = DEFAULT_EPOCHS, seed: int = 0, loss: str = "softmax",
                     learning_rate: float = LEARNING_RATE, scores=None) -> tuple[TrainedModel, float]:
    """Train ``model`` on (inputs, labels); returns (model in eval mode, held-out accuracy).

    ``loss``: "softmax" (cross-entropy over the classes; labels (N,) class indices) or "sigmoid" (binary
    cross-entropy with logits, as a CelebA attribute model is trained; labels (N,) 0/1 for one output, or
    (N, K) 0/1 for K attributes). ``scores``: picks the class scores out of the model's output (a tuple, say).
    A stratified 25% of the images is held out (by the first label and the portrait). Training
    augmentation: random left-right flip, a mild brightness/contrast change of the normalised input and
    a shift of up to 8 pixels, which all leave the sticker's colour and shape intact. Adam with cosine
    decay, batches of 16; 60 epochs of 72 images take about 8 s on 2 CPU cores for the small CNN.
    Deterministic for a seed on a given machine: seeded torch and numpy, deterministic algorithms, 2
    threads (all restored afterwards, so callers' settings are untouched).
    """
    scores = scores or (lambda output: output)
    first = labels if labels.ndim == 1 else labels[:, 0]
    train_idx, test_idx = _split(first.numpy(), groups, seed)

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY)
        loss_fn: nn.Module
        if loss == "softmax":
            loss_fn, targets = nn.CrossEntropyLoss(), labels
        else:
            loss_fn = nn.BCEWithLogitsLoss()
            targets = (labels[:, None] if labels.ndim == 1 else labels).float()
        x_train, y_train = inputs[train_idx], targets[train_idx]
        batch = 16
        steps = epochs * ((len(x_train) + batch - 1) // batch)
        # Cosine decay: the last epochs settle instead of bouncing between memorised solutions.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, steps))
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), batch):
                pick = order[start:start + batch]
                x = x_train[pick].clone()
                flip = torch.rand(len(pick), generator=generator) < 0.5
                x[flip] = x[flip].flip(-1)
                gain = 1 + (torch.rand(len(pick), 1, 1, 1, generator=generator) - 0.5) * 0.3
                shift = (torch.rand(len(pick), 1, 1, 1, generator=generator) - 0.5) * 0.2
                x = (x * gain + shift).clamp(-1, 1)
                x = _shift(x, generator)
                optimiser.zero_grad()
                loss_value = loss_fn(scores(model(x)), y_train[pick])
                loss_value.backward()
                optimiser.step()
                schedule.step()
        model.eval()
        with torch.no_grad():
            output = scores(model(inputs[test_idx]))
        if loss == "softmax":
            accuracy = float((output.argmax(1) == labels[test_idx]).float().mean())
        else:
            accuracy = float(((output > 0).float() == targets[test_idx]).float().mean())
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    return model, accuracy


def train_small_cnn(dataset_dir: Path, epochs: int = DEFAULT_EPOCHS,
                    seed: int = 0) -> tuple[SmallFaceNet, float]:
    """Train ``SmallFaceNet`` on a planted-cue folder (``train_classifier`` with cross-entropy on ``task``);
    returns (model in eval mode, held-out accuracy)."""
    inputs, labels, groups = _load_dataset(dataset_dir)
    torch.manual_seed(seed)  # the same initial weights as before training was factored out
    return train_classifier(SmallFaceNet(), inputs, labels, groups, epochs, seed)


# ---------------------------------------------------------------------------------- known answers


# The model shapes a known-answer case can be built for (``make_known_answer_case(kind=...)``): how the
# model file builds it, its transform, how it is trained and which layer is its Grad-CAM layer by default.
KIND_MODEL_FILES = {
    "softmax": MODEL_FILE,
    "sigmoid": MODEL_FILE.replace("model = SmallFaceNet()", "model = SmallFaceNet(num_classes=1)  # one logit, "
                                  "trained with BCEWithLogitsLoss"),
    "gray": MODEL_FILE.replace("model = SmallFaceNet()", "model = SmallFaceNet(in_channels=1)  # grayscale input"),
    "tuple": MODEL_FILE.replace("model = SmallFaceNet()", '''import torch


class TupleFaceNet(SmallFaceNet):
    """Returns (class logits, pooled features), as many face models return an embedding beside the logits."""

    def forward(self, x):
        features = self.conv4(self.conv3(self.conv2(self.conv1(x)))).amax(dim=(2, 3))
        return self.classifier(features), features


model = TupleFaceNet()'''),
    "vit": '''"""A small vision transformer trained to find a sticker on the {region} (class 1); 16x16 patches of 8 px."""

from torchvision.models.vision_transformer import VisionTransformer

model = VisionTransformer(image_size=128, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                          num_classes=2)
''',
}
GRAY_TRANSFORM_FILE = '''"""Evaluation transform of the grayscale planted-cue model: one channel, 128x128, [-1, 1]."""

from torchvision import transforms

transform = transforms.Compose([
    transforms.Grayscale(num_output_channels=1),
    transforms.Resize((128, 128)),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.5], std=[0.5]),
])
'''
# Default Grad-CAM layer of each kind (what reportgen must pick without --layer).
KIND_LAYERS = {"softmax": TARGET_LAYER, "sigmoid": TARGET_LAYER, "gray": TARGET_LAYER, "tuple": TARGET_LAYER,
               "vit": "encoder.layers.encoder_layer_1.ln_1"}
VIT_LEARNING_RATE = 1e-3


def _kind_model_and_transform(kind: str):
    """(untrained model, evaluation transform, training loss) for a known-answer ``kind``."""
    namespace: dict = {}
    exec(KIND_MODEL_FILES[kind].format(region="", layer=TARGET_LAYER), namespace)
    if kind == "gray":
        exec(GRAY_TRANSFORM_FILE, namespace)
        transform = namespace["transform"]
    else:
        transform = sample_transform()
    return namespace["model"], transform, "sigmoid" if kind == "sigmoid" else "softmax"


def write_model_files(out_dir: Path, model: nn.Module, region_id: str, kind: str = "softmax") -> dict[str, Path]:
    """Write model.py, weights.pt (state_dict) and transform.py into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    model_file, weights, transform = out_dir / "model.py", out_dir / "weights.pt", out_dir / "transform.py"
    model_file.write_text(KIND_MODEL_FILES[kind].format(region=region_id.replace("_", " "), layer=TARGET_LAYER))
    torch.save(model.state_dict(), weights)
    transform.write_text(GRAY_TRANSFORM_FILE if kind == "gray" else TRANSFORM_FILE)
    return {"model_file": model_file, "weights": weights, "transform": transform}


def make_known_answer_case(out_dir: Path, region_id: str, count: int = 96, seed: int = 0,
                           epochs: int = DEFAULT_EPOCHS, kind: str = "softmax", data_dir: Path | None = None) -> dict:
    """A dataset with the sticker in ``region_id`` and a model trained on it, ready for the CLI.

    Returns {"images": folder, "annotations": csv, "model_file": model.py, "weights": weights.pt,
    "transform": transform.py, "layer": the default Grad-CAM layer} (paths, and the layer name as a string).
    Also writes ``training.json`` (held-out accuracy, seconds). About 10 s on 2 idle CPU cores for 96 images
    (generation 2-4 s, training 5-8 s). The answer: for class 1, ``region_id`` has the highest mean
    density (checked by benchmarks/check_planted_cue.py).

    ``kind``: the model's shape: "softmax" (SmallFaceNet, two classes), "sigmoid" (one logit, binary
    cross-entropy), "gray" (one input channel, a grayscale transform and a black-and-white sticker), "tuple"
    (returns (logits, features)) or "vit" (a two-block vision transformer, 16x16 patches).
    ``data_dir``: where the images and annotations.csv go (default ``out_dir``); when it already holds a
    dataset (made for another kind with the same sticker colours), that dataset is used as it is, so
    several model shapes can be trained on one set of images.

    Works for every region except three: ``mouth`` and ``lower_lip`` raise ``CueDoesNotFit`` (Grace
    Hopper's closed mouth has no opening to hold a sticker; a sticker on the lower lip moves dlib's lip
    points so it is no longer on the lip it was painted on), and ``upper_lip`` raises
    ``CueNotLearned`` (too thin: the model does not learn the sticker). The files are written before
    ``CueNotLearned`` is raised, for a look.
    """
    if kind not in KIND_MODEL_FILES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KIND_MODEL_FILES)}")
    out_dir = Path(out_dir)
    data_dir = Path(data_dir or out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    colours = GRAY_CUE_COLOURS if kind == "gray" else (CUE_COLOUR, CUE_CORE_COLOUR)
    annotations = data_dir / "annotations.csv"
    if not annotations.exists():
        annotations = make_planted_dataset(data_dir, region_id, count, seed, colours=colours)
    generated = time.perf_counter()
    torch.manual_seed(seed)
    model, transform, loss = _kind_model_and_transform(kind)
    inputs, labels, groups = _load_dataset(data_dir, transform=transform)
    model, accuracy = train_classifier(model, inputs, labels, groups, epochs, seed, loss,
                                       VIT_LEARNING_RATE if kind == "vit" else LEARNING_RATE,
                                       (lambda output: output[0]) if kind == "tuple" else None)
    trained = time.perf_counter()
    files = write_model_files(out_dir, model, region_id, kind)
    (out_dir / "training.json").write_text(json.dumps({
        "region": region_id, "kind": kind, "count": count, "seed": seed, "epochs": epochs,
        "held_out_accuracy": accuracy, "generation_seconds": round(generated - started, 2),
        "training_seconds": round(trained - generated, 2),
    }, indent=2) + "\n")
    if accuracy < MIN_ACCURACY:
        raise CueNotLearned(f"region {region_id!r}: held-out accuracy {accuracy:.3f} is below "
                            f"{MIN_ACCURACY}, so the model does not rely on the sticker; use a larger region "
                            "(e.g. nose, chin, left_eye)")
    return {"images": data_dir / "images", "annotations": annotations, **files, "layer": KIND_LAYERS[kind]}


def make_multi_label_case(out_dir: Path, cues: dict[str, str] | None = None, count: int = 96, seed: int = 0,
                          epochs: int = DEFAULT_EPOCHS) -> dict:
    """A multi-label known answer: one attribute per entry of ``cues`` ({attribute name: region}, default
    ``Forehead_sticker`` on the forehead and ``Chin_sticker`` on the chin), each with a sticker of its own
    colours, in CelebA's list_attr format; a SmallFaceNet with one output per attribute trained with binary
    cross-entropy. The answer: explaining each attribute ranks its own region first.

    Returns {"images", "annotations" (list_attr_celeba.txt), "model_file", "weights", "transform",
    "layer", "attributes": {name: region}}."""
    cues = cues or {"Forehead_sticker": "forehead", "Chin_sticker": "chin"}
    palettes = [(CUE_COLOUR, CUE_CORE_COLOUR), SECOND_CUE_COLOURS]
    if len(cues) > len(palettes):
        raise ValueError(f"at most {len(palettes)} attributes (one sticker colour each)")
    out_dir = Path(out_dir)
    annotations = make_multi_label_dataset(out_dir, {name: (region, palettes[k]) for k, (name, region)
                                                     in enumerate(cues.items())}, count, seed)
    inputs, labels, groups = _load_dataset(out_dir, tuple(cues))
    torch.manual_seed(seed)
    model, accuracy = train_classifier(SmallFaceNet(num_classes=len(cues)), inputs, labels, groups, epochs, seed,
                                       "sigmoid")
    files = write_model_files(out_dir, model, " and ".join(cues.values()))
    files["model_file"].write_text(MODEL_FILE.format(region=" and ".join(cues.values()), layer=TARGET_LAYER).replace(
        "model = SmallFaceNet()", f"model = SmallFaceNet(num_classes={len(cues)})  # one logit per attribute"))
    (out_dir / "training.json").write_text(json.dumps({"cues": cues, "count": count, "seed": seed, "epochs": epochs,
                                                       "held_out_accuracy": accuracy}, indent=2) + "\n")
    if accuracy < MIN_ACCURACY:
        raise CueNotLearned(f"multi-label case: held-out accuracy {accuracy:.3f} is below {MIN_ACCURACY}")
    return {"images": out_dir / "images", "annotations": annotations, **files, "layer": TARGET_LAYER,
            "attributes": dict(cues)}


# ------------------------------------------------------------------------------------ verification

# One sticker colour pair per synthetic identity: identity is carried by the sticker's colours alone.
IDENTITY_COLOURS = (
    ((0, 255, 0), (255, 0, 255)),      # lime, magenta core
    ((0, 170, 255), (255, 255, 0)),    # azure, yellow core
    ((140, 0, 255), (0, 255, 140)),    # violet, spring-green core
    ((0, 0, 0), (255, 255, 255)),      # black, white core
)
EMBEDDING_SIZE = 16
EMBEDDING_MODEL_FILE = '''"""A face-verification model for the known-answer test: a 16-d embedding whose identity is the
colour of a sticker on the {region} (one colour per identity). Grad-CAM layer: conv4."""

import torch

from reportgen.synthetic import SmallFaceNet


class StickerEmbedding(SmallFaceNet):
    """SmallFaceNet's trunk with its last linear layer as a {size}-d embedding (no classes)."""

    def __init__(self):
        super().__init__(num_classes={size})


model = StickerEmbedding()
'''


class _CosineClassifier(nn.Module):
    """Training head for an embedding model: scaled cosine between the unit embedding and one unit vector per
    identity (NormFace), so that embeddings of one identity point the same way and cosine similarity is high
    for genuine pairs."""

    def __init__(self, embedding: nn.Module, identities: int, scale: float = 16.0):
        super().__init__()
        self.embedding, self.scale = embedding, scale
        self.centres = nn.Parameter(torch.randn(identities, EMBEDDING_SIZE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = nn.functional.normalize(self.embedding(x), dim=1)
        return self.scale * embedding @ nn.functional.normalize(self.centres, dim=1).T


def train_embedding(dataset_dir: Path, annotations: str, column: str, identities: int, seed: int = 0,
                    epochs: int = DEFAULT_EPOCHS) -> tuple[nn.Module, float]:
    """A ``SmallFaceNet`` whose last layer is an ``EMBEDDING_SIZE``-d embedding, trained (``train_classifier``
    with a cosine classifier over the ``identities`` values of ``column`` in ``dataset_dir/annotations``) so
    that images of one identity have a high cosine similarity; returns (embedding model, held-out accuracy)."""
    inputs, labels, groups = _load_dataset(dataset_dir, (column,), annotations=annotations)
    torch.manual_seed(seed)
    embedding = SmallFaceNet(num_classes=EMBEDDING_SIZE)
    trained, accuracy = train_classifier(_CosineClassifier(embedding, identities), inputs, labels, groups, epochs,
                                         seed)
    return trained.embedding.eval(), accuracy


def make_verification_case(out_dir: Path, region_id: str = "forehead", count: int = 96, pairs: int = 96,
                           seed: int = 0, epochs: int = DEFAULT_EPOCHS) -> dict:
    """A face-verification known answer: ``count`` augmented portraits, each carrying a sticker in ``region_id``
    whose colours are its identity (``IDENTITY_COLOURS``; both portraits appear with every identity, so the face
    itself says nothing about identity), a pair file, and an embedding model trained to tell the identities
    apart by cosine similarity. The answer: explaining the similarity of genuine pairs ranks ``region_id``
    first.

    Writes ``images/``, ``images.csv`` (img, identity, protected), ``pairs.csv`` (img1, img2, is_same,
    protected: half genuine, half impostor), ``model.py``, ``weights.pt``, ``transform.py`` and
    ``reference.jpg`` (one more image of identity 0) with ``reference.csv`` (img, is_same: identity 0 or
    not, protected). Returns their paths and the layer name."""
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    identities = len(IDENTITY_COLOURS)
    rows = []
    for index, (prefix, source, protected) in enumerate(_load_sources()):
        n = count // 2 + (1 if index < count % 2 else 0)
        for number, identity in enumerate(rng.permutation(np.arange(n) % identities)):
            name = f"{prefix}_{number:03d}.jpg"
            cue = Cue(region_id, IDENTITY_COLOURS[int(identity)], True)
            (images_dir / name).write_bytes(_one_image(source, [cue], rng, 256, JPEG_QUALITY, prefix))
            rows.append((name, int(identity), protected))
    reference = out_dir / "reference.jpg"
    reference.write_bytes(_one_image(_load_sources()[0][1], [Cue(region_id, IDENTITY_COLOURS[0], True)], rng, 256,
                                     JPEG_QUALITY, "hopper"))
    with open(out_dir / "images.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("img", "identity", "protected"), *rows])
    with open(out_dir / "reference.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("img", "is_same", "protected"),
                                      *((name, int(identity == 0), protected) for name, identity, protected in rows)])
    # Pairs: each genuine pair two images of one identity, each impostor pair two of different identities.
    chosen: set = set()
    pair_rows: list[tuple[str, str, int, int]] = []
    while len(pair_rows) < pairs:
        genuine = len(pair_rows) % 2 == 0
        a = rows[int(rng.integers(len(rows)))]
        candidates = [r for r in rows if r is not a and (r[1] == a[1]) == genuine]
        b = candidates[int(rng.integers(len(candidates)))]
        if (a[0], b[0]) in chosen:
            continue
        chosen.add((a[0], b[0]))
        pair_rows.append((a[0], b[0], int(genuine), a[2]))
    with open(out_dir / "pairs.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("img1", "img2", "is_same", "protected"), *pair_rows])

    embedding, accuracy = train_embedding(out_dir, "images.csv", "identity", identities, seed, epochs)
    model_file, weights, transform = out_dir / "model.py", out_dir / "weights.pt", out_dir / "transform.py"
    model_file.write_text(EMBEDDING_MODEL_FILE.format(region=region_id.replace("_", " "), size=EMBEDDING_SIZE))
    torch.save(embedding.state_dict(), weights)
    transform.write_text(TRANSFORM_FILE)
    (out_dir / "training.json").write_text(json.dumps({"region": region_id, "identities": identities,
                                                       "count": count, "pairs": pairs, "seed": seed,
                                                       "held_out_accuracy": accuracy}, indent=2) + "\n")
    if accuracy < MIN_ACCURACY:
        raise CueNotLearned(f"verification case: held-out identity accuracy {accuracy:.3f} is below {MIN_ACCURACY}")
    return {"images": images_dir, "pairs": out_dir / "pairs.csv", "annotations": out_dir / "images.csv",
            "reference": reference, "reference_annotations": out_dir / "reference.csv", "model_file": model_file,
            "weights": weights, "transform": transform, "layer": TARGET_LAYER}
