"""The error types that tell the user what is wrong with their input, and how to fix it.

- ``InputError``: the run's inputs (files, options) are wrong; the run stops before heavy work.
- ``ImageError``: one image cannot be analysed; it is listed under the results' failures and the
  run goes on.
"""

from __future__ import annotations

import os
from pathlib import Path


def one_line(text: str) -> str:
    """``text`` with line breaks and runs of whitespace collapsed: messages are one line."""
    return " ".join(str(text).split())


class InputError(Exception):
    """A problem with the run's inputs, explained in one line.

    The CLI prints the message without a traceback and exits non-zero. The message names the file
    or option and says what to change, e.g. "--layer 'layr4' not found in model.py; did you mean 'layer4'?".
    Line breaks in the message (from a user's exception, say) are folded into spaces.
    """

    def __init__(self, message: str = ""):
        super().__init__(one_line(message))


class ImageError(Exception):
    """One image cannot be analysed (unreadable, not an image, too large...). The message is the
    reason listed for that image in the results' failures; it never stops the run."""

    def __init__(self, reason: str):
        super().__init__(one_line(reason))


def require_file(path: Path, option: str) -> Path:
    """``path`` as a Path if it is a readable file; else InputError naming ``option`` and the fix."""
    path = Path(path)
    try:
        exists, folder = path.exists(), path.is_dir()
    except (OSError, ValueError) as error:  # a name too long, a NUL byte...
        raise InputError(f"{option} {path}: not a usable file name ({error})") from None
    if not exists:
        raise InputError(f"{option} {path}: file not found")
    if folder:
        raise InputError(f"{option} {path}: is a folder; give the file inside it")
    if not path.is_file():
        raise InputError(f"{option} {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{option} {path}: cannot read it (permission denied); check the file's permissions")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InputError(f"{option} {path}: cannot read it ({error.strerror or error}); "
                         "check the file's permissions") from None
    return path
