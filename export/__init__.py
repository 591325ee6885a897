"""Workstation side of edge_sched: turn diffusers pipelines into ONNX / OpenVINO folders.

This package uses torch, diffusers and optimum; the device runtime (``edge_sched``) never imports it.

- ``export_pipeline(source, output, format="onnx"|"openvino", ...)``: a Stable Diffusion 1.x / 2.x
  text-to-image pipeline (local diffusers folder or Hub repo id) -> optimum's folder layout, a fast
  tokenizer, the converted scheduler and the ``edge_sched.json`` manifest, validated and atomic.
- ``convert_scheduler(config, target, **overrides)``: any diffusers scheduler config -> one of
  edge_sched's numpy schedulers (diffusers class names; A1111 names come later).
"""

from .errors import ExportError, SchedulerConversionError, SourceError, ValidationError
from .pipeline import MANIFEST, export_pipeline, verify_manifest
from .scheduler import available_schedulers, convert_scheduler, parse_override

__all__ = [
    "MANIFEST",
    "ExportError",
    "SchedulerConversionError",
    "SourceError",
    "ValidationError",
    "available_schedulers",
    "convert_scheduler",
    "export_pipeline",
    "parse_override",
    "verify_manifest",
]
