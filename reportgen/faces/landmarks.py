"""Find the face in an image and its 68 dlib landmarks, with a cache keyed by the file's content.

Detection tries, in order, and records which path worked:
  1. ``hog``            dlib's HOG frontal face detector, on an image of 400 px or more first on a
                        half-size copy (a quarter of the cost; finds faces of about 140 px or more), then
                        on the image,
  2. ``cnn``            dlib's CNN face detector (``mmod_human_face_detector.dat``) for hard poses
                        and lighting, on a copy at most 200 px wide (about 0.1 s),
  3. ``hog-upsampled``  the HOG detector on a 2x upsampled image (small faces), then the CNN
                        detector at full detection size (about 0.6 s for 400x400 on one core),
  4. ``full-frame``     the landmark predictor on a box covering the whole image, for tightly
                        cropped, already-aligned photos where no detector sees a face. Accepted only
                        when the landmarks pass a plausibility check and the image shows a face's
                        contrast there (a blank image does not).
The landmark model (iBUG 300-W training data) is licensed for research use only.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

# Bump when detection changes, so cached landmarks from an older method are not reused.
CACHE_VERSION = "6"
# Large photos are searched on a downscaled copy (landmarks are mapped back): dlib's cost grows with pixels.
MAX_DETECTION_SIDE = 800
# On an image of HOG_HALF_FROM px or more, the HOG detector first looks at a half-size copy: a quarter of
# the pixels, so a quarter of the cost (tutorial photos, 400 px: 8.9 -> 3.2 ms, the same 121 of 128 faces
# found), and a face of about 140 px or more is still seen there (HOG finds faces down to about 70 px).
# An image whose faces are all smaller pays for both looks; smaller extra faces beside a large one are
# not counted (docs/inputs.md). The landmarks are always placed on the full-size pixels; they move by 3%
# of the eye distance on average, and the region IoU against the face-parsing masks changes within
# +-0.02, as between any two sizes. Smaller images are searched at full size: the time saved would be small (256 px:
# 1.8 ms) while the coarser box still moves the landmarks (it changed the sanity statistic of a known-answer case, 11
# images, from 0.59 to 0.70).
HOG_HALF_FROM = 400
# The CNN detector first looks at a copy this small (its smallest face is about 40 px).
CNN_FAST_SIDE = 200


@dataclass
class Face:
    """Where the face is: 68 landmarks (x, y) in the pixels of the decoded image, and how they were found."""

    landmarks: np.ndarray  # float (68, 2), image pixels, dlib order
    detection: str  # "hog", "hog-upsampled", "cnn" or "full-frame"
    faces_found: int = 1  # >1 means several faces; the largest one was kept
    notes: list[str] = field(default_factory=list)


def _model_path(name: str) -> str:
    # Importing face_recognition_models needs pkg_resources; finding its folder does not.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("face_recognition_models is not installed: pip install face_recognition_models")
    return os.path.join(os.path.dirname(spec.origin), "models", name)


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """The detector and predictor, loaded once per process (each worker process loads its own)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(_model_path("shape_predictor_68_face_landmarks.dat"))
    return detector, predictor


@functools.lru_cache(maxsize=1)
def _cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(_model_path("mmod_human_face_detector.dat"))


def cnn_detector_used() -> bool:
    """True once this process has run dlib's CNN detector. Its thread pool does not survive fork():
    a forked child that runs the detector again hangs, so worker processes must then be spawned."""
    return _cnn_detector.cache_info().currsize > 0


def _shape_to_array(shape) -> np.ndarray:
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)


def plausible_landmarks(points: np.ndarray, width: int, height: int) -> bool:
    """True when 68 points look like an upright face: eyes above nose above mouth, sane eye distance."""
    right_eye, left_eye = points[36:42].mean(0), points[42:48].mean(0)
    nose_tip, mouth = points[33], points[48:68].mean(0)
    eye_y = (right_eye[1] + left_eye[1]) / 2
    eye_distance = float(np.linalg.norm(left_eye - right_eye))
    face_width = float(np.linalg.norm(points[16] - points[0]))
    return bool(
        eye_y < nose_tip[1] < mouth[1]
        and right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
        and 0.15 * min(width, height) < eye_distance < 0.8 * max(width, height)
        and 1.3 * eye_distance < face_width < 4.0 * eye_distance
    )


