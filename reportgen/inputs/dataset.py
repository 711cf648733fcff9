"""Read the user's annotation file into dataset rows: a relative image path plus label columns.

Two formats work unchanged (the MAI-BIAS conventions):
  - CSV with a header whose first column is the relative image path (e.g. ``img,task,protected``);
    the delimiter may be ``,``, ``;`` or a tab; UTF-8 with or without a BOM, or UTF-16 with a BOM;
  - CelebA ``list_attr_celeba.txt``: line 1 the row count, line 2 the attribute names, then
    ``000001.jpg -1 1 ...`` rows, whitespace separated, -1/1 meaning no/yes (read as 0/1).

Anything wrong with the file is an InputError naming the file, the line and the fix; the parser
never raises anything else (tests/test_fuzz.py checks that on arbitrary text).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import InputError, require_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif")
DELIMITERS = (",", ";", "\t")
PATH_COLUMN_NAMES = ("image_id", "image", "img", "file", "filename", "file_name", "path", "image_name", "name")


@dataclass
class Dataset:
    """Rows of an annotation file: ``paths[i]`` is relative to ``root``; ``columns[name][i]`` its value."""

    root: Path
    annotations: Path
    format: str  # "csv" or "celeba"
    paths: list[str]
    columns: dict[str, list[str]]
    missing: list[str] = field(default_factory=list)  # rows whose image file does not exist
    lines: list[int] = field(default_factory=list)  # line of the annotation file each row came from
    # A pair file (MAI-BIAS ImagePairs): each row's second image, relative to ``root``; None otherwise.
    partners: list[str] | None = None
    partner_column: str | None = None  # the pair file's name for the second image's column

    def __len__(self) -> int:
        return len(self.paths)

    def where(self, index: int) -> str:
        """'line N' of row ``index`` in the annotation file (for messages)."""
        return f"line {self.lines[index]}" if index < len(self.lines) else f"row {index + 1}"


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if not close:  # 'male' for 'Male': case differences count as close
        close = [c for c in choices if c.lower() == name.lower()]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(repr(c) for c in choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"the columns are: {shown}" if choices else "the file has no label columns"


def _read_text(path: Path) -> str:
    """The annotation file as text: UTF-8 (BOM or not) or UTF-16 with a BOM; clear errors otherwise."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"--annotations {path}: cannot read it ({error.strerror or error})") from None
    if data.startswith(b"PK\x03\x04"):
        raise InputError(f"--annotations {path}: a zip or Excel file, not text; save it as CSV (UTF-8)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"--annotations {path}: starts like UTF-16 text but is not; save it as CSV (UTF-8)") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise InputError(f"--annotations {path}, line {line}: not UTF-8 text (expected CSV or CelebA list_attr); "
                         "save the file as UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise InputError(f"--annotations {path}, line {line}: contains NUL bytes; is it a binary file? "
                         "expected CSV or CelebA list_attr text")
    return text


def _is_celeba(lines: list[str]) -> bool:
    return len(lines) >= 2 and re.fullmatch(r"\s*[0-9]+\s*", lines[0]) is not None


def _unique_names(path: Path, names: list[str], where: str) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise InputError(f"{path}, {where}: column name {name!r} appears twice (columns {seen[name]} and "
                             f"{position}); give each column its own name")
        seen[name] = position


def _read_celeba(path: Path, lines: list[str]) -> tuple[list[str], dict[str, list[str]], list[int], str | None]:
    names, path_column = lines[1].split(), None
    if not names:
        raise InputError(f"{path}, line 2: should list the attribute names (CelebA list_attr format)")
    rows = [(number, line.split()) for number, line in enumerate(lines[2:], start=3) if line.strip()]
    # Some copies name the file column too ('image_id 5_o_Clock_Shadow ...'): rows then have as many fields.
    if (len(names) > 1 and names[0].lower() in PATH_COLUMN_NAMES
            and rows and all(len(fields) == len(names) for _, fields in rows)):
        path_column, names = names[0], names[1:]
    _unique_names(path, names, "line 2")
    paths: list[str] = []
    columns: dict[str, list[str]] = {name: [] for name in names}
    numbers: list[int] = []
    for number, fields in rows:
        # The file name plus exactly one value per attribute; anything else is broken.
        if len(fields) != len(names) + 1:
            raise InputError(f"{path}, line {number}: expected a file name and {len(names)} values, "
                             f"found {len(fields)} fields")
        paths.append(fields[0])
        numbers.append(number)
        for name, value in zip(names, fields[1:]):
            columns[name].append("1" if value == "1" else "0" if value in ("-1", "0") else value)
    declared = int(lines[0].strip())
    if declared != len(paths):
        raise InputError(f"{path}: line 1 says {declared} rows but the file has {len(paths)}; "
                         "is the file truncated? (CelebA list_attr: line 1 is the row count)")
    return paths, columns, numbers, path_column


