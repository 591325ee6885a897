"""An SD1.5-architecture Stable Diffusion pipeline with random weights (same FLOPs and sizes as the
real model; nothing downloaded), exported once through our ``export/`` and cached.

``build(cache)`` returns {"source": diffusers folder, "onnx": folder, "openvino": folder, ...} and
builds only what is missing. Each export is atomic (``export_pipeline``), so an interrupted build
leaves no half-written folder behind, and the next run redoes only that step.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# SD1.5's text encoder (CLIP ViT-L/14 text tower); the UNet is UNet2DConditionModel's defaults plus these
TEXT_ENCODER = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
                    hidden_act="quick_gelu")
UNET = dict(cross_attention_dim=768, sample_size=64, attention_head_dim=8)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
           sample_size=512, block_out_channels=(128, 256, 512, 512),
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
# Euler: one UNet call per step (the floor counts 10 calls for 10 steps), and a scheduler every
# peer runs (openvino-genai's Text2ImagePipeline knows EulerDiscreteScheduler)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                 timestep_spacing="leading")

# export variants: name -> export_pipeline keyword arguments
VARIANTS = {
    "onnx": dict(format="onnx"),
    "openvino": dict(format="openvino"),
    "onnx-fp16": dict(format="onnx", dtype="fp16"),
    "openvino-fp16": dict(format="openvino", dtype="fp16"),
    "openvino-int8": dict(format="openvino", weight_compression="int8"),
    # ONNX Runtime on small boards: int8 weights kept int8 in memory, attention that holds no score matrix
    "onnx-int8": dict(format="onnx", weight_compression="int8", fuse_attention=True),
    "onnx-fused": dict(format="onnx", fuse_attention=True),
}


def build_source(folder: Path, seed: int = 0) -> Path:
    """Save the random-weight diffusers pipeline into ``folder`` (written under a temporary name first)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    sys.path.insert(0, str(ROOT))
    from tests.export.tiny import _tiny_tokenizer

    torch.manual_seed(seed)
    tmp = folder.with_name(folder.name + ".partial")
    tokenizer = _tiny_tokenizer(tmp)  # writes its vocabulary next to tmp: removed below
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id, **TEXT_ENCODER)).eval()
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**VAE).eval(), text_encoder=text_encoder, tokenizer=tokenizer,
        unet=UNet2DConditionModel(**UNET).eval(), scheduler=EulerDiscreteScheduler(**SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(tmp.with_name(tmp.name + "-tokenizer-src"), ignore_errors=True)
    tmp.rename(folder)
    return folder


def build(cache: Path, variants=("onnx", "openvino"), say=print) -> dict:
    """Build (or reuse) the source pipeline and the requested export variants under ``cache``."""
    import time

    cache.mkdir(parents=True, exist_ok=True)
    folders = {"source": cache / "source"}
    if not folders["source"].exists():
        say(f"building the random-weight SD1.5-architecture pipeline in {folders['source']}")
        t = time.perf_counter()
        build_source(folders["source"])
        say(f"  {time.perf_counter() - t:.0f} s")
    for name in variants:
        folders[name] = cache / name
        if folders[name].exists():
            continue
        sys.path.insert(0, str(ROOT))
        import export

        say(f"exporting {name} into {folders[name]}")
        t = time.perf_counter()
        export.export_pipeline(folders["source"], folders[name], progress=lambda m: say("  " + m), **VARIANTS[name])
        say(f"  {time.perf_counter() - t:.0f} s")
    return folders


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="build the cached SD1.5-architecture benchmark pipeline")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "sd15")
    parser.add_argument("variants", nargs="*", default=["onnx", "openvino"], choices=sorted(VARIANTS))
    args = parser.parse_args()
    print(build(args.cache, args.variants))
