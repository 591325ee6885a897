"""An int seed given to ``scheduler.step`` on every step is one noise stream over the loop: what one
``torch.Generator().manual_seed(seed)`` draws in diffusers over the same loop (not the same noise at
every step). ``set_timesteps`` starts a new loop, and with it the seed's stream again."""

from __future__ import annotations

import numpy as np
import pytest

from edge_sched.schedulers import scheduler_class

from .harness import RTOL, initial_sample, max_step_error, model_fn, record, run_reference, Trace

# stochastic schedulers (they draw fresh noise at every step), with the options that make them so
CASES = [
    ("EulerAncestralDiscreteScheduler", {}, {}),
    ("DDPMScheduler", {}, {}),
    ("DDIMScheduler", {}, {"eta": 1.0}),
    ("LCMScheduler", {}, {}),
    ("KDPM2AncestralDiscreteScheduler", {}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, {}),
    ("EulerDiscreteScheduler", {}, {"s_churn": 1.0, "s_tmax": 1000.0}),
    ("TCDScheduler", {}, {"eta": 0.5}),
]
STEPS = 6


def run_ours_with_int_seed(name, config, step_kwargs, seed, loops=1) -> Trace:
    sched = scheduler_class(name).from_config(dict(config))
    for _ in range(loops):  # a later loop must start the seed's stream again
        sched.set_timesteps(STEPS)
        x = initial_sample(seed) * np.float32(sched.init_noise_sigma)
        prev, x0 = [], []
        for t in sched.timesteps:
            out = model_fn(sched.scale_model_input(x, t), t)
            res = sched.step(out, t, x, generator=seed, **step_kwargs)
            x = res.prev_sample
            prev.append(np.array(x, copy=True))
            x0.append(res.pred_original_sample)
    return Trace(np.asarray(sched.timesteps), None, prev, x0)


@pytest.mark.parametrize("name,config,step_kwargs", CASES, ids=[c[0] for c in CASES])
def test_int_seed_draws_one_stream_over_the_loop(name, config, step_kwargs):
    ref = run_reference(name, config, {"num_inference_steps": STEPS}, step_kwargs, seed=11)
    for loops in (1, 2):
        ours = run_ours_with_int_seed(name, config, step_kwargs, 11, loops)
        err = max_step_error(ref, ours)
        assert err <= RTOL, f"{name}: {err:.3g}"
    record(f"{name} (int seed on every step)", err)


def test_another_seed_is_another_stream():
    sched = scheduler_class("EulerAncestralDiscreteScheduler")()
    sched.set_timesteps(3)
    x = np.zeros((1, 4, 4, 4), np.float32)
    t = sched.timesteps[0]
    a = sched.step(x, t, x, generator=1).prev_sample
    sched.set_timesteps(3)
    b = sched.step(x, t, x, generator=2).prev_sample
    sched.set_timesteps(3)
    c = sched.step(x, t, x, generator=1).prev_sample
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)
