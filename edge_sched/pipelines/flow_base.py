"""What the flow-matching pipelines share (Stable Diffusion 3, FLUX, Sana), step for step as diffusers runs
them: which schedulers can drive a flow model, ``calculate_shift`` (the resolution-dependent ``mu`` of
dynamic shifting), the transformer as the one loop's denoiser, CLIP / T5 text encoding on exported
graphs, sizes, and VAE decoding with the shift factor.

A flow model predicts the velocity v = noise - x0 of x_sigma = (1 - sigma) x0 + sigma noise; only
schedulers that integrate that ODE can drive it: FlowMatchEuler / FlowMatchHeun, and the multistep
solvers run on flow sigmas (``use_flow_sigmas=True`` with ``prediction_type="flow_prediction"``).
Initial latents are plain normals (no ``init_noise_sigma``), and ``scale_model_input`` is never called.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np

from ..random import randn_tensor
from .base import DiffusionPipeline, ImagePipelineOutput
from .common import check_strength, prompt_list, sample_latent_distribution
from .loading import PipelineLoadError
from .loop import Denoiser

logger = logging.getLogger(__name__)

FLOW_MATCH_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler")
#: schedulers that drive a flow model when configured with use_flow_sigmas=True, prediction_type="flow_prediction"
FLOW_SIGMA_SCHEDULERS = ("DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler",
                         "DEISMultistepScheduler", "SASolverScheduler")

#: optimum's ONNX exporter names the transformer's prediction out_hidden_states, optimum-intel's out_sample
TRANSFORMER = Denoiser(component="transformer", sample="hidden_states", outputs=("out_hidden_states", "out_sample"),
                       scale_model_input=False)


def check_flow_scheduler(scheduler, pipeline: str) -> None:
    """A clear error for a scheduler that cannot integrate a flow model's velocity."""
    name = type(scheduler).__name__
    if name in FLOW_MATCH_SCHEDULERS:
        return
    config = scheduler.config
    if name in FLOW_SIGMA_SCHEDULERS and config.get("use_flow_sigmas") and config.get("prediction_type") == "flow_prediction":
        return
    if name in FLOW_SIGMA_SCHEDULERS:
        raise ValueError(
            f"{name} with use_flow_sigmas={config.get('use_flow_sigmas')!r}, prediction_type="
            f"{config.get('prediction_type')!r} cannot drive {pipeline}'s flow-matching transformer: build it with "
            f"use_flow_sigmas=True, prediction_type='flow_prediction' (e.g. {name}.from_config(config, "
            "use_flow_sigmas=True, prediction_type='flow_prediction', flow_shift=3.0))")
    raise ValueError(
        f"{name} cannot drive {pipeline}'s flow-matching transformer (it predicts a velocity, not noise); use "
        f"{' or '.join(FLOW_MATCH_SCHEDULERS)}, or one of {', '.join(FLOW_SIGMA_SCHEDULERS)} with "
        "use_flow_sigmas=True, prediction_type='flow_prediction'")


def flow_solver_options(name: str, config) -> dict:
    """The options that make scheduler class ``name``, built from a flow pipeline's own scheduler config
    (FlowMatchEuler's, with ``shift``), drive its flow model: what diffusers' users set by hand for DPM-Solver,
    UniPC, DEIS and SA-Solver (``use_flow_sigmas``, ``prediction_type="flow_prediction"``, ``flow_shift`` =
    the folder's ``shift``, and its dynamic shifting where the class has it). Used by `edge-sched generate
    --scheduler`, where nobody can pass them; empty for the flow-match schedulers, for a config that is already
    a flow-sigma one, and for schedulers that cannot drive a flow model (the pipeline then says why)."""
    from ..schedulers import scheduler_class

    config = dict(config)
    if name not in FLOW_SIGMA_SCHEDULERS or config.get("use_flow_sigmas"):
        return {}
    options = {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
               "flow_shift": float(config.get("shift", config.get("flow_shift", 1.0)))}
    if "use_dynamic_shifting" in inspect.signature(scheduler_class(name).__init__).parameters:
        options["use_dynamic_shifting"] = bool(config.get("use_dynamic_shifting", False))
    return options


