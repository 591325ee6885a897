"""CosineDPMSolverMultistepScheduler: numpy vs diffusers, each side drawing its own Brownian noise.

diffusers seeds torchsde's BrownianInterval with ``generator.initial_seed()``; ours builds
edge_sched.brownian's sampler from the same seed (no torch). The parity rule for query sigmas that
torch's float32 exp / log put one ulp (and one torchsde grid point) away is brownian_parity's.
A ``noise_sampler`` set by the user (diffusers' attribute) replaces the Brownian source on both sides.
"""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.cosine_dpmsolver_multistep  # noqa: F401  (registers the scheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import SchedulerNotReadyError, scheduler_class

from .brownian_parity import check_brownian_parity
from .harness import RTOL, Trace, initial_sample, max_step_error, model_fn, record

NAME = "CosineDPMSolverMultistepScheduler"
STEPS = (1, 2, 3, 10, 25, 50)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore:divide by zero:RuntimeWarning")  # torchsde


class TableNoise:
    """A noise source with the Brownian sampler's call signature: the k-th call returns the
    k-th of a fixed sequence of normal draws, whichever side asks."""

    def __init__(self, seed: int, shape, as_torch: bool):
        self.rng, self.shape, self.as_torch, self.calls = np.random.default_rng(seed), shape, as_torch, []

    def __call__(self, sigma, sigma_next):
        self.calls.append((float(sigma), float(sigma_next)))
        z = self.rng.standard_normal(self.shape).astype(np.float32)
        return torch.from_numpy(z) if self.as_torch else z


def _loop(ref_side: bool, config, steps, generator, sample, noise_sampler=None) -> Trace:
    """One sampling loop on either side, ``generator`` passed to every step. On diffusers' side a
    RecursionError from torchsde ends the loop: the trace holds the steps made before it."""
    sched = (getattr(diffusers, NAME) if ref_side else scheduler_class(NAME)).from_config(dict(config))
    sched.set_timesteps(steps)
    sched.noise_sampler = noise_sampler
    x = sample * np.float32(sched.init_noise_sigma)
    x = torch.from_numpy(x) if ref_side else x
    prev = []
    for t in sched.timesteps:
        inp = sched.scale_model_input(x, t)
        m = model_fn(inp.numpy() if ref_side else inp, t.numpy() if ref_side else t)
        try:
            x = sched.step(torch.from_numpy(m) if ref_side else m, t, x, generator=generator).prev_sample
        except RecursionError:
            if not ref_side:
                raise
            break
        prev.append(np.array(x, copy=True))
    as_np = (lambda v: v.numpy()) if ref_side else np.asarray
    return Trace(as_np(sched.timesteps), as_np(sched.sigmas), prev, [None] * len(prev))


GRID = [
    dict(solver_order=o, solver_type=s, prediction_type=p, sigma_schedule=sch, final_sigmas_type=f)
    for o, s, p, sch, f in itertools.product((1, 2), ("midpoint", "heun"), ("v_prediction", "epsilon"),
                                             ("exponential", "karras"), ("zero", "sigma_min"))
]
EXTRA = [
    dict(lower_order_final=False),
    dict(euler_at_final=True, final_sigmas_type="sigma_min"),
    dict(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, rho=5.0, sigma_schedule="karras"),
    dict(num_train_timesteps=100),
    dict(solver_type="bh2"),  # a DPM-Solver / UniPC name diffusers' __init__ records as "midpoint"
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items())[:90] or "default"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_id)
def test_grid(config, steps):
    if config.get("final_sigmas_type") != "sigma_min":
        check_brownian_parity(NAME, config, {"num_inference_steps": steps}, seed=steps)
        return
    # the last step goes from the schedule's last sigma (sigma_min through float32 exp / pow, e.g.
    # 0.29999998) to float32(sigma_min) (0.30000001): both round to the same torchsde time, a query
    # torchsde recurses on without end. Ours answers it with zero noise (the increment between two
    # equal times; tests/schedulers/test_brownian.py), and the update rule then gives what diffusers'
    # gives with any noise (NaN: the SDE step's sqrt(1 - e^-2h) of a rising sigma). diffusers' steps
    # before it are compared.
    sample, ours_full = initial_sample(steps), _loop(False, config, steps, TorchGenerator(steps), initial_sample(steps))
    done = len(_loop(True, config, steps, torch.Generator().manual_seed(steps), sample).prev)
    assert done >= len(ours_full.prev) - 1, f"diffusers stopped at step {done} of {len(ours_full.prev)}"
    ours = Trace(ours_full.timesteps, ours_full.sigmas, ours_full.prev[:done], ours_full.x0[:done])
    runs = (lambda: _loop(True, config, steps, torch.Generator().manual_seed(steps), sample), lambda: ours)
    check_brownian_parity(NAME, config, {"num_inference_steps": steps}, runs=runs)


