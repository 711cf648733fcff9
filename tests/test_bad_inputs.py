"""The catalogue of bad inputs (docs/inputs.md): each one stops the run before heavy work with one line
naming the file or option and the fix, or — for a bad image — is listed with its reason while the
run goes on. Every entry of the catalogue has a test here (some also in test_dataset/test_pipeline)."""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import reportgen
from conftest import portrait
from reportgen.errors import ImageError, InputError
from reportgen.faces.images import ImagePreparer, decode_image
from reportgen.faces.landmarks import LandmarkCache
from reportgen.inputs.preprocess import build_transform

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(AS_ROOT, reason="running as root: chmod 000 does not stop root reading a file")


@pytest.fixture
def good(tutorial_like, tmp_path):
    """Options of a run that works; tests change one of them."""
    return dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                model_file=tutorial_like["model_file"], weights=tutorial_like["weights"],
                transform=tutorial_like["transform"], cache_dir=tmp_path / "cache", workers=0,
                out=tmp_path / "report.html")


def stops(options: dict, *fragments: str) -> str:
    """Run analyze on ``options``; it must raise a one-line InputError containing every fragment."""
    with pytest.raises(InputError) as caught:
        reportgen.analyze(**options)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def first_image(tutorial_like) -> str:
    return tutorial_like["annotations"].read_text().splitlines()[1].split(",")[0]


# --- files and folders ----------------------------------------------------------------------------

@pytest.mark.parametrize("option, fragment", [
    ("images", "folder not found"), ("annotations", "file not found"), ("model_file", "file not found"),
    ("weights", "file not found"), ("transform", "file not found"),
])
def test_a_missing_input_file_or_folder_is_named(good, tmp_path, option, fragment):
    good[option] = tmp_path / "nothing-here"
    stops(good, f"--{option.replace('_', '-')} {tmp_path / 'nothing-here'}", fragment)


def test_a_file_given_as_the_image_folder_and_a_folder_given_as_a_file(good, tmp_path):
    stops({**good, "images": good["annotations"]}, "--images", "not a folder")
    stops({**good, "annotations": tmp_path}, "--annotations", "is a folder")
    stops({**good, "weights": tmp_path}, "--weights", "is a folder")


@needs_non_root
@pytest.mark.parametrize("option", ["annotations", "model_file", "weights", "transform"])
def test_an_unreadable_input_file_says_permission(good, tmp_path, option):
    copy = write(tmp_path / "copy", Path(good[option]).read_bytes())
    copy.chmod(0)
    try:
        stops({**good, option: copy}, f"--{option.replace('_', '-')}", "permission denied")
    finally:
        copy.chmod(0o644)


@needs_non_root
def test_an_unreadable_image_folder_says_permission(good, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        stops({**good, "images": folder}, "--images", "permission denied")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("option", ["images", "annotations", "model_file", "weights", "transform"])
def test_unreadable_inputs_simulated_for_root(good, monkeypatch, option):
    """The same checks as above where root reads everything: os.access says 'no' for that one path."""
    target, real = Path(good[option]), os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == target else real(path, mode, **kw))
    stops(good, f"--{option.replace('_', '-')} {target}", "permission denied")


