"""Option names from a sibling scheduler's config (UniPC's solver_type "bh2" given to DPM-Solver,
DPM-Solver's algorithm_type "dpmsolver++" given to DEIS...): diffusers' __init__ records its own
name instead (register_to_config) or refuses the value; ours must do the same, in the constructor
and in from_config, and then step like diffusers."""

import json
import logging
import warnings

import numpy as np
import pytest

import diffusers
from edge_sched.schedulers import ConfigError, scheduler_class

from .harness import check_parity
from .scheduler_contract import SD

NAMES = (
    "DEISMultistepScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "DPMSolverMultistepInverseScheduler",
    "EDMDPMSolverMultistepScheduler",
    "UniPCMultistepScheduler",
)
SOLVER_TYPES = ("bh1", "bh2", "logrho", "midpoint", "heun", "rk4")
ALGORITHM_TYPES = ("dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++", "deis", "ddim")


def _public(config):
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _same_config(ours, ref):
    ours, ref = _public(ours), _public(ref)
    assert set(ours) == set(ref), set(ours) ^ set(ref)
    for key, value in ref.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(value), err_msg=key)
        else:
            assert ours[key] == value, (key, ours[key], value)


def _outcome(build):
    """(config, None) or (None, exception) of one construction."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers' deprecation of algorithm_type "dpmsolver"
        try:
            return build().config, None
        except Exception as e:  # noqa: BLE001 - compared against the other side below
            return None, e


def _same_outcome(build_ours, build_ref):
    ours, our_error = _outcome(build_ours)
    ref, ref_error = _outcome(build_ref)
    if ref_error is not None:
        # diffusers raises NotImplementedError for an unknown name, ValueError or TypeError otherwise;
        # ours raises ValueError (ConfigError) or TypeError, naming the field
        assert our_error is not None, f"diffusers refuses ({ref_error!r}), ours accepts: {ours}"
        assert isinstance(our_error, (ValueError, TypeError)), our_error
        return None
    assert our_error is None, f"diffusers accepts, ours refuses: {our_error!r}"
    _same_config(ours, ref)
    return ours


def _cases():
    for name in NAMES:
        fields = scheduler_class(name)().config
        for field, values in (("solver_type", SOLVER_TYPES), ("algorithm_type", ALGORITHM_TYPES)):
            for value in values:
                yield name, {field: value}
                if "final_sigmas_type" in fields:  # diffusers checks the final sigma by the name as given
                    yield name, {field: value, "final_sigmas_type": "sigma_min"}


CASES = list(_cases())


def _id(case):
    name, kwargs = case
    return f"{name}-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_constructor_records_what_diffusers_records(case):
    name, kwargs = case
    ref_cls, cls = getattr(diffusers, name), scheduler_class(name)
    config = _same_outcome(lambda: cls(**kwargs), lambda: ref_cls(**kwargs))
    if config is not None:
        # the same through from_config, and from a saved config of ours read by diffusers
        _same_config(cls.from_config(kwargs).config, config)
        saved = json.loads(cls(**kwargs).to_json_string())
        _same_outcome(lambda: cls.from_config(saved), lambda: ref_cls.from_config(saved))


# every accepted option name that is not the class's own, once per class
REMAPPED = [
    (name, kwargs) for name, kwargs in CASES
    if _outcome(lambda: getattr(diffusers, name)(**kwargs))[1] is None
    and any(getattr(diffusers, name)(**kwargs).config[k] != v for k, v in kwargs.items())
]


# option pairs as a sibling's config carries them (both names remapped at once), with SD betas
DEIS_NAMES = {"algorithm_type": "deis", "solver_type": "logrho"}
SIBLING_PAIRS = [
    ("DEISMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_type": "midpoint"}),
    ("DEISMultistepScheduler", {"solver_type": "bh2"}),
    ("DEISMultistepScheduler", {"algorithm_type": "dpmsolver", "solver_type": "heun"}),
    ("DPMSolverMultistepScheduler", dict(DEIS_NAMES, final_sigmas_type="sigma_min")),
    ("DPMSolverMultistepScheduler", {"solver_type": "bh2"}),
    ("DPMSolverMultistepScheduler", {"solver_type": "bh1", "algorithm_type": "dpmsolver++"}),
    ("DPMSolverMultistepInverseScheduler", DEIS_NAMES),
    ("DPMSolverMultistepInverseScheduler", {"solver_type": "bh2"}),
    ("DPMSolverSinglestepScheduler", dict(DEIS_NAMES, final_sigmas_type="sigma_min")),
    ("DPMSolverSinglestepScheduler", {"solver_type": "bh2"}),
    ("UniPCMultistepScheduler", {"solver_type": "midpoint"}),
    ("UniPCMultistepScheduler", {"solver_type": "heun"}),
    ("UniPCMultistepScheduler", {"solver_type": "logrho"}),
]


@pytest.mark.parametrize("case", SIBLING_PAIRS + [  # EDM has no betas
    ("EDMDPMSolverMultistepScheduler", dict(DEIS_NAMES, final_sigmas_type="sigma_min")),
    ("EDMDPMSolverMultistepScheduler", {"solver_type": "bh2"}),
], ids=_id)
def test_a_siblings_config_loads_like_diffusers(case):
    name, extra = case
    config = extra if name.startswith("EDM") else dict(SD, **extra)
    loaded = _same_outcome(lambda: scheduler_class(name).from_config(config),
                           lambda: getattr(diffusers, name).from_config(config))
    assert loaded is not None, "diffusers takes this config"


def test_every_class_has_remapped_names():
    assert {name for name, _ in REMAPPED} == set(NAMES)


@pytest.mark.parametrize("case", REMAPPED, ids=[_id(c) for c in REMAPPED])
def test_remapped_names_step_like_diffusers(case):
    name, kwargs = case
    for steps in (3, 10):
        check_parity(name, kwargs, {"num_inference_steps": steps})


def test_remapping_is_logged(caplog):
    cls = scheduler_class("DPMSolverMultistepScheduler")
    with caplog.at_level(logging.INFO, logger="edge_sched"):
        s = cls(solver_type="bh2")
    assert s.config.solver_type == "midpoint"
    assert "bh2" in caplog.text and "midpoint" in caplog.text


@pytest.mark.parametrize("dst", NAMES)
@pytest.mark.parametrize("src", NAMES)
def test_from_config_across_the_family_like_diffusers(src, dst):
    ref_dst, dst_cls = getattr(diffusers, dst), scheduler_class(dst)
    variants = [{}, {"solver_type": "heun"}, {"solver_type": "bh1"}, {"algorithm_type": "sde-dpmsolver++"}]
    for extra in variants:
        outcome = _outcome(lambda: getattr(diffusers, src)(**extra))
        if outcome[1] is not None:
            continue  # not an option of src
        ref_src = getattr(diffusers, src)(**extra)
        for config in (dict(ref_src.config), json.loads(ref_src.to_json_string())):
            _same_outcome(lambda: dst_cls.from_config(config), lambda: ref_dst.from_config(config))


def test_register_to_config_checks_names_and_types():
    s = scheduler_class("DEISMultistepScheduler")()
    s.register_to_config(flow_shift=3.0)
    assert s.config.flow_shift == 3.0
    with pytest.raises(TypeError, match="no config fields"):
        s.register_to_config(banana=1)
    with pytest.raises(ConfigError, match="flow_shift"):
        s.register_to_config(flow_shift="large")
    with pytest.raises(ConfigError, match="solver_type"):
        s.register_to_config(solver_type="bh2")  # only the constructor reads a sibling's names
