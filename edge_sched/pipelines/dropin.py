"""What diffusers' and optimum's pipelines offer around the numbers, on ours: the parts as attributes
(``pipe.unet``, ``pipe.vae``, ``pipe.components``), building a pipeline from parts
(``OtherPipeline(**pipe.components)``, ``from_pipe``), and the device and memory calls scripts make
(``.to()``, ``.half()``, ``enable_*`` / ``disable_*``).

Each call does here what it is for where there is an equivalent: ``.to("GPU")`` moves OpenVINO graphs,
``.to("cuda")`` picks onnxruntime's CUDA provider where installed, ``.half()`` / ``torch_dtype`` pick the
fp16 graph files where the folder has them, ``enable_model_cpu_offload()`` is our low-memory mode (one
graph in memory at a time), ``enable_vae_slicing()`` decodes one image at a time and
``enable_vae_tiling()`` decodes in tiles as diffusers does. The rest (attention slicing, xformers,
FreeU) changes graphs that were fixed at export; they log once that they do nothing.
"""

from __future__ import annotations

from pathlib import Path

from ..schedulers.configuration import FrozenConfig
from .keywords import warn_once
from .models import GraphModel, model_for

#: a part's diffusers name -> the graph components it stands for
PART_GRAPHS = {"vae": ("vae_decoder", "vae_encoder")}
#: parts that hold no graph here and may be None (or an object we do not run)
UNUSED_PARTS = ("safety_checker", "feature_extractor", "image_encoder")
#: constructor arguments diffusers records in the pipeline config (not parts)
CONFIG_ARGUMENTS = {"requires_safety_checker": True, "force_zeros_for_empty_prompt": True, "add_watermarker": None,
                    "requires_aesthetics_score": False}


def part_name(component: str) -> str:
    """The diffusers name of a graph component (vae_decoder / vae_encoder -> vae)."""
    for part, graphs in PART_GRAPHS.items():
        if component in graphs:
            return part
    return component


def component_names(cls) -> tuple[str, ...]:
    """The parts ``cls``'s constructor takes, in diffusers' order (``cls._component_names`` where the class
    lists them, else its graphs' parts, tokenizers and the scheduler)."""
    names = getattr(cls, "_component_names", None)
    if names:
        return tuple(names)
    parts = dict.fromkeys(part_name(g) for g in (*cls.required_graphs, *cls.optional_graphs))
    tokenizers = [n.replace("text_encoder", "tokenizer") for n in parts if n.startswith("text_encoder")]
    return (*parts, *tokenizers, "scheduler")