# Head turn (yaw) from the landmarks. Seen from the front, the nose tip sits midway between the outer eye
# corners; turned by an angle a, it moves towards the far side by depth x sin(a) while the corners' half
# distance shrinks to half_width x cos(a), so tan(a) = (offset / half distance) x (half_width / depth).
# Outer eye corners are about 45 mm from the midline and 30-35 mm behind the nose tip (head models used
# for pose estimation put the ratio between 1.3 and 1.7); 1.5 is used. On the 128 tutorial photos the
# angle agrees with one from the mouth corners (correlation 0.92).
EYE_CORNER_HALF_WIDTH_TO_DEPTH = 1.5
# From this turn on, an image gets a note: the far half of the face is foreshortened and partly hidden
# behind the nose, and dlib's landmarks (trained mostly on faces within about 30 degrees of frontal)
# drift; beyond TURN_UNRELIABLE they are often wrong.
TURN_NOTE = 30.0
TURN_UNRELIABLE = 45.0


def estimate_yaw(points: np.ndarray) -> float:
    """How far the head is turned, in degrees, from 68 landmarks in any pixel frame (rotation and scale
    do not matter). Negative: the nose points towards the image's left, i.e. the subject turned to
    their right, so the subject's right half of the face (on the image's left) is the far side."""
    points = np.asarray(points, dtype=np.float64)
    right_corner, left_corner = points[36], points[45]
    across = left_corner - right_corner
    half = float(np.linalg.norm(across)) / 2
    if half <= 0:
        return 0.0
    offset = float(np.dot(points[30] - (right_corner + left_corner) / 2, across / (2 * half)))
    return float(np.degrees(np.arctan(EYE_CORNER_HALF_WIDTH_TO_DEPTH * offset / half)))


def pose_note(points: np.ndarray) -> str | None:
    """A note for the report when the head is turned far enough for the regions to suffer, else None."""
    yaw = estimate_yaw(points)
    if abs(yaw) < TURN_NOTE:
        return None
    side = "right" if yaw < 0 else "left"  # the subject's side that faces away from the camera
    note = (f"head turned about {5 * round(abs(yaw) / 5):.0f} degrees (estimated from the landmarks): regions on "
            f"the far side (the subject's {side} eye, brow, cheek and ear) are less reliable")
    if abs(yaw) >= TURN_UNRELIABLE:
        note += "; this far from frontal the landmarks are often wrong, so check the image's regions"
    return note


def _like_hog_box(box):
    """The CNN detector's box moved to where the HOG detector would put it: the landmark predictor
    was trained on HOG boxes. Measured on 42 photos seen by both: 12% larger, 2% of the width lower."""
    import dlib

    width, height = box.width(), box.height()
    left, top = box.left() - 0.016 * width, box.top() + 0.021 * width
    return dlib.rectangle(round(left), round(top), round(left + 1.122 * width), round(top + 1.122 * height))


def shows_a_face(gray: np.ndarray, points: np.ndarray) -> bool:
    """True when the pixels under the landmarks have a face's contrast: some texture, and eyes darker
    than the cheeks below them. Guards the full-frame path against blank or flat images."""
    from .regions import REGION_IDS, label_image

    labels = label_image(points, gray.shape[1], gray.shape[0])
    inner = np.isin(labels, [REGION_IDS.index(r) for r in ("left_eye", "right_eye", "nose", "left_cheek",
                                                               "right_cheek", "upper_lip", "lower_lip")])
    eyes = np.isin(labels, [REGION_IDS.index("left_eye"), REGION_IDS.index("right_eye")])
    cheeks = np.isin(labels, [REGION_IDS.index("left_cheek"), REGION_IDS.index("right_cheek")])
    if not (inner.any() and eyes.any() and cheeks.any()):
        return False
    if not (gray[inner].std() > 8 and gray[eyes].mean() < gray[cheeks].mean()):
        return False
    # Faces are roughly mirror-symmetric about the nose line; noise and textures are not.
    blurred = np.asarray(Image.fromarray(gray.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)), dtype=float)
    axis = int(round(points[27:31, 0].mean()))
    half = min(axis, blurred.shape[1] - axis, int(np.linalg.norm(points[16] - points[0]) / 2))
    top, bottom = int(max(points[17:27, 1].min(), 0)), int(min(points[8, 1], blurred.shape[0]))
    if half < 8 or bottom - top < 8:
        return False
    left = blurred[top:bottom, axis - half:axis]
    right = blurred[top:bottom, axis:axis + half][:, ::-1]
    return bool(np.corrcoef(left.ravel(), right.ravel())[0, 1] > 0.3)