# --- annotation files -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragments", [
    ("", ["--annotations", "the file is empty"]),
    ("\n  \n\t\n", ["the file is empty"]),
    ("{image},1,0\n", ["line 1", "looks like a data row, not a header", "img,task,protected"]),
    ("img task\n{image} 1\n", ["expected a header line", "separated by spaces"]),
    ("img,task,task\n{image},1,0\n", ["column name 'task' appears twice"]),
    ("img,task\n{image},1,0\n", ["line 2", "3 fields but the header has 2", "needs quotes"]),
    ("img,task\n{image},1\n./{image},0\n", ["appears twice", "lines 2 and 3", "remove the duplicate"]),
    ("img,task\n../{image},1\n", ["line 2", "leaves the image folder"]),
    ("img,task\nAfrican/../../x.jpg,1\n", ["leaves the image folder"]),
    ("img,task\n/etc/passwd,1\n", ["is absolute", "relative to --images"]),
    ("img,task\nC:\\\\data\\\\x.jpg,1\n", ["is absolute"]),
    ("img,task\nC:/data/x.jpg,1\n", ["is absolute"]),
    ("img,task\n\\\\\\\\server\\\\share\\\\x.jpg,1\n", ["is absolute"]),
    ("img,task\nhttps://example.org/x.jpg,1\n", ["is a URL", "local files only"]),
    ("img,task\n~/x.jpg,1\n", ["starts with '~'"]),
    ("img,task\n\"\",1\n{image},0\n", ["line 2", "the image path is empty"]),
    ("img,task\na\tb.jpg,1\n", ["line 2", "contains a control character"]),
    ("img,task\nmissing/a.jpg,1\nmissing/b.jpg,0\n", ["--images", "none of the 2 images", "right folder"]),
    ("3\ntask protected\n{image} 1 -1\n", ["line 1 says 3 rows but the file has 1", "truncated"]),
    ("1\ntask protected\n{image} 1\n", ["line 3", "expected a file name and 2 values, found 2 fields"]),
    ("1\ntask task\n{image} 1 1\n", ["column name 'task' appears twice"]),
    ("0\ntask protected\n", ["lists no images"]),
])
def test_broken_annotation_files_stop_with_one_line(good, tutorial_like, tmp_path, text, fragments):
    annotations = write(tmp_path / "a.csv", text.format(image=first_image(tutorial_like)))
    stops({**good, "annotations": annotations}, *fragments)


def test_binary_and_non_utf8_annotation_files(good, tmp_path):
    stops({**good, "annotations": write(tmp_path / "a.xlsx", b"PK\x03\x04rest of a zip")}, "zip or Excel", "save it as CSV")
    latin = write(tmp_path / "b.csv", "img,task\nx.jpg,1\ncaf\u00e9.jpg,0\n".encode("latin-1"))
    stops({**good, "annotations": latin}, "line 3", "not UTF-8 text")
    stops({**good, "annotations": write(tmp_path / "c.csv", b"img,task\n\x00\x01,1\n")}, "line 2", "NUL bytes")


@pytest.mark.parametrize("option, value, fragments", [
    ("target", "taks", ["has no column 'taks'", "did you mean 'task'"]),
    ("target", "img", ["'img' is the image path column, not a label column"]),
    ("target", "nothing_like_it", ["the columns are: 'task', 'protected'"]),
    ("protected", ["protcted"], ["no column 'protcted'", "did you mean 'protected'"]),
])
def test_unknown_columns_suggest_close_names(good, option, value, fragments):
    stops({**good, option: value}, *fragments)


@pytest.mark.parametrize("label, fragments", [
    ("cat", ["line 2", "column 'task' has 'cat'", "labels must be class numbers"]),
    ("1;2", ["'1;2'", "several values", "one class number per row"]),
    ('"1,2"', ["'1,2'", "several values"]),
    ("0.5", ["whole class numbers"]),
    ("nan", ["whole class numbers"]),
    ("-3", ["has -3", "labels must be class numbers 0, 1"]),
])
def test_bad_labels_name_the_line_and_value(good, tutorial_like, tmp_path, label, fragments):
    lines = tutorial_like["annotations"].read_text().splitlines()
    image, _, protected = lines[1].split(",")
    annotations = write(tmp_path / "a.csv", "\n".join([lines[0], f"{image},{label},{protected}", *lines[2:]]) + "\n")
    stops({**good, "annotations": annotations}, *fragments)


def test_label_conventions_minus_one_and_true_false_read_as_classes(tmp_path):
    from reportgen.inputs.dataset import label_values, read_dataset

    write(tmp_path / "i" / "a.jpg", b"x")
    write(tmp_path / "i" / "b.jpg", b"x")
    data = read_dataset(tmp_path / "i", write(tmp_path / "a.csv", "img,Male,ok,n\na.jpg,-1,True,\nb.jpg,1,false,2\n"))
    assert label_values(data, "Male") == [0, 1]
    assert label_values(data, "ok") == [1, 0]
    assert label_values(data, "n") == [None, 2]


