"""Direct export of diffusers' ``UNet2DModel`` (DDPMPipeline / DDIMPipeline), for which optimum has no
exporter: ``torch.onnx.export`` (TorchScript exporter, dynamic axes) and ``openvino.convert_model``.

The graph interface follows optimum's Stable Diffusion UNet so the runtime drives both the same way:

- ``sample``: float32 ``[batch, in_channels, height, width]`` (batch, height, width dynamic)
- ``timestep``: float32 ``[batch]`` (one per batch item; a ``[1]`` tensor broadcasts over the batch
  inside the model). Float, not int64: Karras / exponential / custom-sigma schedules give fractional
  timesteps, which diffusers' UNet embeds as they are; an integer input would truncate them.
- ``class_labels``: only when the UNet has a class embedding: int64 ``[batch]`` (``num_class_embeds``
  or ``class_embed_type="timestep"``), float32 ``[batch, time_embed_dim]`` for ``"identity"``
- ``out_sample``: float32 ``[batch, out_channels, height, width]``
"""

from __future__ import annotations

from pathlib import Path

ONNX_OPSET = 18  # optimum's default for diffusion components
OUTPUT_NAME = "out_sample"
DEFAULT_SIZE = 64  # example size when the config has no sample_size (the graph's H and W stay dynamic)


def _wrapper(unet):
    import torch

    class UNet2DForExport(torch.nn.Module):
        """Plain tensors in, one tensor out (no return_dict, no Python scalars)."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, sample, timestep, class_labels=None):
            return self.model(sample, timestep, class_labels=class_labels, return_dict=False)[0]

    return UNet2DForExport(unet).eval()


def input_specs(unet, batch: int = 2, height: int | None = None, width: int | None = None) -> list[dict]:
    """Name, dtype, dynamic axes and an example tensor for each graph input of ``unet``."""
    import torch

    cfg = unet.config
    size = cfg.sample_size or DEFAULT_SIZE
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    h, w = height or h, width or w
    gen = torch.Generator().manual_seed(0)
    fourier = cfg.time_embedding_type == "fourier"
    specs = [
        {"name": "sample", "dtype": "float32", "axes": {0: "batch_size", 2: "height", 3: "width"},
         "example": torch.randn(batch, cfg.in_channels, h, w, generator=gen)},
        {"name": "timestep", "dtype": "float32", "axes": {0: "batch_size"},
         "example": (torch.rand(batch, generator=gen) + 0.01) if fourier
         else torch.randint(1, int(cfg.num_train_timesteps or 1000), (batch,), generator=gen).float()},
    ]
    if unet.class_embedding is not None:
        if cfg.class_embed_type == "identity":
            # an identity class embedding adds the labels to the time embedding: same width
            dim = unet.time_embedding.linear_2.out_features
            specs.append({"name": "class_labels", "dtype": "float32", "axes": {0: "batch_size"},
                          "example": torch.randn(batch, dim, generator=gen)})
        else:
            high = int(cfg.num_class_embeds) if cfg.class_embed_type is None else int(cfg.num_train_timesteps or 1000)
            specs.append({"name": "class_labels", "dtype": "int64", "axes": {0: "batch_size"},
                          "example": torch.randint(0, high, (batch,), generator=gen)})
    return specs


def export_onnx(unet, path: Path) -> None:
    """``unet`` -> ``path`` (model.onnx), batch / height / width dynamic (static shapes come after,
    from ``export/static.py``)."""
    import torch

    specs = input_specs(unet)
    names = [s["name"] for s in specs]
    axes = {s["name"]: s["axes"] for s in specs}
    axes[OUTPUT_NAME] = {0: "batch_size", 2: "height", 3: "width"}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _wrapper(unet),
            tuple(s["example"] for s in specs),
            str(path),
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def convert_openvino(unet, path: Path, compress_to_fp16: bool) -> None:
    """``unet`` -> ``path`` (openvino_model.xml + .bin) through ``openvino.convert_model``, batch / height /
    width dynamic; ``compress_to_fp16`` stores the weights in half precision."""
    import openvino as ov
    import torch

    specs = input_specs(unet)
    shapes = []
    for s in specs:
        shape = [-1 if i in s["axes"] else d for i, d in enumerate(s["example"].shape)]
        shapes.append((s["name"], ov.PartialShape(shape), ov.Type.f32 if s["dtype"] == "float32" else ov.Type.i64))
    with torch.no_grad():
        # traced here without torch's trace check (a second and third forward pass; the export is
        # validated against torch afterwards anyway), which halves the conversion time
        traced = torch.jit.trace(_wrapper(unet), tuple(s["example"] for s in specs), check_trace=False)
        model = ov.convert_model(traced, example_input=tuple(s["example"] for s in specs), input=shapes)
    for port, spec in zip(model.inputs, specs):
        port.get_tensor().set_names({spec["name"]})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    ov.save_model(model, str(path), compress_to_fp16=compress_to_fp16)

