"""UniPCMultistepScheduler: numpy vs diffusers over its config grid."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.dpmsolver_multistep  # noqa: F401  (the solver_p test uses it)
import edge_sched.schedulers.unipc_multistep  # noqa: F401  (registers UniPCMultistepScheduler)
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, check_parity, initial_sample, max_step_error, model_fn, run_ours, run_reference
from .scheduler_contract import refused_by_both, repeated_first_timestep_fails_like_diffusers

NAME = "UniPCMultistepScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)
FLOW = dict(use_flow_sigmas=True, prediction_type="flow_prediction")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' own np.concatenate of tensors


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD)[:90] or "sd"


# every update rule. bh1, and eps prediction (predict_x0=False), divide by the final sigma's
# log-SNR: with a final sigma of 0 diffusers' last step is NaN (test_final_zero_sigma_nan_like_diffusers)
RULES = [
    dict(SD, solver_type=s, predict_x0=x0, solver_order=o,
         **({} if (s == "bh2" and x0) else {"final_sigmas_type": "sigma_min"}))
    for s, x0, o in itertools.product(("bh1", "bh2"), (True, False), (1, 2, 3))
]

SCHEDULES = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ("linspace", "leading", "trailing"),
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True}),
    )
]

EXTRA = [
    dict(SD, lower_order_final=False, final_sigmas_type="sigma_min"),
    dict(SD, lower_order_final=False, final_sigmas_type="sigma_min", solver_order=3),
    dict(SD, disable_corrector=[0, 2, 5]),
    dict(SD, disable_corrector=[1], solver_order=3, predict_x0=False, final_sigmas_type="sigma_min"),
    dict(SD, final_sigmas_type="sigma_min"),
    dict(SD, use_karras_sigmas=True, final_sigmas_type="sigma_min", solver_order=3),  # ends on the ramp's sigma
    dict(SD, use_exponential_sigmas=True, final_sigmas_type="sigma_min"),
    dict(SD, use_karras_sigmas=True, sigma_min=0.1, sigma_max=10.0),
    dict(SD, use_exponential_sigmas=True, sigma_min=0.05),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(beta_schedule="linear", solver_order=3),
    dict(beta_schedule="squaredcos_cap_v2", final_sigmas_type="sigma_min"),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction"),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction",
         solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"),
    dict(SD, thresholding=True, sample_max_value=1.5),
    dict(SD, thresholding=True, prediction_type="v_prediction", solver_order=3, dynamic_thresholding_ratio=0.9),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
    dict(FLOW),
    dict(FLOW, flow_shift=3.0, solver_order=3),
    dict(FLOW, flow_shift=5.0, final_sigmas_type="sigma_min", solver_type="bh1"),
    dict(FLOW, flow_shift=3.0, shift_terminal=0.1),
    dict(FLOW, flow_shift=3.0, use_karras_sigmas=True),
    dict(use_flow_sigmas=True, prediction_type="v_prediction", flow_shift=2.0),
]

# beta sigmas crowd near sigma_max: at 50 steps the first timestep repeats and diffusers fails
# (test_repeated_first_timestep_fails_like_diffusers); shift_terminal needs 2+ steps (one step
# stretches 0 / 0, NaN in both). The grid keeps the step counts that work.
SCHEDULE_CASES = [
    (c, n) for c in SCHEDULES + EXTRA for n in STEPS
    if not (n == 50 and c.get("use_beta_sigmas")) and not (n == 1 and c.get("shift_terminal"))
]


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", RULES, ids=_id)
def test_update_rules(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("config,steps", SCHEDULE_CASES, ids=[f"{_id(c)}-{n}" for c, n in SCHEDULE_CASES])
def test_schedules(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


def test_repeated_first_timestep_fails_like_diffusers():
    # diffusers: assert self.this_order > 0
    repeated_first_timestep_fails_like_diffusers(NAME, dict(SD, use_beta_sigmas=True), 50, ref_error=AssertionError,
                                                 match="past the last")


@pytest.mark.parametrize("sigmas", [
    [0.95, 0.8, 0.6, 0.4, 0.2, 0.05],
    [1.0, 0.7, 0.3],  # a first sigma of 1 is nudged to 1 - 1e-6
])
@pytest.mark.parametrize("extra", [{}, {"flow_shift": 3.0}, {"use_karras_sigmas": True}], ids=_id)
def test_custom_flow_sigmas(sigmas, extra):
    check_parity(NAME, dict(FLOW, **extra), {"sigmas": np.array(sigmas)})


@pytest.mark.parametrize("time_shift", [{"mu": 0.5}, {"mu": 1.2}], ids=["mu=0.5", "mu=1.2"])
def test_dynamic_shifting(time_shift):
    check_parity(NAME, dict(FLOW, use_dynamic_shifting=True), {"num_inference_steps": 20, **time_shift})
    check_parity(NAME, dict(FLOW, use_dynamic_shifting=True, shift_terminal=0.05),
                 {"num_inference_steps": 8, **time_shift})


def test_final_zero_sigma_nan_like_diffusers():
    # bh1 (B(h) = h) and eps prediction multiply an infinite h by 0 on the last step: NaN, in both
    for extra in ({"solver_type": "bh1"}, {"predict_x0": False}):
        ref = run_reference(NAME, dict(SD, **extra), {"num_inference_steps": 6})
        ours = run_ours(NAME, dict(SD, **extra), {"num_inference_steps": 6})
        assert max_step_error(_finite(ref), _finite(ours)) <= RTOL
        for r, o in zip(ref.prev, ours.prev):
            np.testing.assert_array_equal(np.isnan(o), np.isnan(r))
        assert np.isnan(ours.prev[-1]).all()


def _finite(trace):
    return type(trace)(trace.timesteps, trace.sigmas, trace.prev[:-1], trace.x0[:-1])


def test_singular_third_order_like_diffusers():
    # lower_order_final=False keeps order 3 up to a final sigma of 0: a singular system in both
    config = dict(SD, solver_order=3, lower_order_final=False)
    ref = diffusers.UniPCMultistepScheduler.from_config(config)
    ours = scheduler_class(NAME).from_config(config)
    ref.set_timesteps(5)
    ours.set_timesteps(5)
    x = initial_sample(0)
    with pytest.raises(RuntimeError, match="singular"):
        for t in ref.timesteps:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        for t in ours.timesteps:
            ours.step(model_fn(x, t), t, x)


def test_solver_p_replaces_the_predictor():
    dpm = dict(SD, algorithm_type="dpmsolver++")
    ref = diffusers.UniPCMultistepScheduler(**SD, solver_p=diffusers.DPMSolverMultistepScheduler(**dpm))
    ours = scheduler_class(NAME)(**SD, solver_p=scheduler_class("DPMSolverMultistepScheduler")(**dpm))
    ref.set_timesteps(12)
    ours.set_timesteps(12)
    x_ref = x_ours = initial_sample(2)
    for t_ref, t_ours in zip(ref.timesteps, ours.timesteps):
        x_ref = ref.step(torch.from_numpy(model_fn(x_ref, t_ref.numpy())), t_ref,
                         torch.from_numpy(np.asarray(x_ref))).prev_sample.numpy()
        x_ours = ours.step(model_fn(x_ours, t_ours), t_ours, x_ours).prev_sample
        assert np.abs(x_ours - x_ref).max() <= RTOL * max(1.0, np.abs(x_ref).max())


def test_config_of_a_flow_model_with_float_sigma_max():
    # diffusers annotates sigma_max / shift_terminal as bool but uses them as floats
    config = dict(SD, use_karras_sigmas=True, sigma_max=12.5, sigma_min=0.05)
    assert scheduler_class(NAME).from_config(config).config.sigma_max == 12.5
    check_parity(NAME, config, {"num_inference_steps": 10})


# -- bad input -------------------------------------------------------------------------------

def test_bad_input():
    refused_by_both(NAME, {"use_karras_sigmas": True, "use_exponential_sigmas": True}, match="Only one")
    refused_by_both(NAME, {"shift_terminal": 0.1}, match="shift_terminal")
    refused_by_both(NAME, {}, {"sigmas": [0.9, 0.5, 0.1]}, match="use_flow_sigmas")
    refused_by_both(NAME, dict(FLOW, use_dynamic_shifting=True), {"num_inference_steps": 10}, match="mu")
