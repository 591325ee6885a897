"""The keywords diffusers' and optimum's ``from_pretrained`` take, sorted into what they mean here.

A ported script passes them unchanged; each one is mapped onto our loading (Hub options, engine
options, the graph variant), taken as a pipeline part (``scheduler=``, ``safety_checker=None``...),
accepted as a no-op (with the reason logged once, as a warning where the caller expects an effect),
or refused with a message that says what to do instead. Keywords neither library knows are
ignored with a warning, as diffusers ignores them.
"""

from __future__ import annotations

import dataclasses
import logging

logger = logging.getLogger("edge_sched")

#: Hub keywords passed to huggingface_hub as they are
HUB_KEYWORDS = ("revision", "token", "local_files_only", "force_download", "proxies")
#: engine keywords of our own (engine_options) and the ones optimum names the same way
ENGINE_KEYWORDS = ("device", "providers", "provider_options", "allow_cpu_fallback", "num_threads",
                   "inference_precision", "static_shapes", "graph_optimization_level", "performance_hint",
                   "cpu_memory_arena", "session_options", "ov_config")
#: pipeline parts a constructor takes (diffusers' and optimum's names)
PART_KEYWORDS = ("scheduler", "tokenizer", "tokenizer_2", "tokenizer_3", "unet", "vae", "text_encoder",
                 "text_encoder_2", "text_encoder_3", "transformer", "safety_checker", "feature_extractor",
                 "image_encoder", "requires_safety_checker", "force_zeros_for_empty_prompt", "add_watermarker",
                 "requires_aesthetics_score")

#: accepted, no effect: keyword -> why (logged at info: nothing a caller would miss)
QUIET_NO_OPS = {
    "use_safetensors": "the graphs are ONNX / OpenVINO files, not torch weights",
    "low_cpu_mem_usage": "graphs are loaded by the engine, not by torch (see low_memory=True)",
    "resume_download": "huggingface_hub resumes downloads by itself",
    "use_io_binding": "numpy feeds are bound by the engine already; there is no torch tensor to bind",
    "model_save_dir": "the folder is used where it is",
    "trust_remote_code": "no code is loaded from the folder",
    "output_loading_info": "there are no torch weights whose loading could be reported",
    "dynamic_shapes": "graphs keep the shapes they were exported with; fix sizes with pipe.reshape(...)",
    "mirror": "huggingface_hub's endpoint setting (HF_ENDPOINT) applies",
}
#: accepted, no effect, and the caller expects one: keyword -> why (a warning, once)
LOUD_NO_OPS = {
    "device_map": "graphs run on the engine's device: pass device= (OpenVINO) or providers= (onnxruntime)",
    "max_memory": "memory is not split across devices here; low_memory=True keeps one graph in memory at a time",
    "offload_folder": "nothing is offloaded to disk; low_memory=True keeps one graph in memory at a time",
    "offload_state_dict": "nothing is offloaded; low_memory=True keeps one graph in memory at a time",
    "compile_only": "graphs are compiled when loaded (compile=False defers it)",
}
#: refused: keyword -> what to do instead
REFUSED = {
    "custom_pipeline": "community pipelines run torch code; only the pipelines of edge_sched.pipelines run here",
    "custom_revision": "community pipelines run torch code; only the pipelines of edge_sched.pipelines run here",
    "dduf_file": "DDUF archives hold torch weights; export the pipeline with `edge-sched export`",
    "quantization_config": "weights are quantized at export: `edge-sched export ... --weight-compression int8`",
    "load_in_8bit": "weights are quantized at export: `edge-sched export ... --weight-compression int8`",
    "load_in_4bit": "weights are quantized at export: `edge-sched export ... --weight-compression int8`",
    "from_flax": "export the pipeline with `edge-sched export` on a workstation",
    "from_onnx": "ONNX graphs load as they are (backend='openvino' runs them with OpenVINO)",
}

_warned: set[str] = set()


def warn_once(key: str, message: str, *, loud: bool = True) -> None:
    """Log ``message`` once per process (a warning, or info when ``loud`` is False)."""
    if key in _warned:
        return
    _warned.add(key)
    (logger.warning if loud else logger.info)(message)


DTYPE_NAMES = {"float16": "fp16", "fp16": "fp16", "half": "fp16", "float32": "fp32", "fp32": "fp32",
               "float": "fp32", "bfloat16": "bf16", "bf16": "bf16"}


