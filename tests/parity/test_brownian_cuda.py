"""edge_sched.brownian on device "cuda" against torchsde measured on a GPU (tests/fixtures/brownian_cuda).

torchsde seeds ``torch.Generator("cuda")`` for every tree node when diffusers' sample is on a CUDA
device; ours uses edge_sched.random.TorchGenerator(seed, device="cuda"). CUDA float32 normals are
within ~1e-6 of the GPU's (its fast sin/cos), float64 ones within 1e-15: the trees and the sampling
loops are held to the parity bound (float64 trees to 1e-12).
"""

import json
from pathlib import Path

import numpy as np
import pytest

import edge_sched.schedulers.cosine_dpmsolver_multistep as cosine_module
import edge_sched.schedulers.dpmsolver_sde as sde_module
from edge_sched.brownian import BrownianInterval, BrownianTreeNoiseSampler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, initial_sample, model_fn, record

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "brownian_cuda"
META = json.loads((FIXTURE / "meta.json").read_text())
ARRAYS = np.load(FIXTURE / "brownian_cuda.npz")
DEVICE = META["device"]
BOUND = {"float32": RTOL, "float64": 1e-12}
# diffusers' sampler divides by torch's float32 sqrt of the step (an ulp off for ~1 value in 6)
SAMPLER_BOUND = {"float32": RTOL, "float64": 2 * float(np.finfo(np.float32).eps)}


def _relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, (ours.shape, ref.shape, ours.dtype, ref.dtype)
    return float(np.abs(ours.astype(np.float64) - ref).max()) / max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("name", sorted(META["trees"]))
def test_tree_and_sampler_match_torchsde_on_the_gpu(name):
    t = META["trees"][name]
    shape, dtype = tuple(t["shape"]), t["dtype"]
    tree = BrownianInterval(t["t0"], t["t1"], shape, t["entropy"], dtype=dtype, device=DEVICE)
    worst = max(_relative_error(tree(a, b), ARRAYS[f"{name}__{k}"]) for k, (a, b) in enumerate(t["queries"]))
    assert worst <= BOUND[dtype], f"{name}: tree {worst:.3g}"
    sampler = BrownianTreeNoiseSampler(shape, t["t0"], t["t1"], t["entropy"], dtype=dtype, device=DEVICE)
    worst_sampler = max(_relative_error(sampler(a, b), ARRAYS[f"{name}__sampler{k}"])
                        for k, (a, b) in enumerate(t["sampler_queries"]))
    assert worst_sampler <= SAMPLER_BOUND[dtype], f"{name}: sampler {worst_sampler:.3g}"
    record(f"Brownian sampler on {DEVICE} vs diffusers' ({dtype})", worst_sampler)
    record(f"Brownian noise on {DEVICE} vs torchsde ({dtype})", worst)


LOOPS = sorted(n for n in META["loops"] if not n.startswith("cr_"))


@pytest.mark.parametrize("name", LOOPS)
def test_sampling_loop_matches_diffusers_on_the_gpu(name, monkeypatch):
    """brownian_parity's rule, against references measured on the GPU: ours within the bound of
    diffusers run there with correctly rounded exp / log / sqrt ("cr_": same query sigmas as ours,
    bit for bit), and of stock diffusers, or within 10x the stock-vs-correctly-rounded distance."""
    loop, rounded = META["loops"][name], META["loops"]["cr_" + name]
    calls = []

    class Recording(BrownianTreeNoiseSampler):
        def __call__(self, sigma, sigma_next):
            calls.append([float(sigma), float(sigma_next)])
            return super().__call__(sigma, sigma_next)

    module = {"DPMSolverSDEScheduler": sde_module, "CosineDPMSolverMultistepScheduler": cosine_module}
    monkeypatch.setattr(module[loop["scheduler"]], "BrownianTreeNoiseSampler", Recording)
    sched = scheduler_class(loop["scheduler"]).from_config(dict(loop["config"]))
    sched.set_timesteps(loop["steps"])
    np.testing.assert_allclose(sched.timesteps, loop["timesteps"], rtol=RTOL, atol=RTOL)
    step_kwargs = {}
    if loop["generator_seed"] is None:
        sched.noise_device = DEVICE
    else:  # the tree's device comes from the generator's
        step_kwargs["generator"] = TorchGenerator(loop["generator_seed"], device=DEVICE)
    x = initial_sample(loop["sample_seed"]) * np.float32(sched.init_noise_sigma)
    ours = []
    for t in sched.timesteps:
        x = sched.step(model_fn(sched.scale_model_input(x, t), t), t, x, **step_kwargs).prev_sample
        ours.append(x)
    assert all(tree.device == DEVICE for tree in sched.noise_sampler.trees)
    assert calls == rounded["noise_queries"]

    def distance(prefix_a, prefix_b):
        return max(_relative_error(ARRAYS[f"{prefix_a}__step{k}"] if prefix_a else ours[k],
                                   ARRAYS[f"{prefix_b}__step{k}"]) for k in range(len(ours)))

    err_rounded, err_stock = distance(None, "cr_" + name), distance(None, name)
    assert err_rounded <= RTOL, f"{name}: {err_rounded:.3g} from correctly rounded diffusers"
    if err_stock <= RTOL:
        record(f"{loop['scheduler']} on {DEVICE} (vs diffusers + torchsde on the GPU)", err_stock)
        return
    effect = distance(name, "cr_" + name)
    assert err_stock <= 10 * effect, f"{name}: {err_stock:.3g} from stock diffusers, 10x its effect {10 * effect:.3g}"
    record(f"{loop['scheduler']} on {DEVICE} (vs GPU diffusers, correctly rounded exp/log/sqrt)", err_rounded)
    record(f"{loop['scheduler']} on {DEVICE} (vs GPU stock diffusers: within 10x its effect)", err_stock)
