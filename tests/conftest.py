"""Shared test inputs, made from the public-domain portraits in samples/sources (no ../shared needed)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageOps

from reportgen.resources import samples_dir

SOURCES = samples_dir() / "sources"

# The tutorial's file shapes: a model file assigning `model`, a transform file assigning `transform`.
TUTORIAL_MODEL = """\
from torchvision.models import resnet
import torch

model = resnet.resnet18()
model.fc = torch.nn.Linear(model.fc.in_features, 2)
"""
TUTORIAL_TRANSFORM = """\
import torchvision.transforms as transforms

transform = transforms.Compose([
    transforms.Resize((256, 256)),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
"""


def portrait(name: str = "grace_hopper.jpg") -> Image.Image:
    return Image.open(SOURCES / name).convert("RGB")


@pytest.fixture(scope="session")
def tutorial_like(tmp_path_factory) -> dict:
    """A tiny dataset and model in exactly the tutorial's shapes: CSV img,task,protected, resnet18 file,
    random-init weights as a state_dict, transform file; images in two sub-folders."""
    import torch

    root = tmp_path_factory.mktemp("tutorial_like")
    images = root / "images"
    rows = ["img,task,protected"]
    for folder, source, task in (("African", "astronaut.jpg", 0), ("Caucasian", "grace_hopper.jpg", 1)):
        (images / folder).mkdir(parents=True)
        base = portrait(source)
        for k in range(3):
            picture = ImageOps.mirror(base) if k == 1 else base
            if k == 2:
                picture = picture.resize((picture.width * 3 // 4, picture.height * 3 // 4))
            name = f"{folder}/{k}-FaceId-0_align.jpg"
            picture.save(images / name, quality=90)
            rows.append(f"{name},{task},{k % 2}")
    (root / "annotations.csv").write_text("\n".join(rows) + "\n")
    (root / "model.py").write_text(TUTORIAL_MODEL)
    (root / "transform.py").write_text(TUTORIAL_TRANSFORM)
    namespace: dict = {}
    exec(TUTORIAL_MODEL, namespace)
    torch.manual_seed(0)
    model = namespace["model"]
    with torch.no_grad():
        # Random weights leave Grad-CAM maps near zero (positive and negative evidence cancel), so tiny
        # float differences between runs could decide them. Positive class-1 weights on the pooled
        # layer4 features make every class-1 map clearly positive: the tests get stable numbers.
        model.fc.weight[1] = model.fc.weight[1].abs()
    torch.save(model.state_dict(), root / "weights.pt")
    return {"root": root, "images": images, "annotations": root / "annotations.csv", "model_file": root / "model.py",
            "weights": root / "weights.pt", "transform": root / "transform.py"}


@pytest.fixture(scope="session")
def known_cases(tmp_path_factory):
    """``known_cases(region, kind="softmax")``: a known-answer case (``synthetic.make_known_answer_case``: 96
    images with a sticker in ``region`` and a model of shape ``kind`` trained on them), made once per session
    and shared by every test that asks for it. Kinds with the same sticker colours share one set of images."""
    from reportgen.synthetic import make_known_answer_case

    made: dict = {}
    root = tmp_path_factory.mktemp("known_answers")

    def case(region: str, kind: str = "softmax") -> dict:
        if (region, kind) not in made:
            data = root / (f"{region}-gray" if kind == "gray" else region)
            made[region, kind] = make_known_answer_case(root / f"{region}-{kind}", region, count=96, seed=0,
                                                        kind=kind, data_dir=data)
        return made[region, kind]

    return case
