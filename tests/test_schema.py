"""results.json against its types (reportgen/results/schema.py) and its prose (docs/results.md).

Real results dicts (small runs of the analysis, and the report tests' fixture) are walked key by key: every
key present is declared in the section's TypedDict, every required key is there, and every value has the
declared type (str, int, float, bool, None, list, dict and the nested sections). The checker lives here, not
in the report: the report renders results from older versions and partial dicts on purpose (docs/results.md),
so it must not reject what the types call incomplete, and no command reads a results.json back from disk.
"""

from __future__ import annotations

import copy
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

import reportgen
from reportgen.results import schema

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results.md"

# Small models keep these runs to seconds (the tutorial's resnet18 takes half a minute with the checks on): a
# two-class classifier and an 8-d embedding model for face verification; their convolution "2" is explained.
CLASSIFIER_MODEL = """\
import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
"""
EMBEDDING_MODEL = CLASSIFIER_MODEL.replace("Linear(8, 2)", "Linear(8, 8)")
TRANSFORM = """\
import torchvision.transforms as transforms

transform = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
"""


# -- the checker ----------------------------------------------------------------------------------------------

def mismatches(value: Any, expected: Any, path: str = "results") -> list[str]:
    """Where ``value`` (the results, or a part of them) does not fit ``expected`` (a type from ``schema``), one
    line per place: an undeclared key, a missing required key, or a value of another type. Empty: it fits."""
    origin = get_origin(expected)
    if expected is Any:
        return []
    if is_typeddict(expected):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a {expected.__name__} object"]
        declared = get_type_hints(expected)
        found = [f"{path}.{key}: not declared in schema.{expected.__name__}" for key in value if key not in declared]
        found += [f"{path}.{key}: missing, required by schema.{expected.__name__}"
                  for key in sorted(expected.__required_keys__) if key not in value]
        for key, item in value.items():
            if key in declared:
                found += mismatches(item, declared[key], f"{path}.{key}")
        return found
    if origin in (Union, types.UnionType):
        tries = [mismatches(value, alternative, path) for alternative in get_args(expected)]
        return [] if any(not found for found in tries) else min(tries, key=len)
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        (item_type,) = get_args(expected)
        return [line for index, item in enumerate(value) for line in mismatches(item, item_type, f"{path}[{index}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a dict"]
        key_type, item_type = get_args(expected)
        return ([f"{path}: key {key!r} is not a {key_type.__name__}" for key in value if not isinstance(key, key_type)]
                + [line for key, item in value.items() for line in mismatches(item, item_type, f"{path}[{key!r}]")])
    if expected is type(None):
        return [] if value is None else [f"{path}: {value!r} is not null"]
    if expected is float:  # a JSON number: an int fits where a float is declared, as for mypy
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif expected in (str, bool):
        fits = isinstance(value, expected)
    else:
        raise TypeError(f"{path}: the checker does not know {expected!r}")
    return [] if fits else [f"{path}: {value!r} is a {type(value).__name__}, not a {expected.__name__}"]


# -- real results ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_inputs(tutorial_like, tmp_path_factory) -> dict:
    """The tutorial-like images and annotations with the small models, their weights and a 64 px transform."""
    import runpy

    import torch

    root = tmp_path_factory.mktemp("schema")
    (root / "transform.py").write_text(TRANSFORM)
    for name, source in (("classifier", CLASSIFIER_MODEL), ("embedding", EMBEDDING_MODEL)):
        (root / f"{name}.py").write_text(source)
        torch.save(runpy.run_path(str(root / f"{name}.py"))["model"].state_dict(), root / f"{name}.pt")
    rows = [("African/0", "African/1", 1), ("African/2", "Caucasian/0", 0), ("Caucasian/0", "Caucasian/2", 1),
            ("Caucasian/1", "African/1", 0)]
    (root / "pairs.csv").write_text("img1,img2,is_same,race\n" + "".join(
        f"{a}-FaceId-0_align.jpg,{b}-FaceId-0_align.jpg,{same},{a.split('/')[0]}\n" for a, b, same in rows))
    # The same images as CelebA attributes, one per output of the classifier: a multi-label (sigmoid) model.
    names = [f"{folder}/{k}-FaceId-0_align.jpg" for folder in ("African", "Caucasian") for k in range(3)]
    (root / "list_attr_celeba.txt").write_text(f"{len(names)}\nSmiling Male\n" + "".join(
        f"{name} {1 if k % 2 else -1} {1 if name.startswith('C') else -1}\n" for k, name in enumerate(names)))
    return {"root": root, "images": tutorial_like["images"], "annotations": tutorial_like["annotations"],
            "transform": root / "transform.py", "cache_dir": tmp_path_factory.mktemp("landmarks")}


def _classify(inputs: dict, **options) -> dict:
    options.setdefault("target", "task")
    return reportgen.analyze(images=inputs["images"], annotations=inputs["annotations"],
                             model_file=inputs["root"] / "classifier.py", weights=inputs["root"] / "classifier.pt",
                             transform=inputs["transform"], layer="2", cache_dir=inputs["cache_dir"], **options)


@pytest.fixture(scope="module")
def classifier_run(small_inputs) -> dict:
    """A classifier run with everything on: groups and their comparison, bootstrap intervals, both checks."""
    return _classify(small_inputs, protected=["protected"], bootstrap=50, check_images=6)


@pytest.fixture(scope="module")
def ablation_run(small_inputs) -> dict:
    """Region ablation: region rows with effects."""
    return _classify(small_inputs, method="region-ablation", target_class=1, bootstrap=0, check_images=2)


@pytest.fixture(scope="module")
def multi_label_run(small_inputs) -> dict:
    """A multi-label model on CelebA attributes: run.class_names and predictions.attributes."""
    return _classify(dict(small_inputs, annotations=small_inputs["root"] / "list_attr_celeba.txt"), target="Smiling",
                     bootstrap=0, check_images=0)


@pytest.fixture(scope="module")
def pairs_run(small_inputs) -> dict:
    """Face verification on a pair file: the verification section, partners, no class predictions."""
    root = small_inputs["root"]
    return reportgen.analyze(images=small_inputs["images"], annotations=root / "pairs.csv", pairs=True,
                             model_file=root / "embedding.py", weights=root / "embedding.pt",
                             transform=small_inputs["transform"], layer="2", target="is_same", protected=["race"],
                             bootstrap=0, check_images=4, cache_dir=small_inputs["cache_dir"])


def test_a_classifier_run_fits_the_schema(classifier_run):
    results = dict(classifier_run)
    assert results["schema"] == "reportgen/1"  # (contract)
    assert results["faithfulness"] and results["sanity"] and results["comparisons"] and results["browser"]
    assert mismatches(results, schema.ResultsDict) == []


def test_a_region_ablation_run_fits_the_schema(ablation_run):
    results = dict(ablation_run)
    assert "effect" in results["regions"][0]
    assert mismatches(results, schema.ResultsDict) == []


def test_a_multi_label_run_fits_the_schema(multi_label_run):
    results = dict(multi_label_run)
    assert results["run"]["class_names"] == ["Smiling", "Male"] and results["predictions"]["attributes"]
    assert mismatches(results, schema.ResultsDict) == []


def test_a_verification_run_fits_the_schema(pairs_run):
    results = dict(pairs_run)
    assert results["verification"] and results["predictions"] is None and results["counts"]["pairs"] == 4
    assert any("partner" in view for view in results["views"].values())
    assert mismatches(results, schema.ResultsDict) == []


def test_the_report_tests_fixture_fits_the_schema():
    """The hand-built results the report tests render (tests/report_fixture.py) have the shape a run writes."""
    from report_fixture import build_results, region_ablation, verification

    assert mismatches(build_results(), schema.ResultsDict) == []
    assert mismatches(region_ablation(build_results(with_groups=False)), schema.ResultsDict) == []
    assert mismatches(verification(build_results()), schema.ResultsDict) == []


def test_the_checker_finds_an_undeclared_key_a_missing_key_and_a_wrong_type(classifier_run):
    """What a builder that drifts from the schema would produce: each of these fails the check above."""
    results = copy.deepcopy(dict(classifier_run))
    results["regions"][0]["median"] = 0.3  # a new key nobody declared
    del results["counts"]["failed"]  # a required key left out
    results["groups"]["protected=0"]["n"] = "3"  # a number written as text
    results["faithfulness"]["per_image"][0]["row"] = None  # null where it is never null
    results["novel_section"] = {}
    assert sorted(mismatches(results, schema.ResultsDict)) == sorted([
        "results.regions[0].median: not declared in schema.RegionRow",
        "results.counts.failed: missing, required by schema.Counts",
        "results.groups['protected=0'].n: '3' is a str, not a int",
        "results.faithfulness.per_image[0].row: None is a NoneType, not a int",
        "results.novel_section: not declared in schema.ResultsDict",
    ])


# -- the types against the prose ------------------------------------------------------------------------------

def _documented_example() -> str:
    """docs/results.md's example results.json, without its comments."""
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```jsonc\n(.*?)```", text, flags=re.S).group(1)
    block = re.sub(r"/\*.*?\*/", "", block, flags=re.S)
    return re.sub(r"//[^\n]*", "", block)


def _keys_at_depth_one(text: str) -> set[str]:
    """The keys of the outermost object in ``text`` (JSON-like: the example uses ``...`` for elided parts)."""
    keys, depth = set(), 0
    for match in re.finditer(r'"([a-z_0-9]+)"\s*:|[{\[]|[}\]]', text):
        token = match.group(0)
        if token in "{[":
            depth += 1
        elif token in "}]":
            depth -= 1
        elif depth == 1:
            keys.add(match.group(1))
    return keys


def _object_after(text: str, key: str) -> str:
    """The text of the object that follows ``"key":`` (braces balanced)."""
    start = text.index("{", text.index(f'"{key}":'))
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end + 1]
    raise AssertionError(f"docs/results.md: the {key} object does not close")


def test_every_top_level_field_is_documented_and_every_documented_one_declared():
    documented = _keys_at_depth_one(_documented_example())
    declared = set(get_type_hints(schema.ResultsDict))
    assert declared - documented == set(), "in schema.ResultsDict but not in docs/results.md"
    assert documented - declared == set(), "in docs/results.md but not in schema.ResultsDict"


def test_every_run_field_is_documented_and_every_documented_one_declared():
    text = DOCS.read_text(encoding="utf-8")
    in_example = _keys_at_depth_one(_object_after(_documented_example(), "run"))
    # Some run fields are named in the prose (the comments included): "run.head_detail says it in words".
    named = in_example | set(re.findall(r"\brun\.([a-z_]+)", text))
    declared = set(get_type_hints(schema.Run))
    assert declared - named == set(), "in schema.Run but not in docs/results.md"
    assert in_example - declared == set(), "in docs/results.md's run but not in schema.Run"