def assemble(cls, args: tuple, kwargs: dict) -> dict:
    """diffusers' constructor call ``cls(vae=..., text_encoder=..., ...)`` -> the arguments of ``_setup``.
    Parts made by one pipeline share its graphs (and loaded sessions); parts from several folders are
    combined into one set of graphs."""
    from .graphs import CombinedGraphs
    from .loading import PipelineLoadError, as_scheduler, read_model_index

    names = component_names(cls)
    accepted = (*names, *(n for n in UNUSED_PARTS if n not in names), *CONFIG_ARGUMENTS)
    if len(args) > len(names):
        raise TypeError(f"{cls.__name__}() takes {len(names)} parts ({', '.join(names)}), got {len(args)} positional")
    given = dict(zip(names, args))
    for key, value in kwargs.items():
        if key in given:
            raise TypeError(f"{cls.__name__}() got {key!r} twice")
        given[key] = value
    unknown = [k for k in given if k not in accepted]
    if unknown:
        raise TypeError(f"{cls.__name__}() got unexpected arguments {unknown}; it takes {', '.join(accepted)}")
    models = {k: v for k, v in given.items() if isinstance(v, GraphModel)}
    if not models:
        raise TypeError(f"{cls.__name__}() needs its models (unet=pipe.unet, ...): build it from an exported folder "
                        f"with {cls.__name__}.from_pretrained(folder), or from another pipeline's parts: "
                        f"{cls.__name__}(**pipe.components)")
    wrong = [k for k, v in given.items()
             if (k in PART_GRAPHS or k.startswith(("unet", "text_encoder", "transformer")))
             and v is not None and not isinstance(v, GraphModel)]
    if wrong:
        raise TypeError(f"{cls.__name__}(): {', '.join(wrong)} must be edge_sched models (e.g. pipe.unet), got "
                        + ", ".join(type(given[k]).__name__ for k in wrong))
    graph_sets = list({id(m.graphs): m.graphs for m in models.values()}.values())
    if len(graph_sets) == 1:
        graphs = graph_sets[0]
    else:
        primary = max(graph_sets, key=lambda g: len(g.names))
        backends = {g.backend for g in graph_sets}
        if len(backends) > 1:
            raise ValueError(f"{cls.__name__}(): the models run on different backends ({', '.join(sorted(backends))}); "
                             "load them with the same backend=")
        owners = {n: primary for n in primary.names}
        for model in models.values():
            if model.graphs is not primary:  # a model given on its own replaces the folder's graph(s)
                names = [n for n in model.graphs.names if n in PART_GRAPHS.get(part_name(model.component), ())] \
                    or [model.component]
                owners.update({n: model.graphs for n in names})
        graphs = CombinedGraphs(owners, primary)
    missing = [n for n in cls.required_graphs if n not in graphs]
    if missing:
        raise PipelineLoadError(f"{cls.__name__} needs the model(s) {', '.join(part_name(n) for n in missing)} "
                                f"({', '.join(missing)} graphs); the parts given have {', '.join(graphs.names)}")
    if given.get("scheduler") is None:
        raise TypeError(f"{cls.__name__}() needs a scheduler= (e.g. pipe.scheduler)")
    for name in UNUSED_PARTS:
        if given.get(name) is not None:
            warn_once(f"part:{name}", f"{cls.__name__}: {name} is not run here (the graphs are what runs); ignored")
    tokenizers = {k: v for k, v in given.items() if k.startswith("tokenizer") and v is not None}
    index_path = graphs.folder / "model_index.json"
    model_index = read_model_index(graphs.folder) if index_path.is_file() else {}
    config = {k: given[k] for k in CONFIG_ARGUMENTS if k in given}
    return dict(folder=graphs.folder, graphs=graphs, scheduler=as_scheduler(given["scheduler"]),
                model_index=model_index, tokenizers=tokenizers, models=models, config=config)


