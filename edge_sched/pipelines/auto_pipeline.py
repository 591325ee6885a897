"""diffusers' task pipelines (``AutoPipelineForText2Image``, ``AutoPipelineForImage2Image``,
``AutoPipelineForInpainting``): ``from_pretrained(folder)`` loads the folder's pipeline and gives the
task's pipeline of the same family on its parts; ``from_pipe(pipe)`` does the same from a loaded one
(sharing its graphs). Families and tasks here: Stable Diffusion 1/2 (all three), SDXL, LCM and the
flow pipelines (text-to-image)."""

from __future__ import annotations

from .base import PIPELINE_ALIASES, PIPELINE_CLASSES, DiffusionPipeline

#: pipeline class name -> family
FAMILIES = {
    "StableDiffusionPipeline": "stable-diffusion", "StableDiffusionImg2ImgPipeline": "stable-diffusion",
    "StableDiffusionInpaintPipeline": "stable-diffusion", "StableDiffusionXLPipeline": "stable-diffusion-xl",
    "LatentConsistencyModelPipeline": "latent-consistency-models", "StableDiffusion3Pipeline": "stable-diffusion-3",
    "FluxPipeline": "flux",
}
#: task -> family -> pipeline class name
TASKS = {
    "text-to-image": {"stable-diffusion": "StableDiffusionPipeline", "stable-diffusion-xl": "StableDiffusionXLPipeline",
                      "latent-consistency-models": "LatentConsistencyModelPipeline",
                      "stable-diffusion-3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"},
    "image-to-image": {"stable-diffusion": "StableDiffusionImg2ImgPipeline"},
    "inpainting": {"stable-diffusion": "StableDiffusionInpaintPipeline"},
}


def _family(pipeline_class: type) -> str | None:
    for cls in pipeline_class.__mro__:
        name = PIPELINE_ALIASES.get(cls.__name__, cls.__name__)
        if name in FAMILIES:
            return FAMILIES[name]
    return None


class _AutoPipeline:
    task = ""

    def __init__(self, *args, **kwargs):
        raise EnvironmentError(f"{type(self).__name__} is built with from_pretrained(...) or from_pipe(...)")

    @classmethod
    def _target(cls, pipeline_class: type) -> type[DiffusionPipeline]:
        family = _family(pipeline_class)
        name = TASKS[cls.task].get(family)
        if name is None or name not in PIPELINE_CLASSES:
            have = ", ".join(sorted(f for f in TASKS[cls.task]))
            raise ValueError(f"{cls.__name__}: no {cls.task} pipeline for {pipeline_class.__name__} here "
                             f"(families with one: {have})")
        return PIPELINE_CLASSES[name]

    @classmethod
    def from_pretrained(cls, pretrained_model_or_path, **kwargs):
        pipe = DiffusionPipeline.from_pretrained(pretrained_model_or_path, **kwargs)
        return cls.from_pipe(pipe)

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        target = cls._target(type(pipeline))
        if type(pipeline) is target and not kwargs:
            return pipeline
        return target.from_pipe(pipeline, **kwargs)


class AutoPipelineForText2Image(_AutoPipeline):
    task = "text-to-image"


class AutoPipelineForImage2Image(_AutoPipeline):
    task = "image-to-image"


class AutoPipelineForInpainting(_AutoPipeline):
    task = "inpainting"
