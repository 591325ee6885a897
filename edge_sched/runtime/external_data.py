"""Check every file a graph will make the engine read, before the engine sees the graph.

ONNX tensors may keep their bytes in "external data" files named by a ``location`` string in the
graph, which comes from whoever made the folder. ONNX Runtime before 1.24 and older OpenVINO releases
read whatever it names (``../../etc/passwd``, an absolute path, a symlink out of the folder) and feed it
to the graph as weights. ``check_onnx_external_data`` applies onnx's own checker rules
(``onnx/checker.cc``, ``resolve_external_data_location``) to every location in the file:

- not empty, not absolute, no ``..`` in the normalised path, not an in-memory marker (``#...``,
  ``*/_ORT_MEM_ADDR_/*``, which engines read as a memory address);
- the file is not a symlink, lies inside the graph's folder after resolving every symlink on the way
  (canonical containment), is a regular file with one hard link;
- ``offset`` / ``length`` are non-negative integers within the file.

One relaxation, for the Hugging Face cache: there every file of a snapshot is a symlink into the repo's
``blobs/`` folder, so inside ``.../models--owner--name/snapshots/<commit>/`` a symlink is accepted when
it resolves inside ``.../models--owner--name/``.

``check_openvino_weights`` applies the containment rules to an IR's ``.bin`` (and the graph file itself
is checked by ``check_graph_file``). The ONNX file is walked as protobuf wire format (no ``onnx``
package on a device), through every place a tensor can sit: initializers, sparse initializers, node
attributes (also of subgraphs), functions and training graphs; tensor bytes are skipped, not read.
"""

from __future__ import annotations

import mmap
import os
import posixpath
import stat
from pathlib import Path

from .base import EngineError

# protobuf field numbers (onnx.proto): the messages that can hold a TensorProto, and where
_MODEL = {7: "graph", 20: "training", 25: "function"}
_GRAPH = {1: "node", 5: "tensor", 15: "sparse"}
_NODE = {5: "attribute"}
_ATTRIBUTE = {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"}
_FUNCTION = {7: "node", 11: "attribute"}
_TRAINING = {1: "graph", 2: "graph"}
_SPARSE = {1: "tensor", 2: "tensor"}
_TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION_KIND = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MESSAGES = {"graph": _GRAPH, "node": _NODE, "attribute": _ATTRIBUTE, "function": _FUNCTION,
             "training": _TRAINING, "sparse": _SPARSE}
_MAX_DEPTH = 64  # nested subgraphs deeper than this are not a real model


class ExternalDataError(EngineError):
    """A graph names a file outside its folder (or one that is not a plain file of the folder)."""


# ---------------------------------------------------------------------------- protobuf wire format
class _Malformed(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value start, value end) of one message's fields; varints' value is
    returned as (number, 0, value, None)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, 0, value, None
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed
            yield number, 2, pos, pos + length
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4) are not used by onnx.proto
            raise _Malformed
        if pos > end:
            raise _Malformed


