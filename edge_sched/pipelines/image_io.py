"""Image I/O of the pipelines: numpy <-> PIL exactly as diffusers' ``VaeImageProcessor`` does it.

Method (the numbers of diffusers 0.39's ``VaeImageProcessor``, in numpy float32):

- ``preprocess`` (img2img init images, inpainting masks): PIL images are cropped
  (``crops_coords``), resized with PIL (lanczos by default; "fill" / "crop" keep the aspect
  ratio), converted (RGB / grayscale when configured), divided by 255 in float32; numpy
  images ``[H, W, C]`` / ``[B, H, W, C]`` in [0, 1] are resized by nearest neighbour with
  torch's float32 index rule. Sizes default to the image size rounded *down* to a multiple
  of ``vae_scale_factor``. Then ``2x - 1`` (normalise) and/or ``x >= 0.5`` (binarize).
  Output: NCHW float32.
- ``postprocess`` (decoded images): ``(x * 0.5 + 0.5)`` clipped to [0, 1] in the input
  dtype, then float32 NHWC; to PIL by ``(x * 255).round()`` as uint8.
- The inpainting extras ``get_crop_region`` / ``apply_overlay`` (``padding_mask_crop``).

Also: ``load_image`` (EXIF rotation, RGB, as diffusers.utils.load_image), ``make_grid``,
``a1111_parameters`` (the A1111 "parameters" text) and ``save_png`` (PNG with that text chunk,
written to a temporary file and renamed, so a reader never sees half a file); ``output_target`` /
``save_image`` for ``--out``: PNG, JPEG or WebP by suffix (parameters in EXIF for the last two, as
A1111), only over a regular file (a symlink is written through), or a new numbered file in a folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import uuid
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

RESAMPLE = {
    "linear": Image.Resampling.BILINEAR,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
RESIZE_MODES = ("default", "fill", "crop")
OUTPUT_TYPES = ("pil", "np", "latent")
# PIL modes whose arrays preprocess accepts: RGB (3 channels) and L (1 channel); others need .convert()
_PIL_MODES = ("RGB", "L")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(map(str, allowed))}")


# ---------------------------------------------------------------------------- conversions
def numpy_to_pil(images: np.ndarray) -> list[Image.Image]:
    """[B, H, W, C] or [H, W, C] floats in [0, 1] -> PIL images by ``(x * 255).round()`` (C=1 -> mode "L")."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected images of shape [B, H, W, C] with C in 1, 3, 4; got {images.shape}")
    images = (images * 255).round().astype("uint8")
    if images.shape[-1] == 1:
        return [Image.fromarray(im[..., 0], mode="L") for im in images]
    return [Image.fromarray(im) for im in images]


def pil_to_numpy(images) -> np.ndarray:
    """PIL image(s) -> float32 [B, H, W(, C)] in [0, 1] (uint8 / 255)."""
    images = images if isinstance(images, list) else [images]
    return np.stack([np.array(im).astype(np.float32) / 255.0 for im in images], axis=0)


def numpy_to_nchw(images: np.ndarray) -> np.ndarray:
    """[B, H, W] or [B, H, W, C] -> [B, C, H, W] (a view, as torch.from_numpy(x.transpose) is)."""
    if images.ndim == 3:
        images = images[..., None]
    return images.transpose(0, 3, 1, 2)


