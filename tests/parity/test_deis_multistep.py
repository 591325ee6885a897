"""DEISMultistepScheduler: numpy vs diffusers over its config grid."""

import itertools
import json

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.deis_multistep  # noqa: F401  (registers DEISMultistepScheduler)
from edge_sched.schedulers import SchedulerNotReadyError, scheduler_class

from .harness import RTOL, check_parity, initial_sample, model_fn

NAME = "DEISMultistepScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD)[:90] or "sd"


ORDERS = [dict(SD, solver_order=o, lower_order_final=f) for o in (1, 2, 3) for f in (True, False)]
SCHEDULES = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ("linspace", "leading", "trailing"),
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True}),
    )
]
EXTRA = [
    dict(SD, solver_order=3, use_karras_sigmas=True),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", solver_order=3),
    dict(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True),
    dict(SD, thresholding=True, sample_max_value=1.5),
    dict(SD, thresholding=True, prediction_type="v_prediction", solver_order=3, dynamic_thresholding_ratio=0.9),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction"),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, solver_order=3),
    dict(use_flow_sigmas=True, prediction_type="v_prediction", flow_shift=3.0),
]
COSINE_KARRAS = dict(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)
EXTRA.append(COSINE_KARRAS)


def _repeats_first_timestep(config, steps):
    """Schedules whose first timestep repeats (beta sigmas crowd near sigma_max; the cosine
    schedule's huge last training sigmas): diffusers' loop then fails, tested apart below."""
    return (config.get("use_beta_sigmas") and steps == 50) or (config == COSINE_KARRAS and steps >= 10)


CASES = [(c, n) for c in ORDERS + SCHEDULES + EXTRA for n in STEPS if not _repeats_first_timestep(c, n)]


@pytest.mark.parametrize("config,steps", CASES, ids=[f"{_id(c)}-{n}" for c, n in CASES])
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("config,steps", [(dict(SD, use_beta_sigmas=True), 50), (COSINE_KARRAS, 10)],
                         ids=["beta-50", "cosine-karras-10"])
def test_repeated_first_timestep_fails_like_diffusers(config, steps):
    ref = diffusers.DEISMultistepScheduler.from_config(config)
    ours = scheduler_class(NAME).from_config(config)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert ours.timesteps[0] == ours.timesteps[1]
    x = initial_sample(0)
    with pytest.raises(IndexError):
        for t in ref.timesteps:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))
    with pytest.raises(IndexError):
        for t in ours.timesteps:
            ours.step(model_fn(x, t), t, x)


def test_dynamic_shifting_mu_sets_flow_shift():
    config = dict(use_flow_sigmas=True, prediction_type="flow_prediction", use_dynamic_shifting=True)
    check_parity(NAME, config, {"num_inference_steps": 12, "mu": 0.8})
    ref = diffusers.DEISMultistepScheduler.from_config(config)
    ours = scheduler_class(NAME).from_config(config)
    ref.set_timesteps(5, mu=0.8)
    ours.set_timesteps(5, mu=0.8)
    assert ours.config.flow_shift == pytest.approx(ref.config.flow_shift)


@pytest.mark.parametrize("config", [SD, dict(use_flow_sigmas=True, flow_shift=3.0)], ids=_id)
def test_add_noise_matches_diffusers(config):
    ref = diffusers.DEISMultistepScheduler.from_config(config)
    ours = scheduler_class(NAME).from_config(config)
    x0, noise = initial_sample(4), initial_sample(5)
    for prepare in (lambda s: None, lambda s: s.set_timesteps(25)):
        prepare(ref)
        prepare(ours)
        t = np.asarray(ours.timesteps)[[3, 17]]
        expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t)).numpy()
        np.testing.assert_allclose(ours.add_noise(x0, noise, t), expected, rtol=0, atol=RTOL)


def test_timesteps_before_and_after_set_timesteps():
    ref, ours = diffusers.DEISMultistepScheduler(), scheduler_class(NAME)()
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    ref.set_timesteps(7)
    ours.set_timesteps(7)
    assert ours.timesteps.dtype == np.int64 and ours.num_inference_steps == ref.num_inference_steps


def test_return_dict_false():
    s = scheduler_class(NAME).from_config(SD)
    s.set_timesteps(5)
    x = initial_sample(0)
    out = s.step(model_fn(x, s.timesteps[0]), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == x.shape and out[0].dtype == np.float32
    assert s.step(model_fn(x, s.timesteps[1]), s.timesteps[1], x).pred_original_sample is None


def test_legacy_solver_names_from_a_sibling_config():
    # a DPM-Solver / UniPC config names solvers DEIS does not have; diffusers maps them to DEIS's
    for extra in ({"algorithm_type": "dpmsolver++", "solver_type": "midpoint"}, {"solver_type": "bh2"},
                  {"algorithm_type": "dpmsolver", "solver_type": "heun"}):
        config = dict(SD, **extra)
        ref = diffusers.DEISMultistepScheduler.from_config(config)
        ours = scheduler_class(NAME).from_config(config)
        assert ours.config.algorithm_type == ref.config.algorithm_type == "deis"
        assert ours.config.solver_type == ref.config.solver_type == "logrho"


def test_config_round_trip_through_diffusers(tmp_path):
    ours = scheduler_class(NAME)(**SD, use_karras_sigmas=True, solver_order=3)
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "scheduler_config.json").read_text())
    assert "final_sigmas_type" not in saved  # the planning defaults stay internal
    ref = diffusers.DEISMultistepScheduler.from_pretrained(tmp_path)
    for key, value in ours.config.items():
        if not key.startswith("_"):
            assert ref.config[key] == value, key


def test_bad_input():
    for config, match in (({"algorithm_type": "sde-dpmsolver++"}, "algorithm_type"),
                          ({"solver_type": "rk4"}, "solver_type"), ({"beta_schedule": "cubic"}, "beta_schedule"),
                          ({"use_karras_sigmas": True, "use_beta_sigmas": True}, "Only one")):
        with pytest.raises(Exception):
            diffusers.DEISMultistepScheduler.from_config(config)
        with pytest.raises(ValueError, match=match):
            scheduler_class(NAME).from_config(config)
    with pytest.raises(ValueError, match="mu"):
        scheduler_class(NAME)().set_timesteps(5, mu=0.5)
    with pytest.raises(TypeError, match="num_inference_steps"):
        scheduler_class(NAME)().set_timesteps(None)


def test_step_before_set_timesteps():
    s = scheduler_class(NAME)()
    x = initial_sample(0)
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        s.step(x, 999, x)
