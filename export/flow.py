"""The flow-matching transformer pipelines on the export side (Stable Diffusion 3, FLUX, Sana): their
validation inputs and torch references per component, and the static-shape plan of their graphs.

optimum's exporters (optimum-onnx's sd3-transformer-2d, flux-transformer-2d, sana-transformer,
t5-encoder, clip-text(-with-projection), gemma2-text-encoder, dcae; optimum-intel for OpenVINO) make the
graphs; this module only knows what to feed them:

- SD3: transformer(hidden_states [B, C, h, w], encoder_hidden_states [B, S, joint_attention_dim],
  pooled_projections [B, pooled_projection_dim], timestep [B] = sigma * 1000);
- FLUX: transformer(hidden_states [B, h/2 * w/2, C * 4] (packed 2x2 latent patches), encoder_hidden_states,
  pooled_projections, timestep [B] = sigma, img_ids [h/2 * w/2, 3], txt_ids [S, 3], guidance [B] when the
  model embeds guidance);
- Sana: transformer(hidden_states [B, C, h, w], encoder_hidden_states [B, S, caption_channels],
  encoder_attention_mask [B, S], timestep [B]).
"""

from __future__ import annotations

import numpy as np

from .errors import ExportError
from .validate import _shape

FLOW_FAMILIES = ("sd3", "flux", "sana")
PREDICTION_TYPE = "flow_prediction"
# validation sizes: a text of 16 tokens for T5 / Gemma (their graphs take any length), latents of 8 x 8
TEXT_TOKENS = 16
LATENT = 8
BATCH = 2
_TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


def _tokenizer_for(name: str, pipe):
    return getattr(pipe, {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2",
                          "text_encoder_3": "tokenizer_3"}[name])


def _text_length(tokenizer) -> int:
    """CLIP graphs get their full 77 tokens; T5 / Gemma a short text (any length runs)."""
    length = int(getattr(tokenizer, "model_max_length", TEXT_TOKENS) or TEXT_TOKENS)
    return length if length <= 77 else TEXT_TOKENS


