"""What every pipeline shares: loading (``from_pretrained``), the scheduler slot, the denoising-loop
plumbing (timestep feeds, step arguments, NaN checks, callbacks), progress and outputs."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path

import numpy as np

from ..random import as_generator
from ..runtime.base import Component
from ..schedulers import SchedulerMixin
from .common import check_common, check_guidance, run_batched
from .config_fixes import fix_scheduler_config, fix_unet_sample_size
from .dropin import DiffusersMethods, assemble, component_names, part_name
from .graphs import Graphs
from .keywords import sort_keywords
from .precision import check_request as check_precision_request, plan_precision
from .models import GraphModel, model_for
from .loop import callback_names, check_guidance_interval
from .loading import (
    PipelineLoadError,
    check_exported,
    engine_options,
    graph_folders,
    load_scheduler,
    pick_backend,
    read_model_index,
    resolve_folder,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ImagePipelineOutput:
    """``images``: a list of PIL images, or a float32 array [batch, H, W, C] in [0, 1] (``output_type="np"``),
    or latents (``output_type="latent"``)."""

    images: object
    nsfw_content_detected: list | None = None

    def __getitem__(self, index):
        return (self.images, self.nsfw_content_detected)[index]


StableDiffusionPipelineOutput = ImagePipelineOutput


class DiffusionPipeline(DiffusersMethods):
    """Base class; ``DiffusionPipeline.from_pretrained(folder)`` returns the class ``model_index.json`` names.
    ``SomePipeline(**pipe.components)`` (diffusers' constructor) builds one from another's parts."""

    #: graph components this pipeline cannot run without, and the inputs each must have
    required_graphs: dict[str, tuple[str, ...]] = {}
    #: graph components used when present
    optional_graphs: tuple[str, ...] = ()
    needs_tokenizer = False
    #: the tensors ``callback_on_step_end`` may read and replace (diffusers' per-class list)
    _callback_tensor_inputs: tuple[str, ...] = ("latents",)
    #: diffusers' pipeline-build fixes of old configs (config_fixes.py): scheduler keys, and the UNet
    #: sample_size fix (None: not made; "int": only for an int sample_size; "any": inpainting's check)
    _scheduler_config_fixes: tuple[str, ...] = ()
    _unet_sample_size_fix: str | None = None

    def __init__(self, *args, **kwargs):
        """diffusers' constructor: the parts by name (``vae=``, ``text_encoder=``, ``tokenizer=``, ``unet=``,
        ``scheduler=``, ...), as ``pipe.components`` holds them; see dropin.assemble."""
        self._setup(**assemble(type(self), args, kwargs))

    def _setup(self, folder: Path, graphs: Graphs, scheduler: SchedulerMixin, model_index: dict,
               tokenizers: dict | None = None, models: dict | None = None, config: dict | None = None,
               compile: bool = True):
        self.folder, self.graphs, self.model_index = folder, graphs, model_index
        self._models = dict(models or {})
        self._pipeline_config = dict(config or {})
        self.scheduler = scheduler
        fix_scheduler_config(scheduler, self._scheduler_config_fixes)
        if self._unet_sample_size_fix and "unet" in graphs.configs:
            fix_unet_sample_size(graphs.configs["unet"], str(graphs.paths["unet"] / "config.json"),
                                 require_int=self._unet_sample_size_fix == "int")
        self.tokenizers = tokenizers or {}
        self._progress_bar_config: dict = {}
        self._guidance_scale, self._guidance_rescale = 1.0, 0.0
        self._interrupt, self._num_timesteps = False, None
        self._guidance_interval = None
        if compile and not graphs.low_memory:
            self.compile()

    def compile(self) -> "DiffusionPipeline":
        """Load (compile) the graphs every call needs now; optional ones load on first use. As in
        optimum-intel: ``from_pretrained(..., compile=False)``, then ``reshape(...)``, then ``compile()``
        compiles each graph once, with its final shapes."""
        # largest first: its loading transient (the engine's working copies) then stacks on nothing
        for name in sorted(self.required_graphs, key=self.graphs.size_on_disk, reverse=True):
            self._check_graph(self.graphs[name])
        return self

    # ---- loading -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, backend: str = "auto", device: str | None = None,
                        providers=None, **kwargs) -> "DiffusionPipeline":
        """Load a pipeline folder (optimum's layout), a Hub repo id, or a built-in model name.

        ``backend``: "auto" (OpenVINO IR -> openvino, ONNX -> onnxruntime, whichever is installed),
        "onnxruntime" or "openvino". ``providers`` (onnxruntime) and ``device`` (OpenVINO) pick the
        hardware; ``low_memory=True`` keeps one graph in memory at a time. ``cpu_memory_arena=False``
        (onnxruntime; the default in low-memory mode) frees activations after each run instead of
        keeping them for the next: a lower peak, at some speed. ``static_shapes`` (OpenVINO):
        ``{component: {input: shape}}`` fixes graph shapes before compiling (NPUs need it); a UNet
        with a static batch of 1 gets classifier-free guidance as two calls. ``compile=False`` defers
        loading the graphs to ``pipe.compile()`` or their first use (reshape first: one compile each).
        ``precision``: "exact" (float32, the parity default), "fast" (the device's default: bf16 on
        OpenVINO CPUs that have it; fp16 graphs on ONNX Runtime GPU-style providers) or "f32" / "bf16" /
        "f16" (precision.py); ``inference_precision`` / ``torch_dtype`` that contradict it are refused.
        Also: ``provider_options``, ``allow_cpu_fallback``, ``num_threads``, ``inference_precision``
        (OpenVINO, default "f32"), ``cache_dir`` (the Hub cache, and OpenVINO's compiled-graph cache),
        ``hub_cache_dir``, ``revision``, ``token``, ``local_files_only``, ``variant`` ("fp16":
        ``model.fp16.onnx``-style files where present), and the parts (``scheduler=``, ``unet=``...).
        diffusers' and optimum's other keywords are mapped, accepted or refused as keywords.py lists.
        """
        where = f"{cls.__name__}.from_pretrained"
        source = pretrained_model_name_or_path
        for alias in ("model_id", "model_name_or_path", "source"):
            if alias in kwargs:
                if source is not None:
                    raise TypeError(f"{where}: the model is given twice (positionally and as {alias}=)")
                source = kwargs.pop(alias)
        if source is None:
            raise TypeError(f"{where}: give a folder, a Hub repo id or a built-in model name")
        given = {k: v for k, v in (("device", device), ("providers", providers)) if v is not None}
        request = sort_keywords(where, {**kwargs, **given, "backend": backend})
        check_precision_request(request)
        folder = resolve_folder(source, backend=request.backend, variant=request.variant, **request.hub)
        check_exported(folder, source, request.export)
        index = read_model_index(folder)
        target = cls._class_for(index, folder)
        names = graph_folders(folder, index)
        parts = dict(request.parts)
        supplied = {n for p, m in parts.items() if isinstance(m, GraphModel) for n in m.graphs.names}
        missing = [n for n in target.required_graphs if n not in names and n not in supplied]
        if missing:
            raise PipelineLoadError(
                f"{folder}: {target.__name__} needs the component folder(s) {', '.join(missing)} "
                f"(found: {', '.join(names) or 'none'})"
            )
        names = [n for n in names if n in target.required_graphs or n in target.optional_graphs]
        chosen = pick_backend(folder, names, request.backend)
        options = engine_options(chosen, **request.engine)
        if request.low_memory and chosen == "onnxruntime":
            options.setdefault("cpu_memory_arena", False)  # activations freed after each run, not kept for the next
        graphs = Graphs(folder, names, chosen, options, low_memory=request.low_memory, variant=request.variant)
        if request.precision is not None:  # it decides the graph files too (torch_dtype agrees with it)
            graphs.variant = plan_precision(request.precision, chosen, graphs, providers=request.engine.get(
                "providers"), dtype=request.dtype).variant
        wanted = component_names(target)
        for name in names:
            if part_name(name) in wanted:
                parts.setdefault(part_name(name), model_for(graphs, name))
        parts.update({k: v for k, v in target._load_tokenizers(folder).items() if parts.get(k) is None})
        if parts.get("scheduler") is None:
            parts["scheduler"] = load_scheduler(folder, index)
        for key in ("requires_safety_checker", "force_zeros_for_empty_prompt"):
            if key in index:
                parts.setdefault(key, index[key])
        pipe = object.__new__(target)
        pipe._setup(**{**assemble(target, (), parts), "compile": request.compile})
        if request.precision is None:
            pipe._use_precision(request.dtype, "torch_dtype")
        return pipe

    @classmethod
    def _class_for(cls, index: dict, folder: Path) -> type:
        """The class to build: this one, or (``DiffusionPipeline.from_pretrained``) the one the index names."""
        return pipeline_class_for(index, folder) if cls is DiffusionPipeline else cls

    @classmethod
    def _load_tokenizers(cls, folder: Path) -> dict:
        return {}

    def _check_graph(self, component: Component) -> None:
        expected = self.required_graphs.get(component.name, ())
        missing = [n for n in expected if n not in component.inputs]
        if missing:
            raise PipelineLoadError(
                f"{component.path}: {type(self).__name__} needs a {component.name} graph with inputs "
                f"{', '.join(expected)}; this one has {component.describe_inputs()} (missing {', '.join(missing)})"
            )

    def graph(self, name: str) -> Component:
        component = self.graphs[name]
        if self.graphs.low_memory:
            self._check_graph(component)
        return component

    @property
    def backend(self) -> str:
        return self.graphs.backend

    def set_progress_bar_config(self, **kwargs) -> None:
        """tqdm options for the denoising progress bar (``disable=True`` silences it), as in diffusers."""
        self._progress_bar_config = {**self._progress_bar_config, **kwargs}

    def progress_bar(self, iterable=None, total=None):
        """A tqdm bar over ``iterable`` or ``total`` steps (None: a step count, for adaptive schedules)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, **self._progress_bar_config)

    # ---- call state diffusers exposes (callbacks read and set it) --------------------------------

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def guidance_rescale(self) -> float:
        return self._guidance_rescale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return False

    @property
    def guidance_interval(self) -> tuple[float, float] | None:
        return self._guidance_interval

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def num_timesteps(self):
        return self._num_timesteps

    def _begin_call(self, callback, callback_inputs, guidance_scale: float = 1.0, guidance_rescale: float = 0.0,
                    num_images_per_prompt=1, output_type="pil", guidance_interval=None) -> tuple[str, ...]:
        """Per-call state, and the common arguments and the callback's tensor names checked before any work
        (diffusers' check_inputs); returns the tensor names the callback gets."""
        check_common(num_images_per_prompt, output_type)
        check_guidance(guidance_scale, guidance_rescale)
        names = callback_names(self, callback, callback_inputs)
        self._guidance_scale, self._guidance_rescale = guidance_scale, guidance_rescale
        self._interrupt = False
        self._guidance_interval = check_guidance_interval(guidance_interval)
        return names

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(folder={str(self.folder)!r}, backend={self.backend!r}, "
                f"scheduler={type(self.scheduler).__name__}, graphs={self.graphs.names})")

    # ---- loop plumbing shared by every pipeline -------------------------------------------------

    @staticmethod
    def _generator(generator):
        """Turn int seeds into generators ONCE, so the latents and every scheduler step share one stream."""
        if isinstance(generator, (list, tuple)):
            return [as_generator(g) for g in generator]
        return None if generator is None else as_generator(generator)

    def _step_kwargs(self, generator, eta: float | None) -> dict:
        params = inspect.signature(self.scheduler.step).parameters
        kwargs = {}
        if "eta" in params and eta is not None:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    def _set_timesteps(self, num_inference_steps, timesteps=None, sigmas=None, **kwargs) -> np.ndarray:
        """diffusers' ``retrieve_timesteps``: custom ``timesteps`` or ``sigmas`` where the scheduler takes them;
        ``kwargs`` go to ``set_timesteps`` as they are (``mu`` of the flow pipelines)."""
        if timesteps is not None and sigmas is not None:
            raise ValueError("pass either timesteps or sigmas, not both")
        params = inspect.signature(self.scheduler.set_timesteps).parameters
        name = type(self.scheduler).__name__
        if timesteps is not None:
            if "timesteps" not in params:
                raise ValueError(f"{name} does not accept custom timesteps; use a scheduler that does")
            self.scheduler.set_timesteps(timesteps=timesteps, **kwargs)
        elif sigmas is not None:
            if "sigmas" not in params:
                raise ValueError(f"{name} does not accept custom sigmas; use a scheduler that does")
            self.scheduler.set_timesteps(sigmas=sigmas, **kwargs)
        else:
            self.scheduler.set_timesteps(num_inference_steps, **kwargs)
        return self._record_timesteps(self.scheduler.timesteps)

    def _record_timesteps(self, timesteps):
        self._num_timesteps = len(timesteps) if hasattr(timesteps, "__len__") else None
        return timesteps

    def timestep_feed(self, component: Component, t, batch: int, name: str = "timestep") -> np.ndarray:
        """The timestep as the graph declares it: a scalar, or one per batch item, in its dtype."""
        spec = component.inputs[name]
        value = np.asarray(t)
        if np.issubdtype(spec.dtype, np.integer) and not np.issubdtype(value.dtype, np.integer):
            if not np.all(value == np.round(value)) and not getattr(self, "_warned_int_timestep", False):
                logger.warning("%s takes integer timesteps, the schedule has fractional ones (%s); rounding down, as a"
                               " cast would; images will differ from diffusers'", component.path, value)
                self._warned_int_timestep = True
        if spec.shape is not None and len(spec.shape) == 0:
            return value.reshape(())
        n = spec.shape[0] if spec.shape is not None and spec.shape and spec.shape[0] is not None else batch
        return np.full((n,), value.reshape(-1)[0], dtype=value.dtype)

    run_batched = staticmethod(run_batched)

    def release(self) -> None:
        self.graphs.release_all()


PIPELINE_CLASSES: dict[str, type[DiffusionPipeline]] = {}
#: names optimum and openvino-genai write in model_index.json for the same pipelines
PIPELINE_ALIASES = {
    "ORTStableDiffusionPipeline": "StableDiffusionPipeline",
    "OVStableDiffusionPipeline": "StableDiffusionPipeline",
    "ORTStableDiffusionImg2ImgPipeline": "StableDiffusionImg2ImgPipeline",
    "OVStableDiffusionImg2ImgPipeline": "StableDiffusionImg2ImgPipeline",
    "ORTStableDiffusionInpaintPipeline": "StableDiffusionInpaintPipeline",
    "OVStableDiffusionInpaintPipeline": "StableDiffusionInpaintPipeline",
    "ORTStableDiffusionXLPipeline": "StableDiffusionXLPipeline",
    "OVStableDiffusionXLPipeline": "StableDiffusionXLPipeline",
    "ORTLatentConsistencyModelPipeline": "LatentConsistencyModelPipeline",
    "OVLatentConsistencyModelPipeline": "LatentConsistencyModelPipeline",
}


def register_pipeline(cls):
    PIPELINE_CLASSES[cls.__name__] = cls
    return cls


def pipeline_class_for(index: dict, folder: Path) -> type[DiffusionPipeline]:
    name = index.get("_class_name")
    name = PIPELINE_ALIASES.get(name, name)
    if name not in PIPELINE_CLASSES:
        raise PipelineLoadError(
            f"{folder / 'model_index.json'}: pipeline class {index.get('_class_name')!r} is not one this runtime "
            f"runs ({', '.join(sorted(PIPELINE_CLASSES))})"
        )
    return PIPELINE_CLASSES[name]
