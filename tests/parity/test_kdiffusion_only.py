"""DPM++ 2S a, DPM fast, DPM adaptive (the A1111 rows diffusers marks N/A) against k-diffusion.

k-diffusion's sampling.py is loaded on its own (the package's __init__ imports torchvision, which
cannot be installed here) with a stand-in for the one helper it takes from k_diffusion.utils.
Both sides run the same deterministic denoiser D(x, sigma) = x - sigma * g(x / sqrt(sigma^2 + 1))
(g a fixed smooth function, evaluated in numpy on both sides), start from the same x, and, for
DPM++ 2S a, take the same sigmas (ours) and the same noise (ours: TorchGenerator(seed); k-diffusion:
torch.randn with torch.Generator().manual_seed(seed)). Bound: 1e-5 x max(1, max|reference|).
"""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_sched.random import TorchGenerator
from edge_sched.schedulers.kdiffusion_only import DPMAdaptiveScheduler, DPMFastScheduler, DPMPP2SAncestralScheduler

from .harness import RTOL, ieee_sqrt_in_torch, initial_sample, record

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def _load_kdiffusion_sampling():
    spec = importlib.util.find_spec("k_diffusion")
    assert spec is not None, "pip install --no-deps k-diffusion (plus torchdiffeq) for this test"
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType("k_diffusion.utils")

    def append_dims(x, target_dims):
        dims_to_append = target_dims - x.ndim
        return x[(...,) + (None,) * dims_to_append]

    utils.append_dims = append_dims
    package.utils = utils
    saved = {k: sys.modules.get(k) for k in ("k_diffusion", "k_diffusion.utils")}
    sys.modules["k_diffusion"], sys.modules["k_diffusion.utils"] = package, utils
    try:
        sampling_spec = importlib.util.spec_from_file_location(
            "k_diffusion.sampling", Path(package.__path__[0]) / "sampling.py")
        sampling = importlib.util.module_from_spec(sampling_spec)
        sampling_spec.loader.exec_module(sampling)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return sampling


K = _load_kdiffusion_sampling()


def g(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (0.6 * np.tanh(x) + 0.2 * np.sin(3 * x) - 0.05 * x).astype(np.float32)


def ours_model(sample_in, t):
    """An epsilon-predicting model: g of the scaled input (so D depends on sigma through the scaling)."""
    return g(sample_in)


def kd_denoiser(x, sigma):
    """The same D(x, sigma) for k-diffusion, in numpy on the same float32 numbers."""
    s = np.float32(sigma.reshape(-1)[0].item())
    xn = x.numpy()
    eps = g(xn / np.sqrt(s * s + np.float32(1)))
    return torch.from_numpy(xn - s * eps)


def _bound(ref):
    return RTOL * max(1.0, float(np.abs(ref).max()))


def _record(name, ours, ref):
    """Report the relative error (the harness's measure) in the parity summary."""
    record(f"{name} (vs k-diffusion)", float(np.abs(ours - ref).max()) / max(1.0, float(np.abs(ref).max())))


def _run_ours(sched, x, seed=0, **step_kwargs):
    gen = TorchGenerator(seed)
    trace = []
    for t in sched.timesteps:
        out = ours_model(sched.scale_model_input(x, t), t)
        x = sched.step(out, t, x, generator=gen, **step_kwargs).prev_sample
        trace.append(x)
    return x, trace


def _kd_noise(seed, shape):
    gen = torch.Generator("cpu").manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(shape, generator=gen, dtype=torch.float32)


# -- DPM++ 2S a ----------------------------------------------------------------------------

CONFIGS_2SA = [
    SD,
    dict(SD, use_karras_sigmas=True),  # "DPM++ 2S a Karras"
    dict(SD, prediction_type="v_prediction"),
    dict(SD, timestep_spacing="trailing", use_exponential_sigmas=True),
    dict(SD, eta=0.5),
    dict(SD, eta=0.0),
]


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 25, 50])
@pytest.mark.parametrize("config", CONFIGS_2SA, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items() if k not in SD) or "sd")
def test_dpmpp_2s_ancestral_matches_kdiffusion(config, steps):
    sched = DPMPP2SAncestralScheduler(**config)
    sched.set_timesteps(steps)
    x0 = initial_sample(steps) * np.float32(sched.sigmas[0])
    v_pred = config.get("prediction_type") == "v_prediction"

    def model(x, sigma):
        if not v_pred:
            return kd_denoiser(x, sigma)
        s = np.float32(sigma.reshape(-1)[0].item())
        xn, c = x.numpy(), s * s + np.float32(1)
        out = g(xn / np.sqrt(c))
        return torch.from_numpy(out * (-s / np.sqrt(c)) + xn / c)  # x0 of a v-prediction output g

    def reference(steps_out):
        return K.sample_dpmpp_2s_ancestral(
            model, torch.from_numpy(x0.copy()), torch.from_numpy(sched.sigmas), disable=True,
            eta=config.get("eta", 1.0), noise_sampler=_kd_noise(steps, x0.shape),
            callback=lambda info: steps_out.append(info["x"].numpy().copy())).numpy()

    # sigma_down = sqrt(s'^2 - sigma_up^2) cancels when s' is much smaller than s (short schedules):
    # torch's sqrt (DEVELOPERS.md: not correctly rounded) then moves it by up to ~1%, and with it
    # the midpoint sigma. As the parity harness does, we are held to k-diffusion run with IEEE
    # square roots, and to stock k-diffusion within 10x the distance between the two.
    kd_steps, stock_steps = [], []
    with ieee_sqrt_in_torch():
        ref = reference(kd_steps)
    stock = reference(stock_steps)
    ours, _ = _run_ours(sched, x0, seed=steps)
    _record("DPMPP2SAncestralScheduler", ours, ref)
    assert np.abs(ours - ref).max() <= _bound(ref)
    assert np.abs(ours - stock).max() <= max(_bound(stock), 10 * np.abs(ref - stock).max())
    # every step's starting point too (a step is one or two calls)
    starts = [x0] + [sched_x for sched_x, c in zip(_, sched._calls) if c.completes_step][:-1]
    assert len(starts) == len(kd_steps)
    for a, b in zip(starts, kd_steps):
        assert np.abs(a - b).max() <= _bound(b)


