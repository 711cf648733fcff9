"""The report of a real, small face-verification run (a pair file, then a reference photo): the fields the
analysis writes are the ones the report reads, so the pages show the pair side by side, the verification
quality and the words of verification. (The fixture in report_fixture.py covers the report's details.)"""

from __future__ import annotations

import json
import re
import shutil
from html import unescape

import pytest

import reportgen
from reportgen.report import render_html

# A small embedding model (16-d output) whose second convolution ("2") is explained.
EMBEDDING_MODEL = """\
import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 16),
)
"""
TRANSFORM = """\
import torchvision.transforms as transforms

transform = transforms.Compose([transforms.Resize((96, 96)), transforms.ToTensor()])
"""
# (img1, img2, is_same, race): the tutorial-like images, two genuine and two impostor pairs.
PAIRS = [("African/0-FaceId-0_align.jpg", "African/1-FaceId-0_align.jpg", 1, "African"),
         ("African/2-FaceId-0_align.jpg", "Caucasian/0-FaceId-0_align.jpg", 0, "African"),
         ("Caucasian/0-FaceId-0_align.jpg", "Caucasian/2-FaceId-0_align.jpg", 1, "Caucasian"),
         ("Caucasian/1-FaceId-0_align.jpg", "African/1-FaceId-0_align.jpg", 0, "Caucasian")]


@pytest.fixture(scope="module")
def inputs(tutorial_like, tmp_path_factory):
    import runpy

    import torch

    root = tmp_path_factory.mktemp("verification")
    (root / "model.py").write_text(EMBEDDING_MODEL)
    (root / "transform.py").write_text(TRANSFORM)
    torch.save(runpy.run_path(str(root / "model.py"))["model"].state_dict(), root / "weights.pt")
    (root / "pairs.csv").write_text("img1,img2,is_same,race\n" + "".join(f"{a},{b},{s},{r}\n" for a, b, s, r in PAIRS))
    shutil.copy(tutorial_like["images"] / "Caucasian/0-FaceId-0_align.jpg", root / "reference.jpg")
    (root / "reference.csv").write_text("img,is_same,race\n" + "".join(
        f"{folder}/{k}-FaceId-0_align.jpg,{int(folder == 'Caucasian')},{folder}\n"
        for folder in ("African", "Caucasian") for k in range(3)))
    return dict(tutorial_like, root=root, cache=tmp_path_factory.mktemp("landmarks"))


def _run(inputs, **options) -> dict:
    return reportgen.analyze(images=inputs["images"], model_file=inputs["root"] / "model.py",
                             weights=inputs["root"] / "weights.pt", transform=inputs["root"] / "transform.py",
                             layer="2", target="is_same", protected=["race"], cache_dir=inputs["cache"], bootstrap=0,
                             check_images=0, batch_size=8, **options)


def _text(html: str) -> str:
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", re.sub(r"</?(code|strong|em|a|abbr|small|b)\b[^>]*>", "", html))))


def _pictures(html: str) -> list[list]:
    return [json.loads(unescape(path)) for path in re.findall(r"data-picture='([^']*)'", html)]


def _resolve(results, path):
    for key in path:
        results = results[key]
    return results


@pytest.fixture(scope="module")
def pairs_run(inputs):
    results = _run(inputs, annotations=inputs["root"] / "pairs.csv", pairs=True)
    return results, render_html(results)


def test_a_pair_run_reports_its_quality_its_pairs_and_both_images_of_each(pairs_run):
    results, html = pairs_run
    assert results["run"]["task"] == "verification" and results["counts"]["pairs"] == len(PAIRS)
    text = _text(html)
    assert "What makes two faces look alike to the model?" in text
    assert f"{len(PAIRS)} pairs listed: {2 * len(PAIRS)} images, both of each pair explained" in text
    assert 'id="verification"' in html and "All pairs" in text
    assert "race=African" in text and "race=Caucasian" in text
    assert "Genuine pairs (same person)" in text  # the genuine/impostor groups, in words
    # every picture the page names is in the results, the partners' among them
    pictures = _pictures(html)
    assert all(_resolve(results, p).startswith("data:image/") for p in pictures)
    partners = [p for p in pictures if p[-1] == "partner_uri"]
    pairs_shown = {frozenset((e["image"], e["partner"])) for e in results["examples"]}  # each pair once
    assert partners and len(partners) == sum(len(items) for items in results["patches"].values()) + len(pairs_shown)
    # each view names the other image of its pair, whose own picture it carries
    names = {(a, b) for a, b, _, _ in PAIRS} | {(b, a) for a, b, _, _ in PAIRS}
    for name, view in results["views"].items():
        assert (name, view["partner"]) in names and view["partner_regions_uri"].startswith("data:image/")
    for record in results["browser"]["images"]:
        assert (record["image"], record["partner"]) in names
    assert "class probability" not in _text(re.sub(r'<section id="checks".*?</section>', "", html, flags=re.S))
    # The checks' companion numbers are points of similarity here, not of a class probability.
    checks = _text(re.search(r'<section id="checks".*?</section>', html, flags=re.S).group(0))
    assert "points of class probability" not in checks
    if (results["faithfulness"] or {}).get("faithful"):
        assert "points of similarity" in checks


def test_a_reference_run_shows_the_reference_photo(inputs):
    results = _run(inputs, annotations=inputs["root"] / "reference.csv", reference=inputs["root"] / "reference.jpg",
                   threshold=0.5)
    html = render_html(results)
    text = _text(html)
    assert "each compared with the reference photo reference.jpg" in text
    assert "same/different threshold 0.500 (given with --threshold)" in text
    reference = [p for p in _pictures(html) if p[0] == "views" and p[-1] == "partner_uri"]
    assert reference and _resolve(results, reference[0]).startswith("data:image/")
    assert all(view["partner"] == "reference.jpg" for view in results["views"].values())
    assert "Photos of the reference person" in text
