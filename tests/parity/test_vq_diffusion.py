"""VQDiffusionScheduler: numpy vs diffusers, side by side (its step takes class ids, not latents).

Both sides run the VQ-Diffusion loop from the same start (all pixels masked, as the pipeline
starts, or random classes), with the same log-probability "model" (a fixed numpy function of the
class ids and t) and the same seed. Every step's prev_sample (int64 class ids) must be equal, and
every step's log p(x_{t-1} | x_t) (q_posterior) within RTOL x max(1, max|ref|).
"""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.vq_diffusion  # noqa: F401  registers VQDiffusionScheduler
from diffusers.schedulers import scheduling_vq_diffusion as ref_module
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import scheduler_class
from edge_sched.schedulers.torch_numerics import sum_axis0_f32
from edge_sched.schedulers.vq_diffusion import VQDiffusionScheduler, gumbel_noise

from .harness import RTOL, record

NAME = "VQDiffusionScheduler"
BATCH, PIXELS = 2, 64  # an 8 x 8 latent grid

CUSTOM = dict(alpha_cum_start=0.9999, alpha_cum_end=0.01, gamma_cum_start=0.0001, gamma_cum_end=0.9)
CONFIGS = [
    dict(num_vec_classes=5),
    dict(num_vec_classes=17),
    dict(num_vec_classes=65, num_train_timesteps=50),
    dict(num_vec_classes=17, num_train_timesteps=20, **CUSTOM),
    dict(num_vec_classes=33, num_train_timesteps=100, alpha_cum_end=0.1, gamma_cum_end=0.5),
    dict(num_vec_classes=9, num_train_timesteps=2),
    dict(num_vec_classes=2, num_train_timesteps=10),
]
STEPS = (1, 2, 3, 10, 25, 50)
# diffusers takes ~20-60 ms a step here, so: every config from the all-masked start, a few step
# counts from random classes, and one full 100-step run
CASES = [
    (cfg, n, start)
    for starts, steps in ((("masked",), STEPS), (("random",), (3, 25)))
    for cfg, n, start in itertools.product(CONFIGS, steps, starts)
    if n <= cfg.get("num_train_timesteps", 100)
] + [(dict(num_vec_classes=17), 100, "masked"), (dict(num_vec_classes=5), 100, "random")]
# ITHQ's codebook: 4096 classes plus the mask (the logsumexp sum then takes torch's cascade order)
LARGE = [(dict(num_vec_classes=4097), n, "masked") for n in (3, 10)]


def log_p_x0_model(x: np.ndarray, t, num_classes: int) -> np.ndarray:
    """A fixed, smooth log p(x0 | x_t) over the K - 1 unmasked classes: log_softmax of
    smooth functions of the class ids, the pixel position and t (float32)."""
    t = float(np.asarray(t))
    j = np.arange(num_classes - 1, dtype=np.float64)[None, :, None]
    xs = x.astype(np.float64)[:, None, :]
    pix = np.arange(x.shape[1], dtype=np.float64)[None, None, :]
    logits = 2.5 * np.sin(0.9 * j + 0.37 * xs + 0.05 * t + 0.11 * pix) + np.cos(1.7 * j - 0.2 * pix) * (xs % 3)
    logits = logits - logits.max(axis=1, keepdims=True)
    return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)


def start_sample(config, kind, seed):
    K = config["num_vec_classes"]
    if kind == "masked":
        return np.full((BATCH, PIXELS), K - 1, dtype=np.int64)
    return np.random.default_rng(seed).integers(0, K, size=(BATCH, PIXELS)).astype(np.int64)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    ref64, ours64 = ref.astype(np.float64), ours.astype(np.float64)
    finite = np.isfinite(ref64)
    assert np.array_equal(finite, np.isfinite(ours64)) and np.array_equal(ref64[~finite], ours64[~finite], equal_nan=True)
    if not finite.any():
        return 0.0
    return float(np.abs(ours64[finite] - ref64[finite]).max()) / max(1.0, float(np.abs(ref64[finite]).max()))


