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


def build_tiny_sd(folder: Path, *, v_prediction: bool = False, seed: int = 0) -> Path:
    """Save a tiny StableDiffusionPipeline (SD 1.x style, or SD 2.x style with v-prediction) into ``folder``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
        # SD 2.x uses linear projections in the transformer blocks and per-block head counts
        attention_head_dim=(2, 4) if v_prediction else 8,
        use_linear_projection=v_prediction,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=32,
    )
    tok_dir = folder.parent / (folder.name + "-tokenizer-src")
    vocab_file, merges_file = write_clip_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
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
            hidden_act="gelu" if v_prediction else "quick_gelu",
        )
    ).eval()
    common = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    if v_prediction:
        scheduler = DDIMScheduler(prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, **common)
    else:
        scheduler = PNDMScheduler(skip_prk_steps=True, **common)
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
