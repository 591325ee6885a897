"""RePaintScheduler: numpy vs diffusers, driven as diffusers' RePaintPipeline drives it (step
down with mask and known image, undo_step back up along the jump schedule), same seed."""

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.repaint  # noqa: F401  registers RePaintScheduler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.repaint import RePaintScheduler

from .harness import RTOL, ieee_sqrt_in_torch, initial_sample, model_fn, record

NAME = "RePaintScheduler"
CONFIGS = [
    dict(),
    dict(beta_schedule="squaredcos_cap_v2"),
    dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False),
    dict(num_train_timesteps=250),
]
# (num_inference_steps, jump_length, jump_n_sample)
SCHEDULES = [(1, 10, 10), (2, 1, 2), (3, 10, 10), (10, 3, 2), (25, 5, 3), (50, 10, 10)]
ETAS = (0.0, 1.0)


class TorchNoise(TorchGenerator):
    """Our generator interface drawing torch's own normals (a twin torch generator, same seed):
    both sides see bit-identical noise, isolating the scheduler arithmetic from the few-ulp
    differences of float32 normals (DEVELOPERS.md)."""

    def __init__(self, seed):
        super().__init__(seed)
        self._torch = torch.Generator("cpu").manual_seed(seed)

    def randn(self, shape, dtype=np.float32):
        return torch.randn(tuple(shape), generator=self._torch, dtype=getattr(torch, np.dtype(dtype).name)).numpy()


def inputs(seed):
    known = np.tanh(initial_sample(seed + 100)).astype(np.float32)
    mask = (np.random.default_rng(seed).random((2, 1, 8, 8)) > 0.5).astype(np.float32)
    return known, mask


def trace(sched, steps, jump_length, jump_n_sample, eta, seed, gen, start=None):
    is_ref = isinstance(sched, diffusers.RePaintScheduler)
    wrap = torch.from_numpy if is_ref else (lambda a: a)
    known, mask = inputs(seed)
    known, mask = wrap(known), wrap(mask)
    sched.set_timesteps(steps, jump_length, jump_n_sample)
    sched.eta = eta
    image = wrap(initial_sample(seed) if start is None else start)
    outputs = []
    t_last = sched.timesteps[0] + 1
    for t in sched.timesteps:
        if t < t_last:
            out = sched.step(wrap(model_fn(np.asarray(image), np.asarray(t))), t, image, known, mask, gen)
            image = out.prev_sample
            outputs += [np.asarray(out.prev_sample), np.asarray(out.pred_original_sample)]
        else:
            image = sched.undo_step(image, t_last, gen)
            outputs.append(np.asarray(image))
        t_last = t
    return np.asarray(sched.timesteps), outputs


def worst_error(ours, ref):
    worst = 0.0
    for o, r in zip(ours, ref, strict=True):
        assert o.shape == r.shape and o.dtype == r.dtype
        worst = max(worst, float(np.abs(o - r).max()) / max(1.0, float(np.abs(r).max())))
    return worst


def check(config, schedule, eta, seed, same_noise=False):
    """Ours against diffusers (stock), applying the harness's torch-sqrt rule where they differ
    by more than RTOL: ours must match diffusers run with IEEE square roots within RTOL, and
    stock diffusers within 10x the measured stock-vs-IEEE distance."""
    def reference():
        return trace(diffusers.RePaintScheduler(**config), *schedule, eta, seed, torch.Generator().manual_seed(seed))

    t_ref, stock = reference()
    t_ours, ours = trace(RePaintScheduler(**config), *schedule, eta, seed,
                         TorchNoise(seed) if same_noise else TorchGenerator(seed))
    np.testing.assert_array_equal(t_ours, t_ref)
    assert t_ours.dtype == t_ref.dtype
    err = worst_error(ours, stock)
    if err <= RTOL:
        record(NAME, err)
        return err
    with ieee_sqrt_in_torch():
        _, ieee = reference()
    err_ieee = worst_error(ours, ieee)
    assert err_ieee <= RTOL, f"{config} {schedule} eta={eta}: {err_ieee:.3g} from IEEE-sqrt diffusers"
    sqrt_effect = worst_error(stock, ieee)
    assert err <= 10 * sqrt_effect, f"{config} {schedule} eta={eta}: {err:.3g} > 10x torch-sqrt effect {sqrt_effect:.3g}"
    record(f"{NAME} (vs stock torch sqrt: within 10x its effect)", err)
    record(NAME, err_ieee)
    return err_ieee


# the long resampling loop (410 steps) on two configs only, to keep the file under a minute
CASES = [(c, s, e) for c in CONFIGS for s in SCHEDULES for e in ETAS
         if s != (50, 10, 10) or CONFIGS.index(c) in (0, 2)] + [(dict(), (10, 2, 3), 0.5)]


# torch's float32 sqrt is not correctly rounded (DEVELOPERS.md); a one-ulp sqrt(abar) at high t
# goes through x0 = (x - sqrt(1 - abar) eps) / sqrt(abar) (x ~150 for linear betas at t = 999) and
# the resampling loop re-enters those timesteps. check() applies the harness's rule for that.
@pytest.mark.parametrize("config, schedule, eta", CASES, ids=str)
def test_pipeline_loop_same_noise(config, schedule, eta):
    # both sides get torch's own normals: the scheduler arithmetic alone
    check(config, schedule, eta, seed=schedule[0], same_noise=True)


@pytest.mark.parametrize("config, schedule, eta", CASES, ids=str)
def test_pipeline_loop_seeded_generator(config, schedule, eta):
    check(config, schedule, eta, seed=schedule[0])


def test_bad_input():
    with pytest.raises(ValueError, match="jump_length"):
        RePaintScheduler().set_timesteps(10, jump_length=0)
    x = initial_sample()
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        RePaintScheduler().undo_step(x, 10)
