"""edge_sched.pipelines.image_io against diffusers' VaeImageProcessor (run here, same inputs): exact equality."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_sched.pipelines import image_io
from edge_sched.pipelines.image_io import (
    VaeImageProcessor,
    a1111_parameters,
    make_grid,
    save_png,
)

torch = pytest.importorskip("torch")
dimg = pytest.importorskip("diffusers.image_processor")


def _ref_image(**kw):
    return dimg.VaeImageProcessor(**kw)


def _ref_mask():
    return dimg.VaeImageProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True)


def _rgb(w, h, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def _mask(w, h, seed=0, mode="L", blob=True):
    rng = np.random.default_rng(seed)
    arr = np.zeros((h, w), dtype=np.uint8)
    if blob:  # a soft-edged blob: grey levels around 127/128 exercise the binarize threshold
        y, x = np.mgrid[:h, :w]
        r = np.hypot((y - h * rng.uniform(0.3, 0.7)) / h, (x - w * rng.uniform(0.3, 0.7)) / w)
        arr = np.clip(255 * (0.35 - r) / 0.1 + 128, 0, 255).astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


def _pt(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ----------------------------------------------------------------------------- postprocess
def test_postprocess_matches_diffusers():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.3, 1.3, size=(3, 3, 24, 40)).astype(np.float32)
    # exact k/255 levels (x*255 lands on .5 after denormalising) test the rounding rule
    x[0, 0, 0, :20] = (2 * (np.arange(20) + 0.5) / 255 - 1).astype(np.float32)
    ours, ref = VaeImageProcessor(), _ref_image()
    np.testing.assert_array_equal(ours.postprocess(x, "np"), ref.postprocess(torch.from_numpy(x), "np"))
    for a, b in zip(ours.postprocess(x, "pil"), ref.postprocess(torch.from_numpy(x), "pil")):
        assert a.mode == b.mode == "RGB" and a.size == b.size == (40, 24)
        np.testing.assert_array_equal(np.array(a), np.array(b))
    flags = [True, False, True]
    np.testing.assert_array_equal(ours.postprocess(x, "np", do_denormalize=flags),
                                  ref.postprocess(torch.from_numpy(x), "np", do_denormalize=flags))
    h = x.astype(np.float16)
    np.testing.assert_array_equal(ours.postprocess(h, "np"), ref.postprocess(torch.from_numpy(h), "np"))
    assert ours.postprocess(h, "np").dtype == np.float32
    assert ours.postprocess(x, "latent") is x
    # the module-level helper the pipelines call; DDPMPipeline's (x / 2 + 0.5).clamp(0, 1) gives the same numbers
    np.testing.assert_array_equal(image_io.postprocess(x, "np"), ref.postprocess(torch.from_numpy(x), "np"))
    ddpm = (torch.from_numpy(x) / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(image_io.postprocess(x, "np"), ddpm)


def test_numpy_pil_conversions_match_diffusers():
    rng = np.random.default_rng(1)
    for shape in [(2, 9, 7, 3), (9, 7, 3), (2, 9, 7, 1)]:
        x = rng.uniform(0, 1, size=shape).astype(np.float32)
        ours, ref = image_io.numpy_to_pil(x), dimg.VaeImageProcessor.numpy_to_pil(x)
        assert [i.mode for i in ours] == [i.mode for i in ref]
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(np.array(a), np.array(b))
    ims = [_rgb(13, 11, s) for s in range(2)]
    np.testing.assert_array_equal(image_io.pil_to_numpy(ims), dimg.VaeImageProcessor.pil_to_numpy(ims))


# ----------------------------------------------------------------------------- image preprocess
PIL_CASES = [
    # (width, height, kwargs)
    (64, 64, {}),
    (67, 45, {}),  # rounded down to 64x40
    (100, 80, {"height": 64, "width": 48}),
    (50, 90, {"height": 64, "width": 64, "resize_mode": "fill"}),
    (90, 50, {"height": 64, "width": 64, "resize_mode": "fill"}),
    (90, 50, {"height": 32, "width": 64, "resize_mode": "crop"}),
    (50, 90, {"height": 64, "width": 32, "resize_mode": "crop"}),
    (96, 72, {"height": 48, "width": 64, "crops_coords": (8, 4, 72, 60)}),
    (96, 72, {"height": 64, "width": 64, "crops_coords": (8, 4, 72, 60), "resize_mode": "fill"}),
]


@pytest.mark.parametrize("w,h,kw", PIL_CASES)
def test_pil_image_preprocess_matches_diffusers(w, h, kw):
    images = [_rgb(w, h, 0), _rgb(w, h, 1)]
    for inp in (images[0], images):
        ours = VaeImageProcessor().preprocess(inp, **kw)
        ref = _pt(_ref_image().preprocess(inp, **kw))
        assert ours.dtype == np.float32 and ours.shape == ref.shape and ours.flags.c_contiguous
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("resample", ["lanczos", "bicubic", "bilinear", "nearest"])
def test_resample_filters(resample):
    im = _rgb(77, 51, 3)
    np.testing.assert_array_equal(VaeImageProcessor(resample=resample).preprocess(im, height=40, width=56),
                                  _pt(_ref_image(resample=resample).preprocess(im, height=40, width=56)))


NUMPY_CASES = [
    ((24, 40, 3), {}),
    ((2, 24, 40, 3), {"height": 48, "width": 16}),
    ((1, 29, 37, 3), {}),
    ((3, 64, 64, 3), {"height": 40, "width": 24}),
    ((2, 17, 23, 1), {"height": 56, "width": 72}),
    ((19, 31), {}),  # one grayscale image
]


@pytest.mark.parametrize("shape,kw", NUMPY_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_image_preprocess_matches_diffusers(shape, kw, dtype):
    x = np.random.default_rng(2).uniform(0, 1, size=shape).astype(dtype)
    ours = VaeImageProcessor().preprocess(x, **kw)
    ref = _pt(_ref_image().preprocess(x, **kw)).astype(np.float32)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)
    if x.ndim == 3 and x.shape[-1] == 3:  # a list of images
        np.testing.assert_array_equal(VaeImageProcessor().preprocess([x, x], **kw),
                                      _pt(_ref_image().preprocess([x, x], **kw)).astype(np.float32))


def test_nearest_resize_index_rule_matches_torch():
    rng = np.random.default_rng(3)
    for n_in in (1, 3, 7, 13, 29, 64, 97):
        for n_out in (1, 2, 5, 8, 24, 63, 64, 200):
            x = rng.normal(size=(1, 1, n_in, n_in + 2)).astype(np.float32)
            ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(n_out, n_out + 1)).numpy()
            np.testing.assert_array_equal(image_io.resize_nearest(x, n_out, n_out + 1), ref)


def test_values_below_zero_are_taken_as_normalised():
    x = np.random.default_rng(4).uniform(-1, 1, size=(16, 16, 3)).astype(np.float32)
    with pytest.warns(FutureWarning):
        ours = VaeImageProcessor().preprocess(x)
    with pytest.warns(FutureWarning):
        ref = _pt(_ref_image().preprocess(x))
    np.testing.assert_array_equal(ours, ref)


# ----------------------------------------------------------------------------- mask preprocess
@pytest.mark.parametrize("mode", ["L", "RGB", "1"])
@pytest.mark.parametrize("w,h,kw", PIL_CASES)
def test_pil_mask_preprocess_matches_diffusers(mode, w, h, kw):
    masks = [_mask(w, h, 0, mode), _mask(w, h, 1, mode)]
    for inp in (masks[0], masks):
        ours = image_io.mask_processor(8).preprocess(inp, **kw)
        ref = _pt(_ref_mask().preprocess(inp, **kw))
        assert ours.shape == ref.shape and ours.shape[1] == 1
        np.testing.assert_array_equal(ours, ref)
        assert set(np.unique(ours)) <= {0.0, 1.0}


@pytest.mark.parametrize("shape", [(40, 24), (40, 24, 1), (2, 40, 24), (2, 40, 24, 1)])
def test_numpy_mask_preprocess_matches_diffusers(shape):
    x = np.random.default_rng(5).uniform(0, 1, size=shape).astype(np.float32)
    for kw in ({}, {"height": 64, "width": 32}):
        ours = image_io.mask_processor(8).preprocess(x, **kw)
        ref = _pt(_ref_mask().preprocess(x, **kw))
        np.testing.assert_array_equal(ours, ref)


# ----------------------------------------------------------------------------- padding_mask_crop helpers
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pad", [0, 4, 32])
def test_crop_region_and_overlay_match_diffusers(seed, pad):
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(40, 120)), int(rng.integers(40, 120))
    arr = np.zeros((h, w), np.uint8)
    x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
    arr[y0:y0 + int(rng.integers(1, h - y0)), x0:x0 + int(rng.integers(1, w - x0))] = 255
    mask = Image.fromarray(arr)
    for width, height in ((64, 64), (96, 48), (32, 80)):
        box = VaeImageProcessor.get_crop_region(mask, width, height, pad=pad)
        assert box == _ref_mask().get_crop_region(mask, width, height, pad=pad)
    init, gen = _rgb(w, h, seed), _rgb(64, 64, seed + 10)
    box = VaeImageProcessor.get_crop_region(mask, 64, 64, pad=pad)
    for coords in (None, box):
        g = gen.resize((w, h)) if coords is None else gen
        np.testing.assert_array_equal(np.array(VaeImageProcessor().apply_overlay(mask, init, g, coords)),
                                      np.array(_ref_image().apply_overlay(mask, init, g, coords)))


# ----------------------------------------------------------------------------- files, grids, text
def test_load_image_matches_diffusers(tmp_path):
    from diffusers.utils import load_image

    im = _rgb(30, 20, 6, mode="RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    path = tmp_path / "rot.png"
    im.save(path, exif=exif)
    ours, ref = image_io.load_image(path), load_image(str(path))
    assert ours.mode == ref.mode == "RGB" and ours.size == ref.size == (20, 30)
    np.testing.assert_array_equal(np.array(ours), np.array(ref))
    with pytest.raises(FileNotFoundError, match="nope.png"):
        image_io.load_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png.*not a readable image"):
        image_io.load_image(tmp_path / "bad.png")


def test_make_grid_matches_diffusers():
    from diffusers.utils import make_image_grid

    ims = [_rgb(12, 8, s) for s in range(6)]
    for rows, cols in ((2, 3), (3, 2), (1, 6)):
        np.testing.assert_array_equal(np.array(make_grid(ims, rows, cols)), np.array(make_image_grid(ims, rows, cols)))
    with pytest.raises(ValueError, match="rows \\* cols = 2 \\* 2 = 4 images, got 6"):
        make_grid(ims, 2, 2)
    with pytest.raises(ValueError, match="one size"):
        make_grid(ims[:1] + [_rgb(5, 5)], 1, 2)


def test_a1111_parameters_format():
    text = a1111_parameters("a cat, on a mat", "blurry", steps=20, sampler="DPM++ 2M Karras", cfg_scale=7.0,
                            seed=1234, width=512, height=768, model="tiny-sd", denoising_strength=0.75)
    assert text == ("a cat, on a mat\nNegative prompt: blurry\n"
                    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model: tiny-sd, "
                    "Denoising strength: 0.75")
    text = a1111_parameters("x", steps=4, sampler="Euler a", cfg_scale=7.5, seed=0, width=64, height=64,
                            model="dir: a,b")
    assert text == 'x\nSteps: 4, Sampler: Euler a, CFG scale: 7.5, Seed: 0, Size: 64x64, Model: "dir: a,b"'


def test_save_png_writes_parameters_atomically(tmp_path):
    params = a1111_parameters("a cat\u00e9 \U0001f431", "dog", steps=3, sampler="Euler", cfg_scale=7, seed=1,
                              width=16, height=8, model="m")
    x = np.random.default_rng(7).uniform(0, 1, size=(8, 16, 3)).astype(np.float32)
    out = save_png(x, tmp_path / "a.png", params)
    with Image.open(out) as im:
        assert im.text["parameters"] == params
        np.testing.assert_array_equal(np.array(im), np.array(image_io.numpy_to_pil(x)[0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    (tmp_path / "umask.txt").write_text("x")  # same permissions as any file we create
    assert (tmp_path / "a.png").stat().st_mode == (tmp_path / "umask.txt").stat().st_mode
    (tmp_path / "umask.txt").unlink()
    # a failing write leaves the old file intact and no temporary file behind
    before = (tmp_path / "a.png").read_bytes()
    with pytest.raises(OSError):
        save_png(Image.new("I;16", (4, 4)).convert("CMYK"), tmp_path / "a.png", params)
    assert (tmp_path / "a.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    with pytest.raises(FileNotFoundError, match="missing"):
        save_png(x, tmp_path / "missing" / "b.png", params)
    with pytest.raises(ValueError, match="shape"):
        save_png(x[None], tmp_path / "c.png", params)


# ----------------------------------------------------------------------------- errors
def test_bad_input_errors():
    proc = VaeImageProcessor()
    with pytest.raises(ValueError, match="resample='cubic'.*lanczos"):
        VaeImageProcessor(resample="cubic")
    with pytest.raises(ValueError, match="resize_mode='stretch'.*default, fill, crop"):
        proc.preprocess(_rgb(16, 16), resize_mode="stretch")
    with pytest.raises(ValueError, match="height=60 must be a positive multiple of the VAE scale factor 8"):
        proc.preprocess(_rgb(64, 64), height=60, width=64)
    with pytest.raises(ValueError, match="mode 'RGBA' is not supported.*RGB, L"):
        proc.preprocess(_rgb(16, 16, mode="RGBA"))
    with pytest.raises(ValueError, match="5x16.*at least 8"):
        proc.preprocess(_rgb(5, 16))
    with pytest.raises(ValueError, match="one size"):
        VaeImageProcessor(do_resize=False).preprocess([_rgb(16, 16), _rgb(24, 16)])
    with pytest.raises(ValueError, match="one shape"):
        proc.preprocess([np.zeros((16, 16, 3), np.float32), np.zeros((8, 16, 3), np.float32)])
    with pytest.raises(ValueError, match="channels last.*\\(1, 3, 16, 16\\)"):
        proc.preprocess(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="floats in \\[0, 1\\].*uint8"):
        proc.preprocess(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="PIL image, a numpy array"):
        proc.preprocess("image.png")
    with pytest.raises(ValueError, match="needs PIL images"):
        proc.preprocess(np.zeros((16, 16, 3), np.float32), resize_mode="fill")
    with pytest.raises(ValueError, match="output_type='pt'.*pil, np, latent"):
        proc.postprocess(np.zeros((1, 3, 8, 8), np.float32), "pt")
    with pytest.raises(ValueError, match="\\[B, C, H, W\\]"):
        proc.postprocess(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="all PIL images or all numpy"):
        proc.preprocess([_rgb(16, 16), np.zeros((16, 16, 3), np.float32)])
