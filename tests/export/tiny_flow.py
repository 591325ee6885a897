"""Tiny random-weight flow-matching pipelines (SD3, FLUX, Sana), built and saved in the tests; every
tokenizer is built here from hand-written vocabularies (nothing downloaded): CLIP byte-level BPE
(``tiny.write_clip_tokenizer_files``), T5 as a ``tokenizers`` Unigram model, Gemma as a byte-fallback BPE."""

from __future__ import annotations

import json
import string
from pathlib import Path

from .tiny import write_clip_tokenizer_files

# T5 / Gemma pieces: every letter and digit alone and word-initial, a few whole words
_WORDS = ["the", "and", "cat", "dog", "a", "photo", "of", "in", "on", "red", "blue", "sky"]
_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,!?'-"


def t5_tokenizer(model_max_length: int = 512, extra_ids: int = 2):
    """A T5TokenizerFast over a Unigram model: pad 0, eos 1, unk 2, then pieces ("▁x" word-initial)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [(c, -5.0) for c in _CHARS] + [("▁" + c, -4.0) for c in _CHARS]
    pieces += [("▁" + w, -1.0 - 0.1 * i) for i, w in enumerate(_WORDS)] + [("é", -6.0), ("ü", -6.0), ("▁ñ", -6.0)]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)])
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=extra_ids, model_max_length=model_max_length)


def gemma_tokenizer(model_max_length: int = 300):
    """A GemmaTokenizerFast over a byte-fallback BPE (as Gemma's): pad 0, eos 1, bos 2, unk 3, byte tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import GemmaTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges = []
    for c in _CHARS + "▁":
        vocab.setdefault(c, len(vocab))
    for w in _WORDS:  # "▁" + word, merged letter by letter
        current = "▁"
        for c in w:
            merges.append((current, c))
            current += c
            vocab.setdefault(current, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                           special_tokens=[("<bos>", 2)])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return GemmaTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                              pad_token="<pad>", model_max_length=model_max_length, add_bos_token=True,
                              add_eos_token=False)


def clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    vocab_file, merges_file = write_clip_tokenizer_files(folder.parent / (folder.name + "-tokenizer-src"))
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def clip_text_encoder(tokenizer, *, with_projection: bool, hidden: int = 32, projection: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=projection,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def t5_encoder(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=False)
    return T5EncoderModel(config).eval()


def flow_vae(latent_channels: int = 4, scaling_factor: float = 1.5035, shift_factor: float | None = 0.0609):
    """An AutoencoderKL like SD3's / FLUX's (no quant convs, a shift factor), two blocks: scale factor 2."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels, layers_per_block=1, norm_num_groups=32, sample_size=32,
        scaling_factor=scaling_factor, shift_factor=shift_factor, use_quant_conv=False, use_post_quant_conv=False,
    ).eval()


def _amplify_output(transformer, factor: float) -> None:
    """Scale the transformer's output projection: at random init the predicted velocity is small and the image
    stays close to the decoded noise; larger, the schedule and the prompt move the image (what parity tests)."""
    import torch

    with torch.no_grad():
        transformer.proj_out.weight.mul_(factor)
        transformer.proj_out.bias.mul_(factor)


def build_tiny_sd3(folder: Path, *, seed: int = 0, with_t5: bool = True, shift: float = 3.0) -> Path:
    """A tiny StableDiffusion3Pipeline: two CLIP encoders with projection (pooled 32 + 32), T5 (d_model 64,
    the joint attention width), an SD3 transformer (patch 2, one joint block), a 4-channel flow VAE."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    folder = Path(folder)
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
        joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64, out_channels=4,
        pos_embed_max_size=32,
    ).eval()
    _amplify_output(transformer, 4.0)
    clip = clip_tokenizer(folder)
    t5 = t5_tokenizer()
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        vae=flow_vae(),
        text_encoder=clip_text_encoder(clip, with_projection=True),
        tokenizer=clip,
        text_encoder_2=clip_text_encoder(clip, with_projection=True),
        tokenizer_2=clip,
        text_encoder_3=t5_encoder(t5, 64) if with_t5 else None,
        tokenizer_3=t5 if with_t5 else None,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    if not with_t5:  # as SD3 folders without T5 declare it: null entries (diffusers then loads None)
        index = json.loads((folder / "model_index.json").read_text())
        index.update(text_encoder_3=[None, None], tokenizer_3=[None, None])
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def build_tiny_flux(folder: Path, *, seed: int = 0, guidance_embeds: bool = True) -> Path:
    """A tiny FluxPipeline: CLIP (pooled 32), T5 (d_model 32), a FLUX transformer (one double, one single
    block, rope axes 4+4+8 = head dim 16, guidance embedding for dev-style models), a 4-channel flow VAE
    (packed latents: 16 channels per token)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    folder = Path(folder)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    ).eval()
    _amplify_output(transformer, 10.0)
    clip = clip_tokenizer(folder)
    t5 = t5_tokenizer()
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
        max_image_seq_len=4096)
    pipe = FluxPipeline(
        transformer=transformer, scheduler=scheduler, vae=flow_vae(scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=clip_text_encoder(clip, with_projection=False), tokenizer=clip,
        text_encoder_2=t5_encoder(t5, 32), tokenizer_2=t5,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def gemma2_encoder(tokenizer, hidden: int = 16):
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
                          pad_token_id=0, eos_token_id=1, bos_token_id=2, sliding_window=64,
                          attn_implementation="eager")
    return Gemma2Model(config).eval()


def build_tiny_sana(folder: Path, *, seed: int = 0, sample_size: int = 16) -> Path:
    """A tiny SanaPipeline: Gemma2 (16 wide) with a byte-fallback BPE tokenizer, a Sana transformer (linear
    self-attention, cross-attention to the text), a DC-AE (two blocks: scale factor 2), flow-matching DPM-Solver.
    ``sample_size`` 16 picks diffusers' 512 aspect-ratio bins for use_resolution_binning."""
    import torch
    from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel

    folder = Path(folder)
    torch.manual_seed(seed)
    transformer = SanaTransformer2DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=2,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=16,
        sample_size=sample_size, patch_size=1,
    ).eval()
    _amplify_output(transformer, 4.0)
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"), decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
        downsample_block_type="conv", upsample_block_type="interpolate",
        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
    ).eval()
    tokenizer = gemma_tokenizer()
    scheduler = DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = SanaPipeline(tokenizer=tokenizer, text_encoder=gemma2_encoder(tokenizer), vae=vae,
                        transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
