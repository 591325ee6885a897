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
from .common import check_common
from .config_fixes import fix_scheduler_config, fix_unet_sample_size
from .loop import callback_names, check_guidance_interval
from .loading import (
    Components,
    PipelineLoadError,
    engine_options,
    graph_folders,
    load_scheduler,
    pick_backend,
    as_scheduler,
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


class DiffusionPipeline:
    """Base class; ``DiffusionPipeline.from_pretrained(folder)`` returns the class ``model_index.json`` names."""

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

    def __init__(self, folder: Path, components: Components, scheduler: SchedulerMixin, model_index: dict,
                 tokenizers: dict | None = None, compile: bool = True):
        self.folder, self.components, self.model_index = folder, components, model_index
        self.scheduler = scheduler
        fix_scheduler_config(scheduler, self._scheduler_config_fixes)
        if self._unet_sample_size_fix and "unet" in components.configs:
            fix_unet_sample_size(components.configs["unet"], str(folder / "unet" / "config.json"),
                                 require_int=self._unet_sample_size_fix == "int")
        self.tokenizers = tokenizers or {}
        self._progress_bar_config: dict = {}
        self._guidance_scale, self._guidance_rescale = 1.0, 0.0
        self._interrupt, self._num_timesteps = False, None
        self._guidance_interval = None
        if compile and not components.low_memory:
            self.compile()

    def compile(self) -> "DiffusionPipeline":
        """Load (compile) the graphs every call needs now; optional ones load on first use. As in
        optimum-intel: ``from_pretrained(..., compile=False)``, then ``reshape(...)``, then ``compile()``
        compiles each graph once, with its final shapes."""
        # largest first: its loading transient (the engine's working copies) then stacks on nothing
        for name in sorted(self.required_graphs, key=self.components.size_on_disk, reverse=True):
            self._check_graph(self.components[name])
        return self

    # ---- loading -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source,
        backend: str = "auto",
        device: str | None = None,
        providers=None,
        *,
        provider_options=None,
        allow_cpu_fallback: bool = False,
        num_threads: int | None = None,
        inference_precision: str | None = "f32",
        cache_dir=None,
        static_shapes: dict | None = None,
        low_memory: bool = False,
        compile: bool = True,
        revision: str | None = None,
        token=None,
        hub_cache_dir=None,
        local_files_only: bool = False,
        scheduler=None,
        **engine_kwargs,
    ) -> "DiffusionPipeline":
        """Load a pipeline folder (optimum's layout), a Hub repo id, or a built-in model name.

        ``backend``: "auto" (OpenVINO IR -> openvino, ONNX -> onnxruntime, whichever is installed),
        "onnxruntime" or "openvino". ``providers`` (onnxruntime) and ``device`` (OpenVINO) pick the
        hardware; ``low_memory`` keeps one graph in memory at a time. ``cpu_memory_arena=False``
        (onnxruntime; the default in low-memory mode) frees activations after each run instead of
        keeping them for the next: a lower peak, at some speed. ``static_shapes`` (OpenVINO):
        ``{component: {input: shape}}`` fixes graph shapes before compiling (NPUs need it); a UNet
        with a static batch of 1 gets classifier-free guidance as two calls. ``compile=False`` defers
        loading the graphs to ``pipe.compile()`` or their first use (reshape first: one compile each).
        """
        folder = resolve_folder(source, revision=revision, token=token, cache_dir=hub_cache_dir,
                                local_files_only=local_files_only)
        index = read_model_index(folder)
        target = cls
        if cls is DiffusionPipeline:
            target = pipeline_class_for(index, folder)
        names = graph_folders(folder, index)
        missing = [n for n in target.required_graphs if n not in names]
        if missing:
            raise PipelineLoadError(
                f"{folder}: {target.__name__} needs the component folder(s) {', '.join(missing)} "
                f"(found: {', '.join(names) or 'none'})"
            )
        names = [n for n in names if n in target.required_graphs or n in target.optional_graphs]
        chosen = pick_backend(folder, names, backend)
        options = engine_options(
            chosen, device=device, providers=providers, provider_options=provider_options,
            allow_cpu_fallback=allow_cpu_fallback, num_threads=num_threads, inference_precision=inference_precision,
            cache_dir=cache_dir, static_shapes=static_shapes, **engine_kwargs,
        )
        if low_memory and chosen == "onnxruntime":
            options.setdefault("cpu_memory_arena", False)  # activations freed after each run, not kept for the next
        components = Components(folder, names, chosen, options, low_memory=low_memory)
        tokenizers = target._load_tokenizers(folder)
        scheduler = load_scheduler(folder, index) if scheduler is None else as_scheduler(scheduler)
        return target(folder, components, scheduler, index, tokenizers, compile=compile)

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
        component = self.components[name]
        if self.components.low_memory:
            self._check_graph(component)
        return component

    @property
    def backend(self) -> str:
        return self.components.backend

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
        names = callback_names(self, callback, callback_inputs)
        self._guidance_scale, self._guidance_rescale = guidance_scale, guidance_rescale
        self._interrupt = False
        self._guidance_interval = check_guidance_interval(guidance_interval)
        return names

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(folder={str(self.folder)!r}, backend={self.backend!r}, "
                f"scheduler={type(self.scheduler).__name__}, graphs={self.components.names})")

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

    @staticmethod
    def run_batched(component: Component, feeds_for, n: int, batch_input: str) -> dict[str, np.ndarray]:
        """Run ``component`` on ``n`` items; ``feeds_for(rows, count)`` gives the feeds of a slice. A graph
        with a static batch (``batch_input``'s first dim) runs in chunks of that size."""
        shape = component.inputs[batch_input].shape
        size = shape[0] if shape else None
        if size is None or size == n:
            return component(**feeds_for(slice(0, n), n))
        if n % size:
            raise ValueError(f"{component.path}: the graph's static batch {size} cannot run {n} items; "
                             f"export with a batch that divides {n}")
        outs = [component(**feeds_for(slice(i, i + size), size)) for i in range(0, n, size)]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    def release(self) -> None:
        self.components.release_all()


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
