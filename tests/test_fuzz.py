"""Fuzzing the input parsers: whatever the annotation file, image path or image file holds, the result
is either parsed data or the one-line error meant for users (InputError / ImageError), never a crash."""

from __future__ import annotations

import io
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from reportgen.errors import ImageError, InputError
from reportgen.faces.images import decode_image
from reportgen.inputs.dataset import _check_relative, _is_file, label_values, read_dataset

# REPORTGEN_FUZZ_EXAMPLES=5000 fuzzes longer (the default keeps the test run fast).
FUZZ = settings(max_examples=int(os.environ.get("REPORTGEN_FUZZ_EXAMPLES", 200)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
IMAGES = ("a.jpg", "b.jpg", "sub/c.png", "d e.jpg")


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> tuple[Path, Path]:
    """An image folder holding a few (fake) images, and where to write the annotation file."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in IMAGES:
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / name).write_bytes(b"x")
    return root / "images", root / "annotations.txt"


def parses_or_explains(place, content: str | bytes, columns=()) -> None:
    images, annotations = place
    if isinstance(content, str):
        annotations.write_text(content, encoding="utf-8", errors="surrogatepass", newline="")
    else:
        annotations.write_bytes(content)
    try:
        data = read_dataset(images, annotations, list(columns))
    except InputError as error:
        assert "\n" not in str(error) and str(error)
        return
    assert len(data.paths) == len(data.lines) > 0 and len(data.missing) < len(data.paths)
    for name, values in data.columns.items():
        assert len(values) == len(data.paths), name
        try:
            labels = label_values(data, name)
            assert len(labels) == len(data.paths)
            assert all(v is None or (isinstance(v, int) and v >= 0) for v in labels)
        except InputError as error:
            assert "\n" not in str(error)
    for path in data.paths:  # every accepted path stays inside the image folder
        assert ".." not in PurePosixPath(path).parts and not path.startswith("/")


# Pieces that exercise the interesting corners: delimiters, quotes, paths, labels, blank cells.
CELL = st.one_of(
    st.sampled_from(IMAGES + ("img", "task", "Male", "protected", "-1", "1", "0", "2", "1;2", "1,2", '"1,2"',
                              "0.5", "nan", "inf", "1e400", "true", "", " ", '"', '""', "../x.jpg", "/abs.jpg",
                              "C:\\x.jpg", "sub\\c.png", "./a.jpg", "\ufeff", "http://x/y.jpg", "~/a.jpg",
                              "\x00", "a\x1cb", "\u2028", "²", "１", "x" * 300 + ".jpg", "a.jpg/" * 60)),
    st.text(max_size=8),
)
ROW = st.lists(CELL, min_size=0, max_size=5)
NEWLINE = st.sampled_from(["\n", "\r\n", "\r", "\n\n"])


@st.composite
def csv_like(draw) -> str:
    """Loose rows of cells, or (half the time) a header and rows naming existing images, so that the
    label and path checks behind the parser are reached too."""
    delimiter = draw(st.sampled_from([",", ";", "\t", " ", "|"]))
    newline = draw(NEWLINE)
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(["task", "Male", "task", "", "img", "x y"]), min_size=1, max_size=3))
        rows = [["img", *names]]
        for _ in range(draw(st.integers(0, 4))):
            path = draw(st.one_of(st.sampled_from(IMAGES), CELL))
            rows.append([path, *draw(st.lists(CELL, min_size=len(names) - 1, max_size=len(names) + 1))])
    else:
        rows = draw(st.lists(ROW, min_size=0, max_size=6))
    text = newline.join(delimiter.join(row) for row in rows)
    return draw(st.sampled_from(["", "\ufeff"])) + text + draw(st.sampled_from(["", newline]))


@st.composite
def celeba_like(draw) -> str:
    names = draw(st.lists(st.sampled_from(["Male", "Smiling", "Young", "image_id", "x", ""]), min_size=0, max_size=4))
    rows = draw(st.lists(st.lists(st.sampled_from(["-1", "1", "0", "2", "x", ""]), min_size=0, max_size=5),
                         max_size=5))
    lines = [" ".join([draw(st.sampled_from(IMAGES + ("zz.jpg", "../a.jpg"))), *row]) for row in rows]
    count = draw(st.one_of(st.just(str(len(lines))), st.integers(0, 10).map(str), st.sampled_from([" 3 ", "²"])))
    return "\n".join([count, " ".join(names), *lines]) + draw(st.sampled_from(["", "\n", "\n\n"]))


@FUZZ
@given(content=csv_like(), columns=st.lists(st.sampled_from(["task", "Male", "img", "", "x"]), max_size=2))
def test_csv_like_annotation_files_parse_or_explain(place, content, columns):
    parses_or_explains(place, content, columns)


@FUZZ
@given(content=celeba_like(), columns=st.lists(st.sampled_from(["Male", "Smiling", "image_id"]), max_size=2))
def test_celeba_like_annotation_files_parse_or_explain(place, content, columns):
    parses_or_explains(place, content, columns)


@FUZZ
@given(content=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_text_or_bytes_as_annotation_file_parse_or_explain(place, content):
    parses_or_explains(place, content)


@FUZZ
@given(image=st.one_of(st.text(max_size=40), st.sampled_from([
    "..", ".", "./", "a/..", "C:", "c:x", "\\\\?\\C:\\x", "//server/x", "~", "~user/x", "a/./b", "a//b",
    "x" * 300, "a\x00b"])))
def test_path_checks_accept_only_paths_inside_the_folder(place, image):
    assert isinstance(_is_file(place[0] / image), bool)  # never raises: NUL bytes, names too long...
    try:
        key = _check_relative(Path("annotations.csv"), image, "line 2")
    except InputError as error:
        assert "\n" not in str(error) and "annotations.csv, line 2" in str(error)
        return
    slashed = image.replace("\\", "/")
    root = os.path.join(os.sep, "data", "images")
    assert os.path.normpath(os.path.join(root, key)).startswith(root + os.sep)
    assert not PureWindowsPath(image).drive and not PureWindowsPath(image).root
    assert key == str(PurePosixPath(slashed))


def _seed_images() -> list[bytes]:
    seeds = []
    for mode, format in (("RGB", "JPEG"), ("RGBA", "PNG"), ("L", "PNG"), ("P", "GIF"), ("CMYK", "TIFF"),
                         ("I;16", "PNG"), ("RGB", "BMP"), ("RGB", "WEBP")):
        buffer = io.BytesIO()
        Image.new(mode, (24, 20)).save(buffer, format)
        seeds.append(buffer.getvalue())
    return seeds


SEEDS = _seed_images()


@st.composite
def damaged_image(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@FUZZ
@given(content=st.one_of(damaged_image(), st.binary(max_size=300)))
def test_any_file_as_an_image_decodes_or_gives_a_reason(tmp_path_factory, content, monkeypatch_limit):
    path = monkeypatch_limit / "image.bin"
    path.write_bytes(content)
    try:
        image, notes = decode_image(path)
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert image.mode == "RGB" and min(image.size) >= 1 and all(isinstance(n, str) for n in notes)


@pytest.fixture(scope="module")
def monkeypatch_limit(tmp_path_factory):
    """A low decompression-bomb limit: damaged headers may claim huge sizes; fail fast instead of allocating."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1_000_000
    yield tmp_path_factory.mktemp("fuzz_images")
    Image.MAX_IMAGE_PIXELS = saved