@pytest.mark.parametrize("config", [{}, {"sigma_schedule": "karras", "solver_type": "heun"}], ids=_id)
def test_one_generator_per_batch_item(config):
    # diffusers: one Brownian tree per generator, seeded by its initial seed
    seeds, sample = (11, 2**40 + 5), initial_sample(3)
    runs = (lambda: _loop(True, config, 10, [torch.Generator().manual_seed(s) for s in seeds], sample),
            lambda: _loop(False, config, 10, [TorchGenerator(s) for s in seeds], sample))
    check_brownian_parity(NAME, config, {"num_inference_steps": 10}, runs=runs)


def test_int_seed_as_generator():
    # step(..., generator=0): an int is a documented generator (TorchGenerator(0)); diffusers needs
    # torch.Generator().manual_seed(0) and reads its initial_seed()
    sample = initial_sample(0)
    runs = (lambda: _loop(True, {}, 10, torch.Generator().manual_seed(0), sample),
            lambda: _loop(False, {}, 10, 0, sample))
    check_brownian_parity(NAME, {}, {"num_inference_steps": 10}, runs=runs)


def test_user_noise_sampler_replaces_the_brownian_source():
    for config in ({}, {"solver_type": "heun", "sigma_schedule": "karras"}):
        sample = initial_sample(2)
        ref_noise, our_noise = TableNoise(2, sample.shape, True), TableNoise(2, sample.shape, False)
        ref = _loop(True, config, 10, None, sample, ref_noise)
        ours = _loop(False, config, 10, None, sample, our_noise)
        np.testing.assert_allclose(our_noise.calls, ref_noise.calls, rtol=RTOL)  # same noise queries
        worst = max_step_error(ref, ours)
        assert worst <= RTOL, worst
        record(f"{NAME} (user noise_sampler)", worst)


def test_schedule_before_set_timesteps():
    for config in ({}, {"sigma_schedule": "karras"}):
        ref, ours = diffusers.CosineDPMSolverMultistepScheduler(**config), scheduler_class(NAME)(**config)
        np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=RTOL)
        np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
        assert ours.init_noise_sigma == ref.init_noise_sigma
        np.testing.assert_allclose(ours.precondition_noise(3.0), ref.precondition_noise(3.0).numpy(), rtol=RTOL)


def test_add_noise_matches_diffusers():
    ref, ours = diffusers.CosineDPMSolverMultistepScheduler(), scheduler_class(NAME)()
    ref.set_timesteps(25)
    ours.set_timesteps(25)
    x0, noise = initial_sample(4), initial_sample(5)
    expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[[3, 17]]).numpy()
    got = ours.add_noise(x0, noise, ours.timesteps[[3, 17]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * np.abs(expected).max())


def test_return_dict_false_and_third_order():
    ours = scheduler_class(NAME)(solver_order=3)
    ours.set_timesteps(10)
    x = initial_sample(0)
    ours.noise_sampler = TableNoise(0, x.shape, False)
    out = ours.step(model_fn(x, ours.timesteps[0]), ours.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 1
    ours.step(model_fn(x, ours.timesteps[1]), ours.timesteps[1], x)
    with pytest.raises(NotImplementedError, match="third-order"):  # diffusers: UnboundLocalError
        ours.step(model_fn(x, ours.timesteps[2]), ours.timesteps[2], x)
    ref = diffusers.CosineDPMSolverMultistepScheduler(solver_order=3)
    ref.set_timesteps(10)
    ref.noise_sampler = TableNoise(0, x.shape, True)
    with pytest.raises(UnboundLocalError):
        for t in ref.timesteps[:3]:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))


def test_bad_input_and_legacy_names():
    for config, match in (({"solver_type": "rk4"}, "solver_type"), ({"sigma_schedule": "beta"}, "sigma_schedule")):
        with pytest.raises(Exception):
            diffusers.CosineDPMSolverMultistepScheduler(**config)
        with pytest.raises(ValueError, match=match):
            scheduler_class(NAME)(**config)
    for legacy in ("logrho", "bh1", "bh2"):
        ref = diffusers.CosineDPMSolverMultistepScheduler.from_config({"solver_type": legacy})
        assert scheduler_class(NAME).from_config({"solver_type": legacy}).config.solver_type == ref.config.solver_type
        ref = diffusers.CosineDPMSolverMultistepScheduler(solver_type=legacy)
        assert scheduler_class(NAME)(solver_type=legacy).config.solver_type == ref.config.solver_type == "midpoint"
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        scheduler_class(NAME)().step(initial_sample(0), np.float32(0.5), initial_sample(0))