def test_annotation_variants_that_must_work(tmp_path):
    from reportgen.inputs.dataset import read_dataset

    for name in ("a.jpg", "sub/b.jpg"):
        write(tmp_path / "i" / name, b"x")
    images = tmp_path / "i"
    bom = read_dataset(images, write(tmp_path / "bom.csv", "\ufeffimg,task\na.jpg,1\nsub/b.jpg,0\n"), ["task"])
    assert bom.paths == ["a.jpg", "sub/b.jpg"] and list(bom.columns) == ["task"]
    utf16 = read_dataset(images, write(tmp_path / "u16.csv", "img,task\r\na.jpg,1\r\n".encode("utf-16")), ["task"])
    assert utf16.paths == ["a.jpg"]
    semicolon = read_dataset(images, write(tmp_path / "s.csv", "img;task;note\na.jpg;1;\"x;y\"\n"), ["task"])
    assert semicolon.columns["note"] == ["x;y"]
    tabs = read_dataset(images, write(tmp_path / "t.tsv", "img\ttask\na.jpg\t1\n"), ["task"])
    assert tabs.columns["task"] == ["1"]
    windows = read_dataset(images, write(tmp_path / "w.csv", "img,task\r\nsub\\b.jpg,1\r\n"), ["task"])
    assert windows.paths == ["sub/b.jpg"] and windows.missing == []
    celeba_named = read_dataset(images, write(tmp_path / "c.txt", "1\nimage_id Male\na.jpg -1\n"), ["Male"])
    assert celeba_named.columns == {"Male": ["0"]}
    partly = read_dataset(images, write(tmp_path / "m.csv", "img,task\na.jpg,1\ngone.jpg,0\n"))
    assert partly.missing == ["gone.jpg"] and partly.lines == [2, 3]


def test_a_pandas_index_column_gets_a_hint(good, tutorial_like, tmp_path):
    lines = tutorial_like["annotations"].read_text().splitlines()
    shifted = [",".join(["", lines[0]])] + [f"{k},{line}" for k, line in enumerate(lines[1:])]
    stops({**good, "annotations": write(tmp_path / "a.csv", "\n".join(shifted) + "\n")},
          "none of the 6 images", "Column 'img' holds image paths", "index=False")


# --- the model, its weights, the layer -------------------------------------------------------------

def test_model_file_errors_name_file_line_and_fix(good, tmp_path):
    stops({**good, "model_file": write(tmp_path / "m1.py", "import torch\n\nmodel = torch.nn.Linear(2,\n")},
          "m1.py, line 3", "SyntaxError")
    stops({**good, "model_file": write(tmp_path / "m2.py", "import torch\nimport not_a_module_anywhere\n")},
          "m2.py, line 2", "ModuleNotFoundError")
    stops({**good, "model_file": write(tmp_path / "m3.py", "raise RuntimeError('first\\nsecond line')\n")},
          "m3.py, line 1", "RuntimeError: first second line")
    stops({**good, "model_file": write(tmp_path / "m4.py", "import torch\nnet = torch.nn.Linear(2, 2)\n")},
          "variable 'model' is not defined", "modules in the file: net")
    stops({**good, "model_file": write(tmp_path / "m5.py", "import torch\nclass Net(torch.nn.Module):\n    pass\n"
                                                           "model = Net\n")},
          "'model' is a class, not a built model", "--model-class")
    stops({**good, "model_class": "Nett", "model_file": write(tmp_path / "m6.py", "import torch\n"
                                                               "class Net(torch.nn.Module):\n    pass\n")},
          "no torch.nn.Module class 'Nett'", "did you mean 'Net'")
    stops({**good, "model_class": "Net", "model_file": write(tmp_path / "m7.py", "import torch\n"
          "class Net(torch.nn.Module):\n    def __init__(self):\n        raise ValueError('no')\n")},
          "--model-class Net", "building Net() failed: ValueError: no")
    stops({**good, "model_file": good["weights"]}, "--model-file", "a binary file", "--weights")


