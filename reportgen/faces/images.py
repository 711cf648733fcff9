"""Turn one dataset row into what the model and the region masks need: decoded, face found, transformed.

``ImagePreparer`` is a torch Dataset so DataLoader worker processes can decode images and find faces
while the model runs. A problem with one image becomes a ``failure`` reason on that row; it never
stops the run.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, InputError
from ..inputs.dataset import Dataset
from ..inputs.preprocess import InputGeometry, Preprocessing, measure_geometry
from ..results.patches import Later
from ..results.scores import bootstrap_weights, region_areas
from .canonical import face_control
from .landmarks import Face, LandmarkCache, cnn_detector_used, detect_face, pose_note
from .regions import label_image


@dataclass
class PreparedImage:
    """One dataset row after decoding and face finding: either ready for the model, or a failure."""

    index: int
    image: str
    tensor: torch.Tensor | None = None
    landmarks: np.ndarray | None = None  # (68, 2) in model-input pixels
    labels: np.ndarray | None = None  # uint8 (H, W) region index per model-input pixel
    areas: np.ndarray | None = None  # float64 (R,): the share of the picture each region covers
    control: np.ndarray | None = None  # float64 (C, 2): the canonical warp's control points, model-input pixels
    weights: np.ndarray | None = None  # uint8 (replicates,): the row's bootstrap weights (Poisson(1) counts)
    # The picture the model sees (normalisation undone), for patches: a patches.Later for an image whose face
    # was found, drawn only if the report keeps the image (most images never need it); a picture otherwise.
    seen: Later | Image.Image | None = None
    image_size: tuple[int, int] | None = None  # (width, height) of the decoded image
    face: Face | None = None
    detected: bool = False  # True when the detector ran (no usable cache entry)
    failure: str | None = None
    notes: list[str] = field(default_factory=list)  # conversions applied, several faces... (image kept)
    partner: str | None = None  # verification: the image it is compared with (its pair's other image, the reference)


# The smallest side worth searching for a face; smaller images are listed as failures.
MIN_SIDE = 8
# dlib's detectors are not known to be safe to call from two threads at once (its CNN keeps buffers);
# the threads of one process that prepare images (_one_batch_ahead) take turns at detection.
_DETECTION = threading.Lock()
EXIF_ORIENTATION = 0x0112


def decode_image(path: Path) -> tuple[Image.Image, list[str]]:
    """``read_image`` without the digest: (image, notes)."""
    image, notes, _digest = read_image(path)
    return image, notes


def read_image(path: Path) -> tuple[Image.Image, list[str], str]:
    """Read an image file as an 8-bit RGB PIL image, upright, plus notes on every conversion made and
    the sha256 of the file's bytes (the landmark cache's key: hashed from the same read, so each file
    is read once).

    Raises ImageError (the reason recorded for that image) for an empty, unreadable, truncated or
    corrupt file, a file that is not an image, an image with more pixels than Pillow's
    decompression-bomb limit (Image.MAX_IMAGE_PIXELS), and one too small to hold a face.
    Conversions, each noted: EXIF orientation applied; grayscale/1-bit to three equal channels;
    16-bit and 32-bit integer scaled to 8 bits by the format's range (65535 -> 255), floating point by
    its range; transparent pixels composited on white; palette, CMYK (with its ICC profile when it
    has one) and other colour spaces converted to RGB; only the first frame of a multi-frame file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"cannot read the file ({error.strerror or type(error).__name__})") from None
    if not data:
        raise ImageError("not a readable image: the file is empty (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                frames = getattr(opened, "n_frames", 1)
                opened.load()
                image = _upright(opened, notes)
                image = _to_rgb(image, notes)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f" ({int(pixels.group(1)):,} pixels)" if pixels else ""
        raise ImageError(f"image too large{size}: over the {Image.MAX_IMAGE_PIXELS:,}-pixel safety limit "
                         "against decompression bombs; downscale it") from None
    except UnidentifiedImageError:
        start = data[:256]
        if sum(32 <= b < 127 or b in b"\t\r\n" for b in start) >= 0.95 * len(start):
            raise ImageError("not a readable image: the file holds text, not image data") from None
        raise ImageError("not a readable image: unknown or broken image format") from None
    except Exception as error:  # Pillow raises many types for broken files
        raise ImageError(f"not a readable image: truncated or corrupt ({type(error).__name__}: {error})") from None
    if frames > 1:
        notes.append(f"{frames} frames (animated or multi-page); the first was analysed")
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"image too small ({image.width}x{image.height} pixels) to hold a face")
    return image, notes, hashlib.sha256(data).hexdigest()