def resize_nearest(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """NCHW nearest-neighbour resize with torch's rule: source = floor(dst * (in / out)) in float32."""

    def index(n_in: int, n_out: int) -> np.ndarray:
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
        return np.minimum(src, n_in - 1)

    return images[:, :, index(images.shape[2], height)][:, :, :, index(images.shape[3], width)]


def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Open an image file, apply its EXIF orientation and convert it (to RGB by default), as diffusers' load_image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    return ImageOps.exif_transpose(image).convert(mode)


# ---------------------------------------------------------------------------- processor
class VaeImageProcessor:
    """numpy twin of diffusers' VaeImageProcessor (same arguments and defaults).

    Diffusers' pipelines use ``VaeImageProcessor(vae_scale_factor=f)`` for images and
    ``VaeImageProcessor(vae_scale_factor=f, do_normalize=False, do_binarize=True,
    do_convert_grayscale=True)`` for inpainting masks (see ``image_processor`` / ``mask_processor``)."""

    def __init__(self, do_resize: bool = True, vae_scale_factor: int = 8, vae_latent_channels: int = 4,
                 resample: str = "lanczos", reducing_gap: int | None = None, do_normalize: bool = True,
                 do_binarize: bool = False, do_convert_rgb: bool = False, do_convert_grayscale: bool = False):
        _choice("resample", resample, tuple(RESAMPLE))
        if do_convert_rgb and do_convert_grayscale:
            raise ValueError("do_convert_rgb and do_convert_grayscale cannot both be True")
        if not isinstance(vae_scale_factor, int) or vae_scale_factor < 1:
            raise ValueError(f"vae_scale_factor={vae_scale_factor!r} must be a positive integer")
        self.do_resize, self.vae_scale_factor, self.vae_latent_channels = do_resize, vae_scale_factor, vae_latent_channels
        self.resample, self.reducing_gap = resample, reducing_gap
        self.do_normalize, self.do_binarize = do_normalize, do_binarize
        self.do_convert_rgb, self.do_convert_grayscale = do_convert_rgb, do_convert_grayscale

    # -- sizes
    def get_default_height_width(self, image, height: int | None = None, width: int | None = None) -> tuple[int, int]:
        """Missing sizes come from the image (PIL, or numpy [B, H, W, ...]); both rounded down to the scale factor."""
        if height is None:
            height = image.height if isinstance(image, Image.Image) else image.shape[1]
        if width is None:
            width = image.width if isinstance(image, Image.Image) else image.shape[2]
        f = self.vae_scale_factor
        return height - height % f, width - width % f

    def _check_size(self, height: int, width: int, what: str) -> None:
        if height < self.vae_scale_factor or width < self.vae_scale_factor:
            raise ValueError(f"{what} gives {width}x{height} (WxH) after rounding down to a multiple of "
                             f"{self.vae_scale_factor}; it must be at least {self.vae_scale_factor} pixels each way")

    # -- PIL resizing
    def resize(self, image: Image.Image, height: int, width: int, resize_mode: str = "default") -> Image.Image:
        """PIL resize: "default" stretches, "fill" fits and extends the borders, "crop" fills and cuts."""
        _choice("resize_mode", resize_mode, RESIZE_MODES)
        if resize_mode == "default":
            return image.resize((width, height), resample=RESAMPLE[self.resample], reducing_gap=self.reducing_gap)
        return self._resize_keep_ratio(image, width, height, fill=resize_mode == "fill")

    def _resize_keep_ratio(self, image: Image.Image, width: int, height: int, fill: bool) -> Image.Image:
        ratio, src_ratio = width / height, image.width / image.height
        # "fill" fits the image inside the frame, "crop" covers the frame
        fit_width = ratio < src_ratio if fill else ratio > src_ratio
        fit_height = ratio >= src_ratio if fill else ratio <= src_ratio
        src_w = width if fit_width else image.width * height // image.height
        src_h = height if fit_height else image.height * width // image.width
        resized = image.resize((src_w, src_h), resample=RESAMPLE[self.resample])
        out = Image.new("RGB", (width, height))
        out.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        if not fill:
            return out
        if ratio < src_ratio:  # bands above and below: stretch the first / last row
            band = height // 2 - src_h // 2
            if band > 0:
                out.paste(resized.resize((width, band), box=(0, 0, width, 0)), box=(0, 0))
                out.paste(resized.resize((width, band), box=(0, resized.height, width, resized.height)),
                          box=(0, band + src_h))
        elif ratio > src_ratio:  # bands left and right: stretch the first / last column
            band = width // 2 - src_w // 2
            if band > 0:
                out.paste(resized.resize((band, height), box=(0, 0, 0, height)), box=(0, 0))
                out.paste(resized.resize((band, height), box=(resized.width, 0, resized.width, height)),
                          box=(band + src_w, 0))
        return out

    # -- preprocess
    def preprocess(self, image, height: int | None = None, width: int | None = None,
                   resize_mode: str = "default", crops_coords: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """PIL image(s) or numpy [H, W, C] / [B, H, W, C] (or [H, W] / [B, H, W] masks) in [0, 1]
        -> float32 [B, C, H, W], normalised to [-1, 1] and/or binarized as configured."""
        _choice("resize_mode", resize_mode, RESIZE_MODES)
        for name, value in (("height", height), ("width", width)):
            if value is not None and (not isinstance(value, (int, np.integer)) or value <= 0 or value % self.vae_scale_factor):
                raise ValueError(f"{name}={value!r} must be a positive multiple of the VAE scale factor {self.vae_scale_factor}")
        if self.do_convert_grayscale and isinstance(image, np.ndarray) and image.ndim == 3:
            # a 3-d mask array is one [H, W, 1] image or a batch of [H, W] images
            image = image[None] if image.shape[-1] == 1 else image[..., None]
        images = _as_image_list(image)
        if isinstance(images[0], Image.Image):
            if crops_coords is not None:
                images = [im.crop(crops_coords) for im in images]
            if self.do_resize:
                height, width = self.get_default_height_width(images[0], height, width)
                self._check_size(height, width, f"the image of {images[0].width}x{images[0].height} (WxH)")
                images = [self.resize(im, height, width, resize_mode=resize_mode) for im in images]
            if self.do_convert_rgb:
                images = [im.convert("RGB") for im in images]
            elif self.do_convert_grayscale:
                images = [im.convert("L") for im in images]
            else:
                bad = sorted({im.mode for im in images} - set(_PIL_MODES))
                if bad:
                    raise ValueError(f"image mode {bad[0]!r} is not supported; allowed: {', '.join(_PIL_MODES)} "
                                     "(convert it first, e.g. image.convert('RGB'))")
            sizes = {im.size for im in images}
            if len(sizes) > 1:
                raise ValueError(f"images of one batch must have one size, got {sorted(sizes)} (WxH)")
            out = numpy_to_nchw(pil_to_numpy(images))
        else:
            if resize_mode != "default":
                raise ValueError(f"resize_mode={resize_mode!r} needs PIL images; numpy images resize with 'default'")
            try:
                arr = np.concatenate(images, axis=0) if images[0].ndim == 4 else np.stack(images, axis=0)
            except ValueError:
                raise ValueError(f"images of one batch must have one shape, got {[im.shape for im in images]}") from None
            if arr.ndim == 4 and arr.shape[-1] not in (1, 3):
                raise ValueError(f"numpy images must be [H, W, C] or [B, H, W, C] (channels last, C = 1 or 3), "
                                 f"got shape {arr.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"numpy images must be floats in [0, 1], got dtype {arr.dtype} (divide uint8 by 255)")
            out = numpy_to_nchw(arr)  # computed in the array's float dtype, cast to float32 at the end
            height, width = self.get_default_height_width(arr, height, width)
            if self.do_resize:
                self._check_size(height, width, f"the image array of shape {arr.shape}")
                out = resize_nearest(out, height, width)
        do_normalize = self.do_normalize
        if do_normalize and out.min() < 0:
            warnings.warn(f"image values span [{out.min()}, {out.max()}]: taken as already in [-1, 1] "
                          "(pass images in [0, 1])", FutureWarning, stacklevel=2)
            do_normalize = False
        if do_normalize:
            out = 2.0 * out - 1.0
        if self.do_binarize:
            out = out.copy()
            out[out < 0.5] = 0
            out[out >= 0.5] = 1  # NaN stays NaN, as in diffusers
        return np.ascontiguousarray(out, dtype=np.float32)

    # -- postprocess
    @staticmethod
    def denormalize(images: np.ndarray) -> np.ndarray:
        """[-1, 1] -> [0, 1], clipped, in the input's dtype."""
        return np.clip(images * 0.5 + 0.5, 0, 1)

    def postprocess(self, image: np.ndarray, output_type: str = "pil", do_denormalize: list[bool] | None = None):
        """Decoded NCHW images -> PIL list ("pil"), float32 NHWC in [0, 1] ("np"), or unchanged ("latent")."""
        _choice("output_type", output_type, OUTPUT_TYPES)
        image = np.asarray(image)
        if image.ndim != 4:
            raise ValueError(f"expected decoded images of shape [B, C, H, W], got {image.shape}")
        if output_type == "latent":
            return image
        if do_denormalize is None:
            image = self.denormalize(image) if self.do_normalize else image
        else:
            if len(do_denormalize) != image.shape[0]:
                raise ValueError(f"do_denormalize has {len(do_denormalize)} entries for a batch of {image.shape[0]}")
            image = np.stack([self.denormalize(im) if d else im for im, d in zip(image, do_denormalize)])
        image = image.transpose(0, 2, 3, 1).astype(np.float32)
        return image if output_type == "np" else numpy_to_pil(image)

    # -- inpainting with padding_mask_crop
    @staticmethod
    def get_crop_region(mask_image: Image.Image, width: int, height: int, pad: int = 0) -> tuple[int, int, int, int]:
        """Box (x1, y1, x2, y2) around the mask's non-zero pixels, padded, widened to the width/height ratio."""
        mask = np.array(mask_image.convert("L"))
        h, w = mask.shape
        cols, rows = (mask != 0).any(axis=0), (mask != 0).any(axis=1)

        def leading_empty(flags: np.ndarray) -> int:
            return int(np.argmax(flags)) if flags.any() else len(flags)

        x1 = max(leading_empty(cols) - pad, 0)
        y1 = max(leading_empty(rows) - pad, 0)
        x2 = min(w - leading_empty(cols[::-1]) + pad, w)
        y2 = min(h - leading_empty(rows[::-1]) + pad, h)
        target = width / height
        if (x2 - x1) / (y2 - y1) > target:
            grow = int((x2 - x1) / target - (y2 - y1))
            y1, y2 = _widen(y1 - grow // 2, y2 + grow - grow // 2, mask_image.height)
        else:
            grow = int((y2 - y1) * target - (x2 - x1))
            x1, x2 = _widen(x1 - grow // 2, x2 + grow - grow // 2, mask_image.width)
        return x1, y1, x2, y2

    def apply_overlay(self, mask: Image.Image, init_image: Image.Image, image: Image.Image,
                      crop_coords: tuple[int, int, int, int] | None = None) -> Image.Image:
        """Paste the unmasked part of ``init_image`` over the generated ``image`` (placed at ``crop_coords``)."""
        width, height = init_image.width, init_image.height
        kept = Image.new("RGBa", (width, height))
        kept.paste(init_image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
        kept = kept.convert("RGBA")
        if crop_coords is not None:
            x, y, x2, y2 = crop_coords
            base = Image.new("RGBA", (width, height))
            base.paste(self.resize(image, height=y2 - y, width=x2 - x, resize_mode="crop"), (x, y))
            image = base.convert("RGB")
        image = image.convert("RGBA")
        image.alpha_composite(kept)
        return image.convert("RGB")


def _widen(lo: int, hi: int, size: int) -> tuple[int, int]:
    """Shift an interval back inside [0, size] after widening (diffusers' get_crop_region rule)."""
    if hi >= size:
        lo, hi = lo - (hi - size), size
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, size)


def _as_image_list(image) -> list:
    """One image, a batch array or a list of images -> a list; anything else is a clear error."""
    def valid(x):
        return isinstance(x, Image.Image) or (isinstance(x, np.ndarray) and x.ndim in (2, 3))

    if isinstance(image, np.ndarray) and image.ndim == 4:
        return [image]
    if valid(image):
        return [image]
    if isinstance(image, (list, tuple)) and image and all(valid(x) or (isinstance(x, np.ndarray) and x.ndim == 4)
                                                          for x in image):
        kinds = {isinstance(x, Image.Image) for x in image}
        if len(kinds) > 1:
            raise ValueError("a batch of images must be all PIL images or all numpy arrays")
        return list(image)
    shape = getattr(image, "shape", None)
    raise ValueError(f"image must be a PIL image, a numpy array [H, W(, C)] / [B, H, W, C], or a list of them; "
                     f"got {type(image).__name__}" + (f" of shape {shape}" if shape is not None else ""))


def image_processor(vae_scale_factor: int = 8) -> VaeImageProcessor:
    """The processor diffusers' SD pipelines use for init images and outputs."""
    return VaeImageProcessor(vae_scale_factor=vae_scale_factor)


def mask_processor(vae_scale_factor: int = 8) -> VaeImageProcessor:
    """The processor diffusers' inpainting pipelines use for masks (grayscale, no normalising, binarized)."""
    return VaeImageProcessor(vae_scale_factor=vae_scale_factor, do_normalize=False, do_binarize=True,
                             do_convert_grayscale=True)


def postprocess(image: np.ndarray, output_type: str = "pil", do_denormalize: list[bool] | None = None):
    """Decoded [-1, 1] NCHW images -> PIL list / NHWC float32 in [0, 1], as diffusers' SD pipelines (and the
    DDPM / DDIM pipelines' ``(x / 2 + 0.5).clamp(0, 1)``, the same numbers) return them."""
    return VaeImageProcessor().postprocess(image, output_type, do_denormalize)


# ---------------------------------------------------------------------------- grids and files
def make_grid(images: list[Image.Image], rows: int, cols: int) -> Image.Image:
    """``rows x cols`` RGB grid, filled row by row (as diffusers.utils.make_image_grid)."""
    if not images or len(images) != rows * cols:
        raise ValueError(f"make_grid needs rows * cols = {rows} * {cols} = {rows * cols} images, got {len(images)}")
    w, h = images[0].size
    if any(im.size != (w, h) for im in images):
        raise ValueError(f"grid images must share one size; sizes: {sorted({im.size for im in images})} (WxH)")
    grid = Image.new("RGB", size=(cols * w, rows * h))
    for i, im in enumerate(images):
        grid.paste(im, box=(i % cols * w, i // cols * h))
    return grid


def _a1111_value(value) -> str:
    """A1111 writes numbers plainly (7, 7.5) and quotes text holding ',', ':' or a newline as JSON."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines()) if text else text


def a1111_parameters(prompt: str, negative_prompt: str = "", *, steps: int, sampler: str, cfg_scale: float,
                     seed: int, width: int, height: int, model: str | None = None, rng: str | None = None,
                     schedule_type: str | None = None, model_hash: str | None = None, after_rng: dict | None = None,
                     **extra) -> str:
    """The A1111 ``parameters`` text (A1111 1.10's ``create_infotext`` field order): the prompt,
    "Negative prompt: ..." (when given), then "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras,
    CFG scale: 7, Seed: 0, Size: 512x512, Model hash: 0123456789, Model: ..." (the schedule type and
    hash when given) and any extra ``key=value`` (underscores become spaces, first letter capitalised:
    ``denoising_strength=0.75`` -> "Denoising strength: 0.75"), then "RNG: ..." when ``rng`` is
    given (A1111's noise-source names: "CPU" for torch's CPU generator, "NV" for torch's CUDA one;
    A1111 omits it for its default, "GPU"), then ``after_rng`` (A1111's extra generation parameters,
    e.g. "Beta schedule alpha") as given."""
    fields = {"Steps": steps, "Sampler": sampler}
    if schedule_type:
        fields["Schedule type"] = schedule_type
    fields.update({"CFG scale": cfg_scale, "Seed": seed, "Size": f"{width}x{height}"})
    if model_hash:
        fields["Model hash"] = model_hash
    if model:
        fields["Model"] = model
    for key, value in extra.items():
        if value is not None:
            label = key.replace("_", " ")
            fields[label[:1].upper() + label[1:]] = value
    if rng is not None:
        fields["RNG"] = rng
    fields.update({k: v for k, v in (after_rng or {}).items() if v is not None})
    # readers (A1111's parse_generation_parameters) take the last line as the parameters and a line starting
    # "Negative prompt:" as the negative prompt: a newline in a prompt could forge either. CLIP reads a newline
    # as a space, so the prompts are written on one line each, as the model saw them.
    lines = [_one_line(prompt)]
    if negative_prompt:
        lines.append(f"Negative prompt: {_one_line(negative_prompt)}")
    lines.append(", ".join(f"{k}: {_a1111_value(v)}" for k, v in fields.items()))
    return "\n".join(lines)


def save_png(image, path: str | Path, parameters: str | None = None) -> Path:
    """Write ``image`` (PIL, or a [H, W, C] float array in [0, 1]) as PNG with a ``parameters`` tEXt
    chunk; the file appears complete or not at all (temporary file in the same folder, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {str(path.parent)!r} does not exist (writing {path.name})")
    return _write_atomically(_as_pil(image, "save_png"), path, "PNG", parameters)


# ---------------------------------------------------------------------------- output files
#: file suffix -> Pillow format; the parameters go in a PNG tEXt chunk, or EXIF UserComment as A1111 writes them
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"))


class OutputPathError(ValueError):
    """``--out`` names something an image cannot be written to (a device, a FIFO, an unknown suffix...)."""


@dataclasses.dataclass(frozen=True)
class OutputTarget:
    """Where the image goes: ``path`` (a file, replaced atomically) or ``folder`` (a new numbered file)."""

    path: Path | None = None
    folder: Path | None = None

    @property
    def format(self) -> str:
        return "PNG" if self.path is None else IMAGE_FORMATS[self.path.suffix.lower()]


def output_target(out: str | os.PathLike) -> OutputTarget:
    """Check ``out`` before any work: a file name ending in .png, .jpg/.jpeg or .webp (an existing one must be a
    regular file; a symlink is written through to the file it names), or a folder (``DIR/`` or an existing
    folder) that gets a new numbered file. Raises OutputPathError / FileNotFoundError / PermissionError."""
    text = os.fspath(out)
    if not str(text).strip():
        raise OutputPathError("--out is empty: give an image file (.png, .jpg, .webp) or a folder ending in /")
    path = Path(text).expanduser()
    if text.endswith(("/", os.sep)) or path.is_dir():
        folder = Path(os.path.realpath(path))
        if not folder.is_dir():
            raise FileNotFoundError(f"--out {text}: folder {str(folder)!r} does not exist")
        _check_writable(folder, text)
        return OutputTarget(folder=folder)
    if path.is_symlink():  # write through: the file the link names is replaced, the link stays
        path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise OutputPathError(f"--out {text}: cannot be examined ({e.strerror})") from None
    if mode is not None:
        for test, what in _SPECIAL:
            if test(mode):
                raise OutputPathError(f"--out {text}: {path} is {what}, not a regular file; refusing to replace it")
        if not stat.S_ISREG(mode):
            raise OutputPathError(f"--out {text}: {path} is not a regular file; refusing to replace it")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_FORMATS:
        kind = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise OutputPathError(f"--out {text}: {kind}; the image types written are "
                              f"{', '.join(IMAGE_FORMATS)} (or give a folder ending in /)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--out {text}: folder {str(path.parent)!r} does not exist")
    _check_writable(path.parent, text)
    return OutputTarget(path=path)


def _check_writable(folder: Path, text: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {text}: cannot write into the folder {str(folder)!r} (permission denied)")


def file_stem(seed: int, prompt: str, limit: int = 60) -> str:
    """A1111's ``[seed]-[prompt]`` file name part: the prompt's words joined by ``_``, other characters dropped."""
    words = re.findall(r"[A-Za-z0-9]+", prompt or "")
    text = "_".join(words)[:limit].strip("_") or "image"
    return f"{seed}-{text}"


def save_image(image, target: OutputTarget | str | os.PathLike, parameters: str | None = None, *,
               stem: str = "image", prefix: str = "", number: int | None = None) -> Path:
    """Write ``image`` to ``target`` (see ``output_target``) with its parameters; returns the path written.
    A file target is replaced atomically; in a folder the image gets the next free number (or ``number``
    if free: ``<prefix>00012-<stem>.png``), and an existing file is never overwritten."""
    if not isinstance(target, OutputTarget):
        target = output_target(target)
    image = _as_pil(image, "save_image")
    if target.path is not None:
        return _write_atomically(image, target.path, target.format, parameters)
    number = _next_number(target.folder) if number is None else number
    while True:
        path = target.folder / f"{prefix}{number:05d}-{stem}.png"
        try:
            return _write_atomically(image, path, "PNG", parameters, replace=False)
        except FileExistsError:  # someone else took that number meanwhile
            number += 1


def image_file_targets(target: OutputTarget, seeds: list[int], overwrite: bool = False) -> list[OutputTarget]:
    """Where each of several images goes when ``--out`` names one file ``x.png``: ``x-SEED.png`` beside it
    (the named file takes the grid). Checked before any work: a name that exists is refused unless
    ``overwrite``; a folder target gives the folder back for each (new numbered files, never overwriting)."""
    if target.path is None:
        return [target] * len(seeds)
    paths = [target.path.with_name(f"{target.path.stem}-{seed}{target.path.suffix}") for seed in seeds]
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputPathError(f"--out {target.path}: {existing[0]} exists{more}; pass --overwrite to replace it, or "
                              "give another --out or a folder ending in / (new numbered files)")
    return [output_target(p) for p in paths]


def _next_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := re.match(r"(\d{5,})-", p.name))]
    return max(numbers, default=-1) + 1


def _as_pil(image, who: str) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.ndim != 3:
            raise ValueError(f"{who} takes one image [H, W, C]; got shape {image.shape}")
        image = numpy_to_pil(image)[0]
    if not isinstance(image, Image.Image):
        raise TypeError(f"{who} takes a PIL image or a numpy array, got {type(image).__name__}")
    return image


def _encode(image: Image.Image, f, fmt: str, parameters: str | None) -> None:
    if fmt == "PNG":
        info = PngInfo()
        if parameters is not None:
            info.add_text("parameters", parameters)
        image.save(f, format="PNG", pnginfo=info)
        return
    exif = Image.Exif()
    if parameters is not None:  # as A1111 (piexif's UserComment, "unicode"): a charset header, then UTF-16
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\0" + parameters.encode("utf-16-be")
    image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    image.save(f, format=fmt, quality=95, exif=exif.tobytes())


def _write_atomically(image: Image.Image, path: Path, fmt: str, parameters: str | None, replace: bool = True) -> Path:
    # a unique name next to the target (same file system, so the rename is atomic); opened with the
    # default permissions, unlike mkstemp's 0600
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as f:
            _encode(image, f, fmt, parameters)
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _link_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if nothing has it (FileExistsError otherwise)."""
    try:
        os.link(tmp, path)  # atomic, and never replaces
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network shares): check, then rename
        if path.exists() or path.is_symlink():
            raise FileExistsError(path) from None
        os.rename(tmp, path)
        return
    tmp.unlink()
