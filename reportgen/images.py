"""Turn one dataset row into what the model and the region masks need: decoded, face found, transformed.

``ImagePreparer`` is a torch Dataset so DataLoader worker processes can decode images and find faces
while the model runs. A problem with one image becomes a ``failure`` reason on that row; it never
stops the run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from .dataset import Dataset
from .errors import InputError
from .landmarks import Face, LandmarkCache, cnn_detector_used, detect_face, file_hash
from .preprocess import InputGeometry, Preprocessing, measure_geometry


@dataclass
class PreparedImage:
    """One dataset row after decoding and face finding: either ready for the model, or a failure."""

    index: int
    image: str
    tensor: torch.Tensor | None = None
    landmarks: np.ndarray | None = None  # (68, 2) in model-input pixels
    image_size: tuple[int, int] | None = None  # (width, height) of the decoded image
    face: Face | None = None
    detected: bool = False  # True when the detector ran (no usable cache entry)
    failure: str | None = None


class ImagePreparer(torch.utils.data.Dataset):
    """Decode an image, find its face (or read it from the cache), and transform it for the model.

    A torch Dataset, so DataLoader workers can do this CPU work while the model runs.
    """

    def __init__(self, dataset: Dataset, preprocessing: Preprocessing, cache: LandmarkCache):
        self.dataset, self.preprocessing, self.cache = dataset, preprocessing, cache
        self.geometries: dict[tuple[int, int], InputGeometry] = {}  # one measurement per image size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> PreparedImage:
        return self.prepare(index)

    def geometry(self, size: tuple[int, int]) -> InputGeometry:
        if size not in self.geometries:
            self.geometries[size] = measure_geometry(self.preprocessing, size)
        return self.geometries[size]

    def prepare(self, index: int) -> PreparedImage:
        name = self.dataset.paths[index]
        result = PreparedImage(index, name)
        path = self.dataset.root / name
        if not path.is_file():
            result.failure = "file not found"
            return result
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as opened:
                    image = ImageOps.exif_transpose(opened)  # phones store rotation in EXIF
                    image = image.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            result.failure = "image too large (over the decompression-bomb limit)"
            return result
        except Exception as error:  # PIL raises many types for broken files
            result.failure = f"not a readable image ({type(error).__name__}: {error})"
            return result
        digest = file_hash(path)
        hit, face = self.cache.get(digest)
        if not hit:
            result.detected = True
            face = detect_face(image)
            self.cache.put(digest, face)
        if face is None:
            result.failure = "no face found"
            return result
        try:
            geometry = self.geometry(image.size)
            result.tensor = self.preprocessing.transform(image).float()
        except InputError as error:  # the transform copes with most sizes but not this one
            result.failure = f"the transform failed on this image ({error})"
            return result
        result.image_size, result.face = image.size, face
        result.landmarks = geometry.landmarks_to_input(face.landmarks)
        return result


    def __getstate__(self):
        # Sent to spawned workers: geometry measurements are redone there (they hold tensors).
        return {**self.__dict__, "geometries": {}}


def prepared_batches(preparer: ImagePreparer, batch_size: int, workers: int):
    """Batches of PreparedImage in dataset order; with workers > 0 they are made in other processes."""
    import multiprocessing

    if workers > 0:
        # fork starts workers at once; but after dlib's CNN detector ran in this process a forked
        # worker would hang in it, so then (and where fork does not exist) workers are spawned.
        fork = "fork" in multiprocessing.get_all_start_methods() and not cnn_detector_used()
        return torch.utils.data.DataLoader(preparer, batch_size=batch_size, num_workers=workers, collate_fn=list,
                                           multiprocessing_context="fork" if fork else "spawn", prefetch_factor=2)
    return ([preparer.prepare(i) for i in range(start, min(start + batch_size, len(preparer)))]
            for start in range(0, len(preparer), batch_size))