def dtype_name(dtype) -> str | None:
    """torch_dtype as given (torch.float16, edge_sched.torch_compat.float16, np.float16, "float16",
    "auto", None) -> "fp16" / "fp32" / "bf16" / None (no preference)."""
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, dict):  # diffusers' per-component dict: the default entry decides here
        return dtype_name(dtype.get("default", next(iter(dtype.values()), None)))
    text = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
    key = str(text).rsplit(".", 1)[-1].strip("'>").lower()
    if key not in DTYPE_NAMES:
        raise ValueError(f"torch_dtype={dtype!r} is not a floating-point type this runtime knows "
                         f"(float16, float32, bfloat16, 'auto')")
    return DTYPE_NAMES[key]


@dataclasses.dataclass
class LoadRequest:
    """What a ``from_pretrained`` call asks for, sorted."""

    hub: dict
    engine: dict
    parts: dict
    backend: str = "auto"
    variant: str | None = None
    dtype: str | None = None
    low_memory: bool = False
    compile: bool = True
    export: bool | None = None
    precision: str | None = None  # our precision= (precision.py); None: not given


def sort_keywords(where: str, kwargs: dict) -> LoadRequest:
    """Sort ``kwargs`` of ``where`` (e.g. "StableDiffusionPipeline.from_pretrained") into a LoadRequest,
    logging the no-ops and raising for the refused."""
    kwargs = dict(kwargs)
    hub = {k: kwargs.pop(k) for k in HUB_KEYWORDS if k in kwargs}
    if "use_auth_token" in kwargs:
        token = kwargs.pop("use_auth_token")
        if hub.get("token") is not None and token is not None:
            raise ValueError(f"{where}: pass token= or use_auth_token=, not both")
        hub.setdefault("token", token)
    cache_dir, hub_cache_dir = kwargs.pop("cache_dir", None), kwargs.pop("hub_cache_dir", None)
    # diffusers' and optimum's cache_dir is the Hub cache; ours is also OpenVINO's compiled-blob cache
    hub["cache_dir"] = hub_cache_dir if hub_cache_dir is not None else cache_dir
    engine = {k: kwargs.pop(k) for k in ENGINE_KEYWORDS if k in kwargs}
    engine["cache_dir"] = cache_dir
    provider = kwargs.pop("provider", None)
    if provider is not None:  # optimum's single provider string; providers= wins, as in optimum
        if not isinstance(provider, str):
            raise TypeError(f"{where}: provider= must be a provider name string (e.g. 'CPUExecutionProvider'), "
                            f"got {type(provider).__name__}; pass a list as providers=")
        engine.setdefault("providers", None)
        if engine["providers"] is None:
            engine["providers"] = [provider]
    if isinstance(engine.get("provider_options"), dict):  # optimum: one dict for the first provider
        engine["provider_options"] = [engine["provider_options"]]
        if engine.get("providers") is None:
            engine["providers"] = ["CPUExecutionProvider"]
    parts = {k: kwargs.pop(k) for k in PART_KEYWORDS if k in kwargs}
    request = LoadRequest(hub=hub, engine=engine, parts=parts,
                          backend=kwargs.pop("backend", "auto"), variant=kwargs.pop("variant", None),
                          dtype=dtype_name(kwargs.pop("torch_dtype", kwargs.pop("dtype", None))),
                          low_memory=bool(kwargs.pop("low_memory", False)), compile=bool(kwargs.pop("compile", True)),
                          export=kwargs.pop("export", None), precision=kwargs.pop("precision", None))
    for key in list(kwargs):
        if key in REFUSED:
            raise ValueError(f"{where}: {key}= is not supported here: {REFUSED[key]}")
        if key in QUIET_NO_OPS:
            kwargs.pop(key)
            warn_once(f"kw:{key}", f"{where}: {key}= has no effect here ({QUIET_NO_OPS[key]})", loud=False)
        elif key in LOUD_NO_OPS:
            kwargs.pop(key)
            warn_once(f"kw:{key}", f"{where}: {key}= has no effect here ({LOUD_NO_OPS[key]})")
    if kwargs:
        logger.warning("%s: keyword arguments %s are not expected and will be ignored (as diffusers ignores them)",
                       where, sorted(kwargs))
    return request
