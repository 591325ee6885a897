"""From a folder (optimum's layout), a Hub repo id or a built-in name to graphs, configs and a scheduler.

The folder layout is optimum's: ``model_index.json`` at the top, then one subfolder per
component (``text_encoder/``, ``text_encoder_2/``, ``unet/``, ``vae_decoder/``, ``vae_encoder/``
with ``model.onnx`` or ``openvino_model.xml`` and the model's ``config.json``), ``tokenizer/``,
``tokenizer_2/`` and ``scheduler/scheduler_config.json``. Folders written by ``edge-sched export``
and by optimum's own exporters both load.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..runtime import EngineError, choose_backend, graph_file
from ..jsonfile import read_json
from ..schedulers import SchedulerMixin, scheduler_class
from .graphs import Graphs

logger = logging.getLogger(__name__)

GRAPH_COMPONENTS = ("text_encoder", "text_encoder_2", "text_encoder_3", "unet", "transformer", "vae_encoder", "vae_decoder")
BUILTIN_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class PipelineLoadError(ValueError):
    """The folder is not a pipeline this runtime can load (what is missing, and where)."""


def builtin_models() -> list[str]:
    if not BUILTIN_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_MODELS_DIR.iterdir() if (p / "model_index.json").is_file())


def resolve_folder(source, *, backend: str = "auto", variant: str | None = None, revision=None, token=None,
                   cache_dir=None, local_files_only=False, **hub) -> Path:
    """A local folder as is; a built-in model name from the package; otherwise a Hub repo id: the files
    the pipeline needs for ``backend`` downloaded (hub_files.py) or read from the huggingface_hub cache
    (HF_HUB_OFFLINE is honoured by huggingface_hub)."""
    path = Path(os.fspath(source)).expanduser()
    if path.is_dir():
        return path
    name = str(source)
    if name in builtin_models():
        return BUILTIN_MODELS_DIR / name
    looks_like_repo = name.count("/") == 1 and not name.startswith((".", "/", "~")) and not path.exists()
    if not looks_like_repo:
        shipped = ", ".join(builtin_models()) or "none"
        raise PipelineLoadError(
            f"{source}: no such folder, and not a Hub repo id ('owner/name') or a built-in model (built-in: {shipped})"
        )
    from ..hub import HubOfflineError, hub_access
    from .hub_files import download_pipeline

    try:  # offline: said at once, not after the Hub client's timeouts and retries
        local_files_only = hub_access(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    except HubOfflineError as e:
        raise PipelineLoadError(str(e)) from None
    try:
        return download_pipeline(name, backend=backend, variant=variant, revision=revision, token=token,
                                 cache_dir=cache_dir, local_files_only=local_files_only, **hub)
    except Exception as e:
        raise PipelineLoadError(f"{name}: could not get it from the Hugging Face Hub or its cache: {e}") from e


#: files of a diffusers (torch) component folder
TORCH_WEIGHTS = ("*.safetensors", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack")


def check_exported(folder: Path, source, export=None) -> None:
    """A diffusers-layout folder (torch weights, no graphs) gets a message that says how to export it."""
    components = [folder / n for n in (*GRAPH_COMPONENTS, "vae") if (folder / n).is_dir()]
    has_graphs = any(graph_file(c, b) for c in components for b in ("onnxruntime", "openvino"))
    has_torch = any(next(c.glob(pattern), None) for c in components for pattern in TORCH_WEIGHTS)
    if has_torch and not has_graphs:
        raise PipelineLoadError(
            f"{source}: a diffusers (torch) pipeline, not an exported one; the runtime runs exported graphs. "
            f"On a workstation with torch: `edge-sched export {source} OUT --format onnx` (or --format openvino), "
            "then load OUT here (copy it to the device)" + ("; export=True cannot export here (no torch)"
                                                           if export else ""))
    if export:
        logger.info("%s: export=True: the folder is already exported; loading its graphs", source)


def read_model_index(folder: Path) -> dict:
    return read_json(folder / "model_index.json", "every pipeline folder has one; export it with `edge-sched export`",
                     error=PipelineLoadError)


def load_scheduler(folder: Path, model_index: dict | None = None) -> SchedulerMixin:
    """The scheduler of the class ``model_index.json`` names (as diffusers loads it), else the class its
    config names, built from ``scheduler/scheduler_config.json``."""
    path = folder / "scheduler" / "scheduler_config.json"
    config = read_json(path, "the scheduler's config", error=PipelineLoadError)
    name = config.get("_class_name")
    entry = (model_index or {}).get("scheduler")
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], str):
        if entry[1] != name:
            logger.info("%s names %s, model_index.json %s: loading %s, as diffusers does", path, name, entry[1],
                        entry[1])
        name = entry[1]
    if not isinstance(name, str):
        raise PipelineLoadError(f"{path}: no _class_name")
    try:
        cls = scheduler_class(name)
    except (KeyError, ValueError) as e:
        raise PipelineLoadError(f"{path}: {e}") from e
    return cls.from_config(config)


def as_scheduler(scheduler) -> SchedulerMixin:
    """A ``scheduler=`` argument: an edge_sched scheduler as is; another library's scheduler object (its
    class name and ``.config``) rebuilt as ours from its config."""
    if isinstance(scheduler, SchedulerMixin):
        return scheduler
    config = getattr(scheduler, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"scheduler= must be a scheduler (e.g. edge_sched.DDIMScheduler.from_pretrained(...)), "
                        f"got {type(scheduler).__name__}")
    try:
        cls = scheduler_class(type(scheduler).__name__)
    except (KeyError, ValueError) as e:
        raise TypeError(f"scheduler=: {e}") from e
    return cls.from_config(dict(config))


Components = Graphs  # the old name of pipe.graphs' class


def engine_options(backend: str, *, device=None, providers=None, provider_options=None, allow_cpu_fallback=False,
                   num_threads=None, inference_precision="f32", cache_dir=None, static_shapes=None,
                   graph_optimization_level=None, performance_hint="LATENCY", cpu_memory_arena=None,
                   session_options=None, ov_config=None) -> dict:
    """Split the user's engine arguments into what the chosen engine takes; refuse ones it cannot use.
    ``session_options`` (an onnxruntime SessionOptions, as optimum takes it) and ``ov_config`` (OpenVINO
    properties, as optimum-intel takes them; they win over our defaults) go to their engine."""
    if static_shapes and not all(isinstance(v, dict) for v in static_shapes.values()):
        raise EngineError("static_shapes must map component names to {input name: shape}, e.g. "
                          "{'unet': {'sample': (1, 4, 64, 64), ...}}")
    if backend == "onnxruntime":
        if device not in (None, "CPU", "cpu"):
            raise EngineError(f"device={device!r} is an OpenVINO option; for onnxruntime pass providers=[...]")
        if static_shapes:
            raise EngineError("static_shapes is an OpenVINO option; export with static shapes for onnxruntime")
        if providers is not None and provider_options is not None:
            providers = list(zip(providers, provider_options))
        options = dict(providers=providers, allow_cpu_fallback=allow_cpu_fallback, intra_op_threads=num_threads,
                       graph_optimization_level=graph_optimization_level)
        if cpu_memory_arena is not None:
            options["cpu_memory_arena"] = bool(cpu_memory_arena)
        if ov_config:
            raise EngineError("ov_config is an OpenVINO option; for onnxruntime pass session_options= or providers=")
        if session_options is not None:
            options["session_options"] = session_options
        return options
    if cpu_memory_arena is not None:
        raise EngineError("cpu_memory_arena is an onnxruntime option; OpenVINO plans its own memory")
    if providers is not None:
        raise EngineError("providers= is an onnxruntime option; for OpenVINO pass device='CPU'|'GPU'|'NPU'|'AUTO'")
    if session_options is not None:
        raise EngineError("session_options is an onnxruntime option; for OpenVINO pass ov_config={...}")
    return dict(device=(device or "CPU").upper(), config=dict(ov_config or {}), inference_precision=inference_precision,
                num_threads=num_threads, cache_dir=cache_dir, static_shapes=static_shapes,
                performance_hint=performance_hint,
                # optimum-intel exports integer timesteps; fractional ones (Karras, custom sigmas) need float
                float_inputs=("timestep",))


def graph_folders(folder: Path, model_index: dict) -> list[str]:
    """Graph components present in the folder (the index may name ``vae``; optimum splits it in two)."""
    return [n for n in GRAPH_COMPONENTS if (folder / n).is_dir()]


def pick_backend(folder: Path, names: list[str], backend: str) -> str:
    return choose_backend([folder / n for n in names], backend)