def _delimiter(first_line: str) -> str:
    """The delimiter the header line uses most (',' when it uses none)."""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path: Path, text: str, pairs: bool = False) -> tuple[list[str], dict[str, list[str]], list[int], str | None]:
    example = "'img1,img2,is_same,race' (the two images first" if pairs else "'img,task,protected' (image path first"
    first = next(line for line in text.splitlines() if line.strip())
    delimiter = _delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise InputError(f"{path}, line {reader.line_num}: not valid CSV ({error})") from None
    if not rows:
        raise InputError(f"{path}: the annotation file has no rows")
    header_line, raw_header = rows[0]
    header = [name.strip() for name in raw_header]
    if len(header) < 2:
        hint = ("; it looks separated by spaces: use commas, or CelebA's list_attr layout with the row count on line 1"
                if len(first.split()) > 1 else "")
        raise InputError(f"{path}, line {header_line}: expected a header line like {example}, then label "
                         f"columns){hint}" + ("; --pairs reads pair files" if pairs else ""))
    if header[0].lower().endswith(IMAGE_SUFFIXES) or all(_is_number(name) for name in header[1:]):
        raise InputError(f"{path}, line {header_line}: looks like a data row, not a header; add a first line "
                         f"naming the columns, like {example})")
    _unique_names(path, header[1:], f"line {header_line}")
    paths: list[str] = []
    columns: dict[str, list[str]] = {name: [] for name in header[1:]}
    numbers: list[int] = []
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise InputError(f"{path}, line {number}: {len(row)} fields but the header has {len(header)}"
                             + ("; a value with a delimiter inside needs quotes" if len(row) > len(header) else ""))
        paths.append(row[0].strip())
        numbers.append(number)
        for name, value in zip(header[1:], row[1:]):
            columns[name].append(value.strip())
    if not paths:
        raise InputError(f"{path}: the annotation file has a header but no rows")
    return paths, columns, numbers, header[0]


def _check_relative(path: Path, image: str, where: str = "") -> str:
    """Check that ``image`` (a path from the annotation file) stays inside the image folder.

    Returns the path in normal form (forward slashes, no '.' parts) to compare rows by; raises
    InputError for empty, absolute, URL, home-relative or '..' paths and control characters.
    """
    at = f"{path}, {where}" if where else f"{path}"
    shown = image if len(image) <= 80 else image[:77] + "..."
    if not image.strip():
        raise InputError(f"{at}: the image path is empty; every row needs the image's path relative to --images")
    if any(ord(c) < 32 or ord(c) == 127 for c in image):
        raise InputError(f"{at}: image path {shown!r} contains a control character; fix the file name in the row")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", image):
        raise InputError(f"{at}: image path {shown!r} is a URL; reportgen reads local files only: "
                         "download the images and give paths relative to --images")
    slashed = image.replace("\\", "/")
    if slashed.startswith("/") or re.match(r"[A-Za-z]:", slashed):
        raise InputError(f"{at}: image path {shown!r} is absolute; paths must be relative to --images")
    if slashed == "~" or slashed.startswith("~/"):
        raise InputError(f"{at}: image path {shown!r} starts with '~' (the home folder); "
                         "paths must be relative to --images")
    pure = PurePosixPath(slashed)
    if ".." in pure.parts:
        raise InputError(f"{at}: image path {shown!r} leaves the image folder ('..'); "
                         "paths must stay inside --images")
    if not pure.parts:
        raise InputError(f"{at}: image path {shown!r} names the image folder itself, not an image")
    return str(pure)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, say
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def read_dataset(images: Path, annotations: Path,
                 needed_columns: Sequence[str] | Mapping[str, str] = (), pairs: bool = False) -> Dataset:
    """Parse the annotation file, check the columns asked for exist, and find missing image files.

    ``needed_columns``: columns the run uses; each must exist. Give a mapping column -> option
    (``{"task": "--target", "Male": "--protected"}``) to name the option in the error message.
    Rows whose image file is missing are kept in ``missing`` (reported, not fatal) unless all are.
    Paths written with backslashes (made on Windows) are read with forward slashes.
    ``pairs``: the file is a pair file (MAI-BIAS ImagePairs): a CSV whose first two columns are two images'
    paths (``img1,img2,is_same,race``); the second goes to ``partners``. An image may be in many pairs.
    """
    images, annotations = Path(images), Path(annotations)
    if not _is_dir(images):
        what = "not a folder" if _is_file(images) else "folder not found"
        raise InputError(f"--images {images}: {what}; give the folder the annotation paths are relative to")
    if not os.access(images, os.R_OK | os.X_OK):
        raise InputError(f"--images {images}: cannot open the folder (permission denied); check its permissions")
    require_file(annotations, "--annotations")
    text = _read_text(annotations)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"--annotations {annotations}: the file is empty")
    if _is_celeba(lines):
        kind, (paths, columns, numbers, path_column) = "celeba", _read_celeba(annotations, lines)
    else:
        kind, (paths, columns, numbers, path_column) = "csv", _read_csv(annotations, text, pairs)
    if not paths:
        raise InputError(f"--annotations {annotations}: the file lists no images")
    partners = partner_column = None
    if pairs:
        if kind == "celeba":
            raise InputError(f"--pairs: {annotations} is in CelebA's list_attr layout; a pair file is a CSV whose "
                             "first two columns are the two images' paths, e.g. img1,img2,is_same,race")
        if not columns:
            raise InputError(f"--pairs: {annotations} has one column; a pair file's first two columns are the two "
                             "images' paths, e.g. img1,img2,is_same,race")
        partner_column = next(iter(columns))
        partners = columns.pop(partner_column)

    seen: dict = {}
    for index, image in enumerate(paths):
        first = _check_relative(annotations, image, f"line {numbers[index]}")
        second = (_check_relative(annotations, partners[index], f"line {numbers[index]}")
                  if partners is not None else None)
        key = first if second is None else (first, second)
        if key in seen:
            what = f"the pair {image!r}, {partners[index]!r}" if partners is not None else f"image {image!r}"
            raise InputError(f"{annotations}: {what} appears twice (lines {numbers[seen[key]]} and "
                             f"{numbers[index]}); remove the duplicate row")
        seen[key] = index
        if "\\" in image and not _is_file(images / image):
            paths[index] = first  # made on Windows: folder\file.jpg
        if partners is not None and second is not None and "\\" in partners[index] \
                and not _is_file(images / partners[index]):
            partners[index] = second
    options = needed_columns if isinstance(needed_columns, Mapping) else {name: None for name in needed_columns}
    for name, option in options.items():
        if name not in columns:
            asked = f"{option} {name}: " if option else ""
            if name in (path_column, partner_column):
                which = "the image path column" if name == path_column else "the partner image column"
                raise InputError(f"{asked}{annotations}: {name!r} is {which}, not a label column; "
                                 f"{_suggest(name, list(columns))}")
            raise InputError(f"{asked}{annotations} has no column {name!r}; {_suggest(name, list(columns))}")
    files = paths + (partners or [])
    missing = list(dict.fromkeys(image for image in files if not _is_file(images / image)))
    if missing and len(missing) == len(set(files)):
        raise InputError(f"--images {images}: none of the {len(set(files))} images in {annotations.name} exist there "
                         f"(first: {paths[0]!r}); is --images the right folder?" + _path_column_hint(images, columns))
    return Dataset(images, annotations, kind, paths, columns, missing, numbers, partners, partner_column)


