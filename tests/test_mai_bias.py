"""The MAI-BIAS module, driven exactly as the toolkit drives its own (FaceX's tests/test_tc6_facex.py):
``mammoth_commons.testing.Env`` with the catalogue's ``data_images`` and ``model_torch`` loaders, given a
tutorial-style CSV, model file, weights and transform file.

The toolkit's decorator asserts, when a module is imported, that the current folder contains the
module's file (it writes component_metadata/ beside it). The tests import the toolkit's loaders and
reportgen's module from the folder that holds both — as the toolkit wants to be run from its top
folder — and then call them from a temporary working folder, where the toolkit keeps its .cache/ (its
record of the packages its loaders checked with pip: pip runs once, not in every test).
"""

import html
import json
import os
import re
import socket
from importlib.util import find_spec
from pathlib import Path

import pytest

if find_spec("mammoth_commons") is None:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise ImportError("CI must run the MAI-BIAS test: install reportgen[test] (it carries mammoth-commons)")
    pytest.skip("needs mammoth-commons: pip install '.[mai-bias]'", allow_module_level=True)

REPORTGEN_MODULE = Path(__file__).resolve().parent.parent / "reportgen" / "integrations" / "mai_bias.py"


@pytest.fixture(scope="module")
def toolkit(tmp_path_factory):
    """The toolkit's testing module, its two loaders and reportgen's module, imported as the toolkit wants;
    then the current folder is a temporary working folder, and the landmark cache a temporary one."""
    import reportgen.integrations

    catalogue = Path(find_spec("mai_bias").submodule_search_locations[0])
    ours = Path(reportgen.integrations.__file__).resolve().parent
    top = os.path.commonpath([str(catalogue.resolve()), str(ours)])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(top)
        from mai_bias.catalogue.dataset_loaders.image_pairs import data_image_pairs
        from mai_bias.catalogue.dataset_loaders.images import data_images
        from mai_bias.catalogue.model_loaders.pytorch import model_torch
        from mammoth_commons import testing

        from reportgen.integrations.mai_bias import reportgen_face_regions, reportgen_face_verification

        patch.chdir(tmp_path_factory.mktemp("toolkit_folder"))
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield testing, data_images, model_torch, reportgen_face_regions, data_image_pairs, reportgen_face_verification


@pytest.fixture
def offline(monkeypatch):
    """No connection may leave this process while the module runs."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def _load(env, case):
    """The toolkit's loaders on the tutorial-style files, with the arguments of the FaceX test."""
    dataset = env.data_images(path=str(case["annotations"]), image_root_dir=str(case["images"]), target="task",
                              data_transform_path=str(case["transform"]), batch_size=1, shuffle=False)
    model = env.model_torch(str(case["weights"]), str(case["model_file"]))
    return dataset, model


