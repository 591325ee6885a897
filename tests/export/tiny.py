"""Tiny random-weight Stable Diffusion pipelines, built and saved in the tests (nothing downloaded)."""

from __future__ import annotations

import json
import string
from pathlib import Path

# bpe merges of the tiny CLIP tokenizer: enough to exercise merging, small enough to read
MERGES = ["t h", "th e</w>", "a n", "an d</w>", "c a", "ca t</w>", "d o", "do g</w>", "i n", "o n</w>"]


def write_clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """Hand-written CLIP byte-level bpe vocabulary: every letter, alone and word-final, plus the merges."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens: list[str] = []
    for c in string.ascii_lowercase + string.digits + ".,!?'":
        tokens += [c, c + "</w>"]
    for merge in MERGES:
        tokens.append(merge.replace(" ", ""))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def _tiny_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    tok_dir = folder.parent / (folder.name + "-tokenizer-src")
    vocab_file, merges_file = write_clip_tokenizer_files(tok_dir)
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def _tiny_text_encoder(tokenizer, *, gelu: bool = False, with_projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu" if gelu else "quick_gelu",
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=32,
    ).eval()


def _tiny_cond_unet(**overrides):
    from diffusers import UNet2DConditionModel

    kwargs = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
        attention_head_dim=8,
    )
    kwargs.update(overrides)
    return UNet2DConditionModel(**kwargs).eval()


_SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


def _save_sd_like(cls, folder: Path, unet, scheduler, *, gelu: bool = False) -> Path:
    tokenizer = _tiny_tokenizer(folder)
    pipe = cls(
        vae=_tiny_vae(),
        text_encoder=_tiny_text_encoder(tokenizer, gelu=gelu),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_sd(folder: Path, *, v_prediction: bool = False, seed: int = 0) -> Path:
    """Save a tiny StableDiffusionPipeline (SD 1.x style, or SD 2.x style with v-prediction) into ``folder``."""
    import torch
    from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionPipeline

    folder = Path(folder)
    torch.manual_seed(seed)
    # SD 2.x uses linear projections in the transformer blocks and per-block head counts
    unet = _tiny_cond_unet(attention_head_dim=(2, 4) if v_prediction else 8, use_linear_projection=v_prediction)
    if v_prediction:
        scheduler = DDIMScheduler(prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, **_SD_BETAS)
    else:
        scheduler = PNDMScheduler(skip_prk_steps=True, **_SD_BETAS)
    return _save_sd_like(StableDiffusionPipeline, folder, unet, scheduler, gelu=v_prediction)


def build_tiny_inpaint(folder: Path, *, seed: int = 0) -> Path:
    """A tiny StableDiffusionInpaintPipeline: 9-channel UNet (4 latent + 1 mask + 4 masked-image latent)."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionInpaintPipeline

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = _tiny_cond_unet(in_channels=9)
    return _save_sd_like(StableDiffusionInpaintPipeline, folder, unet, PNDMScheduler(skip_prk_steps=True, **_SD_BETAS))


def build_tiny_lcm(folder: Path, *, seed: int = 0) -> Path:
    """A tiny LatentConsistencyModelPipeline: an LCM-distilled UNet (guidance embedding of size
    ``time_cond_proj_dim`` -> the ``timestep_cond`` graph input) with the LCMScheduler."""
    import torch
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = _tiny_cond_unet(time_cond_proj_dim=32)
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=True)
    return _save_sd_like(LatentConsistencyModelPipeline, folder, unet, scheduler)


def build_tiny_sdxl(folder: Path, *, seed: int = 0) -> Path:
    """A tiny StableDiffusionXLPipeline: two text encoders (the second with projection: pooled
    embeddings), a UNet with ``text_time`` added conditioning (``text_embeds``, ``time_ids``)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = _tiny_cond_unet(
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six time ids of 8 + the pooled text embedding
        cross_attention_dim=64,  # both text encoders' hidden states, concatenated
    )
    tokenizer = _tiny_tokenizer(folder)
    pipe = StableDiffusionXLPipeline(
        vae=_tiny_vae(),
        text_encoder=_tiny_text_encoder(tokenizer, gelu=True),
        text_encoder_2=_tiny_text_encoder(tokenizer, gelu=True, with_projection=True),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(timestep_spacing="leading", **_SD_BETAS),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_ddpm(folder: Path, *, ddim: bool = False, class_conditional: bool = False, seed: int = 0) -> Path:
    """A tiny unconditional (or class-conditional: ``num_class_embeds=10``) UNet2DModel pipeline:
    DDPMPipeline with DDPMScheduler, or DDIMPipeline with DDIMScheduler. Pixel space, 3 x 16 x 16."""
    import torch
    from diffusers import (
        DDIMPipeline,
        DDIMScheduler,
        DDPMPipeline,
        DDPMScheduler,
        UNet2DModel,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32,
        num_class_embeds=10 if class_conditional else None,
    ).eval()
    if ddim:
        pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler(num_train_timesteps=1000))
    else:
        pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
