"""The manifest: what a run used (versions, platform, input digests, options), for repeatable audits."""

import hashlib
import json

from reportgen.inputs.config import make_config
from reportgen.results.manifest import build_manifest, file_digest, images_digest, library_versions


def _config(tmp_path, transform=True):
    for name, text in (("a.csv", "img,task\nx.jpg,1\n"), ("model.py", "model = None\n"), ("t.py", "transform = None\n")):
        (tmp_path / name).write_text(text)
    (tmp_path / "w.pt").write_bytes(b"\x00weights\x01")
    return make_config(images=tmp_path, annotations=tmp_path / "a.csv", target="task", model_file=tmp_path / "model.py",
                       weights=tmp_path / "w.pt", transform=tmp_path / "t.py" if transform else None, layer="layer4")


def test_manifest_records_versions_platform_digests_and_options(tmp_path):
    config = _config(tmp_path)
    manifest = build_manifest(config, {"name": "reportgen", "version": "9.9", "torch": "2.0-test"})
    assert manifest["schema"] == "reportgen-manifest/1"
    versions = manifest["versions"]
    for name in ("reportgen", "python", "torch", "torchvision", "captum", "dlib", "numpy", "pillow", "plotly", "jinja2"):
        assert name in versions
    assert versions["reportgen"] == "9.9" and versions["torch"] == "2.0-test"  # given versions win
    assert versions["numpy"] and versions["pillow"] and versions["jinja2"]
    assert manifest["platform"]["system"] and manifest["platform"]["machine"]
    weights = manifest["inputs"]["weights"]
    assert weights == {"path": str(tmp_path / "w.pt"), "bytes": 9,
                       "sha256": hashlib.sha256(b"\x00weights\x01").hexdigest()}
    for name in ("annotations", "model_file", "transform"):
        assert len(manifest["inputs"][name]["sha256"]) == 64
    assert manifest["options"] == config.to_dict() and manifest["options"]["layer"] == "layer4"
    json.dumps(manifest)  # plain data


def test_same_inputs_same_manifest_and_one_changed_byte_shows(tmp_path):
    config = _config(tmp_path)
    first, second = build_manifest(config), build_manifest(config)
    assert first == second
    (tmp_path / "w.pt").write_bytes(b"\x00weights\x02")
    changed = build_manifest(config)
    assert changed["inputs"]["weights"]["sha256"] != first["inputs"]["weights"]["sha256"]
    assert changed["inputs"]["annotations"] == first["inputs"]["annotations"]


def test_no_transform_file_and_unreadable_files_do_not_break_the_manifest(tmp_path):
    manifest = build_manifest(_config(tmp_path, transform=False).to_dict())
    assert manifest["inputs"]["transform"] is None
    assert file_digest(tmp_path / "gone.pt") == {"path": str(tmp_path / "gone.pt"), "error": "No such file or directory"}
    assert library_versions()["python"].count(".") == 2


def test_images_digest_covers_paths_and_contents(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg").write_bytes(b"b")
    one = images_digest(tmp_path, ["b.jpg", "a.jpg", "gone.jpg"])
    assert one["files"] == 2 and one["missing"] == 1
    assert images_digest(tmp_path, ["a.jpg", "b.jpg", "gone.jpg"])["sha256"] == one["sha256"]  # order-free
    (tmp_path / "b.jpg").write_bytes(b"B")
    assert images_digest(tmp_path, ["a.jpg", "b.jpg"])["sha256"] != one["sha256"]
    lines = "".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in (("a.jpg", b"a"), ("b.jpg", b"B")))
    assert images_digest(tmp_path, ["a.jpg", "b.jpg"])["sha256"] == hashlib.sha256(lines.encode()).hexdigest()


def test_manifest_with_the_dataset_digests_every_image(tmp_path):
    from reportgen.inputs.dataset import read_dataset

    config = _config(tmp_path)
    (tmp_path / "x.jpg").write_bytes(b"x")
    dataset = read_dataset(tmp_path, tmp_path / "a.csv", ["task"])
    manifest = build_manifest(config, dataset=dataset)
    assert manifest["inputs"]["images"]["files"] == 1 and manifest["inputs"]["images"]["missing"] == 0