class FlowImageToImage:
    """For the image-to-image classes (SD3, FLUX): the command line's call, at the init image's size rounded
    down to what the transformer takes (diffusers' call would default to the model's size)."""

    def image_to_image_arguments(self, image, mask, strength) -> dict:
        if mask is not None:
            raise ValueError("--mask is for inpainting pipelines; this one does image-to-image")
        multiple = self.size_multiple
        size = {"height": image.height // multiple * multiple, "width": image.width // multiple * multiple}
        return {"image": image, **size, **({} if strength is None else {"strength": strength})}


def calculate_shift(image_seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096, base_shift: float = 0.5,
                    max_shift: float = 1.15) -> float:
    """diffusers' ``calculate_shift``: ``mu`` linear in the image's token count (Python floats, as there)."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    b = base_shift - m * base_seq_len
    return image_seq_len * m + b


def as_prompts(name: str, value, batch: int | None = None) -> list[str] | None:
    """A prompt argument as a list (a string is repeated ``batch`` times); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value] * (batch or 1)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{name} must be a string or a non-empty list of strings, got {type(value).__name__}")


class FlowPipelineBase(DiffusionPipeline):
    """Sizes, text encoders, schedules and VAE decoding shared by the flow-matching transformer pipelines."""

    denoiser = TRANSFORMER
    #: diffusers' bound on max_sequence_length (SD3, FLUX: 512; Sana checks none)
    max_sequence_limit: float = 512

    # ---- configs -------------------------------------------------------------------------------

    @property
    def transformer_config(self) -> dict:
        return self.graphs.configs.get("transformer", {})

    @property
    def vae_config(self) -> dict:
        return self.graphs.configs.get("vae_decoder", {})

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae_config.get("scaling_factor", 1.0))

    @property
    def shift_factor(self) -> float:
        return float(self.vae_config.get("shift_factor") or 0.0)

    @property
    def patch_size(self) -> int:
        return int(self.transformer_config.get("patch_size", 2))

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1

    @property
    def size_multiple(self) -> int:
        """What image heights and widths must be multiples of."""
        return self.vae_scale_factor * self.patch_size

    def size_rule(self) -> str:
        """Why, in words (error messages)."""
        return f"the VAE scale factor {self.vae_scale_factor} times the transformer's patch size"

    def check_size(self, height, width, multiple: int) -> tuple[int, int]:
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0 or value % multiple:
                raise ValueError(f"{name} must be a positive multiple of {multiple} ({self.size_rule()}), "
                                 f"got {value!r}")
        return int(height), int(width)

    def check_max_sequence_length(self, value, tokenizer_name: str, limit: float = 512) -> int:
        """diffusers refuses more than ``limit`` (512) T5 tokens; the tokenizer's own limit is checked too
        (not with an infinite ``limit``: Sana's instruction makes its texts longer than the tokenizer's)."""
        tokenizer = self.tokenizers.get(tokenizer_name)
        bound = limit if limit == float("inf") else min(limit, getattr(tokenizer, "model_max_length", limit) or limit)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= bound:
            raise ValueError(f"max_sequence_length must be an integer in [1, {bound}] (the text encoder's limit), "
                             f"got {value!r}")
        return int(value)

    # ---- static shapes -------------------------------------------------------------------------

    def reshape(self, batch_size: int = 1, height: int | None = None, width: int | None = None,
                num_images_per_prompt: int = 1, guided: bool = False, max_sequence_length: int | None = None):
        """Fix every graph's input shapes for this image size, batch, guidance on/off and text length
        (OpenVINO; as optimum-intel's ``pipe.reshape``): NPUs run static shapes only, and a static batch
        smaller than the transformer's (classifier-free guidance doubles it) runs in chunks. Later calls must
        use the same size, batch, guidance and ``max_sequence_length`` (another is an error naming both
        shapes). Returns the pipeline."""
        height, width = self.default_size(height, width)
        for name, value in (("batch_size", batch_size), ("num_images_per_prompt", num_images_per_prompt)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if max_sequence_length is None:
            max_sequence_length = inspect.signature(type(self).__call__).parameters["max_sequence_length"].default
        length = self.check_max_sequence_length(max_sequence_length, self.t5_tokenizer_name, self.max_sequence_limit)
        self.graphs.set_static_shapes(self.static_shape_plan(int(batch_size), height, width, int(num_images_per_prompt),
                                                             bool(guided), length))
        return self

    def static_shape_plan(self, batch: int, height: int, width: int, per_prompt: int, guided: bool,
                          max_sequence_length: int) -> dict:  # pragma: no cover - each pipeline has its own
        raise NotImplementedError

    def vae_shapes(self, images: int, height: int, width: int) -> dict:
        latent = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        plan = {"vae_decoder": {"latent_sample": (images, None, *latent)}}
        if "vae_encoder" in self.graphs:
            plan["vae_encoder"] = {"sample": (images, None, height, width)}
        return plan

    # ---- text encoders -------------------------------------------------------------------------

    def _tokenize(self, name: str, texts: list[str], max_length: int):
        tokenizer = self.tokenizers[name]
        ids = tokenizer(texts, padding="max_length", max_length=max_length, truncation=True).input_ids
        full = tokenizer(texts, padding="longest", truncation=False).input_ids
        if full.shape[1] > ids.shape[1]:
            logger.warning("a prompt was longer than %s's %d tokens and was truncated", name, max_length)
        return ids

    def run_text_encoder(self, encoder_name: str, ids: np.ndarray) -> dict[str, np.ndarray]:
        graph = self.graph(encoder_name)
        out = self.run_batched(graph, lambda rows, n: {"input_ids": ids[rows]}, ids.shape[0], "input_ids")
        self.graphs.done_with(encoder_name)
        return out

    def clip_embeddings(self, tokenizer_name: str, encoder_name: str, texts: list[str], clip_skip=None,
                        hidden: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """(hidden state: penultimate, or ``clip_skip`` layers earlier; pooled embedding) of a CLIP text
        encoder; ``hidden=False``: only the pooled one (FLUX)."""
        tokenizer = self.tokenizers[tokenizer_name]
        ids = self._tokenize(tokenizer_name, texts, tokenizer.model_max_length)
        out = self.run_text_encoder(encoder_name, ids)
        pooled_name = next((n for n in ("text_embeds", "pooler_output") if n in out), None)
        if pooled_name is None:
            raise PipelineLoadError(f"{self.folder / encoder_name}: the CLIP text encoder gives no pooled embedding "
                                    f"(text_embeds or pooler_output); its outputs: {', '.join(out)}")
        pooled = out[pooled_name].astype(np.float32, copy=False)
        if not hidden:
            return None, pooled
        layers = sorted((int(n.split(".")[1]), n) for n in out if n.startswith("hidden_states.")
                        and n.split(".")[1].isdigit())
        if len(layers) < 2:
            raise PipelineLoadError(f"{self.folder / encoder_name}: {type(self).__name__} needs the text encoder's hidden "
                                    f"states (outputs hidden_states.0 ... hidden_states.N); it gives {', '.join(out)}")
        skip = 0 if clip_skip is None else clip_skip
        if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or not 0 <= skip <= len(layers) - 2:
            raise ValueError(f"clip_skip must be an integer in [0, {len(layers) - 2}] for this text encoder, "
                             f"got {clip_skip!r}")
        return out[layers[-2 - skip][1]].astype(np.float32, copy=False), pooled

    def t5_embeddings(self, tokenizer_name: str, encoder_name: str, texts: list[str], max_length: int) -> np.ndarray:
        ids = self._tokenize(tokenizer_name, texts, max_length)
        out = self.run_text_encoder(encoder_name, ids)
        return out.get("last_hidden_state", next(iter(out.values()))).astype(np.float32, copy=False)

    # ---- schedule ------------------------------------------------------------------------------

    def flow_timesteps(self, num_inference_steps, sigmas=None, mu=None, timesteps=None) -> np.ndarray:
        """diffusers' ``retrieve_timesteps`` with ``mu`` when given; checks the scheduler first."""
        check_flow_scheduler(self.scheduler, type(self).__name__)
        extra = {}
        params = inspect.signature(self.scheduler.set_timesteps).parameters
        if mu is not None and (sigmas is None or "sigmas" in params):  # else _set_timesteps refuses the sigmas
            if "mu" not in params:
                raise ValueError(f"{type(self.scheduler).__name__} takes no mu (no dynamic shifting); "
                                 f"{type(self).__name__} passes one: use a scheduler with use_dynamic_shifting")
            extra["mu"] = mu
        return self._set_timesteps(num_inference_steps, timesteps=timesteps, sigmas=sigmas, **extra)

    def dynamic_shift_mu(self, image_seq_len: int, default_max_shift: float) -> float:
        """``calculate_shift`` with the scheduler config's bounds (diffusers' defaults where it has none)."""
        cfg = self.scheduler.config
        return calculate_shift(image_seq_len, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                               cfg.get("base_shift", 0.5), cfg.get("max_shift", default_max_shift))

    # ---- image-to-image --------------------------------------------------------------------------

    def preprocess_image(self, image, height: int, width: int) -> np.ndarray:
        from .image_io import image_processor  # needs Pillow

        if image is None:
            raise ValueError(f"{type(self).__name__} needs an init image (image=...)")
        return image_processor(self.vae_scale_factor).preprocess(image, height=height, width=width)

    def encode_image_latents(self, image: np.ndarray, generator) -> np.ndarray:
        """Init images [n, 3, H, W] in [-1, 1] -> ``(latents - shift) * scaling`` of a sample of the VAE encoder's
        Gaussian (diffusers' ``retrieve_latents``); with a list of generators image i draws from generator i."""
        encoder = self.graph("vae_encoder")
        if isinstance(generator, list):
            if len(generator) < image.shape[0]:
                raise ValueError(f"got {len(generator)} generators for {image.shape[0]} init images: pass one per image")
            latents = np.concatenate([
                sample_latent_distribution(encoder(sample=image[i:i + 1])["latent_parameters"], generator[i])
                for i in range(image.shape[0])])
        else:
            latents = sample_latent_distribution(encoder(sample=image)["latent_parameters"], generator)
        self.graphs.done_with("vae_encoder")
        return (latents - np.float32(self.shift_factor)) * np.float32(self.scaling_factor)

    def strength_timesteps(self, timesteps: np.ndarray, num_inference_steps: int, strength) -> np.ndarray:
        """The tail of the schedule that ``strength`` keeps, as the flow pipelines' ``get_timesteps`` computes it
        (``num_inference_steps * strength`` as a float); the scheduler's begin index set to its start."""
        check_strength(strength)
        init = min(num_inference_steps * strength, num_inference_steps)
        start = int(max(num_inference_steps - init, 0))
        order = self.scheduler.order
        kept = timesteps[start * order:]
        if len(kept) < 1:
            raise ValueError(f"strength={strength} with {num_inference_steps} steps leaves no step to run; "
                             "use a larger strength or more steps")
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start * order)
        return self._record_timesteps(kept)

    def noised_latents(self, clean: np.ndarray, timestep, generator) -> np.ndarray:
        """``clean`` moved to ``timestep`` along the flow: ``scheduler.scale_noise`` with fresh noise."""
        scale_noise = getattr(self.scheduler, "scale_noise", None)
        if scale_noise is None:
            raise ValueError(f"{type(self.scheduler).__name__} has no scale_noise (the flow-matching forward process); "
                             f"image-to-image with {type(self).__name__} needs {' or '.join(FLOW_MATCH_SCHEDULERS)}, "
                             "as in diffusers")
        noise = randn_tensor(clean.shape, generator=generator, dtype=np.float32)
        return scale_noise(clean, np.repeat(np.asarray(timestep).reshape(1), clean.shape[0]), noise)

    # ---- VAE -----------------------------------------------------------------------------------

    def decode_latents(self, latents: np.ndarray) -> np.ndarray:
        """latents -> images in [-1, 1] (NCHW): ``latents / scaling_factor + shift_factor`` through the decoder."""
        vae = self.graph("vae_decoder")
        scaled = latents / np.float32(self.scaling_factor)
        if self.vae_config.get("shift_factor") is not None:
            scaled = scaled + np.float32(self.shift_factor)
        images = self.run_batched(vae, lambda rows, n: {"latent_sample": scaled[rows]}, scaled.shape[0],
                                  "latent_sample")["sample"]
        self.graphs.done_with("vae_decoder")
        return images.astype(np.float32, copy=False)

    def finish(self, latents: np.ndarray, output_type: str, return_dict: bool):
        if output_type == "latent":
            images = latents
        else:
            from .image_io import image_processor  # needs Pillow

            images = image_processor(self.vae_scale_factor).postprocess(self.decode_latents(latents), output_type)
        return ImagePipelineOutput(images) if return_dict else (images,)


def check_prompt_args(prompt, prompt_embeds, **others) -> list[str] | None:
    """The prompt list (None with ``prompt_embeds``); the other prompt arguments may not come with embeddings."""
    texts = prompt_list(prompt, prompt_embeds)
    if prompt_embeds is not None:
        given = [k for k, v in others.items() if v is not None]
        if given:
            raise ValueError(f"give either {', '.join(given)} or prompt_embeds, not both")
    return texts
