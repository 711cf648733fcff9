"""The Python API with objects instead of files, as a notebook user has them: a model and a transform in
memory, a table of rows or a list of images; and the Results it returns (a dict that shows itself)."""

import json
import runpy

import pytest
import torch

import reportgen
from reportgen.errors import InputError
from reportgen.results.manifest import parameters_digest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("landmarks")


@pytest.fixture(scope="module")
def in_memory(tutorial_like):
    """The tutorial-like model (weights loaded, in training mode, with class names) and transform as a
    notebook holds them, and the CSV as rows."""
    model = runpy.run_path(str(tutorial_like["model_file"]))["model"]
    model.load_state_dict(torch.load(tutorial_like["weights"]))
    model.classes = ["African", "Caucasian"]
    model.train()
    transform = runpy.run_path(str(tutorial_like["transform"]))["transform"]
    header, *lines = tutorial_like["annotations"].read_text().split()
    rows = [dict(zip(header.split(","), line.split(","))) for line in lines]
    return model, transform, rows


def _quick(tutorial_like, cache, **options):
    return dict(images=tutorial_like["images"], target="task", layer="layer4", target_class=1,
                protected=["protected"], cache_dir=cache, bootstrap=0, check_images=0, batch_size=6, **options)


@pytest.fixture(scope="module")
def from_files(tutorial_like, cache):
    return reportgen.analyze(**_quick(tutorial_like, cache, annotations=tutorial_like["annotations"],
                                      model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                                      transform=tutorial_like["transform"]))


@pytest.fixture(scope="module")
def from_objects(tutorial_like, cache, in_memory):
    model, transform, rows = in_memory
    before = {k: v.clone() for k, v in model.state_dict().items()}
    results = reportgen.analyze(**_quick(tutorial_like, cache, annotations=rows, model=model, transform=transform))
    return results, before


def test_objects_give_the_results_of_the_same_files(from_objects, from_files):
    results, _ = from_objects
    assert [(r["id"], r["density"]) for r in results["regions"]] == \
           [(r["id"], r["density"]) for r in from_files["regions"]]
    assert results["groups"]["protected=1"]["n"] == from_files["groups"]["protected=1"]["n"]
    run = results["run"]
    assert run["model_file"] == "ResNet object given in Python" and run["annotations"] == "table of 6 rows given in Python"
    assert run["transform"].startswith("transform given in Python: Compose(")


def test_the_manifest_records_what_objects_allow_and_says_what_they_cannot(in_memory, from_objects, from_files):
    model = in_memory[0]
    inputs = from_objects[0]["manifest"]["inputs"]
    # The parameter digest is the one a run from the weights file records: the two can be matched.
    assert inputs["model"]["parameters_sha256"] == from_files["manifest"]["inputs"]["model"]["parameters_sha256"]
    assert inputs["model"]["parameters_sha256"] == parameters_digest(model)
    assert inputs["model"]["class"] == "torchvision.models.resnet.ResNet" and inputs["model"]["parameters"] > 10**7
    assert inputs["model"]["classes"] == ["African", "Caucasian"]  # the model carries class names
    assert from_files["manifest"]["inputs"]["model"]["classes"] is None  # this one does not
    assert inputs["model_file"]["given"] == "object" and "no file to digest" in inputs["model_file"]["note"]
    assert "sha256" not in inputs["model_file"] and inputs["weights"]["given"] == "object"
    assert inputs["transform"]["repr"].startswith("Compose(") and "no file to digest" in inputs["transform"]["note"]
    assert inputs["annotations"]["rows"] == 6 and inputs["annotations"]["columns"] == ["task", "protected"]
    assert len(inputs["annotations"]["sha256"]) == 64
    assert from_files["manifest"]["inputs"]["weights"]["sha256"]  # files keep their own digests


def test_the_users_model_is_left_as_it_was(in_memory, from_objects):
    model, before = in_memory[0], from_objects[1]
    assert model.training  # not switched to eval mode
    assert next(model.parameters()).is_contiguous()  # not switched to channels-last
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_dict_of_columns_and_weights_from_a_file_work_too(tutorial_like, cache, in_memory, from_files):
    _, transform, rows = in_memory
    architecture = runpy.run_path(str(tutorial_like["model_file"]))["model"]  # random weights until loaded
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    results = reportgen.analyze(**_quick(tutorial_like, cache, annotations=columns, model=architecture,
                                         weights=tutorial_like["weights"], transform=transform))
    assert [r["density"] for r in results["regions"]] == [r["density"] for r in from_files["regions"]]
    assert results["manifest"]["inputs"]["weights"]["sha256"] == from_files["manifest"]["inputs"]["weights"]["sha256"]


def test_a_dataframe_is_read_by_its_columns(tutorial_like, in_memory):
    """pandas is not needed, but a DataFrame is what many notebooks hold: its columns are the table."""
    pandas = pytest.importorskip("pandas")
    model, transform, rows = in_memory
    frame = pandas.DataFrame(rows)
    frame["task"] = "cat"  # a broken label shows that the table was read (and stops before heavy work)
    with pytest.raises(InputError, match=r"annotations=rows, row 1: column 'task' has 'cat'"):
        reportgen.analyze(images=tutorial_like["images"], annotations=frame, target="task", model=model,
                          transform=transform)


