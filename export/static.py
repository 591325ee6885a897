"""Static shapes for NPU-style devices: every graph input gets fixed dimensions at export time.

The user gives ``{"batch": B, "height": H, "width": W}`` (images per run and their pixel size). From the
pipeline we derive the rest, recorded in the manifest under ``static_shapes``:

- ``latent_height`` / ``latent_width``: H and W over the VAE scale factor (pixel size for UNet2DModel
  pipelines, which denoise pixels); H and W must be divisible by it and by the UNet's own downsampling.
- ``classifier_free_guidance``: whether the UNet runs on the conditional and unconditional halves at once
  (Stable Diffusion, SDXL); not for LCM (guidance is an embedding) nor unconditional UNets.
- ``unet_batch``: 2B with classifier-free guidance, else B. Text encoders and the VAE run on B.
- ``sequence_length``: the tokenizer's ``model_max_length`` (prompt token count), when there is one.
"""

from __future__ import annotations

from .errors import ExportError

STATIC_KEYS = ("batch", "height", "width")


def parse_static_shapes(text: str) -> dict:
    """``"1x512x768"`` (batch x height x width, as on the command line) -> {"batch", "height", "width"}."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        batch, height, width = (int(p) for p in parts)
    except ValueError:
        raise ExportError(
            f"static shapes must look like 1x512x512 (batch x height x width); got {text!r}"
        ) from None
    return {"batch": batch, "height": height, "width": width}


def plan_static_shapes(pipe, family: str, static: dict) -> dict:
    if family in ("sd3", "flux", "sana"):  # export/flow.py's FLOW_FAMILIES
        raise ExportError(f"static shapes at export time are not made for {family} pipelines yet; export with dynamic "
                          "shapes and fix them on the device with pipe.reshape(batch_size, height, width, ...) "
                          "(OpenVINO) or static_shapes= in from_pretrained")
    if not isinstance(static, dict) or set(static) != set(STATIC_KEYS):
        raise ExportError(f"static shapes must give exactly {', '.join(STATIC_KEYS)}; got {static!r}")
    for key in STATIC_KEYS:
        value = static[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExportError(f"static {key} must be a positive integer; got {value!r}")
    batch, height, width = (static[k] for k in STATIC_KEYS)
    unet = pipe.unet
    if family == "unet2d":
        vae_factor = 1
    else:
        vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    # the UNet halves the latent size at every down block but the last
    unet_factor = 2 ** (len(unet.config.block_out_channels) - 1)
    for key, value in (("height", height), ("width", width)):
        if value % vae_factor:
            raise ExportError(f"static {key} {value} is not divisible by the VAE scale factor {vae_factor}")
        if (value // vae_factor) % unet_factor:
            raise ExportError(
                f"static {key} {value} gives a latent size {value // vae_factor} not divisible by the UNet's "
                f"downsampling factor {unet_factor}; use a multiple of {vae_factor * unet_factor}"
            )
    cfg = family != "unet2d" and getattr(unet.config, "time_cond_proj_dim", None) is None
    tokenizer = getattr(pipe, "tokenizer", None)
    return {
        "batch": batch,
        "height": height,
        "width": width,
        "latent_height": height // vae_factor,
        "latent_width": width // vae_factor,
        "classifier_free_guidance": cfg,
        "unet_batch": 2 * batch if cfg else batch,
        "sequence_length": int(tokenizer.model_max_length) if tokenizer is not None else None,
    }


def static_shapes_for(component: str, description: dict, plan: dict) -> dict:
    """{input name: static shape} for one exported graph, from its (partly dynamic) input shapes."""
    batch = plan["unet_batch"] if component == "unet" else plan["batch"]
    pixels = (plan["height"], plan["width"])
    latents = (plan["latent_height"], plan["latent_width"])
    spatial = pixels if component == "vae_encoder" else latents
    shapes = {}
    for spec in description["inputs"]:
        name, dims = spec["name"], spec["shape"]
        if dims is None:
            raise ExportError(f"{component}: input {name} has no known rank; cannot make it static")
        fixed = []
        for axis, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0:
                fixed.append(dim)
            elif axis == 0:
                fixed.append(batch)
            elif len(dims) == 4 and axis in (2, 3):
                fixed.append(spatial[axis - 2])
            elif axis == 1 and name in ("input_ids", "encoder_hidden_states") and plan["sequence_length"]:
                fixed.append(plan["sequence_length"])
            else:
                raise ExportError(f"{component}: no static size known for axis {axis} of input {name} {dims}")
        shapes[name] = fixed
    return shapes
