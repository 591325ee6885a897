"""from_a1111_name: every row of diffusers' A1111 / k-diffusion table (the seed's table)."""

import json

import pytest

from edge_sched.schedulers.a1111 import A1111_SAMPLERS, a1111_sampler, from_a1111_name

# The table, as diffusers' docs give it: A1111 name -> (diffusers class, init options).
# N/A rows map to our ports of the k-diffusion samplers (tests/parity/test_kdiffusion_only.py).
TABLE = {
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler",
                            {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2S a": ("DPMPP2SAncestralScheduler", {}),  # N/A in diffusers
    "DPM++ 2S a Karras": ("DPMPP2SAncestralScheduler", {"use_karras_sigmas": True}),  # N/A in diffusers
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    # N/A in diffusers; A1111 runs these with its "eta (ancestral)" option, default 1
    "DPM adaptive": ("DPMAdaptiveScheduler", {"eta": 1.0}),
    "DPM fast": ("DPMFastScheduler", {"eta": 1.0}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
}
NOT_IN_DIFFUSERS = {"DPM++ 2S a", "DPM++ 2S a Karras", "DPM adaptive", "DPM fast"}

# a Stable Diffusion 1.5 scheduler_config.json (PNDM), as pipelines ship it
SD15 = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
    "clip_sample": False,
}


def test_the_table_has_every_row():
    assert set(A1111_SAMPLERS) == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_row(name):
    cls_name, options = TABLE[name]
    sched = from_a1111_name(name, SD15)
    assert type(sched).__name__ == cls_name
    for key, value in options.items():
        assert sched.config[key] == value, key
    # everything else comes from the pipeline's config
    assert sched.config.beta_schedule == "scaled_linear" and sched.config.beta_start == 0.00085
    assert a1111_sampler(name).in_diffusers == (name not in NOT_IN_DIFFUSERS)
    # and it runs
    sched.set_timesteps(4)
    assert next(iter(sched.timesteps)) is not None


@pytest.mark.parametrize("name", ["DPM++ 2M Karras", "Euler a"])
def test_matches_diffusers_from_config(name):
    diffusers = pytest.importorskip("diffusers")
    cls_name, options = TABLE[name]
    ref = getattr(diffusers, cls_name).from_config(SD15, **options)
    ours = from_a1111_name(name, SD15)
    for key, value in json.loads(ours.to_json_string()).items():
        if not key.startswith("_"):
            assert ref.config[key] == value, key


def test_overrides_and_other_inputs():
    sched = from_a1111_name("DPM++ 2M SDE Karras", SD15, solver_order=3)
    assert sched.config.solver_order == 3 and sched.config.use_karras_sigmas
    # no config: the class defaults plus the row's options
    assert from_a1111_name("LMS Karras").config.use_karras_sigmas
    # a scheduler as the config source; case and spacing of the name do not matter
    base = from_a1111_name("Euler", SD15)
    assert type(from_a1111_name("  dpm2   a karras ", base)).__name__ == "KDPM2AncestralDiscreteScheduler"


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(ValueError) as err:
        from_a1111_name("DPM++ 2M Karas", SD15)
    message = str(err.value)
    assert "Did you mean 'DPM++ 2M Karras'?" in message
    for name in TABLE:
        assert name in message
    with pytest.raises(ValueError, match="unknown A1111 sampler name 'Zeta'"):
        from_a1111_name("Zeta")
    with pytest.raises(TypeError):
        from_a1111_name(None)
