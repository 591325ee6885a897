"""DPMSolverMultistepScheduler: numpy vs diffusers over its config grid."""

import itertools

import pytest
import torch

import diffusers
import edge_sched.schedulers.dpmsolver_multistep  # noqa: F401  (registers DPMSolverMultistepScheduler)
from edge_sched import AysSchedules
from edge_sched.random import TorchGenerator
from edge_sched.schedulers import scheduler_class

from .harness import check_parity, initial_sample, model_fn
from .scheduler_contract import refused_by_both, repeated_first_timestep_fails_like_diffusers

NAME = "DPMSolverMultistepScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # diffusers deprecates dpmsolver / sde-dpmsolver
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # diffusers np.concatenate()s a tensor
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD)[:90] or "sd"


# every update rule: algorithm x second-order solver x order (sde-dpmsolver has no third order)
RULES = [
    dict(SD, algorithm_type=a, solver_type=s, solver_order=o,
         **({} if a.endswith("++") else {"final_sigmas_type": "sigma_min"}))
    for a, s, o in itertools.product(("dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"),
                                     ("midpoint", "heun"), (1, 2, 3))
    if not (a == "sde-dpmsolver" and o == 3)
]

# schedules x prediction types (DPM-Solver++ 2M, the common one)
SCHEDULES = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ("linspace", "leading", "trailing"),
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True},
         {"use_lu_lambdas": True}),
    )
]

EXTRA = [
    dict(SD, lower_order_final=False),
    dict(SD, lower_order_final=False, solver_order=3),
    dict(SD, euler_at_final=True, final_sigmas_type="sigma_min"),
    dict(SD, final_sigmas_type="sigma_min"),
    dict(SD, final_sigmas_type="sigma_min", lower_order_final=False, algorithm_type="sde-dpmsolver++"),
    # Karras ends on the first training sigma, so does "sigma_min": the last interval has h = 0,
    # which only a first-order step survives (diffusers' higher orders give NaN there)
    dict(SD, use_karras_sigmas=True, final_sigmas_type="sigma_min", solver_order=3, euler_at_final=True),
    dict(SD, use_lu_lambdas=True, use_exponential_sigmas=True),  # Lu wins over exponential, as in diffusers
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1),
    dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1, use_lu_lambdas=True, timestep_spacing="trailing"),
    dict(SD, lambda_min_clipped=-3.0, timestep_spacing="leading"),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction"),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction",
         algorithm_type="sde-dpmsolver++", solver_order=3),
    dict(SD, thresholding=True, sample_max_value=1.5),
    dict(SD, thresholding=True, prediction_type="v_prediction", solver_order=3, dynamic_thresholding_ratio=0.9),
    dict(SD, thresholding=True, algorithm_type="dpmsolver", final_sigmas_type="sigma_min"),
    dict(SD, thresholding=True, algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min",
         prediction_type="sample"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction"),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, solver_order=3),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, algorithm_type="sde-dpmsolver++"),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction", final_sigmas_type="sigma_min", flow_shift=2.0),
    dict(use_flow_sigmas=True, prediction_type="v_prediction", flow_shift=3.0),
]


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", RULES, ids=_id)
def test_update_rules(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


# configs whose schedule repeats its first timestep at some step counts (beta sigmas crowd near
# sigma_max; the cosine schedule's Karras timesteps are truncated, not rounded): diffusers then
# starts at step index 1 and fails with an IndexError at the last step. Ours does the same
# (test_repeated_first_timestep_fails_like_diffusers); the grid keeps the step counts that work.
REPEATS_FIRST_TIMESTEP = {
    "use_beta_sigmas": (50,),
    "cosine_karras": (10, 25, 50),
}
COSINE_KARRAS = dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1, use_karras_sigmas=True)


def _valid(config, steps):
    key = "cosine_karras" if config == COSINE_KARRAS else "use_beta_sigmas" if config.get("use_beta_sigmas") else None
    return steps not in REPEATS_FIRST_TIMESTEP.get(key, ())


SCHEDULE_CASES = [(c, n) for c in SCHEDULES + EXTRA + [COSINE_KARRAS] for n in STEPS if _valid(c, n)]


@pytest.mark.parametrize("config,steps", SCHEDULE_CASES, ids=[f"{_id(c)}-{n}" for c, n in SCHEDULE_CASES])
def test_schedules(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("config,steps", [(dict(SD, use_beta_sigmas=True), 50), (COSINE_KARRAS, 10)],
                         ids=["beta-50", "cosine-karras-10"])
def test_repeated_first_timestep_fails_like_diffusers(config, steps):
    repeated_first_timestep_fails_like_diffusers(NAME, config, steps)


@pytest.mark.parametrize("seed", [0, 7])
def test_sde_noise_from_the_generator(seed):
    # sde-dpmsolver(++) draws fresh noise every step: same seed, same trajectory
    check_parity(NAME, dict(SD, algorithm_type="sde-dpmsolver++"), {"num_inference_steps": 20}, seed=seed)
    check_parity(NAME, dict(SD, algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min"),
                 {"num_inference_steps": 20}, seed=seed)


@pytest.mark.parametrize("key", ["StableDiffusionTimesteps", "StableDiffusionXLTimesteps"])
def test_ays_timesteps(key):
    check_parity(NAME, SD, {"timesteps": AysSchedules[key]})


def test_custom_timesteps():
    check_parity(NAME, SD, {"timesteps": [901, 700, 500, 333, 100, 3]})
    check_parity(NAME, dict(SD, solver_order=3, algorithm_type="sde-dpmsolver++"), {"timesteps": [999, 500, 20]})


def test_dynamic_shifting_by_mu():
    config = dict(use_flow_sigmas=True, prediction_type="flow_prediction", use_dynamic_shifting=True)
    check_parity(NAME, config, {"num_inference_steps": 12, "mu": 0.8})


# -- bad input: the same failures as diffusers, with clear messages -------------------------

def test_bad_input():
    refused_by_both(NAME, {"algorithm_type": "dpmsolver"}, match="final_sigmas_type")
    refused_by_both(NAME, {"use_karras_sigmas": True, "use_beta_sigmas": True}, match="Only one")
    refused_by_both(NAME, {"use_karras_sigmas": True}, {"timesteps": [900, 500, 100]}, match="use_karras_sigmas")
    refused_by_both(NAME, {"use_lu_lambdas": True}, {"timesteps": [900, 500, 100]}, match="use_lu_lambdas")
    refused_by_both(NAME, {}, {"num_inference_steps": 5, "mu": 0.5}, match="mu")


def test_sde_dpmsolver_has_no_third_order():
    # diffusers fails at the first third-order step (UnboundLocalError); we say why
    config = dict(SD, algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min", solver_order=3)
    s = scheduler_class(NAME).from_config(config)
    s.set_timesteps(10)
    x, gen = initial_sample(0), TorchGenerator(0)
    s.step(model_fn(x, s.timesteps[0]), s.timesteps[0], x, generator=gen)
    s.step(model_fn(x, s.timesteps[1]), s.timesteps[1], x, generator=gen)
    with pytest.raises(NotImplementedError, match="third-order"):
        s.step(model_fn(x, s.timesteps[2]), s.timesteps[2], x, generator=gen)
    ref = diffusers.DPMSolverMultistepScheduler.from_config(config)
    ref.set_timesteps(10)
    with pytest.raises(UnboundLocalError):
        for t in ref.timesteps[:3]:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))
