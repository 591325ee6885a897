"""Generation pipelines of the runtime, with diffusers' names and arguments: text-to-image,
image-to-image, inpainting, unconditional / class-conditional; plus the CLIP tokenizer and image I/O.

``DiffusionPipeline.from_pretrained(folder)`` returns the pipeline class ``model_index.json`` names.
"""

from .base import DiffusionPipeline, ImagePipelineOutput, StableDiffusionPipelineOutput
from .loop import NonFiniteLatentsError
from .loading import PipelineLoadError, builtin_models
from .img2img import StableDiffusionImg2ImgPipeline
from .inpaint import StableDiffusionInpaintPipeline
from .flux import FluxImg2ImgPipeline, FluxPipeline
from .lcm import LatentConsistencyModelPipeline
from .sana import SanaPipeline
from .sd3 import StableDiffusion3Img2ImgPipeline, StableDiffusion3Pipeline
from .sdxl import StableDiffusionXLPipeline
from .stable_diffusion import StableDiffusionPipeline
from .unconditional import DDIMPipeline, DDPMPipeline
from .aliases import (
    ALIASES,
    ORTDiffusionPipeline,
    ORTLatentConsistencyModelPipeline,
    ORTStableDiffusionImg2ImgPipeline,
    ORTStableDiffusionInpaintPipeline,
    ORTStableDiffusionPipeline,
    ORTStableDiffusionXLPipeline,
    OVDiffusionPipeline,
    OVLatentConsistencyModelPipeline,
    OVStableDiffusionImg2ImgPipeline,
    OVStableDiffusionInpaintPipeline,
    OVStableDiffusionPipeline,
    OVStableDiffusionXLPipeline,
)
from .auto_pipeline import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image
from .models import AutoencoderKL, CLIPTextModel, CLIPTextModelWithProjection, UNet2DConditionModel, UNet2DModel

__all__ = [
    "DDIMPipeline",
    "DDPMPipeline",
    "DiffusionPipeline",
    "FluxImg2ImgPipeline",
    "FluxPipeline",
    "ImagePipelineOutput",
    "LatentConsistencyModelPipeline",
    "NonFiniteLatentsError",
    "PipelineLoadError",
    "SanaPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusion3Img2ImgPipeline",
    "StableDiffusion3Pipeline",
    "StableDiffusionPipelineOutput",
    "StableDiffusionXLPipeline",
    "builtin_models",
]
# optimum's names (aliases.py) and the model classes (models.py)
__all__ += [*ALIASES, "AutoencoderKL", "CLIPTextModel", "CLIPTextModelWithProjection", "UNet2DConditionModel",
            "UNet2DModel", "AutoPipelineForText2Image", "AutoPipelineForImage2Image", "AutoPipelineForInpainting"]
