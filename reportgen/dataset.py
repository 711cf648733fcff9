"""Read the user's annotation file into dataset rows: a relative image path plus label columns.

Two formats work unchanged (the MAI-BIAS conventions):
  - CSV with a header whose first column is the relative image path (e.g. ``img,task,protected``);
  - CelebA ``list_attr_celeba.txt``: line 1 the row count, line 2 the attribute names, then
    ``000001.jpg -1 1 ...`` rows, whitespace separated, -1/1 meaning no/yes (read as 0/1).
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import InputError


@dataclass
class Dataset:
    """Rows of an annotation file: ``paths[i]`` is relative to ``root``; ``columns[name][i]`` its value."""

    root: Path
    annotations: Path
    format: str  # "csv" or "celeba"
    paths: list[str]
    columns: dict[str, list[str]]
    missing: list[str] = field(default_factory=list)  # rows whose image file does not exist

    def __len__(self) -> int:
        return len(self.paths)


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"columns are: {shown}"


def _is_celeba(lines: list[str]) -> bool:
    return len(lines) >= 2 and lines[0].strip().isdigit()


def _read_celeba(path: Path, lines: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    names = lines[1].split()
    if not names:
        raise InputError(f"{path}: line 2 should list the attribute names (CelebA list_attr format)")
    paths, columns = [], {name: [] for name in names}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        # Some CelebA copies have the file name plus exactly one value per attribute; anything else is broken.
        if len(fields) != len(names) + 1:
            raise InputError(f"{path}, line {number}: expected a file name and {len(names)} values, "
                             f"found {len(fields)} fields")
        paths.append(fields[0])
        for name, value in zip(names, fields[1:]):
            columns[name].append("1" if value == "1" else "0" if value in ("-1", "0") else value)
    declared = int(lines[0].strip())
    if declared != len(paths):
        raise InputError(f"{path}: line 1 says {declared} rows but the file has {len(paths)}; "
                         "is the file truncated?")
    return paths, columns


def _read_csv(path: Path, text: str) -> tuple[list[str], dict[str, list[str]]]:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(f"{path}: the annotation file has no rows")
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise InputError(f"{path}: expected a header line like 'img,task,protected' "
                         "(image path first, then label columns)")
    paths, columns = [], {name: [] for name in header[1:]}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{path}, line {number}: {len(row)} fields but the header has {len(header)}")
        paths.append(row[0].strip())
        for name, value in zip(header[1:], row[1:]):
            columns[name].append(value.strip())
    if not paths:
        raise InputError(f"{path}: the annotation file has a header but no rows")
    return paths, columns


def _check_relative(path: Path, image: str) -> None:
    pure = PurePosixPath(image.replace("\\", "/"))
    if pure.is_absolute() or image.startswith(("/", "\\")) or (len(image) > 1 and image[1] == ":"):
        raise InputError(f"{path}: image path {image!r} is absolute; paths must be relative to --images")
    if ".." in pure.parts:
        raise InputError(f"{path}: image path {image!r} leaves the image folder ('..'); "
                         "paths must stay inside --images")


def read_dataset(images: Path, annotations: Path, needed_columns: list[str] = ()) -> Dataset:
    """Parse the annotation file, check the columns asked for exist, and find missing image files.

    ``needed_columns``: columns the run uses (``--target``, ``--protected``); each must exist.
    Rows whose image file is missing are kept in ``missing`` (reported, not fatal) unless all are.
    """
    images, annotations = Path(images), Path(annotations)
    if not images.is_dir():
        raise InputError(f"--images {images}: not a folder; give the folder the annotation paths are relative to")
    if not annotations.is_file():
        raise InputError(f"--annotations {annotations}: file not found")
    try:
        text = annotations.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"--annotations {annotations}: not a UTF-8 text file (expected CSV or CelebA list_attr)")
    except OSError as error:
        raise InputError(f"--annotations {annotations}: cannot read ({error.strerror})")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"--annotations {annotations}: the file is empty")
    if _is_celeba(lines):
        kind, (paths, columns) = "celeba", _read_celeba(annotations, lines)
    else:
        kind, (paths, columns) = "csv", _read_csv(annotations, text)

    seen: dict[str, int] = {}
    for index, image in enumerate(paths):
        _check_relative(annotations, image)
        if image in seen:
            raise InputError(f"{annotations}: image {image!r} appears twice (rows {seen[image] + 1} and "
                             f"{index + 1}); remove the duplicate row")
        seen[image] = index
    for name in needed_columns:
        if name not in columns:
            raise InputError(f"{annotations}: no column {name!r}; {_suggest(name, list(columns))}")
    missing = [image for image in paths if not (images / image).is_file()]
    if missing and len(missing) == len(paths):
        raise InputError(f"--images {images}: none of the {len(paths)} images in {annotations.name} exist there "
                         f"(first: {paths[0]!r}); is --images the right folder?")
    return Dataset(images, annotations, kind, paths, columns, missing)


def label_values(dataset: Dataset, column: str) -> list[int | None]:
    """A label column as integers (class indices); raises InputError for non-numeric labels."""
    values: list[int | None] = []
    for index, raw in enumerate(dataset.columns[column]):
        if raw == "":
            values.append(None)
            continue
        try:
            number = float(raw)
        except ValueError:
            raise InputError(f"{dataset.annotations}: column {column!r} row {index + 1} has {raw!r}; "
                             "labels must be class numbers (0, 1, ...)") from None
        if number != int(number):
            raise InputError(f"{dataset.annotations}: column {column!r} row {index + 1} has {raw!r}; "
                             "labels must be whole class numbers")
        values.append(int(number))
    return values
