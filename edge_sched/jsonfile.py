"""Reading JSON files (configs, model indexes, manifests, tokenizer files) with one set of errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# what json.loads returns, by JSON's own names
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


class JSONFileError(ValueError):
    """A JSON file that is missing, unreadable, not UTF-8, not valid JSON or of the wrong top-level type."""


def read_json(path: str | os.PathLike, what: str | None = None, *, expect: type | None = dict,
              error: type[Exception] = JSONFileError) -> Any:
    """The parsed content of the JSON file ``path``.

    ``what`` says what the file is for ("the scheduler's config"); the message for a missing file
    gives it. ``expect``: the top-level type required (``None``: any). ``error``: the exception class
    raised (a caller's own, e.g. ``ConfigError``); every message starts with the file's path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path.parent}: no {path.name}" + (f" ({what})" if what else "")) from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if expect is not None and not isinstance(data, expect):
        raise error(f"{path}: expected {_JSON_NAMES.get(expect, expect.__name__)} at the top level, "
                    f"got {_JSON_NAMES[type(data)]}")
    return data
