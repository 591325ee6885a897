"""Which files of a Hub repository a pipeline needs: derived from the repository's file list, the
backend that will run it, and the files each ONNX graph references.

Three rounds of ``snapshot_download``, each with an exact allow-list: (1) the small files
(model_index.json, configs, tokenizers, the edge-sched manifest); (2) the graph of every component
for ONE backend (``openvino_model.xml`` + ``.bin`` for OpenVINO, ``model.onnx`` for onnxruntime,
the ``variant`` file first where the repository has it), so a repository holding both formats
downloads one; (3) for ONNX graphs, the external-data files the graph names (read from the graph's
protobuf: ``model.onnx_data``, ``weights.pb`` of older exports, any name). Offline (no file list from
the Hub), the cached snapshot is used as it is.
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: round 1: everything small a pipeline reads besides its graphs
METADATA_PATTERNS = ("*.json", "*/*.json", "*/*.txt", "*/*.model")
GRAPH_COMPONENTS_HINT = ("text_encoder", "text_encoder_2", "text_encoder_3", "unet", "transformer", "vae_encoder",
                         "vae_decoder")
IR_FILE, ONNX_FILE = "openvino_model.xml", "model.onnx"


def _variant_name(name: str, variant: str | None) -> str:
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}.{variant}.{suffix}"


def graph_files_for(files: list[str], backend: str, installed: list[str], variant: str | None = None,
                    components: tuple[str, ...] = GRAPH_COMPONENTS_HINT) -> tuple[str, list[str]]:
    """(chosen backend, the graph files to download) for a repository holding ``files`` (repo paths).
    ``backend``: "auto", "onnxruntime" or "openvino" (as choose_backend decides for local folders)."""
    present = set(files)
    folders = [c for c in components if any(f.startswith(c + "/") for f in files)]

    def pick(folder: str, name: str) -> str | None:
        for candidate in ([_variant_name(name, variant)] if variant else []) + [name]:
            if f"{folder}/{candidate}" in present:
                return f"{folder}/{candidate}"
        return None

    has_ir = bool(folders) and all(pick(c, IR_FILE) for c in folders)
    has_onnx = bool(folders) and all(pick(c, ONNX_FILE) for c in folders)
    if backend == "auto":
        order = [("openvino", has_ir), ("onnxruntime", has_onnx), ("openvino", has_onnx)]
        backend = next((b for b, ok in order if ok and b in installed), installed[0] if installed else "onnxruntime")
    wanted: list[str] = []
    for folder in folders:
        ir = pick(folder, IR_FILE) if backend == "openvino" else None
        if ir is not None:
            wanted += [ir, ir[:-len(".xml")] + ".bin"]
        elif (onnx := pick(folder, ONNX_FILE)) is not None:
            wanted.append(onnx)
    return backend, wanted


def onnx_external_data(path: Path) -> list[str]:
    """The external-data file names (relative to the graph's folder) that an ONNX graph references
    (runtime.external_data walks the protobuf; a broken file gives none here, the engine's check reports it)."""
    from ..runtime.external_data import external_tensors

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return sorted({entries["location"] for _, entries in external_tensors(view) if entries.get("location")})
            except Exception:
                return []
            finally:
                view.release()


# ---- downloading --------------------------------------------------------------------------------

def repo_files(repo_id: str, revision=None, token=None, local_files_only=False) -> list[str] | None:
    """The repository's file list from the Hub; None offline (then the cached snapshot is what there is)."""
    if local_files_only:
        return None
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return None
    try:
        return list(HfApi().list_repo_files(repo_id, revision=revision, token=token))
    except Exception as e:  # network down, or a repo the cache has but the Hub does not answer for
        logger.info("%s: no file list from the Hub (%s); using the cached snapshot", repo_id, e)
        return None


def download_pipeline(repo_id: str, *, backend: str = "auto", variant: str | None = None, revision=None, token=None,
                      cache_dir=None, local_files_only: bool = False, **hub) -> Path:
    """Download what the pipeline in ``repo_id`` needs for one backend (see module docstring)."""
    from huggingface_hub import snapshot_download

    from ..runtime import installed_backends

    kwargs = dict(revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only, **hub)
    folder = Path(snapshot_download(repo_id, allow_patterns=list(METADATA_PATTERNS), **kwargs))
    files = repo_files(repo_id, revision=revision, token=token, local_files_only=local_files_only)
    if files is None:
        return folder
    _, graphs = graph_files_for(files, backend, installed_backends(), variant)
    if graphs:
        folder = Path(snapshot_download(repo_id, allow_patterns=graphs, **kwargs))
    data = []
    for graph in graphs:
        if graph.endswith(".onnx") and (folder / graph).is_file():
            parent = graph.rsplit("/", 1)[0]
            data += [f"{parent}/{name}" for name in onnx_external_data(folder / graph)]
    missing = [d for d in data if d not in files]
    if missing:
        logger.warning("%s: the graphs reference %s, which the repository does not have", repo_id, ", ".join(missing))
    data = [d for d in data if d in files]
    if data:
        folder = Path(snapshot_download(repo_id, allow_patterns=data, **kwargs))
    return folder
