"""Region masks line up with the face, in the model's input pixels, whatever the transform does."""

import numpy as np
import pytest
from torchvision import transforms as T

from conftest import portrait
from reportgen.faces.landmarks import detect_face
from reportgen.faces.regions import REGION_IDS, label_image
from reportgen.inputs.preprocess import Preprocessing, measure_geometry

# Hand-checked pixel positions in samples/sources/grace_hopper.jpg (512 x 600), read off a zoomed crop.
HOPPER_POINTS = {
    (222, 191): {"right_eye"},   # the pupil on the image's left: the subject's right eye
    (306, 188): {"left_eye"},
    (265, 240): {"nose"},        # nose tip
    (267, 282): {"upper_lip", "lower_lip", "mouth"},
    (265, 150): {"forehead"},
    (480, 60): {"background"},   # the flag behind her
}


@pytest.fixture(scope="module")
def hopper():
    image = portrait("grace_hopper.jpg")
    face = detect_face(image)
    assert face is not None and face.detection == "hog"
    return image, face


def _region_at(labels, x, y):
    return REGION_IDS[labels[int(y), int(x)]]


def test_masks_in_image_pixels_put_eyes_on_the_eyes(hopper):
    image, face = hopper
    labels = label_image(face.landmarks, image.width, image.height)
    for (x, y), expected in HOPPER_POINTS.items():
        assert _region_at(labels, x, y) in expected, (x, y)


@pytest.mark.parametrize("transform", [
    T.Compose([T.Resize((256, 256)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]),
    T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()]),
    T.Compose([T.CenterCrop(400), T.Resize(160), T.Pad(8), T.ToTensor()]),
], ids=["resize-square", "resize-centercrop", "crop-resize-pad"])
def test_masks_in_model_input_pixels_follow_resize_and_crop(hopper, transform):
    image, face = hopper
    geometry = measure_geometry(Preprocessing(transform, "test: transform"), image.size)
    height, width = geometry.input_size
    labels = label_image(geometry.landmarks_to_input(face.landmarks), width, height)
    for (x, y), expected in HOPPER_POINTS.items():
        u, v = geometry.landmarks_to_input(np.array([[x + 0.5, y + 0.5]]))[0]
        if 0 <= u < width and 0 <= v < height:
            assert _region_at(labels, u, v) in expected, ((x, y), (u, v))
    # The eye mask covers the eye as the model sees it: the pupil is darker than the skin below it.
    seen = np.asarray(geometry.seen_by_model(transform(image)).convert("L"), dtype=float)
    eye = labels == REGION_IDS.index("right_eye")
    cheek = labels == REGION_IDS.index("right_cheek")
    assert seen[eye].mean() < seen[cheek].mean()


def test_every_pixel_belongs_to_one_region_and_inner_regions_are_nonempty(hopper):
    image, face = hopper
    labels = label_image(face.landmarks, image.width, image.height)
    present = {REGION_IDS[i] for i in np.unique(labels)}
    for region in ("left_eye", "right_eye", "left_brow", "right_brow", "nose", "upper_lip", "lower_lip",
                   "forehead", "left_cheek", "right_cheek", "chin", "hair", "neck", "background"):
        assert region in present


def test_random_transform_is_refused(hopper):
    from reportgen.errors import InputError

    image, _ = hopper
    random = T.Compose([T.RandomResizedCrop(128), T.ToTensor()])
    with pytest.raises(InputError, match="different outputs for the same image"):
        measure_geometry(Preprocessing(random, "aug.py: x"), image.size)