def _boxes(pixels: np.ndarray, path: str, factor: float) -> list:
    """Face boxes found by one detection path on ``pixels`` shrunk by ``factor``, in ``pixels``' frame."""
    import dlib

    shrunk = pixels
    if factor < 1.0:
        size = (round(pixels.shape[1] * factor), round(pixels.shape[0] * factor))
        shrunk = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    if path == "cnn":
        found = [_like_hog_box(d.rect) for d in _cnn_detector()(shrunk, 0)]
    else:
        found = list(_dlib_models()[0](shrunk, 1 if path == "hog-upsampled" else 0))
    return [dlib.rectangle(round(b.left() / factor), round(b.top() / factor), round(b.right() / factor),
                           round(b.bottom() / factor)) for b in found]


def detect_face(image: Image.Image) -> Face | None:
    """Find the largest face in an RGB PIL image and its 68 landmarks; None when there is none.

    The cheap paths go first: HOG on a half-size copy, then at full detection size. The CNN detector
    costs about 40x the HOG detector per pixel, so it looks at a copy no larger than CNN_FAST_SIDE first
    (enough for a face that fills much of the frame, as in aligned datasets) and at full detection size
    only after HOG with upsampling failed.
    """
    import dlib

    predictor = _dlib_models()[1]
    scale = min(1.0, MAX_DETECTION_SIDE / max(image.size))
    small = image if scale == 1.0 else image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
    )
    pixels = np.asarray(small.convert("RGB"))
    hog_fast = 0.5 if max(pixels.shape[:2]) >= HOG_HALF_FROM else 1.0
    fast = min(1.0, CNN_FAST_SIDE / max(pixels.shape[:2]))
    attempts = ([("hog", hog_fast)] + ([("hog", 1.0)] if hog_fast < 1.0 else [])
                + [("cnn", fast), ("hog-upsampled", 1.0)] + ([("cnn", 1.0)] if fast < 1.0 else []))
    for path, factor in attempts:
        boxes = _boxes(pixels, path, factor)
        if boxes:
            box = max(boxes, key=lambda b: b.area())
            points = _shape_to_array(predictor(pixels, box)) / scale  # landmarks at full detection size
            notes = [f"{len(boxes)} faces found; the largest was analysed"] if len(boxes) > 1 else []
            return Face(points, path, len(boxes), notes)
    height, width = pixels.shape[:2]
    box = dlib.rectangle(0, 0, width - 1, height - 1)
    points = _shape_to_array(predictor(pixels, box))
    gray = np.asarray(small.convert("L"), dtype=np.float64)
    if plausible_landmarks(points, width, height) and shows_a_face(gray, points):
        return Face(points / scale, "full-frame")
    return None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reportgen" / "landmarks"


class LandmarkCache:
    """Landmarks stored per image as small JSON files named by the sha256 of the image file.

    A second run with another model, layer or class reads them instead of detecting again. An entry
    that cannot be read is ignored (and rewritten), never trusted.
    """

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder else None

    def _entry(self, digest: str) -> Path:
        assert self.folder is not None, "callers return early when caching is off"
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> tuple[bool, Face | None]:
        """(hit, face): hit is False when nothing usable is cached; face is None for a cached "no face"."""
        if self.folder is None:
            return False, None
        try:
            data = json.loads(self._entry(digest).read_text())
            if data.get("version") != CACHE_VERSION:
                return False, None
            if data["face"] is None:
                return True, None
            face = data["face"]
            points = np.asarray(face["landmarks"], dtype=np.float64)
            if points.shape != (68, 2) or not np.isfinite(points).all():
                return False, None
            return True, Face(points, face["detection"], int(face["faces_found"]), list(face["notes"]))
        except (OSError, ValueError, KeyError, TypeError):
            return False, None

    def put(self, digest: str, face: Face | None) -> None:
        if self.folder is None:
            return
        entry = self._entry(digest)
        record = None if face is None else {
            "landmarks": np.round(face.landmarks, 2).tolist(),
            "detection": face.detection,
            "faces_found": face.faces_found,
            "notes": face.notes,
        }
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            temporary = entry.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"version": CACHE_VERSION, "face": record}))
            os.replace(temporary, entry)
        except OSError:
            pass  # a read-only or full cache only costs speed, never the run