def test_a_list_of_images_needs_no_annotations(tutorial_like, cache, in_memory):
    model, transform, _ = in_memory
    images = sorted(tutorial_like["images"].rglob("*.jpg"))
    results = reportgen.analyze(images=images, model=model, transform=transform, cache_dir=cache, bootstrap=0,
                                check_images=0, layer="layer4")
    assert results["counts"]["scored"] == 6 and results["predictions"]["accuracy"] is None
    assert results["run"]["target"] is None and results["run"]["images"] == "images"
    assert results["browser"]["images"][0]["image"].split("/")[0] in ("African", "Caucasian")  # relative paths


@pytest.mark.parametrize("table, message", [
    ([{"img": "African/0-FaceId-0_align.jpg", "task": 1}, {"task": 0, "img": "x.jpg"}],
     "annotations=rows, row 2: has ['task', 'img'] but row 1 has ['img', 'task']"),
    ({"img": ["a.jpg", "b.jpg"], "task": [1]}, "the columns have different lengths"),
    ([{"img": "../outside.jpg", "task": 1}], "row 1: image path '../outside.jpg' leaves the image folder"),
    ([{"img": "African/0-FaceId-0_align.jpg", "tsk": 1}], "--target task: 'task' is not a column of annotations=rows;"
                                                         " did you mean 'tsk'?"),
    ([{"img": "African/0-FaceId-0_align.jpg", "task": "cat"}], "annotations=rows, row 1: column 'task' has 'cat'"),
    ([], "annotations=rows: the table has no rows"),
])
def test_a_broken_table_is_one_clear_line(tutorial_like, in_memory, table, message):
    model, transform, _ = in_memory
    with pytest.raises(InputError) as caught:
        reportgen.analyze(images=tutorial_like["images"], annotations=table, target="task", model=model,
                          transform=transform)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("options, message", [
    (dict(model_file="model.py"), "give the model as model= (an object) or as model_file= (a file), not both"),
    (dict(model="model.py"), "model= takes a torch.nn.Module; give a model file as model_file="),
    (dict(transform=42), "transform= takes a callable"),
    (dict(annotations=42), "annotations= takes a file, a list of row dicts or a dict of columns, not int"),
])
def test_objects_and_files_cannot_be_mixed_up(tutorial_like, in_memory, options, message):
    model, transform, rows = in_memory
    given = dict(images=tutorial_like["images"], annotations=rows, target="task", model=model, transform=transform)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reportgen.analyze(**{**given, **options})


class NotebookTransform:
    """A transform class defined where a notebook defines it: a spawned worker could not import it."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, image):
        return self.inner(image)


NotebookTransform.__module__ = "__main__"


def test_a_transform_workers_cannot_rebuild_runs_in_process_and_says_so(tutorial_like, cache, in_memory):
    model, transform, rows = in_memory
    results = reportgen.analyze(**_quick(tutorial_like, cache, annotations=rows, model=model,
                                         transform=NotebookTransform(transform), workers=2))
    assert results["run"]["workers"] == 0 and results["counts"]["scored"] == 6
    assert any("worker processes cannot rebuild it" in note for note in results["notes"])


@pytest.mark.slow  # spawns a worker process, which imports torch again
def test_a_picklable_transform_object_reaches_spawned_workers(tutorial_like, in_memory, monkeypatch):
    """Workers are spawned (not forked) after dlib's CNN detector ran here, or where fork does not exist:
    the transform then travels to them as a pickle."""
    from reportgen.faces import images

    model, transform, rows = in_memory
    monkeypatch.setattr(images, "cnn_detector_used", lambda: True)
    results = reportgen.analyze(images=tutorial_like["images"], annotations=rows, target="task", model=model,
                                transform=transform, workers=1, no_cache=True, bootstrap=0, check_images=0)
    assert results["run"]["workers"] == 1 and results["counts"]["scored"] == 6


def test_results_are_a_dict_that_shows_a_summary_in_jupyter(tutorial_like, tmp_path, from_files):
    assert isinstance(from_files, dict) and isinstance(from_files, reportgen.Results)
    json.loads(json.dumps(from_files))
    shown = from_files._repr_html_()
    assert "reportgen.write_html(results, \"report.html\")" in shown
    for finding in from_files["findings"]:
        assert finding["text"].split(":")[0].replace("'", "&#x27;") in shown
    assert from_files["regions"][0]["label"] in shown and "<script" not in shown
    reportgen.write_html(from_files, tmp_path / "r.html")
    reportgen.write_json(from_files, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["regions"] == from_files["regions"]


def test_the_summary_escapes_names_from_the_data():
    results = reportgen.Results(run={"model_file": "<img src=x onerror=alert(1)>", "protected": ["<b>"]},
                                findings=[{"severity": "warning", "text": "</li><script>x</script>"}])
    shown = results._repr_html_()
    assert "<img" not in shown and "<script>" not in shown and "&lt;b&gt;" in shown
