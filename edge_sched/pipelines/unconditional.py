"""``UNet2DModel`` pipelines: diffusers' ``DDPMPipeline`` and ``DDIMPipeline`` on an exported UNet,
plus class conditioning for UNets with class embeddings (``class_labels=``, with classifier-free
guidance against a "null" class when the model was trained with one).

A class-conditional folder names its classes in ``class_labels.json``:
``{"names": ["0", "1", ...], "null_class": 10, "guidance_scale": 3.0}``; prompts then pick classes
by name (``pipe("3 7 7")`` generates a 3 and two 7s). ``guidance_scale`` (optional) is the model's
default classifier-free guidance scale, used when the call passes none (without it: 1.0, no guidance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..jsonfile import read_json
from ..random import randn_tensor
from ..schedulers import DDIMScheduler
from .base import DiffusionPipeline, ImagePipelineOutput, register_pipeline
from .loading import PipelineLoadError
from .loop import LoopHooks, denoise

CLASS_LABELS_FILE = "class_labels.json"


class UnconditionalPipelineBase(DiffusionPipeline):
    required_graphs = {"unet": ("sample", "timestep")}
    _component_names = ("unet", "scheduler")
    _null_labels: np.ndarray | None = None  # per call: the null class, one per image, when it can guide

    @property
    def unet_config(self) -> dict:
        return self.graphs.configs.get("unet", {})

    @property
    def class_names(self) -> list[str] | None:
        info = self._class_info()
        return None if info is None else list(info["names"])

    def _class_info(self) -> dict | None:
        # read once: the loop asks for the null class at every step
        if not hasattr(self, "_class_info_cache"):
            self._class_info_cache = self._read_class_info()
        return self._class_info_cache

    def _read_class_info(self) -> dict | None:
        path = Path(self.folder) / CLASS_LABELS_FILE
        if not path.is_file():
            return None
        info = read_json(path, error=PipelineLoadError)
        try:
            names, null = info["names"], info.get("null_class")
            scale = info.get("guidance_scale", 1.0)
            if (not all(isinstance(n, str) for n in names) or (null is not None and not isinstance(null, int))
                    or isinstance(scale, bool) or not isinstance(scale, (int, float))):
                raise TypeError
        except (KeyError, TypeError) as e:
            raise PipelineLoadError(f"{path}: expected {{\"names\": [str, ...], \"null_class\": int or null, "
                                    f"\"guidance_scale\": number (optional)}}") from e
        return info

    @property
    def default_guidance_scale(self) -> float:
        """The guidance scale used when a call passes none: ``class_labels.json``'s, else 1.0 (no guidance)."""
        return float((self._class_info() or {}).get("guidance_scale", 1.0))

    def labels_from_prompt(self, prompt) -> np.ndarray:
        """Class ids for a prompt of class names separated by spaces or commas (or a list of names)."""
        info = self._class_info()
        if info is None:
            raise ValueError(f"{self.folder}: this model has no {CLASS_LABELS_FILE}; it takes no prompt")
        words = prompt.replace(",", " ").split() if isinstance(prompt, str) else list(prompt)
        unknown = [w for w in words if w not in info["names"]]
        if not words or unknown:
            raise ValueError(
                f"the prompt must name classes of this model ({', '.join(info['names'])}), separated by spaces; "
                f"got {prompt!r}" + (f" (unknown: {', '.join(map(repr, unknown))})" if unknown else "")
            )
        return np.array([info["names"].index(w) for w in words], dtype=np.int64)

    def _sample_shape(self, batch: int) -> tuple[int, ...]:
        unet = self.graph("unet")
        size = self.unet_config.get("sample_size")
        spec = unet.inputs["sample"].shape
        channels = self.unet_config.get("in_channels") or (spec[1] if spec else None)
        if size is None and spec is not None and spec[2] is not None:
            size = (spec[2], spec[3])
        if size is None or channels is None:
            raise PipelineLoadError(f"{self.folder}/unet/config.json: needs sample_size and in_channels")
        size = size if isinstance(size, (list, tuple)) else (size, size)
        return (batch, int(channels), int(size[0]), int(size[1]))

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Guidance against the null class: class labels, a model with a null class, and a scale above 1."""
        return self._guidance_scale > 1 and self._null_labels is not None

    def _class_hooks(self, labels: np.ndarray | None) -> LoopHooks:
        """Loop hooks feeding class labels (null-class labels first when guided), checked against the UNet."""
        unet = self.graph("unet")
        if labels is None and "class_labels" in unet.inputs:
            raise ValueError(f"{unet.path}: this UNet is class-conditional: pass class_labels= or a prompt of class names")
        if labels is not None and "class_labels" not in unet.inputs:
            raise ValueError(f"{unet.path}: this UNet takes no class labels")
        null = (self._class_info() or {}).get("null_class")
        self._null_labels = None if labels is None or null is None else np.full_like(labels, null)

        def feeds(state: dict, guided: bool) -> dict:
            if labels is None:
                return {}
            return {"class_labels": np.concatenate([self._null_labels, labels]) if guided else labels}

        return LoopHooks(unet_feeds=feeds)

    def _generate(self, batch_size, generator, num_inference_steps, timesteps, sigmas, step_kwargs_extra,
                  class_labels, guidance_scale, output_type, return_dict, callback_on_step_end,
                  callback_on_step_end_tensor_inputs, prompt=None, num_images_per_prompt=1,
                  guidance_interval=None):
        if prompt is None and (isinstance(batch_size, str) or (
                isinstance(batch_size, (list, tuple)) and batch_size and all(isinstance(w, str) for w in batch_size))):
            # pipe("3 7 7"): a string is never a batch size, so the first positional argument is the prompt
            prompt, batch_size = batch_size, 1
        if prompt is not None:
            if class_labels is not None:
                raise ValueError("give either prompt or class_labels, not both")
            class_labels = self.labels_from_prompt(prompt)
        if class_labels is not None:
            class_labels = np.repeat(np.atleast_1d(np.asarray(class_labels, dtype=np.int64)), num_images_per_prompt)
            batch_size = len(class_labels)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if guidance_scale is None:
            guidance_scale = self.default_guidance_scale
        names = self._begin_call(callback_on_step_end, callback_on_step_end_tensor_inputs, guidance_scale,
                                 num_images_per_prompt=num_images_per_prompt, output_type=output_type,
                                 guidance_interval=guidance_interval)
        hooks = self._class_hooks(class_labels)
        generator = self._generator(generator)
        sample = randn_tensor(self._sample_shape(int(batch_size)), generator=generator, dtype=np.float32)
        timesteps = self._set_timesteps(num_inference_steps, timesteps, sigmas)
        sample = sample * np.float32(self.scheduler.init_noise_sigma)
        step_kwargs = {**self._step_kwargs(generator, None), **step_kwargs_extra}
        state = denoise(self, timesteps, {"latents": sample}, hooks, step_kwargs, callback_on_step_end, names)
        images = state["latents"]
        if output_type != "latent":
            from .image_io import image_processor  # needs Pillow

            images = image_processor().postprocess(images, output_type)
        return ImagePipelineOutput(images) if return_dict else (images,)


@register_pipeline
class DDPMPipeline(UnconditionalPipelineBase):
    """diffusers' ``DDPMPipeline``: ``pipe(batch_size=4, generator=0, num_inference_steps=1000).images``."""

    def __call__(self, batch_size: int = 1, generator=None, num_inference_steps: int = 1000, output_type: str = "pil",
                 return_dict: bool = True, *, prompt=None, class_labels=None, guidance_scale: float | None = None,
                 num_images_per_prompt: int = 1, timesteps=None, sigmas=None, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs=("latents",), guidance_interval=None):
        return self._generate(batch_size, generator, num_inference_steps, timesteps, sigmas, {}, class_labels,
                              guidance_scale, output_type, return_dict, callback_on_step_end,
                              callback_on_step_end_tensor_inputs, prompt, num_images_per_prompt,
                              guidance_interval)


@register_pipeline
class DDIMPipeline(UnconditionalPipelineBase):
    """diffusers' ``DDIMPipeline`` (its scheduler is turned into a DDIMScheduler, as diffusers does)."""

    def _setup(self, folder, graphs, scheduler, model_index, *args, **kwargs):
        super()._setup(folder, graphs, DDIMScheduler.from_config(scheduler.config), model_index, *args, **kwargs)

    def __call__(self, batch_size: int = 1, generator=None, eta: float = 0.0, num_inference_steps: int = 50,
                 use_clipped_model_output: bool | None = None, output_type: str = "pil", return_dict: bool = True,
                 *, prompt=None, class_labels=None, guidance_scale: float | None = None, num_images_per_prompt: int = 1,
                 timesteps=None, sigmas=None, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs=("latents",), guidance_interval=None):
        extra = {"eta": eta, "use_clipped_model_output": use_clipped_model_output}
        return self._generate(batch_size, generator, num_inference_steps, timesteps, sigmas, extra, class_labels,
                              guidance_scale, output_type, return_dict, callback_on_step_end,
                              callback_on_step_end_tensor_inputs, prompt, num_images_per_prompt,
                              guidance_interval)
