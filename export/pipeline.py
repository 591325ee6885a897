"""export_pipeline: a diffusers pipeline (SD family, SDXL, UNet2DModel) -> an ONNX or OpenVINO folder, atomically.

The manifest keys are documented in the package docstring (``export/__init__.py``)."""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edge_sched.jsonfile import read_json

from edge_sched.interrupt import StopOnInterrupt

from .atomic import MANIFEST, PARTIAL_MARKER, atomic_folder, check_not_nested, check_replaceable
from .errors import ExportError, ValidationError
from .scheduler import convert_scheduler
from .source import resolve_source
from .static import plan_static_shapes, static_shapes_for

FORMATS = ("onnx", "openvino")
DTYPES = ("fp32", "fp16")
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
    config: str | os.PathLike | None = None,
    validate: bool = True,
    progress: Callable[[str], None] | None = _stderr,
    static_shapes: dict | None = None,
    weight_compression: str | None = None,
    fuse_attention: bool = False,
) -> dict:
    """Export a supported pipeline (``source.PIPELINES``; local diffusers folder or Hub repo id) to
    ``output`` in optimum's folder layout, plus fast tokenizers, the converted scheduler and the
    ``edge_sched.json`` manifest. Returns the manifest.

    ``static_shapes``: {"batch", "height", "width"} fixes every graph input (NPU-style devices);
    ``weight_compression``: "int8" | "int4" (OpenVINO, through nncf); "int8" for onnx: weight-only int8
    through DequantizeLinear (``export/onnx_rewrite.py``). ``fuse_attention`` (onnx, fp32): attention as
    ONNX Runtime's MultiHeadAttention, whose CPU kernel never holds the score matrix (the graphs then need
    ONNX Runtime). A full disk is reported as such.
    ``source`` may be a single-file ``.safetensors`` checkpoint with ``config`` a local diffusers folder.

    Nothing is left half-written: everything is built in a temporary folder next to ``output`` and
    renamed at the end; an existing ``output`` is refused unless ``overwrite``, and even then unless it
    is empty or an earlier export (``export/atomic.py``); an ``output`` that is the source, holds it or
    lies inside it is refused. On any error (also a failed validation, or Ctrl-C) ``output`` is as it
    was before. Called from the main thread, Ctrl-C stops the export within a few seconds even where a
    library swallows the KeyboardInterrupt (``edge_sched/interrupt.py``).
    """
    say = progress or (lambda message: None)
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    from .backends import BACKENDS

    backend = BACKENDS[format](dtype)
    if fuse_attention:
        backend.enable_attention_fusion()
    if weight_compression is not None:
        _check_compression(format, weight_compression)
    output = Path(output).expanduser().absolute()
    overrides = dict(scheduler_overrides or {})

    with StopOnInterrupt("edge-sched export", f"interrupted; {output} was left as it was") as guard:
        def checked_say(message: str) -> None:
            guard.check()  # an interrupt that a library swallowed stops the export at the next message
            say(message)

        manifest = _export_checked(output, overwrite, source, resolved_kwargs=dict(
            revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only,
            allow_pickle=allow_pickle, config=config,
        ), backend=backend, dtype=dtype, scheduler=scheduler, overrides=overrides, validate=validate,
            say=checked_say, static_shapes=static_shapes, weight_compression=weight_compression, guard=guard)
    say(f"done: {output}")
    return manifest


def _export_checked(output: Path, overwrite: bool, source, *, resolved_kwargs: dict, backend, dtype, scheduler,
                    overrides, validate, say, static_shapes, weight_compression, guard) -> dict:
    say(f"source {source}")
    # OUTPUT is not the source, does not hold it, is not inside it (a Hub source: its cache snapshot); a
    # local source is resolved first (cheap) so that this is said before "OUTPUT exists", a Hub one after
    # the OUTPUT check (a download is not)
    local = Path(os.fspath(source)).expanduser().exists()
    if not local:
        check_replaceable(output, overwrite)
    resolved = resolve_source(source, **resolved_kwargs)
    check_not_nested(output, [resolved.folder, resolved.checkpoint])
    if local:
        check_replaceable(output, overwrite)
    # the scheduler first: a bad name or override key should fail before minutes of export
    our_scheduler = convert_scheduler(resolved.folder / "scheduler", scheduler, **overrides)

    try:
        with atomic_folder(output, overwrite, say, guard) as tmp:
            return _export_into(tmp, resolved, backend, dtype, our_scheduler, validate, say,
                                static_shapes, weight_compression)
    except Exception as e:
        if _disk_full(e):
            free = shutil.disk_usage(output.parent if output.parent.exists() else Path.cwd()).free
            raise ExportError(
                f"{output}: no space left on the device while exporting ({free / 2**20:.0f} MiB free now); "
                f"nothing was written: free some space or choose another OUTPUT"
            ) from e
        raise


