"""edge_sched: diffusers' schedulers in pure numpy, for devices that never install torch."""

from . import heap, random
from .schedulers import *  # noqa: F401,F403  (scheduler classes under their diffusers names)
from .schedulers import __all__ as _scheduler_names

__version__ = "0.1.0"

heap.keep_freed_memory()  # numpy temporaries of the latents' size are reused, not page-faulted in each step

_PIPELINE_NAMES = (
    "DiffusionPipeline", "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
    "StableDiffusionXLPipeline", "LatentConsistencyModelPipeline", "DDPMPipeline", "DDIMPipeline",
    # optimum's names (pipelines/aliases.py) and diffusers' model classes (pipelines/models.py)
    "ORTDiffusionPipeline", "ORTStableDiffusionPipeline", "ORTStableDiffusionImg2ImgPipeline",
    "ORTStableDiffusionInpaintPipeline", "ORTStableDiffusionXLPipeline", "ORTLatentConsistencyModelPipeline",
    "OVDiffusionPipeline", "OVStableDiffusionPipeline", "OVStableDiffusionImg2ImgPipeline",
    "OVStableDiffusionInpaintPipeline", "OVStableDiffusionXLPipeline", "OVLatentConsistencyModelPipeline",
    "AutoencoderKL", "CLIPTextModel", "CLIPTextModelWithProjection", "UNet2DConditionModel", "UNet2DModel",
    "AutoPipelineForText2Image", "AutoPipelineForImage2Image", "AutoPipelineForInpainting",
)


def __getattr__(name):
    # pipelines load on first use, so `import edge_sched` stays a numpy-only import
    if name in _PIPELINE_NAMES:
        from . import pipelines

        return getattr(pipelines, name)
    raise AttributeError(f"module 'edge_sched' has no attribute {name!r}")


__all__ = ["random", "__version__", *_scheduler_names, *_PIPELINE_NAMES]
