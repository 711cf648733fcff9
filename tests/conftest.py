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


# Session fixtures that train a known-answer model (seconds of CPU per model, more per case with the dataset
# it is made from). A test that uses one, directly or through another fixture, is marked ``slow``: the quick
# run (``-m "not slow"``) leaves it out, the full run (and CI) keeps it.
TRAINED_FIXTURES = ("known_cases", "multi_label_case", "verification_case")


# The attribution methods that cost many passes per image (integrated gradients: 50 steps; occlusion: ~170
# windows, and again for each step of the sanity check): the ones a known-answer test puts in the heavy tier
# beyond the cases the default run keeps.
EXPENSIVE_METHODS = ("integrated-gradients", "occlusion")


def heavy_if(heavy: bool, *values):
    """A ``parametrize`` entry of ``values``, marked ``heavy`` when ``heavy`` is true."""
    return pytest.param(*values, marks=pytest.mark.heavy) if heavy else pytest.param(*values)


def pytest_addoption(parser) -> None:
    parser.addoption("--heavy", action="store_true",
                     help="also run the heavy tier (tests marked heavy: the rest of the known-answer matrix, the "
                          "model zoo); CI runs it as a second step, `pytest --heavy -m heavy`")


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if set(TRAINED_FIXTURES) & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("heavy"):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--heavy"):
        # Left out of the default run (which must stay under 10 minutes on 2 cores), said in the summary.
        heavy = [item for item in items if item.get_closest_marker("heavy")]
        if heavy:
            config.hook.pytest_deselected(items=heavy)
            items[:] = [item for item in items if not item.get_closest_marker("heavy")]
            config._heavy_left_out = len(heavy)


def pytest_terminal_summary(terminalreporter, config) -> None:
    if getattr(config, "_heavy_left_out", 0):
        terminalreporter.write_line(f"{config._heavy_left_out} heavy tests left out; "
                                    "run them with --heavy (CI does: .ci/run)")


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


# Training is most of a known-answer case's cost. The four single-region CNN cases (softmax and one-logit
# sigmoid) settle in 30 epochs: measured for every method, the planted region stays first by a margin like the
# 60-epoch model's, and the checks keep their verdicts. The others keep ``synthetic.DEFAULT_EPOCHS`` (60), as
# benchmarks/known_answers.py does: at 30, the background cue led the hair by 1.380 to 1.372 (1.422 to 1.298 at
# 60), the grayscale forehead the right eye by 3.03 to 2.85 (3.45 to 2.70), the ViT's forehead the left brow by
# 1.67 to 1.60 with its deletion check failed (2.02 to 1.21, passed), and the spanning cues' single-region
# ablation effects stayed within noise. (The multi-label case trains for 30 too: test_model_shapes.py; the
# verification case for 60: at 30 its deletion interval reached below zero, [-0.02, 0.43].)
SETTLED_IN_30_EPOCHS = {"left_eye", "forehead", "nose", "chin"}


def _epochs(region: str, kind: str) -> int:
    from reportgen.synthetic import DEFAULT_EPOCHS

    return 30 if region in SETTLED_IN_30_EPOCHS and kind in ("softmax", "sigmoid") else DEFAULT_EPOCHS


@pytest.fixture(scope="session")
def known_cases(tmp_path_factory):
    """``known_cases(region, kind="softmax")``: a known-answer case (``synthetic.make_known_answer_case``: 96
    images with a sticker in ``region`` and a model of shape ``kind`` trained on them), made once per session
    and shared by every test that asks for it. Kinds with the same sticker colours share one set of images.
    ``region`` may also be a cue spanning several regions (``synthetic.MULTI_REGION_CUES``: ``both_eyes``,
    ``lips_and_mouth``), one sticker over all of them.

    ``kind="tuple"`` is the softmax case's trained weights behind a model that returns (logits, features): the
    same state_dict, so nothing is trained again for what is a test of the output's shape."""
    from reportgen.synthetic import KIND_MODEL_FILES, TARGET_LAYER, make_known_answer_case

    made: dict = {}
    root = tmp_path_factory.mktemp("known_answers")

    def case(region: str, kind: str = "softmax") -> dict:
        if (region, kind) in made:
            return made[region, kind]
        if kind == "tuple":
            model_file = root / f"{region}-tuple" / "model.py"
            model_file.parent.mkdir()
            model_file.write_text(KIND_MODEL_FILES["tuple"].format(region=region.replace("_", " "), layer=TARGET_LAYER))
            made[region, kind] = dict(case(region), model_file=model_file)
        else:
            data = root / (f"{region}-gray" if kind == "gray" else region)
            made[region, kind] = make_known_answer_case(root / f"{region}-{kind}", region, count=96, seed=0,
                                                        epochs=_epochs(region, kind), kind=kind,
                                                        data_dir=data)
        return made[region, kind]

    return case