def _path_column_hint(images: Path, columns: dict[str, list[str]]) -> str:
    """When another column holds existing files (a pandas index saved as column one, say): say so."""
    for name, values in columns.items():
        if values and values[0] and _is_file(images / values[0].replace("\\", "/")):
            return (f" Column {name!r} holds image paths: the image path must be the first column "
                    "(saved from pandas? use index=False)")
    return ""


def label_values(dataset: Dataset, column: str) -> list[int | None]:
    """A label column as integers (class indices 0, 1, ...); an empty cell is None (unlabelled).

    Whole numbers are read as they are; true/false as 1/0; a column holding only -1 and 1
    (CelebA's no/yes) as 0/1. Anything else raises InputError naming the line.
    """
    raw_values = dataset.columns[column]
    values: list[int | None] = []
    for index, raw in enumerate(raw_values):
        text = raw.strip()
        at = f"{dataset.annotations}, {dataset.where(index)}: column {column!r} has {text[:40]!r}"
        if text == "":
            values.append(None)
            continue
        if text.lower() in ("true", "false"):
            values.append(int(text.lower() == "true"))
            continue
        if re.fullmatch(r"[-+]?\d+(\.\d*)?(\s*[,;|/ ]\s*[-+]?\d+(\.\d*)?)+", text):
            raise InputError(f"{at}, several values; reportgen explains one class per image: "
                             "give one class number per row")
        try:
            number = float(text)
        except ValueError:
            raise InputError(f"{at}; labels must be class numbers (0, 1, ...)") from None
        if not math.isfinite(number) or number != int(number):
            raise InputError(f"{at}; labels must be whole class numbers (0, 1, ...)")
        values.append(int(number))
    present = {v for v in values if v is not None}
    if present and min(present) < 0:
        if present <= {-1, 1}:
            return [None if v is None else int(v == 1) for v in values]
        index = next(i for i, v in enumerate(values) if v is not None and v < 0)
        raise InputError(f"{dataset.annotations}, {dataset.where(index)}: column {column!r} has {values[index]}; "
                         "labels must be class numbers 0, 1, ... (a column of only -1 and 1 reads as 0 and 1)")
    return values