def test_dpmpp_2s_ancestral_schedule():
    sched = DPMPP2SAncestralScheduler(**SD)
    sched.set_timesteps(4)
    # two calls per step, one for the last (sigma_down = 0): 2 + 2 + 2 + 1
    assert len(sched.timesteps) == 7 and sched.timesteps.dtype == np.float32
    # with eta = 1 the midpoint sqrt(s * sigma_down) is s' itself (up to rounding): a second call's
    # timestep can equal the next step's first one, so the sequence is only non-increasing
    assert np.all(np.diff(sched.timesteps) <= 1e-3)
    assert sched.order == 2


# -- DPM fast ------------------------------------------------------------------------------

@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 5, 10, 20, 25, 50])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_fast_matches_kdiffusion(nfe, eta):
    sched = DPMFastScheduler(**SD, eta=eta)
    sched.set_timesteps(nfe)
    assert len(sched.timesteps) == nfe
    x0 = initial_sample(nfe) * np.float32(sched.init_noise_sigma)
    sigma_min, sigma_max = float(sched._train_sigmas.min()), float(sched._train_sigmas.max())
    kd_steps = []
    ref = K.sample_dpm_fast(kd_denoiser, torch.from_numpy(x0.copy()), sigma_min, sigma_max, nfe, disable=True,
                            eta=eta, noise_sampler=_kd_noise(nfe, x0.shape),
                            callback=lambda info: kd_steps.append(info["x"].numpy().copy())).numpy()
    ours, trace = _run_ours(sched, x0, seed=nfe)
    _record("DPMFastScheduler", ours, ref)
    assert np.abs(ours - ref).max() <= _bound(ref)
    starts = [x0] + [x for x, c in zip(trace, sched._calls) if c.completes_step][:-1]
    assert len(starts) == len(kd_steps)
    for a, b in zip(starts, kd_steps):
        assert np.abs(a - b).max() <= _bound(b)


# -- DPM adaptive --------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"solver_order": 2}, {"rtol": 0.01, "atol": 0.002}, {"eta": 1.0},
                                     {"h_init": 0.5, "pcoeff": 0.3, "icoeff": 0.7, "dcoeff": 0.1},
                                     {"h_init": 3.0, "rtol": 0.002, "atol": 0.0005},
                                     {"h_init": 3.0, "rtol": 0.002, "atol": 0.0005, "solver_order": 2, "eta": 0.7}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_dpm_adaptive_matches_kdiffusion(options):
    sched = DPMAdaptiveScheduler(**SD, **options)
    sched.set_timesteps()
    x0 = initial_sample(3) * np.float32(sched.init_noise_sigma)
    sigma_min, sigma_max = float(sched._train_sigmas.min()), float(sched._train_sigmas.max())
    kd_options = {("order" if k == "solver_order" else k): v for k, v in options.items()}
    ref, info = K.sample_dpm_adaptive(kd_denoiser, torch.from_numpy(x0.copy()), sigma_min, sigma_max, disable=True,
                                      noise_sampler=_kd_noise(3, x0.shape), return_info=True, **kd_options)
    ref = ref.numpy()
    ours, trace = _run_ours(sched, x0, seed=3)
    assert sched.done
    assert sched.info == info  # same attempts, accepted and rejected
    if options.get("h_init") == 3.0:
        assert info["n_reject"] > 0  # a first step too large for the tolerances: retried smaller
    _record("DPMAdaptiveScheduler", ours, ref)
    assert np.abs(ours - ref).max() <= _bound(ref)
    # one call per stage; after a rejection the first stage (same x, same sigma) is not repeated
    assert len(trace) == info["nfe"] - info["n_reject"]


def test_adaptive_timesteps_iterate_as_the_solver_goes():
    sched = DPMAdaptiveScheduler(**SD)
    sched.set_timesteps()
    ts = []
    x = initial_sample(1) * np.float32(sched.init_noise_sigma)
    for t in sched.timesteps:
        ts.append(float(t))
        x = sched.step(ours_model(sched.scale_model_input(x, t), t), t, x).prev_sample
    assert ts[0] == pytest.approx(999, abs=1e-3) and min(ts) < 1
    with pytest.raises(ValueError, match="no further step"):
        sched.step(x, 0.0, x)


def test_bad_input():
    with pytest.raises(ValueError, match="solver_order"):
        DPMAdaptiveScheduler(solver_order=4)
    with pytest.raises(ValueError, match="Only one of"):
        DPMPP2SAncestralScheduler(use_karras_sigmas=True, use_beta_sigmas=True)
    for cls in (DPMPP2SAncestralScheduler, DPMFastScheduler, DPMAdaptiveScheduler):  # k-diffusion has none
        x = np.ones((1, 4, 8, 8), np.float32)
        with pytest.raises(NotImplementedError):
            cls().add_noise(x, x, [999.0])
