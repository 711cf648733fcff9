"""What a shared report says about the machine it was made on: by default, no folder names.

Reports travel (attached to audits, sent by e-mail), and an absolute path such as
``/home/alice/projects/hospital-x/weights.pt`` reveals a user name and a folder layout. So by default the
results (and the report and results.json made from them) name every input file by its name alone —
the manifest's sha256 identifies it — and every image by its path relative to the image folder.
``full_paths=True`` (``--full-paths``) keeps the paths as given.

``shareable(results, context)`` is the last step of finishing a run (``RunState.results``): the run's
own record (its context, its checkpoints) keeps the full paths, which resuming and merging compare
through the run's fingerprint (a hash of them, never shown).
"""

from __future__ import annotations

import ntpath
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, overload

from ..inputs.config import PATH_OPTIONS
from . import schema

if TYPE_CHECKING:  # state.py imports this module
    from .state import RunContext

RUN_PATHS = ("images", "annotations", "model_file", "weights", "reference")
# Sections that hold text written by reportgen or by the user's inputs. The others (regions, pictures,
# maps) hold numbers, region ids and base64 data, where a '/' is not a path separator.
TextSection = Literal["run", "config", "manifest", "notes", "failures", "image_notes", "findings"]
TEXT_SECTIONS: tuple[TextSection, ...] = ("run", "config", "manifest", "notes", "failures", "image_notes", "findings")
# An absolute path left in a message (a library's error text, say): POSIX with at least one folder, or
# Windows, up to a space or a quote; not inside a word, a number ("I/N") or a URL.
ABSOLUTE = re.compile(r"(?<![\w.:/\\~-])(?:/[^\s'\"<>|/]+/[^\s'\"<>|]*|[A-Za-z]:\\[^\s'\"<>|]+)")


def machine_folders() -> dict[str, str]:
    """The folders that say whose machine this is (kept in the run's context, so that merging the parts
    of a run on another machine still removes them)."""
    return {"cwd": os.getcwd(), "home": str(Path.home()), "temp": tempfile.gettempdir()}


@overload
def file_name(path: str) -> str: ...
@overload
def file_name(path: None) -> None: ...
def file_name(path: str | None) -> str | None:
    """The last component of a path (``/a/b/weights.pt`` -> ``weights.pt``; ``C:\\x\\y`` -> ``y``)."""
    if not isinstance(path, str) or not path:
        return path
    name = ntpath.basename(PurePosixPath(path.replace("\\", "/")).as_posix().rstrip("/"))
    return PurePosixPath(name).name or path


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text


def _replacements(context: RunContext) -> list[tuple[str, str]]:
    """(prefix, replacement) pairs, longest prefix first: the image folder's contents become paths relative
    to it, input files their names, the home folder '~' and the current and temporary folders nothing."""
    config, run = context.get("config") or {}, context.get("run")
    pairs: dict[str, str] = {}

    def spellings(path: str) -> Iterator[str]:
        yield path
        yield os.path.abspath(path)
        try:
            yield os.path.realpath(path)
        except (OSError, ValueError):
            pass

    for root in {config.get("images"), run.get("images") if run else None} - {None}:
        for spelling in spellings(str(root)):
            pairs[spelling.rstrip("/\\") + os.sep] = ""
            pairs[spelling.rstrip("/\\")] = file_name(spelling)
    for name in PATH_OPTIONS:
        value = config.get(name)
        if name == "images" or not value:
            continue
        for spelling in spellings(str(value)):
            pairs[spelling] = file_name(spelling)
            folder = os.path.dirname(spelling)
            if len(folder) > 1:
                pairs[folder + os.sep] = ""
    folders = {**machine_folders(), **(context.get("machine") or {})}
    for key, replacement in (("temp", ""), ("cwd", ""), ("home", "~" + os.sep)):
        folder = str(folders.get(key) or "").rstrip("/\\")
        if len(folder) > 1:
            pairs[folder + os.sep] = replacement
            pairs.setdefault(folder, replacement.rstrip(os.sep) or ".")
    return sorted(pairs.items(), key=lambda pair: -len(pair[0]))


def _scrub(text: str, pairs: list[tuple[str, str]]) -> str:
    for prefix, replacement in pairs:
        if prefix in text:
            text = text.replace(prefix, replacement)
    # Whatever absolute path is left (a library's own file in an error message, say): its name only.
    return ABSOLUTE.sub(lambda match: file_name(match.group(0)), text)


def _walk(value: Any, pairs: list[tuple[str, str]]) -> Any:
    """A copy of a JSON value (a results section) with every string scrubbed (``_scrub``)."""
    if isinstance(value, str):
        return _scrub(value, pairs)
    if isinstance(value, dict):
        return {key: _walk(item, pairs) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, pairs) for item in value]
    return value


def _names_only(section: object, fields: Iterable[str]) -> None:
    """Cut the ``fields`` of ``section`` (a JSON object of the results, or None) that hold a path to the path's
    last component, in place."""
    if not isinstance(section, dict):
        return
    for name in fields:
        if isinstance(section.get(name), str) and _looks_like_path(section[name]):
            section[name] = file_name(section[name])


def shareable(results: schema.ResultsDict, context: RunContext) -> schema.ResultsDict:
    """``results`` with no folder of the author's machine in it, unless the run asked for full paths.

    Path options and the manifest's input paths become file names; image paths stay relative to the
    image folder; any other text (notes, failure reasons, the transform's description) loses the image
    folder, the input files' folders, the current, temporary and home folders, and any other absolute
    path but its last component."""
    if (context.get("config") or {}).get("full_paths"):
        return results
    pairs = _replacements(context)
    shared = results.copy()
    for key in TEXT_SECTIONS:  # fresh copies: the cuts below do not touch the caller's dicts
        if key in shared:
            shared[key] = _walk(shared[key], pairs)
    _names_only(shared.get("run"), RUN_PATHS)
    _names_only(shared.get("config"), PATH_OPTIONS)
    manifest = shared.get("manifest")
    if manifest:
        _names_only(manifest.get("options"), PATH_OPTIONS)
        for entry in (manifest.get("inputs") or {}).values():
            _names_only(entry, ("path",))
    return shared