def _check_compression(format: str, mode: str) -> None:
    from .backends import COMPRESSION

    if mode not in COMPRESSION:
        raise ExportError(f"unknown weight compression {mode!r}; choose one of {', '.join(COMPRESSION)}")
    if format == "onnx":
        if mode != "int8":
            raise ExportError(f"weight compression {mode} is for format 'openvino' (through nncf); onnx has int8")
        return  # our own rewrite, no nncf
    try:
        import nncf  # noqa: F401
    except ImportError as e:
        raise ExportError(f"weight compression {mode} needs nncf, which is not installed: pip install nncf ({e})") from e


def _disk_full(error: BaseException) -> bool:
    """ENOSPC anywhere in the exception chain (exporters wrap it in their own errors), or its message."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _threshold_key(dtype: str, compression: str | None) -> str:
    return compression or dtype


# components the pipeline constructors take that the export never needs (safety checker and friends)
_DROPPED = {"safety_checker": None, "feature_extractor": None, "image_encoder": None, "requires_safety_checker": False}


def _load_pipeline(resolved):
    import diffusers
    import torch

    # the class name was checked against PIPELINES before: getattr picks a diffusers class, never remote code
    cls = getattr(diffusers, resolved.pipeline_class)
    params = inspect.signature(cls.__init__).parameters
    extra = {k: v for k, v in _DROPPED.items() if k in params}
    # components the folder declares absent ([null, null]: an SD3 without T5): diffusers wants them passed as None
    extra.update({k: None for k, v in resolved.model_index.items() if k in params and v in ([None, None], (None, None))})
    try:
        if resolved.checkpoint is not None:
            # the weights from one file, everything else from the local config folder; nothing downloaded
            pipe = cls.from_single_file(
                str(resolved.checkpoint), config=str(resolved.folder), local_files_only=True,
                torch_dtype=torch.float32, **extra,
            )
        else:
            pipe = cls.from_pretrained(
                resolved.folder,
                torch_dtype=torch.float32,
                use_safetensors=None,  # safetensors when present; pickles were refused before unless allowed
                local_files_only=True,
                low_cpu_mem_usage=False,
                **extra,
            )
    except Exception as e:
        raise ExportError(f"{resolved.source_id}: diffusers cannot load the pipeline: {e}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _export_into(tmp: Path, resolved, backend, dtype: str, our_scheduler, validate: bool, say,
                 static: dict | None = None, compression: str | None = None) -> dict:
    from .source import PIPELINES, TOKENIZERS

    t0 = time.perf_counter()
    family = PIPELINES[resolved.pipeline_class][0]
    say(f"loading {resolved.pipeline_class} from {resolved.folder}")
    pipe = _load_pipeline(resolved)
    static_plan = plan_static_shapes(pipe, family, static) if static else None

    submodels = backend.submodels(pipe, family)
    graphs: dict[str, dict] = {}
    n = len(submodels)
    for i, (name, (model, config)) in enumerate(submodels.items(), 1):
        start = time.perf_counter()
        options = [dtype, *([f"{compression} weights"] if compression else []), *(["static"] if static_plan else [])]
        say(f"[{i}/{n}] {name}: exporting to {backend.name} ({', '.join(options)})")
        folder = tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(model, "save_config"):
            model.save_config(folder)
        elif hasattr(model, "config") and hasattr(model.config, "save_pretrained"):
            model.config.save_pretrained(folder)
        path = folder / backend.graph_name
        try:
            backend.export_component(name, model, config, path)
            if static_plan is not None:
                backend.make_static(path, static_shapes_for(name, backend.describe(path), static_plan))
            if compression is not None:
                backend.compress_weights(path, compression, name)
        except ExportError:
            raise
        except Exception as e:  # a full disk is recognised from the cause chain in export_pipeline
            raise ExportError(f"{name}: {backend.name} export failed: {type(e).__name__}: {e}") from e
        graphs[name] = {"file": f"{name}/{backend.graph_name}", **backend.describe(path)}
        say(f"[{i}/{n}] {name}: exported in {time.perf_counter() - start:.1f} s")

    tokenizers = {}
    for tok in TOKENIZERS:
        if getattr(pipe, tok, None) is not None:
            say(f"{tok}: writing the fast tokenizer (tokenizer.json)")
            _save_fast_tokenizer(resolved.folder / tok, tmp / tok, getattr(pipe, tok))
            tokenizers[tok] = f"{tok}/tokenizer.json"
            graphs_written = backend.tokenizer_graphs(tmp / tok, TOKENIZER_CHECK_PROMPTS,
                                                      warn=lambda message: say(f"warning: {message}"))
            if graphs_written:
                say(f"{tok}: wrote {', '.join(graphs_written)} (openvino-tokenizers)")

    from .flow import PIPELINE_DEFAULTS, pipeline_defaults

    defaults = pipeline_defaults(pipe, family)
    if defaults is not None:  # call defaults that are data in diffusers (Sana's instruction and size bins)
        (tmp / PIPELINE_DEFAULTS).write_text(json.dumps(defaults, indent=2) + "\n", encoding="utf-8")

    say(f"scheduler: {type(our_scheduler).__name__}")
    our_scheduler.save_pretrained(tmp / "scheduler")
    pipe.save_config(tmp)  # model_index.json, as optimum writes it
    _fix_model_index(tmp / "model_index.json", type(our_scheduler).__name__)

    results = {}
    if validate:
        results = _validate(tmp, pipe, graphs, backend, _threshold_key(dtype, compression), say)

    manifest = {
        "edge_sched_manifest": MANIFEST_VERSION,
        "format": backend.name,
        "dtype": dtype,
        "weight_compression": compression,
        "fused_attention": getattr(backend, "fused_attention", False),
        "pipeline": resolved.pipeline_class,
        "family": family,
        "prediction_type": _prediction_type(pipe, family),
        "source": {"id": resolved.source_id, "kind": resolved.kind, "revision": resolved.revision},
        "exporter": _versions(),
        "components": graphs,
        "tokenizer": tokenizers.get("tokenizer"),
        **{k: v for k, v in tokenizers.items() if k != "tokenizer"},  # tokenizer_2 (SDXL, SD3, FLUX), tokenizer_3 (SD3)
        "scheduler": {"class": type(our_scheduler).__name__, "config": "scheduler/scheduler_config.json"},
        "static_shapes": static_plan,
        "validation": results,
        "export_seconds": round(time.perf_counter() - t0, 2),
        "files": file_hashes(tmp),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _prediction_type(pipe, family: str) -> str:
    from .flow import FLOW_FAMILIES, PREDICTION_TYPE

    if family in FLOW_FAMILIES:  # flow schedulers have no prediction_type: the transformer predicts a velocity
        return PREDICTION_TYPE
    return pipe.scheduler.config.get("prediction_type", "epsilon")


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
    index = read_json(path, error=ExportError)
    index["scheduler"] = ["diffusers", scheduler_class]
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _validate(tmp: Path, pipe, graphs: dict, backend, dtype: str, say) -> dict:
    """``dtype``: the key of the validation bound (fp32, fp16, int8, int4)."""
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
        if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, PARTIAL_MARKER)
    }


def set_scheduler(folder: str | os.PathLike, target: str, **overrides) -> dict:
    """Swap the scheduler shipped in an exported ``folder`` without re-exporting: the current
    ``scheduler/scheduler_config.json`` is converted to ``target`` (class or A1111 name, ``overrides`` on
    top), then ``scheduler/``, ``model_index.json`` and the manifest (class, hashes) are rewritten.
    A folder whose files no longer match its manifest is refused. Returns the new manifest."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ExportError(f"{folder}: no {MANIFEST}; not a folder made by edge-sched export")
    changed = verify_manifest(folder)
    if changed:
        raise ExportError(f"{folder}: files differ from the manifest ({', '.join(changed)}); refusing to edit it")
    scheduler = convert_scheduler(folder / "scheduler", target, **overrides)
    staging = Path(tempfile.mkdtemp(prefix=".scheduler.partial-", dir=folder))
    try:
        scheduler.save_pretrained(staging)
        manifest = read_json(manifest_path, error=ExportError)
        old = folder / "scheduler" / "scheduler_config.json"
        os.replace(staging / "scheduler_config.json", old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _fix_model_index(folder / "model_index.json", type(scheduler).__name__)
    manifest["scheduler"]["class"] = type(scheduler).__name__
    manifest["files"] = file_hashes(folder)
    tmp = manifest_path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, manifest_path)
    return manifest


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Files whose sha256 differs from the manifest, or that are missing / not listed."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST, error=ExportError)
    actual = file_hashes(folder)
    recorded = manifest["files"]
    return sorted(k for k in set(actual) | set(recorded) if actual.get(k) != recorded.get(k))
