"""Validation after export: each torch component and its graph on the same random inputs."""

from __future__ import annotations

import numpy as np

# relative bound = max|graph - torch| / max|torch|, per dtype the graphs were exported in, or per nncf
# weight compression (int8 / int4 weights, float activations)
THRESHOLDS = {"fp32": 1e-3, "fp16": 2e-2, "int8": 5e-2, "int4": 1e-1}
BATCH = {"text_encoder": 2, "text_encoder_2": 2, "unet": 2, "vae_encoder": 1, "vae_decoder": 1}


def _shape(graph_shape, wanted):
    """The graph's static dims where it has them, ours where the axis is dynamic."""
    if graph_shape is None:
        return tuple(wanted)
    if len(graph_shape) != len(wanted):
        # e.g. a scalar timestep (rank 0) or a (1,) one
        return tuple(graph_shape)
    return tuple(g if isinstance(g, int) and g > 0 else w for g, w in zip(graph_shape, wanted))


def _latent_size(pipe) -> tuple[int, int]:
    size = pipe.unet.config.sample_size or 64  # no sample_size in the config: any size the UNet divides
    return (size, size) if isinstance(size, int) else tuple(size)


def make_inputs(name: str, pipe, graph: dict, seed: int = 0) -> dict:
    """Random numpy inputs for ``name``, shaped for the pipeline's real use (batch 2 for CFG)."""
    if getattr(pipe, "transformer", None) is not None:  # flow-matching transformers: export/flow.py
        from .flow import make_inputs as flow_inputs

        return flow_inputs(name, pipe, graph, seed)
    rng = np.random.default_rng(seed)
    spec = {i["name"]: i for i in graph["inputs"]}
    batch = BATCH[name]
    unet_cfg = pipe.unet.config
    lh, lw = _latent_size(pipe)
    normal = lambda shape: lambda s, dt: rng.standard_normal(_shape(s, shape)).astype(dt)
    wanted = {}
    if name in ("text_encoder", "text_encoder_2"):
        tokenizer = pipe.tokenizer if name == "text_encoder" else pipe.tokenizer_2
        vocab, seq = int(getattr(pipe, name).config.vocab_size), int(tokenizer.model_max_length)
        wanted["input_ids"] = lambda s, dt: rng.integers(0, vocab, size=_shape(s, (batch, seq))).astype(dt)
    elif name == "unet":
        wanted["sample"] = normal((batch, unet_cfg.in_channels, lh, lw))
        t_max = int(getattr(pipe.scheduler.config, "num_train_timesteps", None) or 1000)

        def timestep(s, dt):  # a scalar (optimum's ONNX SD UNet) or one per batch item
            shape = _shape(s, (batch,) * len(s or ()))
            if np.dtype(dt).kind == "f":  # Fourier time embeddings take a noise level
                return rng.uniform(0.01, 1.0, size=shape).astype(dt)
            return rng.integers(1, t_max, size=shape).astype(dt)

        wanted["timestep"] = timestep
        if getattr(pipe, "tokenizer", None) is not None:
            seq = int(pipe.tokenizer.model_max_length)
            wanted["encoder_hidden_states"] = normal((batch, seq, int(unet_cfg.cross_attention_dim)))
        if getattr(unet_cfg, "time_cond_proj_dim", None):
            # LCM: the guidance-scale embedding, of the size the pipeline feeds it
            wanted["timestep_cond"] = normal((batch, int(unet_cfg.time_cond_proj_dim)))
        if getattr(unet_cfg, "addition_embed_type", None) == "text_time":
            text_dim = int(unet_cfg.projection_class_embeddings_input_dim) - 6 * int(unet_cfg.addition_time_embed_dim)
            wanted["text_embeds"] = normal((batch, text_dim))
            # SDXL time ids: original size, crop corner, target size, in pixels
            wanted["time_ids"] = lambda s, dt: rng.integers(0, 1024, size=_shape(s, (batch, 6))).astype(dt)
        if "class_labels" in spec:
            if np.dtype(spec["class_labels"]["dtype"]).kind == "f":
                wanted["class_labels"] = normal((batch, 1))  # identity embedding: width from the graph
            else:
                n = unet_cfg.num_class_embeds if unet_cfg.class_embed_type is None else t_max
                wanted["class_labels"] = lambda s, dt: rng.integers(0, int(n), size=_shape(s, (batch,))).astype(dt)
    elif name == "vae_encoder":
        vae_cfg = pipe.vae.config
        factor = 2 ** (len(vae_cfg.block_out_channels) - 1)
        wanted["sample"] = lambda s, dt: rng.uniform(-1, 1, _shape(s, (batch, vae_cfg.in_channels, lh * factor, lw * factor))).astype(dt)
    elif name == "vae_decoder":
        wanted["latent_sample"] = normal((batch, pipe.vae.config.latent_channels, lh, lw))
    unknown = set(spec) - set(wanted)
    if unknown:
        raise ValueError(f"{name}: graph inputs {sorted(unknown)} are not known to the validation")
    return {k: wanted[k](spec[k]["shape"], spec[k]["dtype"]) for k in spec}


def torch_reference(name: str, pipe, inputs: dict) -> dict:
    """The original diffusers / transformers module on the same inputs, outputs named like the graph."""
    import torch

    if getattr(pipe, "transformer", None) is not None:
        from .flow import torch_reference as flow_reference

        return flow_reference(name, pipe, inputs)

    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    with torch.inference_mode():
        if name in ("text_encoder", "text_encoder_2"):
            out = getattr(pipe, name)(input_ids=t["input_ids"].long(), output_hidden_states=True)
            result = {"last_hidden_state": out.last_hidden_state}
            for key in ("pooler_output", "text_embeds"):
                if getattr(out, key, None) is not None:
                    result[key] = getattr(out, key)
            result.update({f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)})
        elif name == "unet":
            kwargs = {}
            if "encoder_hidden_states" in t:
                kwargs["encoder_hidden_states"] = t["encoder_hidden_states"].float()
            if "timestep_cond" in t:
                kwargs["timestep_cond"] = t["timestep_cond"].float()
            if "text_embeds" in t:
                kwargs["added_cond_kwargs"] = {"text_embeds": t["text_embeds"].float(), "time_ids": t["time_ids"].float()}
            if "class_labels" in t:
                kwargs["class_labels"] = t["class_labels"]
            out = pipe.unet(t["sample"].float(), t["timestep"], **kwargs)
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
