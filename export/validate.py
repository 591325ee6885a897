"""Validation after export: each torch component and its graph on the same random inputs."""

from __future__ import annotations

import numpy as np

# relative bound = max|graph - torch| / max|torch|, per dtype the graphs were exported in
THRESHOLDS = {"fp32": 1e-3, "fp16": 2e-2}
BATCH = {"text_encoder": 2, "unet": 2, "vae_encoder": 1, "vae_decoder": 1}


def _shape(graph_shape, wanted):
    """The graph's static dims where it has them, ours where the axis is dynamic."""
    if graph_shape is None:
        return tuple(wanted)
    if len(graph_shape) != len(wanted):
        # e.g. a scalar timestep (rank 0) or a (1,) one
        return tuple(graph_shape)
    return tuple(g if isinstance(g, int) and g > 0 else w for g, w in zip(graph_shape, wanted))


def make_inputs(name: str, pipe, graph: dict, seed: int = 0) -> dict:
    """Random numpy inputs for ``name``, shaped for the pipeline's real use (batch 2 for CFG)."""
    rng = np.random.default_rng(seed)
    spec = {i["name"]: i for i in graph["inputs"]}
    batch = BATCH[name]
    unet_cfg, vae_cfg = pipe.unet.config, pipe.vae.config
    latent = int(unet_cfg.sample_size)
    factor = 2 ** (len(vae_cfg.block_out_channels) - 1)
    seq = int(pipe.tokenizer.model_max_length)
    wanted = {}
    if name == "text_encoder":
        vocab = int(pipe.text_encoder.config.vocab_size)
        wanted["input_ids"] = lambda s, dt: rng.integers(0, vocab, size=_shape(s, (batch, seq))).astype(dt)
    elif name == "unet":
        wanted["sample"] = lambda s, dt: rng.standard_normal(_shape(s, (batch, unet_cfg.in_channels, latent, latent))).astype(dt)
        t_max = int(pipe.scheduler.config.num_train_timesteps)
        # a scalar (ONNX) or one per batch item (OpenVINO)
        wanted["timestep"] = lambda s, dt: rng.integers(1, t_max, size=_shape(s, (batch,) * len(s or ()))).astype(dt)
        hidden = int(unet_cfg.cross_attention_dim)
        wanted["encoder_hidden_states"] = lambda s, dt: rng.standard_normal(_shape(s, (batch, seq, hidden))).astype(dt)
    elif name == "vae_encoder":
        size = latent * factor
        wanted["sample"] = lambda s, dt: rng.uniform(-1, 1, _shape(s, (batch, vae_cfg.in_channels, size, size))).astype(dt)
    elif name == "vae_decoder":
        wanted["latent_sample"] = lambda s, dt: rng.standard_normal(_shape(s, (batch, vae_cfg.latent_channels, latent, latent))).astype(dt)
    unknown = set(spec) - set(wanted)
    if unknown:
        raise ValueError(f"{name}: graph inputs {sorted(unknown)} are not known to the validation")
    return {k: wanted[k](spec[k]["shape"], spec[k]["dtype"]) for k in spec}


def torch_reference(name: str, pipe, inputs: dict) -> dict:
    """The original diffusers / transformers module on the same inputs, outputs named like the graph."""
    import torch

    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    with torch.inference_mode():
        if name == "text_encoder":
            out = pipe.text_encoder(input_ids=t["input_ids"].long())
            result = {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
        elif name == "unet":
            sample = t["sample"].float()
            out = pipe.unet(sample, t["timestep"], encoder_hidden_states=t["encoder_hidden_states"].float())
            result = {"out_sample": out.sample}
        elif name == "vae_encoder":
            result = {"latent_parameters": pipe.vae.encode(t["sample"].float()).latent_dist.parameters}
        elif name == "vae_decoder":
            result = {"sample": pipe.vae.decode(t["latent_sample"].float()).sample}
        else:
            raise ValueError(f"no torch reference for component {name!r}")
    return {k: v.float().numpy() for k, v in result.items()}


def compare(reference: dict, graph_out: dict) -> dict:
    """Worst max-abs and relative (to max|reference|) difference over the outputs both sides have."""
    common = [k for k in reference if k in graph_out]
    if not common:
        raise ValueError(f"no common outputs (torch: {sorted(reference)}, graph: {sorted(graph_out)})")
    worst_abs, worst_rel, scale_of = 0.0, 0.0, {}
    for k in common:
        ref, got = reference[k].astype(np.float64), np.asarray(graph_out[k]).astype(np.float64)
        if ref.shape != got.shape:
            raise ValueError(f"output {k}: graph shape {got.shape} != torch shape {ref.shape}")
        if not np.all(np.isfinite(got)):
            return {"max_abs": float("inf"), "max_rel": float("inf"), "outputs": common}
        diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        scale_of[k] = scale
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale if scale > 0 else diff)
    return {"max_abs": worst_abs, "max_rel": worst_rel, "outputs": common}