def _upright(image: Image.Image, notes: list[str]) -> Image.Image:
    """Apply the EXIF orientation (phones store rotation there instead of rotating the pixels)."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # malformed EXIF: the pixels are still fine
        notes.append("EXIF data unreadable; the image was used as stored")
        return image
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return image
    try:
        turned = ImageOps.exif_transpose(image)
    except Exception:
        notes.append(f"EXIF orientation {orientation} could not be applied; the image was used as stored")
        return image
    what = {3: "rotated 180 degrees", 6: "rotated 90 degrees clockwise", 8: "rotated 90 degrees anticlockwise"}
    notes.append(f"{what.get(orientation, 'flipped/rotated')} to stand upright, as its EXIF orientation "
                 f"({orientation}) says")
    return turned


def _to_8bit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (np.nan_to_num(values.astype(np.float64), nan=low) - low) / max(high - low, 1e-12) * 255
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """``image`` as 8-bit RGB; every conversion that changes what the model sees is noted."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image)
        low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0.0, 0.0)
        if mode.startswith("I;16") or (mode == "I" and low >= 0 and 255 < high <= 65535):
            notes.append("16-bit grayscale image: scaled to 8 bits (0-65535 to 0-255) and copied to three channels")
            gray = _to_8bit(values, 0, 65535)
        elif mode == "F" and low >= 0 and high <= 1:
            notes.append("floating-point grayscale image (0-1): scaled to 8 bits and copied to three channels")
            gray = _to_8bit(values, 0, 1)
        elif low >= 0 and high <= 255:
            notes.append(f"{'32-bit integer' if mode == 'I' else 'floating-point'} grayscale image with 8-bit "
                         "values: copied to three channels")
            gray = _to_8bit(values, 0, 255)
        else:
            notes.append(f"{'32-bit integer' if mode == 'I' else 'floating-point'} grayscale image: stretched "
                         f"from its range [{low:g}, {high:g}] to 8 bits and copied to three channels")
            gray = _to_8bit(values, low, high)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("1", "L"):
        notes.append(("black-and-white (1-bit)" if mode == "1" else "grayscale") +
                     " image: copied to three equal channels (the model sees no colour)")
        return image.convert("RGB")
    if mode == "P":
        notes.append("palette (indexed-colour) image: converted to RGB")
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        if mode in ("LA", "La"):
            notes.append("grayscale image: copied to three equal channels (the model sees no colour)")
        rgba = image.convert("RGBA")
        lowest_alpha, _ = cast(tuple[int, int], rgba.getchannel("A").getextrema())  # one band: (min, max)
        if lowest_alpha < 255:
            notes.append("transparent pixels composited on white")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return rgba.convert("RGB")
    if mode == "CMYK":
        profile = image.info.get("icc_profile")
        if profile:
            try:
                from PIL import ImageCms

                converted = ImageCms.profileToProfile(image, io.BytesIO(profile), ImageCms.createProfile("sRGB"),
                                                      outputMode="RGB")
                if converted is not None:  # (None only for inPlace=True)
                    notes.append("CMYK image: converted to RGB with its colour profile")
                    return converted
            except Exception:
                pass
        notes.append("CMYK image: converted to RGB without a colour profile (colours may be slightly off)")
        return image.convert("RGB")
    try:
        converted = image.convert("RGB")
    except Exception:
        raise ImageError(f"colour mode {mode} is not supported; save the image as RGB (or grayscale)") from None
    notes.append(f"{mode} image: converted to RGB")
    return converted