def _text(buf, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", "replace")


def _tensor_entries(buf, start: int, end: int) -> tuple[str, bool, dict[str, str]]:
    name, external, entries = "", False, {}
    for number, wire, a, b in _fields(buf, start, end):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(buf, a, b)
        elif number == _TENSOR_LOCATION_KIND and wire == 0:
            external = a == _EXTERNAL
        elif number == _TENSOR_EXTERNAL and wire == 2:
            key = value = ""
            for n, w, x, y in _fields(buf, a, b):
                if w == 2 and n == 1:
                    key = _text(buf, x, y)
                elif w == 2 and n == 2:
                    value = _text(buf, x, y)
            entries.setdefault(key, value)
    return name, external, entries


def external_tensors(buf, start: int = 0, end: int | None = None, kind: dict = _MODEL, depth: int = 0):
    """(tensor name, {external_data key: value}) of every tensor that keeps its data in a file."""
    end = len(buf) if end is None else end
    if depth > _MAX_DEPTH:
        raise _Malformed
    for number, wire, a, b in _fields(buf, start, end):
        what = kind.get(number)
        if what is None or wire != 2:
            continue
        if what == "tensor":
            name, external, entries = _tensor_entries(buf, a, b)
            if external or "location" in entries:
                yield name, entries
        else:
            yield from external_tensors(buf, a, b, _MESSAGES[what], depth + 1)


# ---------------------------------------------------------------------------- path rules
def model_root(folder: Path) -> Path:
    """Where a graph in ``folder`` may read from: the folder itself, or for a Hugging Face cache snapshot
    (``.../models--owner--name/snapshots/<commit>/...``) the repo's cache folder (its ``blobs/``)."""
    folder = Path(os.path.abspath(folder))
    for parent in [folder, *folder.parents]:
        if parent.parent.name == "snapshots" and parent.parent.parent.name.startswith(("models--", "datasets--")):
            return parent.parent.parent
    return folder


def _canonical(path: Path) -> str:
    return os.path.realpath(path)


def _contained(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_location(folder: Path, location: str, tensor: str, graph: Path) -> Path:
    """onnx's rules for one external-data ``location`` of ``graph`` (whose folder is ``folder``)."""
    where = f"{graph}: tensor {tensor!r} keeps its data in {location!r}"
    if not location:
        raise ExternalDataError(f"{graph}: tensor {tensor!r} has an external-data location that is empty")
    if location.startswith("#") or "_ORT_MEM_ADDR_" in location:
        raise ExternalDataError(f"{where}, an in-memory marker, not a file: refused (a folder's graph reads files)")
    if "\0" in location:
        raise ExternalDataError(f"{where}, which holds a NUL character: refused")
    if location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":") or os.path.isabs(location):
        raise ExternalDataError(f"{where}, an absolute path: external data must be a file inside {folder}")
    normal = posixpath.normpath(location.replace("\\", "/"))
    if ".." in normal:
        raise ExternalDataError(f"{where}, which points outside {folder} ('..'): refused")
    path = folder / normal
    if path.is_symlink():
        root = model_root(folder)
        if root == Path(os.path.abspath(folder)) or not _contained(_canonical(path), _canonical(root)):
            raise ExternalDataError(f"{where}, a symlink to {os.path.realpath(path)}: external data must be a "
                                    f"plain file inside {folder}")
    else:
        _check_contained(path, model_root(folder), where)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ExternalDataError(f"{where}, which does not exist in {folder}") from None
    except OSError as e:
        raise ExternalDataError(f"{where}, which cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ExternalDataError(f"{where}, which is not a regular file")
    if st.st_nlink > 1 and not path.is_symlink():
        raise ExternalDataError(f"{where}, a file with {st.st_nlink} hard links (onnx refuses hard-linked external "
                                "data: it can be any file of this disk); copy it to give it one")
    return path


def _check_contained(path: Path, root: Path, where: str) -> None:
    real, base = _canonical(path), _canonical(root)
    if not _contained(real, base):
        raise ExternalDataError(f"{where}, which resolves to {real}, outside {root}: refused")


def _check_range(entries: dict, size: int, where: str) -> None:
    numbers = {}
    for key in ("offset", "length"):
        if key in entries:
            text = entries[key]
            if not text.isdigit():
                raise ExternalDataError(f"{where}: {key} {text!r} is not a non-negative integer")
            numbers[key] = int(text)
    offset, length = numbers.get("offset", 0), numbers.get("length", 0)
    if offset + length > size:
        raise ExternalDataError(f"{where}: bytes {offset}..{offset + length} are past the end of the file "
                                f"({size} bytes)")


def check_graph_file(path: Path, what: str = "graph") -> None:
    """The graph file itself: a regular file inside its folder (symlinks only within the model's root)."""
    path = Path(path)
    folder = path.parent
    if path.is_symlink():
        if not os.path.exists(path):
            raise ExternalDataError(f"{path}: a broken symlink (to {os.readlink(path)}); the {what} is missing")
        root = model_root(folder)
        if not _contained(_canonical(path), _canonical(root)):
            raise ExternalDataError(f"{path}: a symlink to {os.path.realpath(path)}, outside the model folder "
                                    f"{root}: refused")
    if path.exists() and not path.is_file():
        raise ExternalDataError(f"{path}: the {what} is not a regular file")


def check_onnx_external_data(path: Path) -> int:
    """Check every external-data reference of the ONNX file ``path``; returns how many there are."""
    path = Path(path)
    check_graph_file(path)
    folder = path.parent
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return 0
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    tensors = list(external_tensors(view))
                finally:
                    view.release()
    except _Malformed:
        raise ExternalDataError(f"{path}: not a valid ONNX file (its protobuf structure is broken)") from None
    except OSError as e:
        raise ExternalDataError(f"{path}: cannot be read ({e.strerror or e})") from None
    for tensor, entries in tensors:
        data = check_location(folder, entries.get("location", ""), tensor, path)
        _check_range(entries, os.stat(data).st_size, f"{path}: tensor {tensor!r} ({entries.get('location')})")
    return len(tensors)


_MODEL_METADATA = 14  # ModelProto.metadata_props: StringStringEntryProto {1: key, 2: value}


def model_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's ``metadata_props`` (a top-level scan: the graph is skipped, not parsed); {} for a file
    that cannot be read (the engine then says what is wrong with it)."""
    props = {}
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return props
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    for number, wire, a, b in _fields(view, 0, len(view)):
                        if number == _MODEL_METADATA and wire == 2:
                            entry = {n: _text(view, x, y) for n, w, x, y in _fields(view, a, b) if w == 2}
                            props[entry.get(1, "")] = entry.get(2, "")
                finally:
                    view.release()
    except (_Malformed, OSError):
        return {}
    return props


def check_openvino_weights(xml: Path) -> None:
    """An IR's graph and ``.bin``: regular files inside the model folder (HF cache symlinks allowed)."""
    xml = Path(xml)
    check_graph_file(xml)
    weights = xml.with_suffix(".bin")
    if weights.is_symlink() or weights.exists():
        check_graph_file(weights, "weights file")
        where = f"{xml}: its weights {weights.name}"
        if not weights.is_symlink():
            _check_contained(weights, model_root(xml.parent), where)
