"""export_pipeline: a diffusers Stable Diffusion pipeline -> an ONNX or OpenVINO folder, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Callable

from .errors import ExportError, ValidationError
from .scheduler import convert_scheduler
from .source import resolve_source

FORMATS = ("onnx", "openvino")
DTYPES = ("fp32", "fp16")
MANIFEST = "edge_sched.json"
MANIFEST_VERSION = 1
TOKENIZER_CHECK_PROMPTS = ("a photo of a cat", "The Dog, and the CAT!", "", "x" * 200)
_VERSION_PACKAGES = ("edge-sched", "torch", "diffusers", "transformers", "optimum", "optimum-onnx",
                     "optimum-intel", "onnx", "onnxruntime", "openvino", "huggingface_hub", "tokenizers")


def _stderr(message: str) -> None:
    print(f"edge-sched export: {message}", file=sys.stderr, flush=True)


def export_pipeline(
    source: str | os.PathLike,
    output: str | os.PathLike,
    format: str = "onnx",
    dtype: str = "fp32",
    scheduler: str | None = None,
    scheduler_overrides: dict | None = None,
    overwrite: bool = False,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    validate: bool = True,
    progress: Callable[[str], None] | None = _stderr,
) -> dict:
    """Export a Stable Diffusion 1.x/2.x text-to-image pipeline (local diffusers folder or Hub repo id)
    to ``output`` in optimum's folder layout, plus a fast tokenizer, the converted scheduler and the
    ``edge_sched.json`` manifest. Returns the manifest.

    Nothing is left half-written: everything is built in a temporary folder next to ``output`` and
    renamed at the end; an existing ``output`` is refused unless ``overwrite``; on any error (also a
    failed validation, or Ctrl-C) ``output`` is as it was before.
    """
    say = progress or (lambda message: None)
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    from .backends import BACKENDS

    backend = BACKENDS[format](dtype)
    output = Path(output).expanduser().absolute()
    _check_output(output, overwrite)
    overrides = dict(scheduler_overrides or {})

    say(f"source {source}")
    resolved = resolve_source(
        source, revision=revision, token=token, cache_dir=cache_dir,
        local_files_only=local_files_only, allow_pickle=allow_pickle,
    )
    # the scheduler first: a bad name or override key should fail before minutes of export
    sched_config = json.loads((resolved.folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    our_scheduler = convert_scheduler(sched_config, scheduler, **overrides)

    with _atomic_folder(output, overwrite) as tmp:
        manifest = _export_into(tmp, resolved, backend, dtype, our_scheduler, validate, say)
    say(f"done: {output}")
    return manifest


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            raise ExportError(f"{output}: exists and is not a folder; refusing to replace it")
        if not overwrite:
            raise ExportError(f"{output}: already exists; pass overwrite=True (--overwrite) to replace it")


@contextmanager
def _atomic_folder(output: Path, overwrite: bool):
    """Yield a fresh temporary folder next to ``output``; on success swap it in, on any error remove it."""
    created = []
    parent = output.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield tmp
        _check_output(output, overwrite)  # again: something may have appeared meanwhile
        if output.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            os.rmdir(backup)
            os.rename(output, backup)
            try:
                os.rename(tmp, output)
            except BaseException:
                os.rename(backup, output)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # innermost first; only folders this export created
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _export_into(tmp: Path, resolved, backend, dtype: str, our_scheduler, validate: bool, say) -> dict:
    import torch
    from diffusers import StableDiffusionPipeline

    t0 = time.perf_counter()
    say(f"loading {resolved.pipeline_class} from {resolved.folder}")
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            resolved.folder,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            torch_dtype=torch.float32,
            use_safetensors=None,  # safetensors when present; pickles were refused before unless allowed
            local_files_only=True,
            low_cpu_mem_usage=False,
        )
    except Exception as e:
        raise ExportError(f"{resolved.source_id}: diffusers cannot load the pipeline: {e}") from e
    pipe.set_progress_bar_config(disable=True)

    submodels = backend.submodels(pipe)
    graphs: dict[str, dict] = {}
    n = len(submodels)
    for i, (name, (model, config)) in enumerate(submodels.items(), 1):
        start = time.perf_counter()
        say(f"[{i}/{n}] {name}: exporting to {backend.name} ({dtype})")
        folder = tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(model, "save_config"):
            model.save_config(folder)
        elif hasattr(model, "config") and hasattr(model.config, "save_pretrained"):
            model.config.save_pretrained(folder)
        path = folder / backend.graph_name
        try:
            backend.export_component(name, model, config, path)
        except Exception as e:
            raise ExportError(f"{name}: {backend.name} export failed: {type(e).__name__}: {e}") from e
        graphs[name] = {"file": f"{name}/{backend.graph_name}", **backend.describe(path)}
        say(f"[{i}/{n}] {name}: exported in {time.perf_counter() - start:.1f} s")

    say("tokenizer: writing the fast tokenizer (tokenizer.json)")
    _save_fast_tokenizer(resolved.folder / "tokenizer", tmp / "tokenizer", pipe.tokenizer)

    say(f"scheduler: {type(our_scheduler).__name__}")
    our_scheduler.save_pretrained(tmp / "scheduler")
    pipe.save_config(tmp)  # model_index.json, as optimum writes it
    _fix_model_index(tmp / "model_index.json", type(our_scheduler).__name__)

    results = {}
    if validate:
        results = _validate(tmp, pipe, graphs, backend, dtype, say)

    manifest = {
        "edge_sched_manifest": MANIFEST_VERSION,
        "format": backend.name,
        "dtype": dtype,
        "pipeline": resolved.pipeline_class,
        "prediction_type": pipe.scheduler.config.get("prediction_type", "epsilon"),
        "source": {"id": resolved.source_id, "kind": resolved.kind, "revision": resolved.revision},
        "exporter": _versions(),
        "components": graphs,
        "tokenizer": "tokenizer/tokenizer.json",
        "scheduler": {"class": type(our_scheduler).__name__, "config": "scheduler/scheduler_config.json"},
        "validation": results,
        "export_seconds": round(time.perf_counter() - t0, 2),
        "files": file_hashes(tmp),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _save_fast_tokenizer(src: Path, dst: Path, slow) -> None:
    """Write tokenizer.json (plus the usual files) and check that the file alone, read with the
    `tokenizers` package as the device will, encodes like the pipeline's own tokenizer."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    fast = AutoTokenizer.from_pretrained(src, use_fast=True, local_files_only=True)
    if not fast.is_fast:
        raise ExportError(f"{src}: no fast tokenizer can be made from this tokenizer ({type(fast).__name__})")
    fast.save_pretrained(dst)
    path = dst / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{dst}: the fast tokenizer did not write tokenizer.json")
    device_side = Tokenizer.from_file(str(path))
    for prompt in TOKENIZER_CHECK_PROMPTS:
        if device_side.encode(prompt).ids != slow(prompt).input_ids:
            raise ExportError(f"{path}: encodes {prompt!r} differently from the pipeline's tokenizer")


