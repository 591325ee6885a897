"""Workstation side of edge_sched: turn diffusers pipelines into ONNX / OpenVINO folders.

This package uses torch, diffusers and optimum; the device runtime (``edge_sched``) never imports it.

- ``export_pipeline(source, output, format="onnx"|"openvino", dtype="fp32"|"fp16", ...)``: a local
  diffusers folder or Hub repo id -> optimum's folder layout, fast tokenizers, the converted scheduler
  (OpenVINO folders also get ``openvino_tokenizer.xml`` for openvino-genai when openvino-tokenizers is
  installed) and the ``edge_sched.json`` manifest, validated per component against torch, written atomically.
  Pipelines: Stable Diffusion 1.x/2.x (text-to-image, image-to-image, 9-channel inpainting; the VAE
  encoder is always exported), LatentConsistencyModelPipeline (``timestep_cond``), SDXL (two text
  encoders, ``text_embeds`` / ``time_ids``) through optimum's exporters; DDPMPipeline / DDIMPipeline
  (``UNet2DModel``, optionally class-conditional) directly (see ``export/direct.py``).
  Options: ``static_shapes={"batch", "height", "width"}`` (``export/static.py``),
  ``weight_compression="int8"|"int4"`` (OpenVINO, nncf; ONNX: weight-only int8, ``export/onnx_rewrite.py``),
  ``fuse_attention=True`` (ONNX fp32: ONNX Runtime's MultiHeadAttention), ``scheduler=`` + ``scheduler_overrides=``.
- ``convert_scheduler(config, target, **overrides)``: any diffusers scheduler config -> one of
  edge_sched's numpy schedulers (diffusers class names or A1111 sampler names).
- ``set_scheduler(folder, target, **overrides)``: swap the scheduler of an exported folder.
- ``export_step(scheduler, output, num_inference_steps=... | timesteps= | sigmas=, step_options=...,
  layout="indexed"|"per_call")``: one scheduler step as an ONNX graph traced from the numpy scheduler (or,
  per call, one graph per distinct model call), plus its plan (``export/step_graph.py``; the tracer is
  ``export/numpy_trace.py``).
- ``export_loop(source, output, steps=N, size=(H, W), scheduler=, overrides=, batch=, rng="input"|"cuda"|"cpu")``:
  an exported ONNX text-to-image folder plus ``denoise/model.onnx``, the whole denoising loop (UNet,
  guidance, scheduler step) as one ONNX ``Loop`` (``export/loop_graph.py``; torch's CUDA / CPU noise in the
  graph: ``export/philox_graph.py``, ``export/mt19937_graph.py``); the manifest gains ``components.denoise``
  and ``loop``.

The manifest ``edge_sched.json`` (version 1):

- ``format`` ("onnx" | "openvino"), ``dtype`` ("fp32" | "fp16": weights; graph inputs and outputs stay
  float32 in both formats), ``weight_compression`` (null | "int8" | "int4"; int4 is OpenVINO's and
  applies to the UNet, the other components get int8; ONNX int8 is weight-only through DequantizeLinear),
  ``fused_attention`` (true: the ONNX graphs use com.microsoft.MultiHeadAttention and need ONNX Runtime)
- ``pipeline`` (diffusers class name), ``family`` ("sd" | "sdxl" | "unet2d"), ``prediction_type``
- ``source`` {id, kind: local | hub, revision}, ``exporter`` {package: version}
- ``components`` {name: {file, inputs, outputs}}; each input/output {name, shape, dtype}; a shape holds
  ints for static dims and the axis name (ONNX) or null (OpenVINO) for dynamic ones. Components:
  text_encoder, text_encoder_2 (SDXL), unet, vae_encoder, vae_decoder (none of the text/VAE ones for
  unet2d). UNet timestep: ONNX SD-family graphs (optimum) take a float32 scalar, OpenVINO SD-family
  graphs (optimum-intel) an int64 [batch]; unet2d graphs take int64 [batch] in both formats.
- ``tokenizer`` ("tokenizer/tokenizer.json" or null for unet2d), ``tokenizer_2`` (SDXL only)
- ``scheduler`` {class, config}
- ``static_shapes``: null, or {batch, height, width, latent_height, latent_width,
  classifier_free_guidance, unet_batch, sequence_length} (see ``export/static.py``)
- ``validation`` {component: {max_abs, max_rel, outputs, threshold_rel}}, ``export_seconds``
- ``files`` {relative path: sha256} of every file but the manifest
"""

from .errors import ExportError, SchedulerConversionError, SourceError, ValidationError
from .loop_graph import LoopExportError, export_loop, parse_size
from .pipeline import MANIFEST, export_pipeline, set_scheduler, verify_manifest
from .scheduler import available_schedulers, convert_scheduler, parse_override
from .static import parse_static_shapes
from .step_graph import StepExportError, export_step

__all__ = [
    "MANIFEST",
    "ExportError",
    "LoopExportError",
    "SchedulerConversionError",
    "SourceError",
    "StepExportError",
    "ValidationError",
    "available_schedulers",
    "convert_scheduler",
    "export_loop",
    "export_pipeline",
    "export_step",
    "parse_override",
    "parse_size",
    "parse_static_shapes",
    "set_scheduler",
    "verify_manifest",
]