class ImagePreparer(torch.utils.data.Dataset):
    """Decode an image, find its face (or read it from the cache), and transform it for the model.

    A torch Dataset, so DataLoader workers can do this CPU work while the model runs.
    """

    def __init__(self, dataset: Dataset, preprocessing: Preprocessing, cache: LandmarkCache, replicates: int = 0):
        self.dataset, self.preprocessing, self.cache = dataset, preprocessing, cache
        self.replicates = replicates  # bootstrap resamples (scores.bootstrap_weights); 0: none
        self.geometries: dict[tuple[int, int], InputGeometry] = {}  # one measurement per image size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> PreparedImage:
        return self.prepare(index)

    def geometry(self, size: tuple[int, int]) -> InputGeometry:
        if size not in self.geometries:
            self.geometries[size] = measure_geometry(self.preprocessing, size)
        return self.geometries[size]

    def prepare(self, index: int, keep_tensor: bool = False, image: str | None = None) -> PreparedImage:
        """Row ``index`` decoded, its face found and transformed; any problem becomes its ``failure``.

        ``image``: another image of the row to prepare instead (the second image of a pair);
        ``keep_tensor``: transform the image even when no face is found in it (a verification partner's
        embedding needs no face)."""
        name = image if image is not None else self.dataset.paths[index]
        try:
            return self._prepare(index, name, keep_tensor)
        except Exception as error:  # one image must never stop the run: record what went wrong
            return PreparedImage(index, name, failure=f"could not be prepared ({type(error).__name__}: {error})")

    def _prepare(self, index: int, name: str, keep_tensor: bool = False) -> PreparedImage:
        result = PreparedImage(index, name)
        path = self.dataset.root / name
        try:
            found = path.is_file()
        except (OSError, ValueError):
            found = False
        if not found:
            result.failure = "file not found"
            return result
        try:
            image, result.notes, digest = read_image(path)
        except ImageError as error:
            result.failure = str(error)
            return result
        except OSError as error:
            result.failure = f"cannot read the file ({error.strerror or type(error).__name__})"
            return result
        hit, face = self.cache.get(digest)
        if not hit:
            result.detected = True
            try:
                with _DETECTION:
                    face = detect_face(image)
            except Exception as error:  # dlib on an odd shape, say; not cached, so a fixed version retries
                result.failure = f"face detection failed ({type(error).__name__}: {error})"
                return result
            self.cache.put(digest, face)
        if face is None and not keep_tensor:
            result.failure = "no face found"
            return result
        try:
            geometry = self.geometry(image.size)
            result.tensor = self.preprocessing.transform(image).float()
        except Exception as error:  # the transform copes with most sizes but not this one
            reason = str(error) if isinstance(error, InputError) else f"{type(error).__name__}: {error}"
            result.failure = f"the transform failed on this image ({reason})"
            result.tensor = None
            return result
        if face is None:
            result.failure = "no face found"  # the tensor stays: a verification partner needs no face
            result.seen = geometry.picture(image, result.tensor)
            return result
        result.image_size, result.face = image.size, face
        result.landmarks = geometry.landmarks_to_input(face.landmarks)
        # Everything per image that needs no model is done here, in the worker or the prepare thread, so the
        # model's process only does batch arithmetic: the region label image and areas, the canonical warp's
        # control points and the bootstrap weights.
        result.labels = label_image(result.landmarks, geometry.input_size[1], geometry.input_size[0])
        result.areas = region_areas(result.labels)
        result.control = face_control(result.landmarks)
        if self.replicates:
            # Poisson(1) counts: uint8 holds them (256 or more has a chance under 1e-500), 8x less to hand over.
            result.weights = bootstrap_weights(index, self.replicates).astype(np.uint8)
        # (An RGB model's picture is its input with the normalisation undone: the decoded image is not kept.)
        result.seen = Later(geometry.picture, None if geometry.rgb else image, result.tensor)
        result.notes += face.notes
        # From the landmarks, so cached faces get it too; in image pixels, where the face has its true shape.
        turned = pose_note(face.landmarks)
        if turned:
            result.notes.append(turned)
        return result

    def __getstate__(self):
        # Sent to spawned workers: geometry measurements are redone there (they hold tensors).
        return {**self.__dict__, "geometries": {}}