def test_a_model_file_can_import_a_module_beside_it(good, tutorial_like, tmp_path):
    from reportgen.inputs.model import load_model

    write(tmp_path / "my_architecture_rg.py", (tutorial_like["model_file"]).read_text())
    model = load_model(write(tmp_path / "m.py", "from my_architecture_rg import model\n"))
    assert isinstance(model, torch.nn.Module)


@pytest.fixture(scope="module")
def bad_weights(tutorial_like, tmp_path_factory) -> dict[str, Path]:
    """Weights files that are not the model's state_dict, written once for the tests below (two are whole
    pickled resnet18s, tens of MB each)."""
    from reportgen.inputs.model import load_model

    tmp_path = tmp_path_factory.mktemp("bad_weights")
    model = load_model(tutorial_like["model_file"])
    state = model.state_dict()
    extra = {**state, "head.weight": torch.zeros(2)}
    torch.save(model, tmp_path / "whole.pt")
    torch.save(extra, tmp_path / "extra.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "not_tensors.pt")
    torch.save([t for t in state.values()], tmp_path / "list.pt")
    write(tmp_path / "text.pt", "these are not weights\n")
    write(tmp_path / "empty.pt", b"")
    np.save(tmp_path / "array.npy", np.zeros(3))
    return {name: tmp_path / name for name in ("whole.pt", "extra.pt", "not_tensors.pt", "list.pt", "text.pt",
                                               "empty.pt", "array.npy")}


@pytest.mark.parametrize("name, fragments", [
    ("whole.pt", ["not a state_dict", "pickled Python objects", "torch.save(model)", "weights_only=True",
                  "model.state_dict()"]),
    ("extra.pt", ["does not match the model", "unexpected keys: head.weight"]),
    ("not_tensors.pt", ["not a state_dict (a dict of tensors)"]),
    ("list.pt", ["not a state_dict", "a list"]),
    ("text.pt", ["a text file, not saved weights"]),
    ("empty.pt", ["the file is empty"]),
    ("array.npy", ["NumPy array"]),
])
def test_weights_that_are_not_this_models_state_dict(good, bad_weights, name, fragments):
    stops({**good, "weights": bad_weights[name]}, "--weights", *fragments)


def _safetensors(tensors: dict) -> bytes:
    """A safetensors file of float32 tensors, written by hand (the format: header length, JSON header, data)."""
    header, data = {}, b""
    for name, tensor in tensors.items():
        raw = tensor.detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_safetensors_weights_load_or_say_what_to_install(good, tmp_path, monkeypatch):
    from reportgen.inputs.model import load_model, load_weights

    model = load_model(good["model_file"])
    trained = {k: v.float() + 0.5 for k, v in load_model(good["model_file"]).state_dict().items()}
    weights = write(tmp_path / "w.safetensors", _safetensors(trained))
    load_weights(model, weights)
    assert torch.equal(model.state_dict()["fc.bias"], trained["fc.bias"])
    partial = write(tmp_path / "p.safetensors", _safetensors({"fc.bias": torch.zeros(2)}))
    stops({**good, "weights": partial}, "--weights", "does not match the model", "missing keys")
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if it were not installed
    stops({**good, "weights": weights}, "--weights", "a safetensors file", "pip install safetensors", "torch.save(")


def test_a_random_transform_is_refused(good, tmp_path):
    transform = write(tmp_path / "t.py", "import torchvision.transforms as T\n"
                      "transform = T.Compose([T.RandomResizedCrop(64), T.ToTensor()])\n")
    stops({**good, "transform": transform}, "--transform", "different outputs for the same image")


def test_old_weights_without_batchnorm_counters_still_load(good, tmp_path):
    from reportgen.inputs.model import load_model, load_weights

    state = torch.load(good["weights"], weights_only=True)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(state)  # the file really lacks the counters
    torch.save(old, tmp_path / "old.pt")
    model = load_model(good["model_file"])
    load_weights(model, tmp_path / "old.pt")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in old.items())  # every weight arrived