def make_inputs(name: str, pipe, graph: dict, seed: int = 0) -> dict:
    """Random numpy inputs for component ``name`` of a flow pipeline, shaped as the pipeline feeds it."""
    rng = np.random.default_rng(seed)
    spec = {i["name"]: i for i in graph["inputs"]}
    wanted = {}

    def normal(*shape):
        return lambda s, dt: rng.standard_normal(_shape(s, shape)).astype(dt)

    vae_factor = 2 ** (len(getattr(pipe.vae.config, "block_out_channels", None)
                           or pipe.vae.config.encoder_block_out_channels) - 1)  # AutoencoderKL or DC-AE
    if name in _TEXT_ENCODERS:
        tokenizer = _tokenizer_for(name, pipe)
        vocab, seq = int(getattr(pipe, name).config.vocab_size), _text_length(tokenizer)
        wanted["input_ids"] = lambda s, dt: rng.integers(0, vocab, size=_shape(s, (BATCH, seq))).astype(dt)
        wanted["attention_mask"] = lambda s, dt: np.ones(_shape(s, (BATCH, seq)), dtype=dt)
    elif name == "transformer":
        cfg = pipe.transformer.config
        family = family_of(pipe)
        seq = _text_length(getattr(pipe, "tokenizer_3", None) or getattr(pipe, "tokenizer_2", None) or pipe.tokenizer)
        if family == "flux":
            tokens = (LATENT // 2) ** 2
            wanted["hidden_states"] = normal(BATCH, tokens, int(cfg.in_channels))
            wanted["timestep"] = lambda s, dt: rng.uniform(0.01, 1.0, size=_shape(s, (BATCH,))).astype(dt)
            wanted["img_ids"] = lambda s, dt: _image_ids(LATENT // 2, LATENT // 2).astype(dt)
            wanted["txt_ids"] = lambda s, dt: np.zeros(_shape(s, (seq, 3)), dtype=dt)
            wanted["guidance"] = lambda s, dt: rng.uniform(1.0, 5.0, size=_shape(s, (BATCH,))).astype(dt)
            wanted["encoder_hidden_states"] = normal(BATCH, seq, int(cfg.joint_attention_dim))
            wanted["pooled_projections"] = normal(BATCH, int(cfg.pooled_projection_dim))
        elif family == "sd3":
            wanted["hidden_states"] = normal(BATCH, int(cfg.in_channels), LATENT, LATENT)
            wanted["timestep"] = lambda s, dt: rng.uniform(1.0, 1000.0, size=_shape(s, (BATCH,))).astype(dt)
            wanted["encoder_hidden_states"] = normal(BATCH, 77 + seq, int(cfg.joint_attention_dim))
            wanted["pooled_projections"] = normal(BATCH, int(cfg.pooled_projection_dim))
        else:  # sana
            wanted["hidden_states"] = normal(BATCH, int(cfg.in_channels), LATENT, LATENT)
            wanted["timestep"] = lambda s, dt: rng.uniform(1.0, 1000.0, size=_shape(s, (BATCH,))).astype(dt)
            wanted["encoder_hidden_states"] = normal(BATCH, seq, int(cfg.caption_channels))
            wanted["encoder_attention_mask"] = lambda s, dt: np.ones(_shape(s, (BATCH, seq)), dtype=dt)
    elif name == "vae_encoder":
        channels = int(pipe.vae.config.in_channels)
        size = LATENT * vae_factor
        wanted["sample"] = lambda s, dt: rng.uniform(-1, 1, _shape(s, (1, channels, size, size))).astype(dt)
    elif name == "vae_decoder":
        wanted["latent_sample"] = normal(1, int(pipe.vae.config.latent_channels), LATENT, LATENT)
    unknown = set(spec) - set(wanted)
    if unknown:
        raise ValueError(f"{name}: graph inputs {sorted(unknown)} are not known to the validation")
    return {k: wanted[k](spec[k]["shape"], spec[k]["dtype"]) for k in spec}


def _image_ids(height: int, width: int) -> np.ndarray:
    """FLUX's latent image ids: [h * w, 3] rows (0, row, column), as diffusers' _prepare_latent_image_ids."""
    ids = np.zeros((height, width, 3), dtype=np.float32)
    ids[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    ids[..., 2] = np.arange(width, dtype=np.float32)[None, :]
    return ids.reshape(height * width, 3)


def family_of(pipe) -> str:
    name = type(pipe).__name__
    if name.startswith("StableDiffusion3"):
        return "sd3"
    if name.startswith("Flux"):
        return "flux"
    if name.startswith("Sana"):
        return "sana"
    raise ExportError(f"{name} is not a flow-matching pipeline this export knows")


def torch_reference(name: str, pipe, inputs: dict) -> dict:
    """The diffusers / transformers module on the same inputs, outputs named like the graph's."""
    import torch

    dcae = family_of(pipe) == "sana"
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    with torch.inference_mode():
        if name in _TEXT_ENCODERS:
            model = getattr(pipe, name)
            kwargs = {"input_ids": t["input_ids"].long(), "output_hidden_states": True}
            if "attention_mask" in t:
                kwargs["attention_mask"] = t["attention_mask"].long()
            out = model(**kwargs)
            result = {"last_hidden_state": out.last_hidden_state}
            for key in ("pooler_output", "text_embeds"):
                if getattr(out, key, None) is not None:
                    result[key] = getattr(out, key)
            result.update({f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states or ())})
        elif name == "transformer":
            kwargs = {k: v.float() for k, v in t.items() if k not in ("encoder_attention_mask",)}
            if "encoder_attention_mask" in t:
                kwargs["encoder_attention_mask"] = t["encoder_attention_mask"]
            sample = pipe.transformer(**kwargs, return_dict=False)[0]
            result = {"out_hidden_states": sample, "out_sample": sample}
        elif name == "vae_encoder" and dcae:  # optimum-onnx names the DC-AE latent latent_sample, optimum-intel latent
            latent = pipe.vae.encode(t["sample"].float()).latent
            result = {"latent_sample": latent, "latent": latent}
        elif name == "vae_encoder":
            result = {"latent_parameters": pipe.vae.encode(t["sample"].float()).latent_dist.parameters}
        elif name == "vae_decoder":
            result = {"sample": pipe.vae.decode(t["latent_sample"].float()).sample}
        else:
            raise ValueError(f"no torch reference for component {name!r}")
    return {k: v.float().numpy() for k, v in result.items()}


# Sana's transformer sample_size -> the aspect-ratio table diffusers' SanaPipeline bins sizes to
_SANA_BINS = {128: "ASPECT_RATIO_4096_BIN", 64: "ASPECT_RATIO_2048_BIN", 32: "ASPECT_RATIO_1024_BIN",
              16: "ASPECT_RATIO_512_BIN"}
PIPELINE_DEFAULTS = "pipeline_defaults.json"


def pipeline_defaults(pipe, family: str) -> dict | None:
    """Call defaults the runtime needs that are data in diffusers (written to ``pipeline_defaults.json``): Sana's
    ``complex_human_instruction`` (its __call__ default) and the aspect-ratio bins of ``use_resolution_binning``."""
    if family != "sana":
        return None
    import inspect

    import diffusers.pipelines.sana.pipeline_sana as sana

    default = inspect.signature(type(pipe).__call__).parameters["complex_human_instruction"].default
    table = _SANA_BINS.get(int(pipe.transformer.config.sample_size))
    bins = None if table is None else {k: [int(v[0]), int(v[1])] for k, v in getattr(sana, table).items()}
    return {"complex_human_instruction": list(default) if default else None, "aspect_ratio_bins": bins}
