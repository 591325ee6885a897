"""An SD3-Medium-architecture StableDiffusion3Pipeline with random weights and without T5 (as diffusers
allows: ``text_encoder_3=None``), built once and exported to OpenVINO IR with int8 weights through our
``export/``; the performance suite's flow-matching row (benchmarks/performance.py --family sd3) runs on it.

Sizes are SD3-Medium's (stabilityai/stable-diffusion-3-medium-diffusers configs): the MMDiT transformer
(24 joint blocks, 24 heads of 64, 2.03B parameters), CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 text towers
with projection (123M and 695M), and the 16-channel VAE (84M). T5-XXL (4.7B) is left out: it alone would
be 19 GB in fp32 on a 24 GB machine. Nothing is downloaded; the tokenizer is the tests' hand-written one.

``build(cache)`` returns {"source": diffusers folder, "openvino-int8": folder} and builds only what is
missing; each step is atomic (a ``.partial`` folder renamed at the end; ``export_pipeline`` is atomic).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TRANSFORMER = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                   num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                   pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
              num_attention_heads=20, max_position_embeddings=77, projection_dim=1280, hidden_act="gelu")
VAE = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2, norm_num_groups=32,
           sample_size=1024, block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=1.5305, shift_factor=0.0609,
           use_quant_conv=False, use_post_quant_conv=False)
SCHEDULER = dict(shift=3.0)  # SD3-Medium's FlowMatchEulerDiscreteScheduler

VARIANTS = {"openvino-int8": dict(format="openvino", weight_compression="int8")}


def build_source(folder: Path, seed: int = 0) -> Path:
    """Save the random-weight pipeline into ``folder`` (written under a temporary name first)."""
    import torch
    from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel,
                           StableDiffusion3Pipeline)
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    sys.path.insert(0, str(ROOT))
    from tests.export.tiny import _tiny_tokenizer

    torch.manual_seed(seed)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = _tiny_tokenizer(tmp)  # writes its vocabulary next to tmp: removed below
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        pipe = StableDiffusion3Pipeline(
            transformer=SD3Transformer2DModel(**TRANSFORMER).eval(),
            scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=AutoencoderKL(**VAE).eval(),
            text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L, **ids)).eval(), tokenizer=tokenizer,
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G, **ids)).eval(),
            tokenizer_2=tokenizer, text_encoder_3=None, tokenizer_3=None)
    pipe.save_pretrained(tmp, safe_serialization=True)
    index = json.loads((tmp / "model_index.json").read_text())  # as SD3 folders without T5 declare it
    index.update(text_encoder_3=[None, None], tokenizer_3=[None, None])
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    shutil.rmtree(tmp.with_name(tmp.name + "-tokenizer-src"), ignore_errors=True)
    tmp.rename(folder)
    return folder


def build(cache: Path, variants=("openvino-int8",), say=print) -> dict:
    """Build (or reuse) the source pipeline and the requested export variants under ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    folders = {"source": cache / "source"}
    if not folders["source"].exists():
        say(f"building the random-weight SD3-Medium-architecture pipeline (no T5) in {folders['source']}")
        t = time.perf_counter()
        build_source(folders["source"])
        say(f"  {time.perf_counter() - t:.0f} s")
    for name in variants:
        folders[name] = cache / name
        if folders[name].exists():
            continue
        sys.path.insert(0, str(ROOT))
        import export

        # validate=False: a torch run of each 2B-parameter graph beside its export would not fit in 24 GB; the
        # SD3 export path is checked against diffusers by the tiny-pipeline tests (tests/export/test_flow_export.py)
        say(f"exporting {name} into {folders[name]}")
        t = time.perf_counter()
        export.export_pipeline(folders["source"], folders[name], validate=False, progress=lambda m: say("  " + m),
                               **VARIANTS[name])
        say(f"  {time.perf_counter() - t:.0f} s")
    return folders


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="build the cached SD3-Medium-architecture benchmark pipeline")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "sd3")
    parser.add_argument("variants", nargs="*", help=f"any of {', '.join(VARIANTS)} (default: all)")
    args = parser.parse_args()
    if set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(set(args.variants) - set(VARIANTS))}; choose from {sorted(VARIANTS)}")
    print(build(args.cache, args.variants or sorted(VARIANTS)))