@pytest.mark.parametrize("change, fragments", [
    (dict(layer="layr4"), ["--layer 'layr4' not found", "did you mean 'layer4'"]),
    (dict(layer="zzz"), ["--layer 'zzz' not found", "reportgen layers"]),
    (dict(layer="avgpool"), ["not a grid over the image", "Grad-CAM needs a conv-like or token layer"]),
    (dict(target_class=2), ["--target-class 2", "2 outputs", "classes 0 to 1"]),
    (dict(target_class=-1), ["--target-class -1"]),
])
def test_layer_and_class_options_are_checked(good, change, fragments):
    stops({**good, **change}, *fragments)


def test_a_model_that_fails_on_the_input_size(good, tmp_path):
    source = "import torch\nmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(10, 2))\n"
    namespace: dict = {}
    exec(source, namespace)
    torch.save(namespace["model"].state_dict(), tmp_path / "w.pt")
    stops({**good, "model_file": write(tmp_path / "m.py", source), "weights": tmp_path / "w.pt"},
          "the model fails on a 256x256 RGB input", "mat1 and mat2", "image size")


def test_transform_files_that_do_not_give_a_tensor(good, tmp_path):
    stops({**good, "transform": write(tmp_path / "t1.py", "size = 224\n")},
          "--transform", "must assign a callable 'transform'")
    stops({**good, "transform": write(tmp_path / "t2.py", "def transform(image):\n    raise ValueError('nope')\n")},
          "--transform", "ValueError: nope")
    stops({**good, "transform": write(tmp_path / "t3.py", "import torchvision.transforms as T\n"
                                                          "transform = T.Compose([T.Resize(64)])\n")},
          "--transform", "float tensor (channels, H, W)")


# --- the command line: exit code 2, one red line, no traceback ------------------------------------

runner = CliRunner()


def _cli(options: dict, *extra: str):
    from reportgen.cli import app

    arguments = ["run"]
    for key in ("images", "annotations", "target", "model_file", "weights", "transform"):
        arguments += [f"--{key.replace('_', '-')}", str(options[key])]
    arguments += ["--no-cache", "--workers", "0", *extra]
    return runner.invoke(app, arguments)


@pytest.mark.parametrize("case", ["images", "empty", "column", "whole_model", "text_weights", "raising_model",
                                  "layer", "target_class"])
def test_cli_prints_one_line_and_exits_2(good, bad_weights, tmp_path, case):
    options, extra = dict(good), []
    if case == "images":
        options["images"] = tmp_path / "no_images"
        expected = "no_images"
    elif case == "empty":
        options["annotations"] = write(tmp_path / "empty.csv", "")
        expected = "empty.csv"
    elif case == "column":
        options["target"] = "taks"
        expected = "did you mean 'task'"
    elif case in ("whole_model", "text_weights"):
        options["weights"] = bad_weights["whole.pt" if case == "whole_model" else "text.pt"]
        expected = "not a state_dict" if case == "whole_model" else "a text file"
    elif case == "raising_model":
        options["model_file"] = write(tmp_path / "model.py", "import torch\nraise ValueError('broken\\nacross lines')\n")
        expected = "model.py, line 2"
    elif case == "layer":
        extra, expected = ["--layer", "layr4"], "did you mean 'layer4'"
    else:
        extra, expected = ["--target-class", "7"], "--target-class 7"
    result = _cli(options, *extra)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.output
    assert "Traceback" not in result.output


def test_cli_debug_shows_the_exception(good, tmp_path):
    result = _cli({**good, "target": "taks"}, "--debug")
    assert isinstance(result.exception, InputError)