def run_side_by_side(config, num_inference_steps, start, seed=0):
    """Both loops, compared at every step; returns (worst q_posterior error, steps, pixel samples)."""
    K = config["num_vec_classes"]
    ref = diffusers.VQDiffusionScheduler.from_config(dict(config))
    ours = scheduler_class(NAME).from_config(dict(config))
    ref.set_timesteps(num_inference_steps)
    ours.set_timesteps(num_inference_steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert ours.timesteps.dtype == np.int64
    g_ref, g_ours = torch.Generator("cpu").manual_seed(seed), TorchGenerator(seed)
    x = start_sample(config, start, seed)
    x_ref = torch.from_numpy(x.copy())
    worst = 0.0
    for t_ref, t in zip(ref.timesteps, ours.timesteps):
        log_p = log_p_x0_model(x, t, K)
        if t > 0:  # the float part of the step: log p(x_{t-1} | x_t)
            q_ref = ref.q_posterior(torch.from_numpy(log_p), x_ref, t_ref).numpy()
            worst = max(worst, relative_error(ours.q_posterior(log_p, x, t), q_ref))
        x_ref = ref.step(torch.from_numpy(log_p), t_ref, x_ref, generator=g_ref).prev_sample
        x = ours.step(log_p, t, x, generator=g_ours).prev_sample
        assert x.dtype == np.int64 and x.shape == (BATCH, PIXELS)
        np.testing.assert_array_equal(x, x_ref.numpy(), err_msg=f"{config} n={num_inference_steps} t={t}")
    assert worst <= RTOL, f"{config} n={num_inference_steps}: q_posterior error {worst:.3g} > {RTOL}"
    return worst


@pytest.mark.parametrize("config,num_inference_steps,start", CASES + LARGE)
def test_parity(config, num_inference_steps, start):
    seed = 7 * num_inference_steps + len(start) + config["num_vec_classes"]
    record(NAME, run_side_by_side(config, num_inference_steps, start, seed))


@pytest.mark.parametrize("config", CONFIGS)
def test_tables_match_diffusers(config):
    ref = diffusers.VQDiffusionScheduler(**config)
    ours = VQDiffusionScheduler(**config)
    for name in ("log_at", "log_bt", "log_ct", "log_cumprod_at", "log_cumprod_bt", "log_cumprod_ct"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name).numpy(), err_msg=name)
        assert getattr(ours, name).dtype == np.float32
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())  # before set_timesteps
    assert (ours.num_embed, ours.mask_class) == (ref.num_embed, ref.mask_class)


def test_transition_rows_match_diffusers():
    config = dict(num_vec_classes=17, num_train_timesteps=20, **CUSTOM)
    ref, ours = diffusers.VQDiffusionScheduler(**config), VQDiffusionScheduler(**config)
    x = start_sample(config, "random", 3)
    onehot = ref_module.index_to_log_onehot(torch.from_numpy(x), 17)
    for t, cumulative in itertools.product((1, 7, 19), (True, False)):
        want = ref.log_Q_t_transitioning_to_known_class(t=t, x_t=torch.from_numpy(x), log_onehot_x_t=onehot,
                                                        cumulative=cumulative).numpy()
        got = ours.log_Q_t_transitioning_to_known_class(t=t, x_t=x, cumulative=cumulative)
        assert got.shape == want.shape
        assert relative_error(got, want) <= RTOL


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_model_output_dtypes(dtype):
    """float64 log-probabilities stay float64 (as in torch); float16 ones meet the float32 tables."""
    config = dict(num_vec_classes=17)
    ref, ours = diffusers.VQDiffusionScheduler(**config), VQDiffusionScheduler(**config)
    x = start_sample(config, "random", 5)
    log_p = log_p_x0_model(x, 40, 17).astype(dtype)
    want = ref.q_posterior(torch.from_numpy(log_p), torch.from_numpy(x), 40).numpy()
    got = ours.q_posterior(log_p, x, 40)
    assert got.dtype == want.dtype
    assert relative_error(got, want) <= RTOL
    for t in (40, 0):
        a = ref.step(torch.from_numpy(log_p), t, torch.from_numpy(x), generator=torch.Generator().manual_seed(1))
        b = ours.step(log_p, t, x, generator=TorchGenerator(1))
        np.testing.assert_array_equal(b.prev_sample, a.prev_sample.numpy())


