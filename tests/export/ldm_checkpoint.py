"""A diffusers SD 1.x pipeline's weights written as one original-layout (LDM / A1111) checkpoint, for the
single-file tests: the inverse of the key renaming diffusers' ``from_single_file`` applies.

UNet under ``model.diffusion_model.``, VAE under ``first_stage_model.``, CLIP text encoder under
``cond_stage_model.transformer.``. Any mistake here shows up as a single-file export that does not
reproduce the original pipeline (the tests compare against it), never as a false pass.
"""

from __future__ import annotations

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_VAE_RESNET = [("conv_shortcut", "nin_shortcut")]
_VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _unet_prefix_map(config) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for a UNet2DConditionModel config."""
    n, per = len(config["block_out_channels"]), config["layers_per_block"]
    pairs = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
             ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(n):
        for j in range(per):
            block = (per + 1) * i + j + 1
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{block}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{block}.1."))
        if i < n - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(per + 1) * (i + 1)}.0.op."))
        has_attn = "CrossAttn" in config["up_block_types"][i]
        for j in range(per + 1):
            block = (per + 1) * i + j
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{block}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{block}.1."))
        if i < n - 1:
            pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(per + 1) * i + per}.{2 if has_attn else 1}."))
    return pairs


def _rename(key: str, pairs) -> str:
    for ours, theirs in sorted(pairs, key=lambda p: -len(p[0])):
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise KeyError(key)


def _resnet_inner(key: str, table) -> str:
    head, _, tail = key.rpartition(".")  # tail: weight / bias
    for ours, theirs in table:
        if head.endswith("." + ours):
            return head[: -len(ours)] + theirs + "." + tail
    return key


def unet_to_ldm(state: dict, config) -> dict:
    pairs = _unet_prefix_map(config)
    out = {}
    for key, value in state.items():
        new = _rename(key, pairs)
        if ".resnets." in key or key.startswith("mid_block.resnets"):
            new = _resnet_inner(new, _RESNET)
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(state: dict, config) -> dict:
    n = len(config["block_out_channels"])
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("mid_block.resnets.0.", "mid.block_1.")
        new = new.replace("mid_block.resnets.1.", "mid.block_2.").replace("mid_block.attentions.0.", "mid.attn_1.")
        for i in range(n):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample.")
        new = _resnet_inner(new, _VAE_RESNET)
        if ".attn_1." in new:
            new = _resnet_inner(new, _VAE_ATTN)
            if new.endswith(".weight") and value.ndim == 2:  # linear -> 1x1 conv, as the original stores it
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def sd_to_ldm_checkpoint(pipe) -> dict:
    """One flat state dict of an SD 1.x pipeline, in the original layout."""
    state = {}
    state.update(unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config))
    state.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    state.update({"cond_stage_model.transformer." + k: v for k, v in pipe.text_encoder.state_dict().items()})
    return {k: v.contiguous() for k, v in state.items()}