def test_toolkit_runs_the_module_and_gets_the_full_offline_report(toolkit, tutorial_like, offline):
    testing, data_images, model_torch, module = toolkit[:4]
    from mammoth_commons.exports import HTML
    from mammoth_commons.externals import prepare_html

    with testing.Env(data_images, model_torch, module) as env:
        dataset, model = _load(env, tutorial_like)
        # The toolkit's interface passes options as text: "1", "layer4", "2".
        result = env.reportgen_face_regions(dataset, model, ["protected"], "gradcam", "layer4", "1", "2")
    assert isinstance(result, HTML)
    page = result.text()  # what the toolkit's app shows and saves
    assert page == result.body, "the toolkit's processing must leave the report as reportgen wrote it"
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")

    # The report itself: the results JSON it embeds, its regions and groups.
    embedded = re.search(r'<script type="application/json" id="reportgen-results">(.*?)</script>', page, re.S)
    results = json.loads(embedded.group(1))
    assert results["schema"] == "reportgen/1" and results["counts"]["scored"] == 6
    assert results["run"]["layer"] == "layer4" and results["run"]["target_class"] == 1
    assert results["run"]["model_file"] == "ResNet object given in Python"
    assert results["manifest"]["inputs"]["model"]["parameters_sha256"]
    assert {region["id"] for region in results["regions"]} >= {"left_eye", "nose", "background"}
    assert set(results["groups"]) == {"protected=0", "protected=1"}
    for text in ("Left eye", "Background", "protected=1"):
        assert text in page

    # Nothing from the network: no http(s) source or link the toolkit's prepare_html would fetch or cache,
    # the page's own Content-Security-Policy, repeated in the header for the toolkit's own page (all()).
    fetched = [url for _, _, url in re.findall(r'(src|href)=(["\'])([^"\']+)\2', page)
               if url.startswith(("http://", "https://")) and re.search(r"\.(png|js|css|svg|jpg)|githubusercontent", url)]
    assert fetched == []
    assert prepare_html(page) == page and offline == []
    assert "default-src 'none'" in html.unescape(result.header)
    assert result.header in result.all().split("<body>")[0]
    # Private by default: neither the data's folder nor the working folder appears.
    assert str(tutorial_like["root"]) not in page and os.getcwd() not in page


def test_a_wrong_option_names_the_toolkits_field(toolkit, tutorial_like):
    testing, data_images, model_torch, module = toolkit[:4]
    from reportgen.errors import InputError

    with testing.Env(data_images, model_torch, module) as env:
        dataset, model = _load(env, tutorial_like)
        with pytest.raises(InputError, match=r"^target_layer 'layr4' not found in the model; did you mean 'layer4'"):
            env.reportgen_face_regions(dataset, model, ["protected"], "gradcam", "layr4")
        with pytest.raises(InputError, match=r"^sensitive Protected: .* did you mean 'protected'"):
            env.reportgen_face_regions(dataset, model, ["Protected"])


def test_the_toolkits_interface_reads_every_option_and_the_method_list(toolkit):
    from mammoth_commons.externals import format_description
    from mammoth_commons.testing import unwrap

    from reportgen.explain.attribution import METHODS

    function = unwrap(toolkit[3])
    _, described, choices = format_description(function.__doc__)
    assert set(described) == {"method", "target_layer", "target_class", "check_images"}
    assert choices["method"] == list(METHODS)
    assert "http" not in function.__doc__  # no icon or picture fetched for the module's card either


def test_toolkit_runs_face_verification_on_its_image_pairs(toolkit, offline):
    """The toolkit's ImagePairs loader on the bundled verification demo (samples/pairs.csv: 60 pairs of the
    sample photos, an embedding model trained to tell the two people apart) and reportgen's verification
    module: a full offline report of similarity, with the pairs' genuine/impostor groups and decision quality."""
    testing, _, model_torch, _, data_image_pairs, module = toolkit
    from mammoth_commons.exports import HTML

    samples = Path(__file__).resolve().parents[1] / "samples"
    with testing.Env(data_image_pairs, model_torch, module) as env:
        dataset = env.data_image_pairs(path=str(samples / "pairs.csv"), image_root_dir=str(samples / "images"),
                                       target="is_same", data_transform_path=str(samples / "transform.py"))
        model = env.model_torch(str(samples / "embedding_weights.pt"), str(samples / "embedding_model.py"))
        result = env.reportgen_face_verification(dataset, model, ["person"], "gradcam", "", "1", "8")
    assert isinstance(result, HTML) and offline == []
    page = result.text()
    results = json.loads(re.search(r'<script type="application/json" id="reportgen-results">(.*?)</script>',
                                   page, re.S).group(1))
    assert results["run"]["task"] == "verification" and results["counts"]["pairs"] == 60
    assert results["verification"]["overall"]["pairs"] == 60
    assert {"pair=genuine", "pair=impostor"} <= set(results["groups"])
    assert "Verification quality" in page  # (the wording is tested in test_verification_report.py)
