"""Faces and regions hold up under rotation, scale and tight crops; blank images fail cleanly."""

import numpy as np
import pytest
from PIL import Image

from conftest import portrait
from reportgen import landmarks as landmark_module
from reportgen.landmarks import detect_face
from reportgen.regions import REGION_IDS, label_image

# IoU each region must keep. Thin regions (brows, lips: a few pixels high) lose more to the landmark
# predictor's pixel jitter, so they get a lower bar.
EXPECTED_IOU = {"left_eye": 0.75, "right_eye": 0.75, "nose": 0.8, "forehead": 0.8, "left_cheek": 0.8,
                "right_cheek": 0.8, "chin": 0.8, "left_brow": 0.6, "right_brow": 0.6, "upper_lip": 0.5,
                "lower_lip": 0.6}


@pytest.fixture(scope="module")
def hopper():
    image = portrait("grace_hopper.jpg")
    return image, detect_face(image)


@pytest.fixture(scope="module")
def collins():
    image = portrait("astronaut.jpg")  # no glasses: the landmarks of the eyes are well defined
    return image, detect_face(image)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("angle, scale", [(20, 1.0), (-20, 1.0), (0, 0.6), (12, 1.4)])
def test_regions_of_a_rotated_or_scaled_copy_are_the_rotated_or_scaled_regions(collins, angle, scale):
    image, face = collins
    width, height = image.size
    # Rotate about the face's centre and scale, keeping the canvas size; pixels outside become grey.
    centre = face.landmarks.mean(0)
    theta = np.deg2rad(angle)
    forward = scale * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    inverse = np.linalg.inv(forward)
    offset = centre - inverse @ centre
    moved = image.transform(image.size, Image.AFFINE, (*inverse[0], offset[0], *inverse[1], offset[1]),
                            resample=Image.BICUBIC, fillcolor=(128, 128, 128))
    moved_face = detect_face(moved)
    assert moved_face is not None
    # The original's regions carried along by the same motion (landmarks moved, then rasterised).
    expected = label_image((face.landmarks - centre) @ forward.T + centre, width, height)
    found = label_image(moved_face.landmarks, width, height)
    for region, bar in EXPECTED_IOU.items():
        index = REGION_IDS.index(region)
        assert _iou(expected == index, found == index) > bar, region


def test_a_tight_crop_aligns_even_when_no_detector_fires(hopper, monkeypatch):
    image, face = hopper
    left, top = face.landmarks.min(0) + [8, -10]
    right, bottom = face.landmarks.max(0) - [8, 4]
    crop = image.crop((int(left), int(top), int(right), int(bottom)))
    monkeypatch.setattr(landmark_module, "_boxes", lambda *args: [])  # every detector misses
    cropped = detect_face(crop)
    assert cropped is not None and cropped.detection == "full-frame"
    expected = face.landmarks - [int(left), int(top)]
    eye_distance = np.linalg.norm(face.landmarks[42:48].mean(0) - face.landmarks[36:42].mean(0))
    error = np.linalg.norm(cropped.landmarks[17:] - expected[17:], axis=1).mean()  # inner face points
    assert error < 0.15 * eye_distance


def test_blank_and_flat_images_have_no_face(monkeypatch):
    assert detect_face(Image.new("RGB", (300, 300), (128, 128, 128))) is None
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    assert detect_face(Image.fromarray(noise)) is None
