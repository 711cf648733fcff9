"""Face verification (issue 14): an embedding model explained by the similarity of two faces, on pair files
(MAI-BIAS ImagePairs) and against a reference photo.

The known answer: an embedding model trained in the session so that identity is carried by the colour of a
sticker on the forehead (both portraits appear with every identity); explaining the similarity of genuine
pairs must rank the forehead first, and the deletion check must pass."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import reportgen
from conftest import EXPENSIVE_METHODS, heavy_if
from reportgen.cli import app
from reportgen.errors import InputError
from reportgen.explain.attribution import METHODS
from reportgen.explain.heads import choose_output
from reportgen.explain.verification import SimilarityModel
from reportgen.synthetic import make_verification_case

CHECK_IMAGES = 24


@pytest.fixture(scope="session")
def verification_case(tmp_path_factory):
    return make_verification_case(tmp_path_factory.mktemp("verification"), "forehead")


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "landmark-cache"


def _verify(case: dict, cache, **options) -> dict:
    options = {"target": "is_same", "protected": ["protected"], "check_images": CHECK_IMAGES, "workers": 0,
               **options}
    return reportgen.analyze(images=case["images"], model_file=case["model_file"], weights=case["weights"],
                             transform=case["transform"], cache_dir=cache, **options)


def test_pairs_rank_the_identity_region_first_for_genuine_pairs(verification_case, cache):
    results = _verify(verification_case, cache, annotations=verification_case["pairs"], pairs=True)
    assert results["counts"]["pairs"] == 96 and results["counts"]["images"] == 192
    assert results["counts"]["failed"] == 0
    genuine = results["groups"]["pair=genuine"]["regions"]
    assert genuine[0]["id"] == "forehead", [r["id"] for r in genuine[:4]]
    assert results["faithfulness"]["faithful"], results["faithfulness"]
    run = results["run"]
    assert (run["task"], run["head"], run["target_class"]) == ("verification", "similarity", 1)
    quality = results["verification"]
    assert quality["overall"]["pairs"] == 96 and quality["overall"]["genuine"] == 48
    assert quality["overall"]["accuracy"] >= 0.95
    assert quality["threshold_source"] == "best accuracy on these pairs"
    assert quality["overall"]["mean_genuine"] > quality["overall"]["mean_impostor"]
    assert {c["column"] for c in results["comparisons"]} == {"protected", "pair"}
    # Each image is shown beside the other image of its pair.
    example = results["examples"][0]
    assert example["partner"] and example["partner_uri"].startswith("data:image/jpeg")
    view = next(iter(results["views"].values()))
    assert view["partner_uri"].startswith("data:image/jpeg") and "similarity" in view
    assert results["predictions"] is None
    assert any(f["kind"] in ("verification", "verification_gap") for f in results["findings"])


def test_a_reference_photo_gives_the_same_region_first(verification_case, cache):
    # Region ablation, not Grad-CAM: against a photo of the same face the cosine similarity sits near 1, where its
    # gradient vanishes and gradient maps turn to noise image by image (the deletion check rightly says so); the
    # similarity a region's removal costs is what stays measurable there.
    results = _verify(verification_case, cache, annotations=verification_case["reference_annotations"],
                      reference=verification_case["reference"], method="region-ablation")
    assert results["counts"]["failed"] == 0 and "pairs" not in results["counts"]
    assert results["groups"]["pair=genuine"]["regions"][0]["id"] == "forehead"
    assert results["faithfulness"]["faithful"], results["faithfulness"]
    assert results["faithfulness"]["evidence"].startswith("Fisher z")
    assert results["run"]["reference"] == "reference.jpg"  # a file name: paths stay private by default
    assert results["verification"]["overall"]["accuracy"] >= 0.95


# Grad-CAM: the test above. The expensive methods are in the heavy tier (CI).
@pytest.mark.parametrize("method", [heavy_if(method in EXPENSIVE_METHODS, method) for method in METHODS
                                    if method != "gradcam"])
def test_every_method_explains_similarity(verification_case, cache, method):
    """Each method works on the similarity score: the identity region first for genuine pairs, and both checks
    run on it (on a few images: their verdicts on this case are measured in the tests above and in docs)."""
    results = _verify(verification_case, cache, annotations=verification_case["pairs"], pairs=True, method=method,
                      check_images=8)
    assert results["counts"]["failed"] == 0 and results["run"]["method"] == method
    genuine = results["groups"]["pair=genuine"]["regions"]
    assert genuine[0]["id"] == "forehead", [r["id"] for r in genuine[:4]]
    assert results["faithfulness"]["images"] == 8 and results["sanity"]["checked_images"] == 8
    assert results["faithfulness"]["evidence"].startswith("Fisher z")


def test_dissimilarity_and_a_given_threshold(verification_case, cache):
    results = _verify(verification_case, cache, annotations=verification_case["pairs"], pairs=True,
                      target_class=0, threshold=0.5, check_images=0)
    assert results["run"]["target_class"] == 0
    quality = results["verification"]
    assert quality["threshold"] == 0.5 and quality["threshold_source"] == "option"
    image = results["browser"]["images"][0]
    assert image["prediction"] in (0, 1)


@pytest.mark.slow  # builds and runs the toolkit's model (seconds); the quick run keeps the pair-file errors below
def test_the_toolkits_own_pair_file_and_model_load_as_they_are(tmp_path):
    """pairs.csv as MAI-BIAS ships it: a blank first line, CRLF line endings, a misspelt group value; the toy
    embedding model (64-d, layer conv3) and its BGR transform (a Lambda)."""
    root = tmp_path / "toolkit"
    images = root / "images"
    from conftest import portrait

    for folder, source in (("African", "astronaut.jpg"), ("Caucasian", "grace_hopper.jpg")):
        (images / folder).mkdir(parents=True)
        for k in range(2):
            portrait(source).resize((200 + 40 * k, 200 + 40 * k)).save(images / folder / f"{k}.jpg")
    pairs = root / "pairs.csv"
    pairs.write_bytes(b"\r\nimg1,img2,is_same,race\r\nAfrican/0.jpg,African/1.jpg,1,African\r\n"
                      b"African/0.jpg,Caucasian/0.jpg,0,African\r\nCaucasian/0.jpg,Caucasian/1.jpg,1,Cuacasian\r\n")
    model_file = root / "adaface_toy.py"
    model_file.write_text(
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
        "class ToyCNN(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)\n"
        "        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)\n"
        "        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)\n"
        "        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)\n\n"
        "    def forward(self, x):\n"
        "        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n"
        "        x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n"
        "        x = F.max_pool2d(F.relu(self.conv3(x)), 2)\n"
        "        return torch.flatten(self.global_avg_pool(x), 1)\n\n"
        "model = ToyCNN()\n")
    namespace: dict = {}
    exec(model_file.read_text(), namespace)
    torch.manual_seed(0)
    torch.save(namespace["model"].state_dict(), root / "toy_adaface.pth")
    transform = root / "transform_fv.py"
    transform.write_text(
        "import torchvision.transforms as transforms\n\n"
        "def to_bgr(img):\n    return img[[-1, -2, -3]]\n\n"
        "transform = transforms.Compose([transforms.Resize((112, 112)), transforms.ToTensor(),\n"
        "    transforms.Lambda(to_bgr), transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])])\n")
    out = tmp_path / "verification.html"
    result = CliRunner().invoke(app, [
        "run", "--images", str(images), "--annotations", str(pairs), "--pairs", "--target", "is_same",
        "--protected", "race", "--model-file", str(model_file), "--weights", str(root / "toy_adaface.pth"),
        "--transform", str(transform), "--layer", "conv3", "--check-images", "2", "--bootstrap", "0",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "v.json").read_text())
    assert results["counts"] == {"images": 6, "aligned": 6, "failed": 0, "scored": 6, "pairs": 3}
    assert set(results["verification"]["groups"]) == {"race=African", "race=Cuacasian"}
    assert results["run"]["input_size"] == [112, 112]
    assert "head: similarity" in result.output


@pytest.fixture
def toy(tmp_path):
    """Tiny pair data and an untrained embedding model, for the error cases."""
    from conftest import portrait

    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        portrait().resize((160 + 20 * k, 160 + 20 * k)).save(images / f"{k}.jpg")
    model_file = tmp_path / "embed.py"
    model_file.write_text("import torch\nmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), "
                          "torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n")
    namespace: dict = {}
    exec(model_file.read_text(), namespace)
    torch.save(namespace["model"].state_dict(), tmp_path / "embed.pt")
    return {"images": images, "model_file": model_file, "weights": tmp_path / "embed.pt", "root": tmp_path}


def _pairs(toy, text: str, **options) -> dict:
    path = toy["root"] / "pairs.csv"
    path.write_text(text)
    options = {"target": "is_same", "check_images": 0, "bootstrap": 0, "workers": 0, "image_size": 64, **options}
    return reportgen.analyze(images=toy["images"], annotations=path, pairs=True, model_file=toy["model_file"],
                             weights=toy["weights"], cache_dir=toy["root"] / "cache", **options)


def test_a_missing_image_in_a_pair_is_listed_for_both_sides(toy):
    results = _pairs(toy, "img1,img2,is_same\n0.jpg,1.jpg,1\n0.jpg,gone.jpg,0\n")
    failures = {(f["image"], f["reason"]) for f in results["failures"]}
    assert ("gone.jpg", "file not found") in failures
    assert any(image == "0.jpg" and "other image of its pair (gone.jpg)" in reason for image, reason in failures)
    assert results["counts"]["scored"] == 2 and results["counts"]["pairs"] == 2
    assert "point to missing files" in " ".join(results["notes"])


@pytest.mark.parametrize("text, fragments", [
    ("img1,img2,is_same\n0.jpg,../outside.jpg,1\n", ["line 2", "leaves the image folder"]),
    ("img1,img2,is_same\n0.jpg\n", ["line 2", "1 fields but the header has 3"]),
    ("img1\n0.jpg\n", ["line 1", "img1,img2,is_same,race", "--pairs reads pair files"]),
    ("img1,img2,is_same\n0.jpg,1.jpg,1\n0.jpg,1.jpg,0\n", ["the pair '0.jpg', '1.jpg' appears twice"]),
    ("img1,img2,same\n0.jpg,1.jpg,1\n", ["--target is_same", "did you mean 'same'"]),
])
def test_broken_pair_files_are_one_line_errors(toy, text, fragments):
    with pytest.raises(InputError) as caught:
        _pairs(toy, text)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_model_whose_output_is_not_an_embedding_is_refused(toy):
    toy["model_file"].write_text("import torch\nmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1))\n")
    with pytest.raises(InputError, match=r"must output an embedding of shape \(batch, dimensions\).*\(1, 8, 64, 64\)"):
        _pairs(toy, "img1,img2,is_same\n0.jpg,1.jpg,1\n")


def test_pairs_and_reference_together_are_refused(toy):
    with pytest.raises(InputError, match="--pairs and --reference: give one"):
        _pairs(toy, "img1,img2,is_same\n0.jpg,1.jpg,1\n", reference=toy["images"] / "0.jpg")


def test_the_similarity_model_holds_the_partner_fixed():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = SimilarityModel(net, choose_output(torch.zeros(1, 4)))
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    partner = model.embed(y).detach()
    scores = model(x, partner)
    expected = torch.nn.functional.cosine_similarity(net(x), net(y))
    assert torch.allclose(scores[:, 1], expected, atol=1e-6) and torch.allclose(scores[:, 0], 1 - expected)
    x.requires_grad_(True)
    model.evidence(x, torch.tensor([1, 1]), partner).sum().backward()
    assert x.grad.abs().sum() > 0
