"""DEISMultistepScheduler: numpy vs diffusers over its config grid."""

import itertools

import pytest

import diffusers
import edge_sched.schedulers.deis_multistep  # noqa: F401  (registers DEISMultistepScheduler)
from edge_sched.schedulers import scheduler_class

from .harness import check_parity
from .scheduler_contract import repeated_first_timestep_fails_like_diffusers

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
    repeated_first_timestep_fails_like_diffusers(NAME, config, steps)


def test_dynamic_shifting_by_mu():
    config = dict(use_flow_sigmas=True, prediction_type="flow_prediction", use_dynamic_shifting=True)
    check_parity(NAME, config, {"num_inference_steps": 12, "mu": 0.8})


def test_bad_input():
    config = {"use_karras_sigmas": True, "use_beta_sigmas": True}
    with pytest.raises(Exception):
        diffusers.DEISMultistepScheduler.from_config(config)
    with pytest.raises(ValueError, match="Only one"):
        scheduler_class(NAME).from_config(config)
    with pytest.raises(ValueError, match="mu"):
        scheduler_class(NAME)().set_timesteps(5, mu=0.5)