def test_int_seed_and_no_generator():
    config = dict(num_vec_classes=9)
    ours = VQDiffusionScheduler(**config)
    ours.set_timesteps(10)
    x = start_sample(config, "masked", 0)
    log_p = log_p_x0_model(x, 9, 9)
    out = ours.step(log_p, 9, x, generator=TorchGenerator(4), return_dict=False)
    again = ours.step(log_p, 9, x, generator=4)  # an int seed is a TorchGenerator
    np.testing.assert_array_equal(out[0], again.prev_sample)
    np.testing.assert_array_equal(again[0], again.prev_sample)
    ref = diffusers.VQDiffusionScheduler(**config)
    want = ref.step(torch.from_numpy(log_p), 9, torch.from_numpy(x), generator=torch.Generator().manual_seed(4),
                    return_dict=False)
    np.testing.assert_array_equal(out[0], want[0].numpy())
    fresh = ours.step(log_p, 0, x).prev_sample  # no generator: numpy's OS-seeded one, as diffusers uses torch's global
    assert fresh.shape == x.shape and fresh.min() >= 0 and fresh.max() < 8  # t = 0 samples unmasked classes only


def test_gumbel_noise_is_torchs_within_rtol():
    """Gumbel noise from the same uniforms: torch's float32 log (MKL) is one ulp off for a few percent
    of inputs, ours is correctly rounded; measure the distance on every float32 uniform."""
    u = torch.arange(2**24, dtype=torch.float32) * 2.0**-24
    want = (-torch.log(-torch.log(u + 1e-30) + 1e-30)).numpy()
    got = gumbel_noise(u.numpy())
    identical = float(np.mean(got == want))
    err = relative_error(got, want)
    record("VQDiffusionScheduler gumbel noise (all float32 uniforms)", err)
    print(f"gumbel noise: {identical:.2%} bit-identical, worst relative error {err:.3g}")
    assert err <= RTOL


@pytest.mark.parametrize("rows", [3, 16, 17, 18, 100, 4097])
def test_sum_axis0_f32_is_torchs_cascade(rows):
    values = (np.random.default_rng(rows).random((2, rows, 64)) ** 3).astype(np.float32)
    want = torch.from_numpy(values).sum(1).numpy()
    np.testing.assert_array_equal(sum_axis0_f32(np.moveaxis(values, 1, 0)), want)


def test_bad_input():
    with pytest.raises(ValueError, match="num_vec_classes"):
        VQDiffusionScheduler(num_vec_classes=1)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        VQDiffusionScheduler(num_vec_classes=5, num_train_timesteps=1)
    with pytest.raises(TypeError):
        VQDiffusionScheduler()  # num_vec_classes has no default, as in diffusers
    ours = VQDiffusionScheduler(num_vec_classes=5, num_train_timesteps=20)
    x = start_sample(dict(num_vec_classes=5), "masked", 0)
    log_p = log_p_x0_model(x, 0, 5)
    ours.set_timesteps(20)
    with pytest.raises(ValueError, match=r"timestep must be in \[0, 19\]"):
        ours.step(log_p, 20, x)
    with pytest.raises(ValueError, match="timestep must be in"):
        ours.step(log_p, -1, x)
    with pytest.raises(ValueError, match="single integer"):
        ours.step(log_p, 3.0, x)
    with pytest.raises(ValueError, match="class ids must be in"):
        ours.step(log_p, 3, x + 1)
    with pytest.raises(ValueError, match="integer class ids"):
        ours.step(log_p, 3, x.astype(np.float32))
    with pytest.raises(ValueError, match="unmasked classes"):
        ours.step(log_p[:, :-1], 3, x)
    with pytest.raises(ValueError, match="t >= 1"):
        ours.q_posterior(log_p, x, 0)