# --- images: each problem is that image's failure or note; the run goes on -------------------------

def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (its data is a stub: the size check comes first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    """A folder of awkward image files -> the failure reason expected for each (None: analysed)."""
    root = tmp_path_factory.mktemp("odd_images")
    face = portrait().resize((300, 375))
    face.save(root / "plain.jpg", quality=92)
    face.convert("L").save(root / "gray.png")
    face.convert("CMYK").save(root / "cmyk.jpg", quality=92)
    rgba = np.asarray(face.convert("RGBA")).copy()
    rgba[:20, :, 3] = 0  # a transparent band at the top
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257).save(root / "gray16.png")
    face.convert("P").save(root / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the pixels are stored lying on their side
    face.transpose(Image.Transpose.ROTATE_90).save(root / "exif_rotated.jpg", exif=exif, quality=92)
    data = (root / "plain.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "text.jpg").write_text("this is a text file with an image's name\n")
    (root / "empty.jpg").write_bytes(b"")
    (root / "huge.png").write_bytes(_png_claiming(20000, 20000))
    Image.new("RGB", (200, 200), (128, 128, 128)).save(root / "no_face.png")
    # Both faces (about 125 px wide) are large enough to be seen on the half-size copy searched first.
    two = Image.new("RGB", (600, 375), "white")
    two.paste(face, (0, 0))
    two.paste(face.resize((280, 350)), (310, 10))
    two.save(root / "two_faces.jpg", quality=92)
    return root, {
        "plain.jpg": None, "gray.png": None, "cmyk.jpg": None, "rgba.png": None, "gray16.png": None,
        "palette.png": None, "exif_rotated.jpg": None, "two_faces.jpg": None,
        "truncated.jpg": "not a readable image: truncated or corrupt",
        "text.jpg": "not a readable image: the file holds text",
        "empty.jpg": "not a readable image: the file is empty",
        "huge.png": "image too large (400,000,000 pixels)",
        "no_face.png": "no face found",
        "gone.jpg": "file not found",
    }


EXPECTED_NOTES = {
    "gray.png": "grayscale image: copied to three equal channels",
    "cmyk.jpg": "CMYK image: converted to RGB",
    "rgba.png": "transparent pixels composited on white",
    "gray16.png": "16-bit grayscale image: scaled to 8 bits",
    "palette.png": "palette (indexed-colour) image: converted to RGB",
    "exif_rotated.jpg": "rotated 90 degrees clockwise to stand upright, as its EXIF orientation (6) says",
    "two_faces.jpg": "2 faces found; the largest was analysed",
}


def test_decode_image_converts_and_notes_each_mode(odd_images):
    root, _ = odd_images
    for name, note in EXPECTED_NOTES.items():
        if name == "two_faces.jpg":
            continue
        image, notes = decode_image(root / name)
        assert image.mode == "RGB" and any(note in n for n in notes), (name, notes)
    assert decode_image(root / "plain.jpg")[1] == []
    assert decode_image(root / "exif_rotated.jpg")[0].size == (300, 375)  # upright again
    assert np.asarray(decode_image(root / "rgba.png")[0])[:20].min() == 255  # transparent -> white


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    ramp = (np.arange(256 * 64, dtype=np.uint32).reshape(64, 256) * 4).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    image, _ = decode_image(tmp_path / "ramp16.png")
    pixels = np.asarray(image)[..., 0].astype(int)
    expected = np.round(ramp / 257).astype(int)
    assert np.abs(pixels - expected).max() <= 1  # Pillow's convert("RGB") would clip nearly all to 255
    assert pixels.min() == 0 and pixels.max() > 250


def test_other_formats_frames_and_colour_spaces(tmp_path):
    face = portrait().resize((60, 75))
    face.save(tmp_path / "anim.gif", save_all=True, append_images=[face.rotate(5)])
    image, notes = decode_image(tmp_path / "anim.gif")
    assert image.size == (60, 75) and "2 frames (animated or multi-page); the first was analysed" in notes
    face.convert("YCbCr").save(tmp_path / "ycc.tiff")
    assert decode_image(tmp_path / "ycc.tiff")[1] == ["YCbCr image: converted to RGB"]
    write(tmp_path / "noise.jpg", bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="^not a readable image: unknown or broken image format$"):
        decode_image(tmp_path / "noise.jpg")
    Image.new("RGB", (4, 300)).save(tmp_path / "thin.png")
    with pytest.raises(ImageError, match=r"image too small \(4x300 pixels\)"):
        decode_image(tmp_path / "thin.png")


@pytest.mark.parametrize("name", ["truncated.jpg", "text.jpg", "empty.jpg", "huge.png"])
def test_decode_image_raises_one_line_image_errors(odd_images, name):
    root, expected = odd_images
    with pytest.raises(ImageError) as caught:
        decode_image(root / name)
    assert str(caught.value).startswith(expected[name]) and "\n" not in str(caught.value)


def test_a_decompression_bomb_under_a_lower_limit_is_a_failure(monkeypatch, tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ImageError, match="image too large .* over the 5,000-pixel safety limit"):
        decode_image(tmp_path / "big.png")  # 10,000 pixels: over the limit, under twice the limit


def _odd_dataset(odd_images, tmp_path) -> Path:
    root, expected = odd_images
    annotations = tmp_path / "odd.csv"
    annotations.write_text("img,task,protected\n" + "".join(f"{name},{k % 2},{k % 2}\n"
                                                           for k, name in enumerate(expected)))
    return annotations


def test_prepared_images_carry_notes_and_failures(odd_images, tmp_path):
    from reportgen.inputs.dataset import read_dataset

    root, expected = odd_images
    dataset = read_dataset(root, _odd_dataset(odd_images, tmp_path), ["task"])
    preparer = ImagePreparer(dataset, build_transform(64), LandmarkCache(None))
    prepared = {item.image: item for item in (preparer.prepare(i) for i in range(len(dataset)))}
    for name, reason in expected.items():
        item = prepared[name]
        if reason is None:
            assert item.failure is None and item.tensor is not None, (name, item.failure)
        else:
            assert item.failure is not None and item.failure.startswith(reason), (name, item.failure)
    for name, note in EXPECTED_NOTES.items():
        assert any(note in n for n in prepared[name].notes), (name, prepared[name].notes)
    assert prepared["plain.jpg"].notes == []


def test_an_unexpected_error_on_one_image_is_its_failure(odd_images, tmp_path, monkeypatch):
    from reportgen.faces import images
    from reportgen.inputs.dataset import read_dataset

    root, _ = odd_images
    dataset = read_dataset(root, write(tmp_path / "one.csv", "img,task\nplain.jpg,1\n"))
    monkeypatch.setattr(images, "detect_face", lambda image: 1 / 0)
    item = ImagePreparer(dataset, build_transform(64), LandmarkCache(None)).prepare(0)
    assert item.failure == "face detection failed (ZeroDivisionError: division by zero)"


@pytest.mark.slow  # a whole run; the quick run keeps the same images through the preparer (test above)
def test_bad_images_never_stop_the_run(good, odd_images, tmp_path):
    root, expected = odd_images
    results = reportgen.analyze(**{**good, "images": root, "annotations": _odd_dataset(odd_images, tmp_path),
                                   "transform": None, "image_size": 64, "no_cache": True})
    reasons = {f["image"]: f["reason"] for f in results["failures"]}
    assert set(reasons) == {name for name, reason in expected.items() if reason}
    for name, reason in reasons.items():
        assert reason.startswith(expected[name]), (name, reason)
    assert results["counts"]["images"] == len(expected) and results["counts"]["scored"] == 8
    if "image_notes" in results:  # collected by analysis.py from PreparedImage.notes
        noted = {(n["image"], n["note"]) for n in results["image_notes"]}
        for name, note in EXPECTED_NOTES.items():
            assert any(image == name and note in text for image, text in noted), name
