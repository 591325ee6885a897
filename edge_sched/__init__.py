"""edge_sched: diffusers' schedulers in pure numpy, for devices that never install torch."""

import importlib

from . import heap
from .schedulers import __all__ as _scheduler_names  # the list only: no scheduler module is imported here

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
    # schedulers, pipelines and the generators load on first use (PEP 562), so `import edge_sched`
    # imports neither numpy nor any scheduler module (issue 18 item 4: ~0.1 s of scheduler modules)
    if name == "random":
        return importlib.import_module(".random", __name__)
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module(".pipelines", __name__), name)
    if name in _scheduler_names:
        value = getattr(importlib.import_module(".schedulers", __name__), name)
        globals()[name] = value  # bound once, as the star import bound it before
        return value
    raise AttributeError(f"module 'edge_sched' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = ["random", "__version__", *_scheduler_names, *_PIPELINE_NAMES]
