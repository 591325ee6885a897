"""optimum's pipeline names, with optimum's ``from_pretrained`` signatures, on our pipelines: a script
written for optimum.onnxruntime (``ORT...``) or optimum.intel (``OV...``) ports by changing its
imports. ``ORT*`` load with onnxruntime, ``OV*`` with OpenVINO; each is the pipeline class it names
(``ORTStableDiffusionPipeline`` is a ``StableDiffusionPipeline``). ``export=True`` cannot export here
(no torch): on an exported folder it is ignored, on a diffusers folder the message says how to export.
"""

from __future__ import annotations

from .base import DiffusionPipeline
from .img2img import StableDiffusionImg2ImgPipeline
from .inpaint import StableDiffusionInpaintPipeline
from .lcm import LatentConsistencyModelPipeline
from .sdxl import StableDiffusionXLPipeline
from .stable_diffusion import StableDiffusionPipeline


class _ORT:
    """optimum.onnxruntime's ``ORTDiffusionPipeline.from_pretrained`` arguments, on onnxruntime."""

    @classmethod
    def from_pretrained(cls, model_name_or_path=None, export: bool | None = None,
                        provider: str = "CPUExecutionProvider", providers=None, provider_options=None,
                        session_options=None, use_io_binding: bool | None = None, **kwargs):
        kwargs.setdefault("backend", "onnxruntime")
        return super().from_pretrained(model_name_or_path, export=export, provider=provider, providers=providers,
                                       provider_options=provider_options, session_options=session_options,
                                       use_io_binding=use_io_binding, **kwargs)


class _OV:
    """optimum.intel's ``OVDiffusionPipeline.from_pretrained`` arguments, on OpenVINO."""

    @classmethod
    def from_pretrained(cls, model_id=None, export: bool = False, device: str = "CPU", compile: bool = True,
                        ov_config: dict | None = None, dynamic_shapes: bool = True, **kwargs):
        kwargs.setdefault("backend", "openvino")
        return super().from_pretrained(model_id, export=export, device=device, compile=compile, ov_config=ov_config,
                                       dynamic_shapes=dynamic_shapes, **kwargs)


class ORTDiffusionPipeline(_ORT, DiffusionPipeline):
    """optimum's generic ONNX Runtime pipeline: the class the folder's model_index.json names."""

    @classmethod
    def _class_for(cls, index, folder):
        return DiffusionPipeline._class_for.__func__(DiffusionPipeline, index, folder)


class OVDiffusionPipeline(_OV, DiffusionPipeline):
    """optimum-intel's generic OpenVINO pipeline: the class the folder's model_index.json names."""

    @classmethod
    def _class_for(cls, index, folder):
        return DiffusionPipeline._class_for.__func__(DiffusionPipeline, index, folder)


class ORTStableDiffusionPipeline(_ORT, StableDiffusionPipeline):
    pass


class ORTStableDiffusionImg2ImgPipeline(_ORT, StableDiffusionImg2ImgPipeline):
    pass


class ORTStableDiffusionInpaintPipeline(_ORT, StableDiffusionInpaintPipeline):
    pass


class ORTStableDiffusionXLPipeline(_ORT, StableDiffusionXLPipeline):
    pass


class ORTLatentConsistencyModelPipeline(_ORT, LatentConsistencyModelPipeline):
    pass


class OVStableDiffusionPipeline(_OV, StableDiffusionPipeline):
    pass


class OVStableDiffusionImg2ImgPipeline(_OV, StableDiffusionImg2ImgPipeline):
    pass


class OVStableDiffusionInpaintPipeline(_OV, StableDiffusionInpaintPipeline):
    pass


class OVStableDiffusionXLPipeline(_OV, StableDiffusionXLPipeline):
    pass


class OVLatentConsistencyModelPipeline(_OV, LatentConsistencyModelPipeline):
    pass


ALIASES = [c.__name__ for c in (ORTDiffusionPipeline, OVDiffusionPipeline, ORTStableDiffusionPipeline,
                                ORTStableDiffusionImg2ImgPipeline, ORTStableDiffusionInpaintPipeline,
                                ORTStableDiffusionXLPipeline, ORTLatentConsistencyModelPipeline,
                                OVStableDiffusionPipeline, OVStableDiffusionImg2ImgPipeline,
                                OVStableDiffusionInpaintPipeline, OVStableDiffusionXLPipeline,
                                OVLatentConsistencyModelPipeline)]
