"""The porting catalogue: diffusers and optimum scripts as their users write them (the seed documents'
snippets, /work/shared/seeds/*.txt, and everyday patterns), each run twice by test_catalogue.py:
as written (diffusers / optimum, where they can run here: no GPU, no network) and with only its import
lines changed by ``port`` (torch blocked in that process).

Hub ids resolve through a local Hugging Face cache (tests/dropin/conftest.py) holding the tiny
pipelines: the diffusers folders for the original script, their edge-sched exports for the port. So
the scripts keep their ids ("runwayml/stable-diffusion-v1-5") and their text is the documents' text.
Only sizes that the tiny models cannot take were left out of a script, never changed; a document's own
mistake is corrected and said so in ``note``.

``expect``: "runs" (the port must run; where ``reference`` is True the original runs too and the images
they leave behind must agree), or "refused: <text>" (the port must stop with an error containing text:
things that cannot work without torch or a network; counted apart).
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    origin: str              # "seed:<file>" or "everyday"
    script: str
    reference: bool = True   # the original can run here (CPU, offline) and is compared
    expect: str = "runs"
    note: str = ""


#: import lines of the original -> the port's (nothing else in a script changes)
IMPORT_MAP = [
    (r"^import torch$", "import edge_sched.torch_compat as torch"),
    (r"^from diffusers\.utils import ", "from edge_sched.utils import "),
    (r"^from diffusers\.schedulers\.scheduling_utils import ", "from edge_sched.schedulers.scheduling_utils import "),
    (r"^from diffusers\.schedulers import ", "from edge_sched.schedulers import "),
    (r"^from diffusers\.configuration_utils import ", "from edge_sched.configuration_utils import "),
    (r"^from diffusers import ", "from edge_sched import "),
    (r"^from optimum\.onnxruntime import ", "from edge_sched import "),
    (r"^from optimum\.intel import ", "from edge_sched import "),
    (r"^from optimum\.intel\.openvino import ", "from edge_sched import "),
]


#: what a line must look like to be changed by port (an import of torch, diffusers or optimum)
IMPORT_LINE = re.compile(r"^(import torch$|from (diffusers|optimum)(\.[a-z_.]+)? import )")


def port(script: str) -> str:
    """The script with its import lines changed (IMPORT_MAP), every other line as it was."""
    out = []
    for line in script.splitlines():
        for pattern, replacement in IMPORT_MAP:
            if re.match(pattern, line):
                line = re.sub(pattern, replacement, line)
                break
        out.append(line)
    return "\n".join(out) + "\n"


def changed_lines(script: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(script.splitlines(), port(script).splitlines()) if a != b]


SD = "runwayml/stable-diffusion-v1-5"

CASES = [
    # ---- seed documents ---------------------------------------------------------------------------
    Case("seed-unet-push-to-hub", "seed:000,001", '''
from diffusers import UNet2DConditionModel

unet = UNet2DConditionModel.from_pretrained("stabilityai/stable-diffusion-2", subfolder="unet")

# Push the `unet` to your namespace with the name "my-finetuned-unet".
unet.push_to_hub("my-finetuned-unet")

# Push the `unet` to an organization with the name "my-finetuned-unet".
unet.push_to_hub("your-org/my-finetuned-unet")
''', reference=False, note="uploads go to the catalogue's recording stand-in of the Hub (no network here)"),
    Case("seed-load-pipeline-fp16-cuda", "seed:002", '''
import torch
from diffusers import DiffusionPipeline

pipeline = DiffusionPipeline.from_pretrained(
    "runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16, use_safetensors=True
).to("cuda")
pipeline.scheduler
print(pipeline.scheduler)
''', reference=False, note="no CUDA here: diffusers cannot run it; the port warns and stays on the CPU"),
    Case("seed-ddim-from-pretrained", "seed:002", '''
from diffusers import DDIMScheduler, DiffusionPipeline

ddim = DDIMScheduler.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="scheduler")
config = dict(ddim.config)
'''),
    Case("seed-pipeline-with-scheduler", "seed:002", '''
import torch
from diffusers import DDIMScheduler, DiffusionPipeline

ddim = DDIMScheduler.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="scheduler")
pipeline = DiffusionPipeline.from_pretrained(
    "runwayml/stable-diffusion-v1-5", scheduler=ddim, torch_dtype=torch.float16, use_safetensors=True
).to("cuda")
''', reference=False, note="fp16 on CUDA: diffusers cannot run it here"),
    *[Case(f"seed-compare-{name}", "seed:002", f'''
import torch
from diffusers import DiffusionPipeline
from diffusers import {cls}

pipeline = DiffusionPipeline.from_pretrained(
    "runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16, use_safetensors=True
).to("cuda")

prompt = "A photograph of an astronaut riding a horse on Mars, high resolution, high definition."
generator = torch.Generator(device="cuda").manual_seed(8)

pipeline.scheduler = {cls}.from_config(pipeline.scheduler.config)
image = pipeline(prompt, generator=generator).images[0]
''', reference=False, note="CUDA generator and fp16: diffusers cannot run it here; the port draws torch's CUDA noise")
      for name, cls in (("lms", "LMSDiscreteScheduler"), ("euler", "EulerDiscreteScheduler"),
                        ("euler-a", "EulerAncestralDiscreteScheduler"), ("dpm", "DPMSolverMultistepScheduler"))],
    Case("seed-flax-pipeline", "seed:002", '''
import jax
import numpy as np
from flax.jax_utils import replicate
from flax.training.common_utils import shard
from diffusers import FlaxStableDiffusionPipeline, FlaxDPMSolverMultistepScheduler
''', reference=False, expect="refused: jax|flax|Flax",
         note="Flax (jax) pipelines have no port here; refused at the import"),
    Case("seed-ays-schedules", "seed:002,004", '''
from diffusers.schedulers import AysSchedules

sampling_schedule = AysSchedules["StableDiffusionXLTimesteps"]
print(sampling_schedule)
schedule = list(sampling_schedule)
'''),
    Case("seed-sdxl-ays-timesteps", "seed:002,004", '''
import torch
from diffusers import StableDiffusionXLPipeline, DPMSolverMultistepScheduler
from diffusers.schedulers import AysSchedules

sampling_schedule = AysSchedules["StableDiffusionXLTimesteps"]
pipeline = StableDiffusionXLPipeline.from_pretrained(
    "SG161222/RealVisXL_V4.0",
    torch_dtype=torch.float16,
    variant="fp16",
).to("cuda")
pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config, algorithm_type="sde-dpmsolver++")

prompt = "A cinematic shot of a cute little rabbit wearing a jacket and doing a thumbs up"
generator = torch.Generator(device="cpu").manual_seed(2487854446)

image = pipeline(
    prompt=prompt,
    negative_prompt="",
    generator=generator,
    timesteps=sampling_schedule,
).images[0]
''', reference=False, note="fp16 variant on CUDA: diffusers cannot run it here"),
    Case("seed-unet-subfolder", "seed:002", '''
from diffusers import UNet2DConditionModel

unet = UNet2DConditionModel.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="unet", use_safetensors=True)
sample_size = unet.config.sample_size
'''),
    Case("seed-unet2d-repo", "seed:002", '''
from diffusers import UNet2DModel

unet = UNet2DModel.from_pretrained("google/ddpm-cifar10-32", use_safetensors=True)
channels = unet.config.in_channels
''', reference=False, note="the real repository also keeps its UNet at the top level; the tiny stand-in is a "
                           "pipeline folder (unet/ only), where diffusers needs subfolder='unet'"),
    Case("seed-unet-variant-save", "seed:002", '''
from diffusers import UNet2DConditionModel

unet = UNet2DConditionModel.from_pretrained(
    "runwayml/stable-diffusion-v1-5", subfolder="unet", variant="non_ema", use_safetensors=True
)
unet.save_pretrained("./local-unet", variant="non_ema")
''', reference=False, note="the tiny repository has no non_ema weights, so diffusers refuses the variant; "
                           "the port loads the graph (a variant file is used only where present)"),
    Case("seed-trailing-spacing", "seed:004", '''
import torch
from diffusers import StableDiffusionXLPipeline, DPMSolverMultistepScheduler

pipeline = StableDiffusionXLPipeline.from_pretrained(
    "SG161222/RealVisXL_V4.0",
    torch_dtype=torch.float16,
    variant="fp16",
).to("cuda")
pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config, timestep_spacing="trailing")

prompt = "A cinematic shot of a cute little black cat sitting on a pumpkin at night"
generator = torch.Generator(device="cpu").manual_seed(2487854446)

image = pipeline(
    prompt=prompt,
    negative_prompt="",
    generator=generator,
    num_inference_steps=5,
).images[0]
image
''', reference=False, note="fp16 variant on CUDA: diffusers cannot run it here"),
    Case("seed-custom-sigmas", "seed:004", '''
import torch
from diffusers import DiffusionPipeline, EulerDiscreteScheduler

model_id = "stabilityai/stable-diffusion-xl-base-1.0"
pipeline = DiffusionPipeline.from_pretrained(
    "stabilityai/stable-diffusion-xl-base-1.0",
    torch_dtype=torch.float16,
    variant="fp16",
).to("cuda")
pipeline.scheduler = EulerDiscreteScheduler.from_config(pipeline.scheduler.config)

sigmas = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.0]
prompt = "anthropomorphic capybara wearing a suit and working with a computer"
generator = torch.Generator(device='cuda').manual_seed(123)
image = pipeline(
    prompt=prompt,
    num_inference_steps=10,
    sigmas=sigmas,
    generator=generator
).images[0]
print(f" timesteps: {pipeline.scheduler.timesteps}")
''', reference=False, note="the document prints pipe.scheduler (a name it never defined): pipeline here; "
                           "fp16 and a CUDA generator: diffusers cannot run it here"),
    Case("seed-karras-sigmas", "seed:004", '''
import torch
from diffusers import StableDiffusionXLPipeline, DPMSolverMultistepScheduler

pipeline = StableDiffusionXLPipeline.from_pretrained(
    "SG161222/RealVisXL_V4.0",
    torch_dtype=torch.float16,
    variant="fp16",
).to("cuda")
pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config, algorithm_type="sde-dpmsolver++", use_karras_sigmas=True)

prompt = "A cinematic shot of a cute little rabbit wearing a jacket and doing a thumbs up"
generator = torch.Generator(device="cpu").manual_seed(2487854446)

image = pipeline(
    prompt=prompt,
    negative_prompt="",
    generator=generator,
).images[0]
''', reference=False, note="fp16 variant on CUDA: diffusers cannot run it here"),
    Case("seed-zero-snr-rescale", "seed:004", '''
import torch
from diffusers import DiffusionPipeline, DDIMScheduler

pipeline = DiffusionPipeline.from_pretrained("ptx0/pseudo-journey-v2", use_safetensors=True)
pipeline.scheduler = DDIMScheduler.from_config(
    pipeline.scheduler.config, rescale_betas_zero_snr=True, timestep_spacing="trailing"
)
pipeline.to("cuda")

prompt = "cinematic photo of a snowy mountain at night with the northern lights aurora borealis overhead, 35mm photograph, film, professional, 4k, highly detailed"
generator = torch.Generator(device="cpu").manual_seed(23)
image = pipeline(prompt, guidance_rescale=0.7, generator=generator).images[0]
image
''', reference=False, note="pipeline.to('cuda'): diffusers cannot run it here"),
    Case("seed-kdpm2-ancestral-api", "seed:003", '''
import torch
from diffusers import KDPM2AncestralDiscreteScheduler

scheduler = KDPM2AncestralDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                            beta_schedule="scaled_linear", prediction_type="epsilon")
scheduler.set_timesteps(10, device="cpu")
generator = torch.Generator().manual_seed(0)
sample = torch.randn((1, 4, 8, 8), generator=generator) * scheduler.init_noise_sigma
for t in scheduler.timesteps:
    model_input = scheduler.scale_model_input(sample, t)
    noise_pred = 0.1 * model_input
    sample = scheduler.step(noise_pred, t, sample, generator=generator).prev_sample
latents = sample
''', note="the document lists the API (scale_model_input, set_timesteps(n, device), step with a generator); "
          "this loop uses exactly those calls"),

    # ---- everyday patterns ------------------------------------------------------------------------
    Case("text-to-image", "everyday", f'''
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
prompt = "a photo of an astronaut riding a horse on mars"
image = pipe(prompt).images[0]
image.save("astronaut_rides_horse.png")
''', reference=False, note="no generator: each library draws its own seed, so only the port is run"),
    Case("seeded-call-with-options", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}", torch_dtype=torch.float32, safety_checker=None,
                                               requires_safety_checker=False)
pipe = pipe.to("cpu")
pipe.set_progress_bar_config(disable=True)
image = pipe("a cat", negative_prompt="blurry", num_inference_steps=20, guidance_scale=6.0, height=48, width=32,
             generator=torch.manual_seed(42)).images[0]
'''),
    Case("batch-and-grid", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import make_image_grid

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
generator = [torch.Generator("cpu").manual_seed(i) for i in range(4)]
images = pipe(["a cat", "a dog"], num_images_per_prompt=2, generator=generator, num_inference_steps=10).images
grid = make_image_grid(images, rows=2, cols=2)
grid.save("grid.png")
'''),
    Case("swap-scheduler-karras", "everyday", f'''
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}", use_safetensors=True)
print(pipe.scheduler.compatibles)
pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
image = pipe("a cat", num_inference_steps=12, generator=torch.Generator("cpu").manual_seed(0)).images[0]
'''),
    Case("image-to-image", "everyday", f'''
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from diffusers.utils import load_image

pipe = StableDiffusionImg2ImgPipeline.from_pretrained("{SD}")
init_image = load_image("init.png").resize((32, 32))
generator = torch.Generator(device="cpu").manual_seed(1024)
image = pipe(prompt="a fantasy landscape", image=init_image, strength=0.75, guidance_scale=7.5,
             generator=generator).images[0]
'''),
    Case("inpainting", "everyday", '''
import torch
from diffusers import StableDiffusionInpaintPipeline
from diffusers.utils import load_image

pipe = StableDiffusionInpaintPipeline.from_pretrained("runwayml/stable-diffusion-inpainting")
image = load_image("init.png")
mask_image = load_image("mask.png")
generator = torch.Generator("cpu").manual_seed(92)
image = pipe(prompt="a cat sitting on a bench", image=image, mask_image=mask_image, num_inference_steps=20,
             generator=generator).images[0]
'''),
    Case("components-reuse", "everyday", f'''
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
from diffusers.utils import load_image

text2img = StableDiffusionPipeline.from_pretrained("{SD}")
img2img = StableDiffusionImg2ImgPipeline(**text2img.components)
inpaint = StableDiffusionInpaintPipeline(**text2img.components)
image = img2img("a dog", image=load_image("init.png"), strength=0.6, num_inference_steps=10,
                generator=torch.manual_seed(3)).images[0]
'''),
    Case("from-pipe", "everyday", f'''
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
first = pipe("a red car", num_inference_steps=8, generator=torch.manual_seed(5)).images[0]
pipe_img2img = StableDiffusionImg2ImgPipeline.from_pipe(pipe)
image = pipe_img2img("a blue car", image=first, strength=0.5, num_inference_steps=8,
                     generator=torch.manual_seed(6)).images[0]
'''),
    Case("auto-pipelines", "everyday", f'''
import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

pipeline = AutoPipelineForText2Image.from_pretrained("{SD}", use_safetensors=True)
image = pipeline("a lighthouse", num_inference_steps=8, generator=torch.manual_seed(7)).images[0]
pipeline = AutoPipelineForImage2Image.from_pipe(pipeline)
image = pipeline("a lighthouse at night", image=image, strength=0.5, num_inference_steps=8,
                 generator=torch.manual_seed(8)).images[0]
'''),
    Case("callback-on-step-end", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
seen = []


def interrupt_callback(pipeline, i, t, callback_kwargs):
    seen.append(int(i))
    if i == 4:
        pipeline._interrupt = True
    return callback_kwargs


image = pipe("a cat", num_inference_steps=10, generator=torch.manual_seed(11), output_type="np",
             callback_on_step_end=interrupt_callback, callback_on_step_end_tensor_inputs=["latents"]).images
steps = len(seen)
'''),
    Case("latents-then-decode", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
latents = pipe("a cat", num_inference_steps=8, output_type="latent", generator=torch.manual_seed(2)).images
with torch.no_grad():
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
image = pipe.image_processor.postprocess(image, output_type="np")
'''),
    Case("prompt-embeds", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
prompt_embeds, negative_prompt_embeds = pipe.encode_prompt("a cat", "cpu", 1, True, "blurry")
image = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, num_inference_steps=8,
             generator=torch.manual_seed(4), output_type="np").images
'''),
    Case("memory-savers", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
pipe.enable_attention_slicing()
pipe.enable_vae_slicing()
pipe.enable_model_cpu_offload()
images = pipe(["a cat", "a dog"], num_inference_steps=8, generator=torch.manual_seed(9)).images
''', reference=False, note="diffusers' enable_model_cpu_offload needs accelerate (and a GPU), not installed here"),
    Case("vae-tiling", "everyday", f'''
import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
pipe.enable_vae_tiling()
image = pipe("a wide valley", height=64, width=96, num_inference_steps=6, generator=torch.manual_seed(1),
             output_type="np").images
'''),
    Case("sdxl-text-to-image", "everyday", '''
import torch
from diffusers import StableDiffusionXLPipeline

pipe = StableDiffusionXLPipeline.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0", use_safetensors=True)
image = pipe(prompt="an astronaut", prompt_2="watercolor", negative_prompt="low quality", num_inference_steps=10,
             generator=torch.Generator("cpu").manual_seed(0)).images[0]
'''),
    Case("lcm", "everyday", '''
import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("SimianLuo/LCM_Dreamshaper_v7")
images = pipe("a portrait of a cat", num_inference_steps=4, guidance_scale=8.0,
              generator=torch.manual_seed(0), output_type="pil").images
'''),
    Case("ddpm-unconditional", "everyday", '''
from diffusers import DDPMPipeline

ddpm = DDPMPipeline.from_pretrained("google/ddpm-cifar10-32", use_safetensors=True)
image = ddpm(num_inference_steps=25).images[0]
''', reference=False, note="no generator: each library draws a different seed, so only the port is run"),
    Case("ddim-unconditional-seeded", "everyday", '''
import torch
from diffusers import DDIMPipeline

pipe = DDIMPipeline.from_pretrained("google/ddpm-cifar10-32")
image = pipe(batch_size=2, num_inference_steps=20, eta=0.5, generator=torch.manual_seed(0), output_type="np").images
'''),
    Case("scheduler-save-load", "everyday", f'''
from diffusers import DDIMScheduler, EulerDiscreteScheduler

scheduler = DDIMScheduler.from_pretrained("{SD}", subfolder="scheduler")
scheduler.save_pretrained("./my_scheduler")
config = DDIMScheduler.load_config("./my_scheduler")
euler = EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing")
euler.set_timesteps(10)
timesteps = euler.timesteps
print(euler)
'''),
    Case("scheduler-loop-add-noise", "everyday", '''
import torch
from diffusers import DDPMScheduler

scheduler = DDPMScheduler(num_train_timesteps=1000)
generator = torch.manual_seed(0)
clean = torch.randn((2, 3, 8, 8), generator=generator)
noise = torch.randn(clean.shape, generator=generator)
timesteps = torch.tensor([10, 500])
noisy = scheduler.add_noise(clean, noise, timesteps)
scheduler.set_timesteps(20)
sample = noisy
for t in scheduler.timesteps:
    sample = scheduler.step(0.1 * sample, t, sample, generator=generator).prev_sample
latents = sample
'''),
    Case("karras-schedulers-enum", "everyday", '''
from diffusers import StableDiffusionPipeline
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerOutput

names = [e.name for e in KarrasDiffusionSchedulers]
print(names, SchedulerOutput.__name__)
'''),
    Case("ort-text-to-image", "everyday", f'''
from optimum.onnxruntime import ORTStableDiffusionPipeline

pipeline = ORTStableDiffusionPipeline.from_pretrained("{SD}", export=True)
prompt = "sailing ship in storm by Leonardo da Vinci"
image = pipeline(prompt, num_inference_steps=10).images[0]
''', reference=False, note="no generator: optimum draws from torch's global seed, the port from its own"),
    Case("ort-seeded-provider", "everyday", f'''
import torch
from optimum.onnxruntime import ORTStableDiffusionPipeline

pipeline = ORTStableDiffusionPipeline.from_pretrained("{SD}", export=True, provider="CPUExecutionProvider")
image = pipeline("sailing ship in storm", num_inference_steps=10, generator=torch.Generator().manual_seed(3),
                 output_type="np").images
'''),
    Case("ort-lcm", "everyday", '''
import torch
from optimum.onnxruntime import ORTLatentConsistencyModelPipeline

pipe = ORTLatentConsistencyModelPipeline.from_pretrained("SimianLuo/LCM_Dreamshaper_v7", export=True)
images = pipe(prompt="a red fox", num_inference_steps=4, guidance_scale=8.0, generator=torch.manual_seed(1),
              output_type="np").images
'''),
    Case("ov-text-to-image-reshape", "everyday", f'''
from optimum.intel import OVStableDiffusionPipeline

model_id = "{SD}"
pipeline = OVStableDiffusionPipeline.from_pretrained(model_id, export=True, compile=False)
pipeline.reshape(batch_size=1, height=32, width=32, num_images_per_prompt=1)
pipeline.compile()
image = pipeline("sailing ship in storm by Rembrandt", height=32, width=32, num_inference_steps=10).images[0]
''', reference=False, note="no generator; and optimum-intel's CPU default precision (bf16 where the CPU has it) "
                           "is not the f32 the port runs"),
    Case("ov-sdxl", "everyday", '''
from optimum.intel import OVStableDiffusionXLPipeline

pipeline = OVStableDiffusionXLPipeline.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0", export=True)
image = pipeline("sailing ship in storm by Rembrandt", num_inference_steps=6).images[0]
''', reference=False, note="no generator (see above)"),
    Case("tokenizer-np", "everyday", f'''
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{SD}")
text_inputs = pipe.tokenizer("a cat", padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="np")
input_ids = text_inputs.input_ids
'''),
]