def _fix_model_index(path: Path, scheduler_class: str) -> None:
    index = json.loads(path.read_text(encoding="utf-8"))
    index["scheduler"] = ["diffusers", scheduler_class]
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _validate(tmp: Path, pipe, graphs: dict, backend, dtype: str, say) -> dict:
    from .validate import THRESHOLDS, compare, make_inputs, torch_reference

    threshold = THRESHOLDS[dtype]
    results = {}
    for name, graph in graphs.items():
        inputs = make_inputs(name, pipe, graph)
        try:
            graph_out = backend.runner(tmp / graph["file"])(inputs)
        except Exception as e:
            raise ValidationError(f"{name}: the exported graph does not run: {type(e).__name__}: {e}") from e
        numbers = compare(torch_reference(name, pipe, inputs), graph_out)
        numbers["threshold_rel"] = threshold
        results[name] = numbers
        say(f"validate {name}: max abs {numbers['max_abs']:.3g}, max rel {numbers['max_rel']:.3g} (limit {threshold:g})")
        if not numbers["max_rel"] <= threshold:
            raise ValidationError(
                f"validation failed for {name}: max relative difference {numbers['max_rel']:.3g} > {threshold:g} "
                f"({dtype}), max abs difference {numbers['max_abs']:.3g}; no output written",
                results,
            )
    return results


def _versions() -> dict:
    out = {}
    for package in _VERSION_PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(folder: Path) -> dict:
    """sha256 of every file under ``folder`` (posix relative paths), the manifest itself excepted."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST
    }


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Files whose sha256 differs from the manifest, or that are missing / not listed."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    actual = file_hashes(folder)
    recorded = manifest["files"]
    return sorted(k for k in set(actual) | set(recorded) if actual.get(k) != recorded.get(k))
