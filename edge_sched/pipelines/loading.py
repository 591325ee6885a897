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

from ..runtime import EngineError, choose_backend, load_component
from ..runtime.base import Component
from ..heap import trim_heap
from ..jsonfile import read_json
from ..schedulers import SchedulerMixin, scheduler_class

logger = logging.getLogger(__name__)

GRAPH_COMPONENTS = ("text_encoder", "text_encoder_2", "text_encoder_3", "unet", "transformer", "vae_encoder", "vae_decoder")
BUILTIN_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
HUB_PATTERNS = [
    "model_index.json", "edge_sched.json", "*/config.json", "*/*.json", "*/*.txt",
    "*/model.onnx", "*/model.onnx_data", "*/*.onnx_data", "*/openvino_model.xml", "*/openvino_model.bin",
]


class PipelineLoadError(ValueError):
    """The folder is not a pipeline this runtime can load (what is missing, and where)."""


def builtin_models() -> list[str]:
    if not BUILTIN_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_MODELS_DIR.iterdir() if (p / "model_index.json").is_file())


def resolve_folder(source, *, revision=None, token=None, cache_dir=None, local_files_only=False) -> Path:
    """A local folder as is; a built-in model name from the package; otherwise a Hub repo id (downloaded
    or read from the huggingface_hub cache; HF_HUB_OFFLINE is honoured by huggingface_hub)."""
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
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            name, revision=revision, token=token, cache_dir=cache_dir,
            local_files_only=local_files_only, allow_patterns=HUB_PATTERNS,
        ))
    except Exception as e:
        raise PipelineLoadError(f"{name}: could not get it from the Hugging Face Hub or its cache: {e}") from e


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


class Components:
    """The pipeline's graphs, loaded on first use. With ``low_memory`` the pipeline releases each one
    after its stage (load, run, release), so at most one graph is in memory at a time."""

    def __init__(self, folder: Path, names: list[str], backend: str, options: dict, low_memory: bool = False):
        self.folder, self.backend, self.options, self.low_memory = folder, backend, options, low_memory
        self.names = list(names)
        self._loaded: dict[str, Component] = {}
        self.configs = {n: self._config(n) for n in self.names}

    def _config(self, name: str) -> dict:
        path = self.folder / name / "config.json"
        return read_json(path, error=PipelineLoadError) if path.is_file() else {}

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Component:
        if name not in self.names:
            raise PipelineLoadError(f"{self.folder}: this pipeline has no {name} component")
        if name not in self._loaded:
            options = dict(self.options)
            if options.get("static_shapes"):  # {component: {input: shape}}: this component's part only
                options["static_shapes"] = options["static_shapes"].get(name)
            self._loaded[name] = load_component(name, self.folder / name, self.backend, **options)
            trim_heap()  # the engine's parsing buffers, freed but still held by malloc
        return self._loaded[name]

    def size_on_disk(self, name: str) -> int:
        """Bytes of the component's folder (graph and weights)."""
        return sum(f.stat().st_size for f in (self.folder / name).rglob("*") if f.is_file())

    def set_static_shapes(self, shapes: dict) -> None:
        """Fix graph input shapes ({component: {input: shape}}, OpenVINO); graphs already loaded are
        reloaded with them now (default mode) or at their next use (low-memory mode)."""
        if self.backend != "openvino":
            raise EngineError("static shapes at load time are an OpenVINO feature; for onnxruntime export "
                              "with static shapes (edge-sched export --static-shapes)")
        self.options["static_shapes"] = {**(self.options.get("static_shapes") or {}), **shapes}
        reload = [n for n in self._loaded if n in shapes]
        for name in reload:
            self._loaded.pop(name).release()
        for name in reload:
            self[name]

    def done_with(self, name: str) -> None:
        """End of a stage: in low-memory mode, free the graph (it is reloaded when needed again)."""
        if self.low_memory and name in self._loaded:
            self._loaded.pop(name).release()
            trim_heap()

    def release_all(self) -> None:
        """Free every loaded graph (they are reloaded on next use)."""
        while self._loaded:
            self._loaded.popitem()[1].release()

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)


def engine_options(backend: str, *, device=None, providers=None, provider_options=None, allow_cpu_fallback=False,
                   num_threads=None, inference_precision="f32", cache_dir=None, static_shapes=None,
                   graph_optimization_level="all", performance_hint="LATENCY", cpu_memory_arena=None) -> dict:
    """Split the user's engine arguments into what the chosen engine takes; refuse ones it cannot use."""
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
        return options
    if cpu_memory_arena is not None:
        raise EngineError("cpu_memory_arena is an onnxruntime option; OpenVINO plans its own memory")
    if providers is not None:
        raise EngineError("providers= is an onnxruntime option; for OpenVINO pass device='CPU'|'GPU'|'NPU'|'AUTO'")
    return dict(device=device or "CPU", inference_precision=inference_precision, num_threads=num_threads,
                cache_dir=cache_dir, static_shapes=static_shapes, performance_hint=performance_hint,
                # optimum-intel exports integer timesteps; fractional ones (Karras, custom sigmas) need float
                float_inputs=("timestep",))


def graph_folders(folder: Path, model_index: dict) -> list[str]:
    """Graph components present in the folder (the index may name ``vae``; optimum splits it in two)."""
    return [n for n in GRAPH_COMPONENTS if (folder / n).is_dir()]


def pick_backend(folder: Path, names: list[str], backend: str) -> str:
    return choose_backend([folder / n for n in names], backend)