class DiffusersMethods:
    """Attributes and calls of diffusers' ``DiffusionPipeline`` (and optimum's) that are not generation."""

    # ---- parts ----------------------------------------------------------------------------------

    def _model(self, part: str):
        models = self.__dict__.setdefault("_models", {})
        if part not in models:
            component = next((g for g in PART_GRAPHS.get(part, (part,)) if g in self.graphs), None)
            models[part] = None if component is None else model_for(self.graphs, component)
        return models[part]

    unet = property(lambda self: self._model("unet"), doc="the UNet (its graph and config)")
    vae = property(lambda self: self._model("vae"), doc="the VAE (decoder and encoder graphs, slicing, tiling)")
    text_encoder = property(lambda self: self._model("text_encoder"))
    text_encoder_2 = property(lambda self: self._model("text_encoder_2"))
    text_encoder_3 = property(lambda self: self._model("text_encoder_3"))
    transformer = property(lambda self: self._model("transformer"))
    tokenizer_2 = property(lambda self: self.tokenizers.get("tokenizer_2"))
    tokenizer_3 = property(lambda self: self.tokenizers.get("tokenizer_3"))
    safety_checker = feature_extractor = image_encoder = None

    def _part(self, name: str):
        if name == "scheduler":
            return self.scheduler
        if name.startswith("tokenizer"):
            return self.tokenizers.get(name)
        if name in UNUSED_PARTS:
            return None
        return self._model(name)

    @property
    def components(self) -> dict:
        """The parts as diffusers names them, for ``OtherPipeline(**pipe.components)`` (shares the graphs)."""
        return {name: self._part(name) for name in component_names(type(self))}

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        """A ``cls`` pipeline on ``pipeline``'s parts (``kwargs`` replace some), sharing its graphs."""
        names = component_names(cls)
        parts = {k: v for k, v in pipeline.components.items() if k in names}
        parts.update(kwargs)
        for name, value in getattr(pipeline, "_pipeline_config", {}).items():
            parts.setdefault(name, value)
        return cls(**{k: v for k, v in parts.items() if k in names or k in CONFIG_ARGUMENTS or k in UNUSED_PARTS})

    @property
    def config(self) -> FrozenConfig:
        """diffusers' pipeline config: the model index (class names of the parts) and the pipeline options."""
        return FrozenConfig({**self.model_index, **getattr(self, "_pipeline_config", {}),
                             "_class_name": type(self).__name__})

    @property
    def name_or_path(self) -> str:
        return str(self.folder)

    @staticmethod
    def numpy_to_pil(images):
        from .image_io import numpy_to_pil

        return numpy_to_pil(images)

    # ---- device and precision -------------------------------------------------------------------

    @property
    def device(self) -> str:
        """The engine's device: an OpenVINO device name, or "cpu" / "cuda" for onnxruntime's providers."""
        if self.graphs.backend == "openvino":
            return str(self.graphs.options.get("device") or "CPU")
        providers = self.graphs.options.get("providers") or ["CPUExecutionProvider"]
        first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        return "cuda" if "CUDA" in str(first) or "Tensorrt" in str(first) else "cpu"

    _execution_device = device

    @property
    def dtype(self):
        """The UNet's (or transformer's) graph precision."""
        model = self.unet or self.transformer
        import numpy as np

        return model.dtype if model is not None else np.dtype(np.float32)

    def to(self, *args, device=None, dtype=None, torch_device=None, torch_dtype=None, silence_dtype_warnings=False):
        """diffusers' / optimum's ``to(device)``, ``to(dtype)``, ``to(device, dtype)``: see the module docstring."""
        from .keywords import dtype_name

        device = device or torch_device
        dtype = dtype or torch_dtype
        for arg in args:
            if isinstance(arg, (str, Path)) or type(arg).__name__ == "device" or isinstance(arg, int):
                device = arg
            else:
                dtype = arg
        if device is not None:
            self._move_to(str(getattr(device, "type", device)) if not isinstance(device, int) else
                          ("cpu" if device < 0 else f"cuda:{device}"))
        if dtype is not None:
            self._use_precision(dtype_name(dtype), "to")
        return self

    def half(self):
        """fp16 graphs where the folder has them (``model.fp16.onnx`` ...), else a warning."""
        self._use_precision("fp16", "half()")
        return self

    def float(self):
        self._use_precision("fp32", "float()")
        return self

    def cpu(self):
        return self.to("cpu")

    def _move_to(self, device: str) -> None:
        graphs, name = self.graphs, device.lower()
        if graphs.backend == "openvino":
            if name.startswith(("cuda", "mps", "xpu")):
                warn_once(f"to:{name}", f"to({device!r}): a torch device; OpenVINO devices are CPU, GPU, NPU, AUTO "
                          f"(pipe.to('GPU')); staying on {self.device}")
                return
            target = "CPU" if name == "cpu" else device.upper()
            if target != graphs.options.get("device"):
                from ..runtime.openvino_engine import check_device

                graphs.reconfigure(device=check_device(target))
            return
        if name == "cpu":
            if self.device != "cpu":
                graphs.reconfigure(providers=["CPUExecutionProvider"])
            return
        if name.startswith("cuda"):
            from ..runtime.onnxruntime_engine import available_providers

            if "CUDAExecutionProvider" in available_providers():
                index = name.partition(":")[2] or "0"
                graphs.reconfigure(providers=[("CUDAExecutionProvider", {"device_id": int(index)}),
                                              "CPUExecutionProvider"])
            else:
                warn_once("to:cuda", f"to({device!r}): this onnxruntime has no CUDA provider "
                          f"({', '.join(available_providers())}); running on the CPU")
            return
        warn_once(f"to:{name}", f"to({device!r}) has no onnxruntime equivalent here; pass providers=[...] to "
                  "from_pretrained (CoreML, DirectML, OpenVINO, ...); staying on the CPU")

    def _use_precision(self, dtype: str | None, how: str) -> None:
        graphs = self.graphs
        if dtype is None:
            return
        wanted = "fp16" if dtype in ("fp16", "bf16") else None
        if wanted and graphs.has_variant(wanted):
            if graphs.variant != wanted:
                graphs.reconfigure(variant=wanted)
            return
        if not wanted and graphs.variant in ("fp16",):
            graphs.reconfigure(variant=None)
            return
        exported = graphs_precision(graphs)
        if exported != dtype and not (dtype == "bf16" and exported == "fp16"):
            warn_once(f"dtype:{dtype}", f"{how} asks for {dtype}; this folder's graphs are {exported} and have no "
                      f"{dtype} variant files: they run as exported (precision is chosen at export: "
                      "`edge-sched export ... --dtype fp16`)")

    # ---- memory ---------------------------------------------------------------------------------

    def enable_model_cpu_offload(self, gpu_id=None, device=None):
        """Our low-memory mode: each graph is loaded for its stage and released after it (onnxruntime:
        activations freed after each run too, as from_pretrained(low_memory=True) does)."""
        changes = {}
        if self.graphs.backend == "onnxruntime" and "cpu_memory_arena" not in self.graphs.options:
            changes["cpu_memory_arena"] = False
        self.graphs.reconfigure(low_memory=True, **changes)

    enable_sequential_cpu_offload = enable_model_cpu_offload

    def disable_model_cpu_offload(self):
        self.graphs.low_memory = False

    def remove_all_hooks(self):
        self.disable_model_cpu_offload()

    def maybe_free_model_hooks(self):
        """diffusers frees offloaded models after a call; in low-memory mode nothing stays loaded anyway."""

    def enable_vae_slicing(self):
        """Decode (and encode) one image at a time: ``pipe.vae.enable_slicing()``."""
        self.vae.enable_slicing()

    def disable_vae_slicing(self):
        self.vae.disable_slicing()

    def enable_vae_tiling(self):
        """Tiled VAE decoding and encoding as diffusers does it: ``pipe.vae.enable_tiling()``."""
        self.vae.enable_tiling()

    def disable_vae_tiling(self):
        self.vae.disable_tiling()

    def enable_attention_slicing(self, slice_size="auto"):
        warn_once("attention_slicing", "enable_attention_slicing(): attention is inside the exported UNet graph; "
                  "the engine plans its memory (low-memory mode: enable_model_cpu_offload()); no effect")

    def disable_attention_slicing(self):
        """Nothing to undo (see enable_attention_slicing)."""

    set_attention_slice = enable_attention_slicing

    def enable_xformers_memory_efficient_attention(self, attention_op=None):
        warn_once("xformers", "enable_xformers_memory_efficient_attention(): xformers is a torch library; the "
                  "engine picks its own attention kernels; no effect")

    def disable_xformers_memory_efficient_attention(self):
        """Nothing to undo."""

    def enable_freeu(self, s1, s2, b1, b2):
        raise NotImplementedError("FreeU rescales the UNet's inner features, which are fixed inside the exported graph")

    def disable_freeu(self):
        """Nothing to undo."""


def graphs_precision(graphs) -> str:
    """"fp16" or "fp32": the manifest's dtype where edge-sched exported the folder, else the graphs' inputs."""
    from ..jsonfile import read_json

    manifest = graphs.folder / "edge_sched.json"
    if manifest.is_file():
        dtype = read_json(manifest).get("dtype")
        if dtype in ("fp16", "fp32"):
            return dtype
    return "fp32"