class Rows(torch.utils.data.Dataset):
    """What ``prepared_batches`` prepares: rows by position (0 to ``len - 1``); ``prepare(position)`` gives one
    prepared row (an image, or the images of a verification pair), and so does ``self[position]``, which
    DataLoader workers call."""

    def __len__(self) -> int:
        raise NotImplementedError

    def prepare(self, position: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, position: int) -> Any:
        return self.prepare(position)


def prepared_batches(preparer: Rows, batch_size: int, workers: int):
    """Batches of PreparedImage in dataset order; with workers > 0 they are made in other processes, else in
    a thread of this process, one batch ahead."""
    import multiprocessing

    if workers > 0:
        # fork starts workers at once; but after dlib's CNN detector ran in this process a forked
        # worker would hang in it, so then (and where fork does not exist) workers are spawned.
        fork = "fork" in multiprocessing.get_all_start_methods() and not cnn_detector_used()
        return torch.utils.data.DataLoader(preparer, batch_size=batch_size, num_workers=workers, collate_fn=list,
                                           multiprocessing_context="fork" if fork else "spawn", prefetch_factor=2)
    return _one_batch_ahead(preparer, batch_size)


def _one_batch_ahead(preparer: Rows, batch_size: int):
    """Batches prepared in this process: a thread prepares the images in order, up to one batch ahead of the
    caller, and a caller that asks for a batch before it is ready prepares the batch's remaining images
    itself instead of waiting.

    dlib, PIL and torch release the GIL while they compute, so the thread's work overlaps with the model's
    (first runs on 2 cores went from 30.8 to 34.1 images/s). With a fast model (a GPU) the caller would
    otherwise wait for the thread most of the time; helping, it gives the prepare stage a second core
    without adding a thread while the model is busy (a third busy thread on 2 cores stalls the model's own
    threads). Face detection runs in one thread at a time (``_DETECTION``)."""
    total = len(preparer)
    ready: list = [None] * total  # prepared images not yet handed over
    state: dict[str, Any] = {"next": 0, "batch": 0, "stop": False, "error": None}  # next unclaimed; caller's batch
    changed = threading.Condition()

    def claim(limit: int) -> int | None:  # (holding ``changed``) the next image below ``limit`` nobody has taken
        index = state["next"]
        if index >= min(limit, total):
            return None
        state["next"] = index + 1
        return index

    def prepare(index: int) -> None:
        item = preparer.prepare(index)
        with changed:
            ready[index] = item
            changed.notify_all()

    def ahead() -> None:
        try:
            while True:
                with changed:
                    while (index := claim((state["batch"] + 2) * batch_size)) is None:
                        if state["stop"] or state["next"] >= total:
                            return
                        changed.wait()
                prepare(index)
        except BaseException as error:  # handed to the caller, which would otherwise wait for ever
            with changed:
                state["error"] = error
                changed.notify_all()

    thread = threading.Thread(target=ahead, name="reportgen-prepare", daemon=True)
    thread.start()
    try:
        for number, start in enumerate(range(0, total, batch_size)):
            end = min(start + batch_size, total)
            with changed:
                state["batch"] = number
                changed.notify_all()
            while True:
                with changed:
                    if state["error"] is not None:
                        raise state["error"]
                    if all(item is not None for item in ready[start:end]):
                        break
                    index = claim(end)
                    if index is None:  # the rest of this batch is being prepared by the thread
                        changed.wait()
                        continue
                prepare(index)
            batch, ready[start:end] = ready[start:end], [None] * (end - start)
            yield batch
    finally:
        with changed:
            state["stop"] = True
            changed.notify_all()
        thread.join()
