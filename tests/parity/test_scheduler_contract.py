"""The scheduler contract: each promise stated once, checked for every class in SCHEDULER_CLASSES.

Against diffusers' class of the same name where there is one (all but the three k-diffusion-only
samplers, which get the contracts that need no reference). How each scheduler is driven (its
step's arguments, what it needs before stepping) is the table in ``scheduler_contract.py``; what a
scheduler does beyond the contract (its parity grids, its own options) is in its own test file.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from edge_sched.schedulers import SchedulerNotReadyError

from .harness import (
    RTOL, check_timesteps, ieee_sqrt_in_torch, initial_sample, max_step_error, model_fn, record, run_ours,
    run_reference,
)
from .scheduler_contract import (
    DIFFUSERS, KDIFFUSION_ONLY, NAMES, OURS, SD15, SPECS, WITH_DIFFUSERS, denoiser_step, first_timestep, outcome,
    reference_class, relative_error, takes,
)
from .test_sa_solver import correctly_rounded_exp_log_in_torch

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # diffusers' deprecations (dpmsolver, set_alpha_to_zero...)
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

STEPS = 10
#: what a clear refusal is: an error naming what is wrong, never a crash deep inside
CLEAR_ERRORS = (ValueError, TypeError, NotImplementedError)


def _fresh(side, name, **config):
    spec = SPECS[name]
    return spec.make(side, name, **{**spec.config, **config})


def _planned(side, name, steps=STEPS, **config):
    s = _fresh(side, name, **config)
    SPECS[name].plan(s, steps)
    return s


def _call(side, name, method, s, seed=0, **kwargs):
    return SPECS[name].calls[method](side, s, SPECS[name].sample(seed), side.generator(seed), **kwargs)


def _assert_close(ours, ref, what=""):
    ours, ref = OURS.numpy(ours), DIFFUSERS.numpy(ref)
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype} != diffusers' {ref.dtype}"
    err = relative_error(ours, ref)
    assert err <= RTOL, f"{what}: {err:.3g} from diffusers"
    return err


def _outputs(result):
    """The arrays of a step's result: a tuple, or an output object in field order."""
    return tuple(result) if isinstance(result, tuple) else result.to_tuple()


def _ids(config):
    return ",".join(f"{k}={v}" for k, v in config.items())[:60] or "defaults"


# -- step outputs ------------------------------------------------------------------------------

STEP_METHODS = [(n, m) for n in NAMES for m in SPECS[n].calls if takes(getattr(OURS.cls(n), m), "return_dict")]


@pytest.mark.parametrize("name,method", STEP_METHODS, ids=[f"{n}.{m}" for n, m in STEP_METHODS])
def test_return_dict_false_is_the_output_as_a_tuple(name, method):
    out = _call(OURS, name, method, _planned(OURS, name))
    tup = _call(OURS, name, method, _planned(OURS, name), return_dict=False)
    # the output's fields in order (diffusers' Karras-VE tuple leaves out the x0 estimate)
    assert isinstance(tup, tuple) and not isinstance(out, tuple)
    assert 1 <= len(tup) <= len(out.to_tuple())
    for a, b in zip(tup, out.to_tuple()):
        np.testing.assert_array_equal(a, b)
    sample = SPECS[name].sample(0)
    assert out[0].shape == sample.shape and out[0].dtype == sample.dtype
    if name in KDIFFUSION_ONLY:
        return
    # the same fields as diffusers' output, the same values at the first step
    ref = _call(DIFFUSERS, name, method, _planned(DIFFUSERS, name))
    ref_tup = _call(DIFFUSERS, name, method, _planned(DIFFUSERS, name), return_dict=False)
    assert len(tup) == len(ref_tup), f"{len(tup)} outputs, diffusers {len(ref_tup)}"
    for field in vars(out):
        assert (getattr(out, field) is None) == (getattr(ref, field, None) is None), field
    worst = max(_assert_close(a, b, f"{method} output {i}") for i, (a, b) in enumerate(zip(tup, ref_tup)))
    record(f"{name} (first step, contract)", worst)


@pytest.mark.parametrize("name", NAMES)
def test_step_before_set_timesteps(name):
    spec = SPECS[name]
    method = spec.first_call()
    if not spec.plan_less:
        def unplanned(side):
            s = _fresh(side, name)
            if method in spec.calls:
                return _call(side, name, method, s)
            return getattr(s, method)(side.tensor(spec.sample(0)), 1.0)  # Karras-VE's input noise

        with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
            unplanned(OURS)
        if name in WITH_DIFFUSERS and not spec.diffusers_steps_unplanned:
            with pytest.raises(Exception):  # noqa: B017 - diffusers fails in many ways (ValueError, TypeError...)
                unplanned(DIFFUSERS)
        return
    # a fresh scheduler is planned for training (or needs no plan): it steps, as diffusers' does
    ours = _call(OURS, name, method, _fresh(OURS, name))
    ref = _call(DIFFUSERS, name, method, _fresh(DIFFUSERS, name))
    for i, (a, b) in enumerate(zip(_outputs(ours), _outputs(ref), strict=True)):
        _assert_close(a, b, f"output {i}")


STATEFUL = [n for n in WITH_DIFFUSERS if hasattr(_planned(OURS, n), "state_in_first_order")]


@pytest.mark.parametrize("name", STATEFUL)
def test_predictor_and_corrector_alternate_like_diffusers(name):
    states = []
    for side in (OURS, DIFFUSERS):
        s, x, gen, seen = _planned(side, name, 3), SPECS[name].sample(0), side.generator(0), []
        for t in s.timesteps:
            seen.append(bool(s.state_in_first_order))
            x = side.numpy(denoiser_step(side, s, x, gen, t=t)[0])
        states.append(seen)
    assert states[0] == states[1]
    assert states[0][:3] == [True, False, True]


LEARNED = [(n, c) for n in WITH_DIFFUSERS for c in SPECS[n].learned_variance]


@pytest.mark.parametrize("name,config", LEARNED, ids=[f"{n}-{_ids(c)}" for n, c in LEARNED])
def test_learned_variance_steps_with_the_mean_channels(name, config):
    def model(x, t):  # (mean, variance): 6 output channels for a 3-channel sample
        return np.concatenate([model_fn(x, t), 0.3 * model_fn(-x, t)], axis=1)

    sample = initial_sample(1, (2, 3, 8, 8))
    ref = run_reference(name, config, {"num_inference_steps": 10}, sample=sample, model=model)
    ours = run_ours(name, config, {"num_inference_steps": 10}, sample=sample, model=model)
    err = max_step_error(ref, ours)
    assert err <= RTOL, f"{err:.3g}"
    record(f"{name} (learned variance, contract)", err)


VARIANCE_NOISE = [(n, c, kw) for n in WITH_DIFFUSERS for c, kw in SPECS[n].variance_noise]


@pytest.mark.parametrize("name,config,step_kwargs", VARIANCE_NOISE,
                         ids=[f"{n}-{_ids(c)}-{_ids(kw)}" for n, c, kw in VARIANCE_NOISE])
def test_variance_noise_replaces_the_generator(name, config, step_kwargs):
    """The step's noise given as ``variance_noise`` (the same numbers on both sides), every step as
    diffusers' (NaN in the same places, where diffusers' update has them)."""
    trajectories = []
    for side in (OURS, DIFFUSERS):
        s, x, rng, steps = _planned(side, name, 10, **config), initial_sample(3), np.random.default_rng(3), []
        for t in s.timesteps:
            z = side.tensor(rng.standard_normal(x.shape).astype(np.float32))
            out = denoiser_step(side, s, x, None, t=t, variance_noise=z, **step_kwargs)
            x = side.numpy(out[0])
            steps.append([side.numpy(v) for v in _outputs(out)])
        trajectories.append(steps)
    worst = max(relative_error(a, b) for step_a, step_b in zip(*trajectories, strict=True)
                for a, b in zip(step_a, step_b, strict=True))
    assert worst <= RTOL, f"{worst:.3g}"
    record(f"{name} (variance_noise, contract)", worst)


# -- bad input ---------------------------------------------------------------------------------

STEP_COUNTED = [n for n in NAMES if not SPECS[n].adaptive]


@pytest.mark.parametrize("name", STEP_COUNTED)
def test_num_inference_steps_is_a_positive_int(name):
    s = _fresh(OURS, name)
    with pytest.raises(ValueError, match="num_inference_steps"):
        SPECS[name].plan(s, 0)
    for bad in (2.5, "10", True):
        with pytest.raises(TypeError, match="num_inference_steps"):
            SPECS[name].plan(s, bad)


TRAINED = [n for n in WITH_DIFFUSERS if "num_train_timesteps" in _fresh(OURS, n).config]


@pytest.mark.parametrize("name", TRAINED)
def test_more_steps_than_training_timesteps(name):
    """Where diffusers refuses (or fails at the first step), ours refuses in set_timesteps, naming
    the number; where diffusers steps, ours steps the same or refuses the same way."""
    n = _fresh(OURS, name).config.num_train_timesteps + 1
    method = SPECS[name].first_call()

    def run(side):
        return _call(side, name, method, _planned(side, name, n))

    ref, ref_error = outcome(lambda: run(DIFFUSERS))
    ours, our_error = outcome(lambda: run(OURS))
    if our_error is not None:
        assert isinstance(our_error, ValueError) and str(n) in str(our_error), repr(our_error)
        with pytest.raises(ValueError, match=str(n)):
            SPECS[name].plan(_fresh(OURS, name), n)  # refused when planning, not later
        return
    assert ref_error is None, f"diffusers fails ({ref_error!r}), ours steps"
    for i, (a, b) in enumerate(zip(_outputs(ours), _outputs(ref), strict=True)):
        _assert_close(a, b, f"output {i}")


def _custom_cases():
    for name in WITH_DIFFUSERS:
        params = inspect.signature(OURS.cls(name).set_timesteps).parameters
        for arg in ("timesteps", "sigmas"):
            if arg in params:
                good = [0.9, 0.5, 0.1] if arg == "sigmas" else [900, 500, 100]
                yield name, f"{arg}+num_inference_steps", {"num_inference_steps": 3, arg: good}, "exactly one"
                yield name, f"ascending {arg}", {arg: good[::-1]}, "descending"
        if "timesteps" in params and "num_train_timesteps" in _fresh(OURS, name).config:
            top = _fresh(OURS, name).config.num_train_timesteps
            yield name, "timesteps from num_train_timesteps", {"timesteps": [top, top // 2, 1]}, str(top)
        if "num_inference_steps" in params:
            yield name, "no schedule at all", {}, "num_inference_steps"


CUSTOM_CASES = list(_custom_cases())


@pytest.mark.parametrize("name,case,kwargs,words", CUSTOM_CASES, ids=[f"{n}-{c}" for n, c, _, _ in CUSTOM_CASES])
def test_misused_custom_schedule(name, case, kwargs, words):
    """Where diffusers refuses a schedule, ours refuses it with a clear error saying what is wrong
    (``words``); where diffusers takes it, ours takes it and plans the same timesteps, or refuses
    it the same clear way."""
    ref_kwargs = {k: DIFFUSERS.tensor(np.asarray(v)) if k in SPECS[name].tensor_schedules else v
                  for k, v in kwargs.items()}
    _, ref_error = outcome(lambda: _fresh(DIFFUSERS, name).set_timesteps(**ref_kwargs))
    s = _fresh(OURS, name)
    _, our_error = outcome(lambda: s.set_timesteps(**kwargs))
    if our_error is not None:
        assert isinstance(our_error, CLEAR_ERRORS), repr(our_error)
        assert words in str(our_error) or case in SPECS[name].refused_schedules, str(our_error)
        return
    assert ref_error is None, f"diffusers refuses ({ref_error!r}), ours accepts"
    r = _fresh(DIFFUSERS, name)
    r.set_timesteps(**ref_kwargs)
    check_timesteps(np.asarray(s.timesteps), DIFFUSERS.numpy(r.timesteps))


OPTION_FIELDS = ("beta_schedule", "prediction_type", "timestep_spacing", "variance_type", "algorithm_type",
                 "solver_type", "sigma_schedule", "final_sigmas_type", "time_shift_type", "interpolation_type",
                 "timestep_type")
OPTION_CASES = [(n, f) for n in NAMES for f in OPTION_FIELDS if f in _fresh(OURS, n).config]


@pytest.mark.parametrize("name,field", OPTION_CASES, ids=[f"{n}-{f}" for n, f in OPTION_CASES])
def test_unknown_option_value(name, field):
    """An unknown option value is refused by the constructor or set_timesteps, naming the field,
    the value and what is allowed, wherever diffusers refuses it (by then or at the first step);
    only an option diffusers never reads may pass (LCM's timestep_spacing, DPM-Solver's variance_type)."""
    bad = {field: "no_such_value"}

    def run(side):
        s = _fresh(side, name, **bad)
        SPECS[name].plan(s, STEPS)
        return _call(side, name, SPECS[name].first_call(), s) if SPECS[name].first_call() in SPECS[name].calls else s

    def plan_ours():
        SPECS[name].plan(_fresh(OURS, name, **bad), STEPS)

    _, our_error = outcome(plan_ours)
    if our_error is not None:
        assert isinstance(our_error, ValueError), repr(our_error)
        assert field in str(our_error) and "no_such_value" in str(our_error), str(our_error)
        default = _fresh(OURS, name).config[field]
        assert not isinstance(default, str) or repr(default) in str(our_error), f"{default!r} not listed: {our_error}"
        return
    assert name not in KDIFFUSION_ONLY, f"{field}='no_such_value' accepted"
    _, ref_error = outcome(lambda: run(DIFFUSERS))
    assert ref_error is None, f"diffusers refuses {field}='no_such_value' ({ref_error!r}), ours accepts"
    run(OURS)  # and steps with it, as diffusers does


@pytest.mark.parametrize("name", NAMES)
def test_unknown_constructor_argument(name):
    with pytest.raises(TypeError, match="no_such_option"):
        _fresh(OURS, name, no_such_option=1)


def _off_schedule_cases():
    for name in WITH_DIFFUSERS:
        if SPECS[name].calls.get("step") is not denoiser_step:
            continue
        t0, t1 = _planned(OURS, name).timesteps[:2]
        off = (t0 + t1) / 2 if np.asarray(t0).dtype.kind == "f" else (t0 + t1) // 2  # between the first two
        yield name, "off the schedule", off
        yield name, "an integer index", 3
        if np.asarray(t0).dtype.kind == "f":
            yield name, "an integer index (numpy scalar)", np.int64(3)
            yield name, "an integer index (0-d array)", np.array(3)


OFF_SCHEDULE = list(_off_schedule_cases())


@pytest.mark.parametrize("name,case,t", OFF_SCHEDULE, ids=[f"{n}-{c}" for n, c, _ in OFF_SCHEDULE])
def test_timestep_off_the_schedule(name, case, t):
    """A timestep that is not one of the schedule's (or an index where timesteps are model times):
    ours refuses it naming it wherever diffusers fails, and steps like diffusers elsewhere."""
    ref, ref_error = outcome(lambda: denoiser_step(DIFFUSERS, _planned(DIFFUSERS, name), SPECS[name].sample(0),
                                                   DIFFUSERS.generator(0), t=DIFFUSERS.tensor(np.asarray(t)),
                                                   scale=False))
    ours, our_error = outcome(lambda: denoiser_step(OURS, _planned(OURS, name), SPECS[name].sample(0),
                                                    OURS.generator(0), t=t, scale=False))
    if ref_error is not None:
        assert isinstance(our_error, ValueError), f"diffusers fails ({ref_error!r}), ours: {our_error!r}"
        assert str(np.asarray(t).item())[:4] in str(our_error) or "integer" in str(our_error), str(our_error)
        return
    assert our_error is None, f"diffusers steps, ours refuses: {our_error!r}"
    for i, (a, b) in enumerate(zip(_outputs(ours), _outputs(ref), strict=True)):
        _assert_close(a, b, f"output {i}")


def _public_methods(cls, name):
    return [m for m in SPECS[name].calls if hasattr(cls, m)] + ["set_timesteps"]


@pytest.mark.parametrize("name", WITH_DIFFUSERS)
def test_signatures_are_diffusers(name):
    ours_cls, ref_cls = OURS.cls(name), DIFFUSERS.cls(name)
    for method in _public_methods(ref_cls, name):
        ours = list(inspect.signature(getattr(ours_cls, method)).parameters)
        ref = list(inspect.signature(getattr(ref_cls, method)).parameters)
        extra = SPECS[name].extra_step_arguments if method == "step" else frozenset()
        assert [p for p in ours if p not in extra] == ref, method


def _dynamic_config(name):
    fields = _fresh(OURS, name).config
    config = {"use_dynamic_shifting": True}
    if "use_flow_sigmas" in fields:
        config.update(use_flow_sigmas=True, prediction_type="flow_prediction")
    return config


SHIFTED = [n for n in WITH_DIFFUSERS if "use_dynamic_shifting" in _fresh(OURS, n).config
           and "mu" in inspect.signature(OURS.cls(n).set_timesteps).parameters]


@pytest.mark.parametrize("name", SHIFTED)
def test_dynamic_shifting_by_mu_like_diffusers(name):
    """set_timesteps(n, mu=...) with use_dynamic_shifting plans diffusers' timesteps, and the shift
    it uses afterwards is diffusers' (DPM-Solver, DEIS write exp(mu) to config.flow_shift)."""
    config = _dynamic_config(name)
    ours, ref = _fresh(OURS, name, **config), _fresh(DIFFUSERS, name, **config)
    ours.set_timesteps(6, mu=0.8)
    ref.set_timesteps(6, mu=0.8)
    check_timesteps(np.asarray(ours.timesteps), DIFFUSERS.numpy(ref.timesteps))
    for key in _public(ref.config):
        want = getattr(ref.config, key)  # the attribute, which diffusers' set_timesteps may have set
        got = getattr(ours.config, key)
        assert got == (pytest.approx(float(want)) if isinstance(want, float) else want), key
        assert ours.config[key] == ref.config[key], key  # the item: the constructed value, as diffusers keeps it
    # the shift a later plan uses (diffusers' singlestep loses the attribute when it re-registers lower_order_final)
    for n, mu in ((5, None), (7, 0.3)):
        if mu is None and getattr(ref.config, "use_dynamic_shifting", False):
            try:
                ref.set_timesteps(n)
            except Exception as e:  # noqa: BLE001  diffusers refuses: so must we
                with pytest.raises(type(e) if isinstance(e, ValueError) else ValueError):
                    ours.set_timesteps(n)
                continue
        else:
            ref.set_timesteps(n, **({} if mu is None else {"mu": mu}))
        ours.set_timesteps(n, **({} if mu is None else {"mu": mu}))
        check_timesteps(np.asarray(ours.timesteps), DIFFUSERS.numpy(ref.timesteps))


#: diffusers sets config.flow_shift as an attribute only (FrozenDict.__setattr__), so its saved config and
#: from_config keep the constructor's flow_shift; ours too (ConfigMixin._shadow_config_attribute)
@pytest.mark.parametrize("name", SHIFTED)
def test_dynamic_shifting_saves_the_config_diffusers_saves(name, tmp_path):
    config = _dynamic_config(name)
    saved = []
    for side in (OURS, DIFFUSERS):
        s = _fresh(side, name, **config)
        s.set_timesteps(6, mu=0.8)
        s.save_pretrained(tmp_path / side.name)
        saved.append(json.loads((tmp_path / side.name / "scheduler_config.json").read_text()))
        saved[-1].pop("_diffusers_version")
    assert saved[0] == saved[1]


# -- the forward process ---------------------------------------------------------------------

NOISE_STAGES = ("fresh", "planned", "begin_index", "after_a_step")


def _noise_cases():
    for name in WITH_DIFFUSERS:
        spec = SPECS[name]
        method = spec.noising
        if not (hasattr(_fresh(OURS, name), method) or hasattr(_fresh(DIFFUSERS, name), method)):
            continue
        for config in ({},) + spec.configs:
            for stage in NOISE_STAGES:
                if stage in spec.noise_stages_diffusers_lacks:
                    continue
                if stage == "fresh" and spec.noise_timesteps is None and _fresh(OURS, name, **config).timesteps is None:
                    continue  # nothing scheduled to noise at
                if stage in ("begin_index", "after_a_step") and not hasattr(DIFFUSERS.cls(name), "set_begin_index"):
                    continue
                if stage == "after_a_step" and spec.calls.get("step") is not denoiser_step:
                    continue
                yield name, config, stage


NOISE_CASES = list(_noise_cases())


def _noised(side, name, config, stage, method):
    spec = SPECS[name]
    s = _fresh(side, name, **config)
    if stage != "fresh":
        spec.plan(s, 20)
    if stage in ("begin_index", "after_a_step"):
        s.set_begin_index(6)
    if stage == "after_a_step":
        denoiser_step(side, s, spec.sample(1), side.generator(0), t=s.timesteps[6])
    # each side its own timesteps (a midpoint timestep may differ by an ulp)
    t = spec.noise_timesteps(side, s) if spec.noise_timesteps else s.timesteps[[0, 11]]
    return side.numpy(_forward(side, s, method, spec.sample(4), spec.sample(5), t))


def _forward(side, s, method, x0, noise, t):
    if method == "scale_noise":
        return s.scale_noise(side.tensor(x0), t, side.tensor(noise))
    return getattr(s, method)(side.tensor(x0), side.tensor(noise), t)


@pytest.mark.parametrize("name,config,stage", NOISE_CASES,
                         ids=[f"{n}-{_ids(c)}-{s}" for n, c, s in NOISE_CASES])
def test_forward_process_matches_diffusers(name, config, stage):
    """add_noise (scale_noise for flow matching) and get_velocity where diffusers has them: before
    set_timesteps (training), on a schedule, from a begin index (image-to-image), after a step
    from there. Where diffusers says it has none (NotImplementedError), so does ours."""
    for method in (SPECS[name].noising, "get_velocity"):
        if not (hasattr(_fresh(OURS, name), method) or hasattr(_fresh(DIFFUSERS, name), method)):
            continue
        ref, ref_error = outcome(lambda: _noised(DIFFUSERS, name, config, stage, method))
        if isinstance(ref_error, NotImplementedError):
            with pytest.raises(NotImplementedError):
                _noised(OURS, name, config, stage, method)
            continue
        assert ref_error is None, f"diffusers cannot {method} at this stage ({ref_error!r}): give the reason in SPECS"
        ours = _noised(OURS, name, config, stage, method)
        assert ours.dtype == ref.dtype
        np.testing.assert_allclose(ours, ref, rtol=0, atol=RTOL, err_msg=method)


IMG2IMG = [n for n in WITH_DIFFUSERS if hasattr(DIFFUSERS.cls(n), "set_begin_index")
           and hasattr(DIFFUSERS.cls(n), SPECS[n].noising) and SPECS[n].calls.get("step") is denoiser_step]


def _image_to_image(side, name):
    spec = SPECS[name]
    config, begin = spec.img2img
    s = _planned(side, name, 20, **config)
    s.set_begin_index(begin)
    t = spec.noise_timesteps(side, s) if spec.noise_timesteps else s.timesteps[begin:begin + 1]
    x, gen = side.numpy(_forward(side, s, spec.noising, spec.sample(4), spec.sample(5), t)), side.generator(3)
    steps = [x]
    for t in s.timesteps[begin:]:
        x = side.numpy(denoiser_step(side, s, x, gen, t=t)[0])
        steps.append(x)
    return steps


def _worst(a, b):
    return max(relative_error(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("name", IMG2IMG)
def test_image_to_image_from_a_begin_index(name):
    """What an image-to-image pipeline does: set_begin_index, noise the image at that timestep,
    step the rest of the schedule; every step as diffusers' (same seed where it draws noise).
    Where stock diffusers is further than the bound, the rule of SA-Solver's and the Brownian
    schedulers' tests (torch's float32 exp / log / sqrt are not correctly rounded; a Brownian
    query an ulp away can cross torchsde's grid): ours within the bound of diffusers run with
    correctly rounded exp / log / sqrt, and of stock diffusers within 10x the distance between the two."""
    ours, stock = _image_to_image(OURS, name), _image_to_image(DIFFUSERS, name)
    worst = _worst(ours, stock)
    if worst <= RTOL:
        record(f"{name} (image-to-image, contract)", worst)
        return
    with correctly_rounded_exp_log_in_torch():
        rounded = _image_to_image(DIFFUSERS, name)
    err = _worst(ours, rounded)
    assert err <= RTOL, f"{err:.3g} from correctly rounded diffusers ({worst:.3g} from stock)"
    assert worst <= max(RTOL, 10 * _worst(stock, rounded)), f"{worst:.3g} from stock diffusers"
    record(f"{name} (image-to-image, contract; vs correctly rounded torch exp/log/sqrt)", err)


SCALED = [n for n in WITH_DIFFUSERS if hasattr(DIFFUSERS.cls(n), "scale_model_input")]


@pytest.mark.parametrize("name", SCALED)
def test_scale_model_input_matches_diffusers(name):
    ours, ref = _planned(OURS, name), _planned(DIFFUSERS, name)
    x = SPECS[name].sample(1)
    xr = DIFFUSERS.tensor(x)
    got, want = ours.scale_model_input(x, first_timestep(ours)), ref.scale_model_input(xr, first_timestep(ref))
    assert (got is x) == (want is xr)  # the sample itself where diffusers gives it back unscaled
    _assert_close(got, want, "scale_model_input")


@pytest.mark.parametrize("name", WITH_DIFFUSERS)
def test_forward_api_is_diffusers(name):
    """add_noise, get_velocity, scale_noise, scale_model_input: ours has what diffusers has; where
    ours has more (a flow model's or VQ-Diffusion's scale_model_input), it hands the sample back."""
    ours, ref = _fresh(OURS, name), _fresh(DIFFUSERS, name)
    for method in ("add_noise", "get_velocity", "scale_noise", "scale_model_input"):
        if hasattr(ref, method):
            assert hasattr(ours, method), method
        elif hasattr(ours, method):
            assert method == "scale_model_input", f"{method}: diffusers has none"
            x = SPECS[name].sample(0)
            assert ours.scale_model_input(x, first_timestep(_planned(OURS, name))) is x


# -- the schedule ------------------------------------------------------------------------------

SCHEDULE_ARRAYS = ("sigmas", "betas", "alphas", "alphas_cumprod")
SCHEDULE_CASES = [(n, c) for n in WITH_DIFFUSERS for c in ({},) + SPECS[n].configs + SPECS[n].schedule_configs]


def _compare_schedules(name, ours, ref) -> float:
    """Asserts the schedules agree; returns the worst relative difference of the float arrays."""
    worst = 0.0
    t_ours, t_ref = getattr(ours, "timesteps", None), DIFFUSERS.numpy(getattr(ref, "timesteps", None))
    assert (t_ours is None) == (t_ref is None), (t_ours, t_ref)
    if t_ref is not None:
        assert np.asarray(t_ours).dtype == t_ref.dtype, (np.asarray(t_ours).dtype, t_ref.dtype)
        if SPECS[name].ulp_timesteps:
            check_timesteps(np.asarray(t_ours), t_ref)
        else:
            np.testing.assert_array_equal(t_ours, t_ref)
    for attr in SCHEDULE_ARRAYS:
        want = DIFFUSERS.numpy(getattr(ref, attr, None))
        if want is None or want.ndim != 1 or not want.size:
            continue
        got = np.asarray(getattr(ours, attr))
        assert got.dtype == want.dtype, (attr, got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=SPECS[name].schedule_rtol, atol=SPECS[name].schedule_atol,
                                   equal_nan=True, err_msg=attr)
        worst = max(worst, relative_error(np.nan_to_num(got), np.nan_to_num(want)))
    for attr in ("init_noise_sigma", "num_inference_steps", "order"):
        if hasattr(ref, attr):
            want = getattr(ref, attr)
            got = getattr(ours, attr)
            assert (got is None) == (want is None), attr
            if want is not None:
                assert float(got) == pytest.approx(float(want), rel=RTOL), attr
    return worst


@pytest.mark.parametrize("name,config", SCHEDULE_CASES, ids=[f"{n}-{_ids(c)}" for n, c in SCHEDULE_CASES])
def test_schedule_matches_diffusers(name, config):
    """Timesteps (exact, or within the harness' rule where interpolated in float32), sigmas, betas,
    alphas, alphas_cumprod, init_noise_sigma, num_inference_steps, order: on a fresh scheduler and
    after set_timesteps, with the dtypes diffusers has. Where torch's own
    square roots (not correctly rounded, DEVELOPERS.md) move a plan by more than the bound, ours is
    held to diffusers run with IEEE square roots, as the harness does."""
    for steps in (None, 4, STEPS, 25):
        try:
            _schedules_agree(name, config, steps, with_torch_sqrt=True)
        except AssertionError:
            record(f"{name} schedule (vs IEEE-sqrt diffusers)",
                   _schedules_agree(name, config, steps, with_torch_sqrt=False))


def _schedules_agree(name, config, steps, with_torch_sqrt) -> float:
    ours = _fresh(OURS, name, **config)
    if with_torch_sqrt:
        ref = _fresh(DIFFUSERS, name, **config)
    else:
        with ieee_sqrt_in_torch():
            ref = _fresh(DIFFUSERS, name, **config)
    if steps is not None:
        SPECS[name].plan(ours, steps)
        if with_torch_sqrt:
            SPECS[name].plan(ref, steps)
        else:
            with ieee_sqrt_in_torch():
                SPECS[name].plan(ref, steps)
    return _compare_schedules(name, ours, ref)


# -- configs: saving, loading, moving between classes -------------------------------------------

def _public(config):
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _same_values(a, b):
    assert set(a) == set(b), set(a) ^ set(b)
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, (list, tuple, np.ndarray)) or isinstance(vb, (list, tuple, np.ndarray)):
            np.testing.assert_allclose(np.asarray(va, dtype=float), np.asarray(vb, dtype=float), err_msg=k)
        else:
            assert va == vb, (k, va, vb)


def refuses_sd15(name) -> bool:
    """True when diffusers refuses the SD 1.5 config (UnCLIP: squaredcos_cap_v2 only); then ours must too."""
    kwargs = SPECS[name].kwargs
    try:
        reference_class(name).from_config(SD15, **kwargs)
    except ValueError:
        with pytest.raises(ValueError):
            OURS.cls(name).from_config(SD15, **kwargs)
        return True
    return False


def test_every_scheduler_but_the_kdiffusion_ones_has_a_diffusers_counterpart():
    for name in WITH_DIFFUSERS:
        assert reference_class(name).__name__ == name


@pytest.mark.parametrize("name", WITH_DIFFUSERS)
def test_defaults_equal_diffusers(name):
    ours, ref = SPECS[name].make(OURS, name), SPECS[name].make(DIFFUSERS, name)
    _same_values(_public(ours.config), _public(ref.config))
    if hasattr(type(ref), "order"):  # a few (UnCLIP, Wuerstchen) have none in diffusers
        assert ours.order == ref.order
    if hasattr(type(ref), "__len__"):
        try:
            expected = len(ref)
        except AttributeError:  # Wuerstchen's __len__ reads a config field it does not have
            with pytest.raises(AttributeError):
                len(ours)
        else:
            assert len(ours) == expected


@pytest.mark.parametrize("name", WITH_DIFFUSERS)
def test_from_config_of_a_pipeline_config_equals_diffusers(name):
    if refuses_sd15(name):
        return
    ours = OURS.cls(name).from_config(SD15, **SPECS[name].kwargs)
    ref = reference_class(name).from_config(SD15, **SPECS[name].kwargs)
    _same_values(_public(ours.config), _public(ref.config))
    assert ours.config._class_name == name
    assert ours.config._diffusers_version == "0.6.0"


def _saved_cases():
    for name in WITH_DIFFUSERS:
        yield name, "sd15"
        for config in ({},) + SPECS[name].saved_configs:
            yield name, config


SAVED_CASES = list(_saved_cases())


@pytest.mark.parametrize("name,config", SAVED_CASES,
                         ids=[f"{n}-{c if c == 'sd15' else _ids(c)}" for n, c in SAVED_CASES])
def test_round_trip_ours_to_diffusers_to_ours(name, config, tmp_path):
    """save_pretrained writes the JSON diffusers writes for the same config; diffusers loads ours
    to the same config, and ours loads diffusers' back."""
    kwargs = SPECS[name].kwargs
    if config == "sd15":
        if refuses_sd15(name):
            return
        ours = OURS.cls(name).from_config(SD15, steps_offset=1, **kwargs)
        ref = reference_class(name).from_config(SD15, steps_offset=1, **kwargs)
    else:
        ours, ref = SPECS[name].make(OURS, name, **config), SPECS[name].make(DIFFUSERS, name, **config)
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "diffusers")
    written = [json.loads((tmp_path / side / "scheduler_config.json").read_text()) for side in ("ours", "diffusers")]
    for saved in written:
        assert saved.pop("_diffusers_version")
    assert written[0] == written[1]
    loaded = reference_class(name).from_pretrained(tmp_path / "ours")
    _same_values(_public(loaded.config), _public(ours.config))
    loaded.save_pretrained(tmp_path / "back")
    back = OURS.cls(name).from_pretrained(tmp_path / "back")
    _same_values(_public(back.config), _public(ours.config))


@pytest.mark.parametrize("name,method", STEP_METHODS, ids=[f"{n}.{m}" for n, m in STEP_METHODS])
def test_save_and_load(name, method, tmp_path):
    """A saved scheduler loads to the same config and steps bit for bit as the original."""
    spec = SPECS[name]
    original = _fresh(OURS, name)
    original.save_pretrained(tmp_path)
    loaded = OURS.cls(name).from_pretrained(tmp_path)
    assert _public(loaded.config) == _public(original.config)
    assert loaded.config._class_name == name and "_use_default_values" not in loaded.config
    for s in (original, loaded):
        spec.plan(s, STEPS)
    for a, b in zip(_outputs(_call(OURS, name, method, original)), _outputs(_call(OURS, name, method, loaded)),
                    strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_compatibles_are_diffusers(name):
    """diffusers' compatibles that we have, and the class itself (diffusers leaves out classes it
    does not export at top level: the deprecated ScoreSdeVpScheduler has none)."""
    ours = {c.__name__ for c in _fresh(OURS, name).compatibles}
    assert name in ours
    if name in WITH_DIFFUSERS:
        ref = {c.__name__ for c in _fresh(DIFFUSERS, name).compatibles} | {name}
        assert ours == ref & set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_from_config_across_compatibles(name):
    """Every compatible class builds from this config, and back to the same config (diffusers'
    test_compatibles: only fields the class does not take may be added on the way)."""
    s = _fresh(OURS, name)
    init_keys = set(inspect.signature(type(s).__init__).parameters)
    for other in s.compatibles:
        moved = other.from_config(s.config)
        back = type(s).from_config(moved.config)
        kept = {k: v for k, v in back.config.items() if k in s.config}
        assert _public(kept) == _public(s.config), other.__name__
        assert not {k for k in back.config if k not in s.config} & init_keys, other.__name__


@pytest.mark.parametrize("src", WITH_DIFFUSERS)
@pytest.mark.parametrize("dst", WITH_DIFFUSERS)
def test_switching_schedulers_like_the_seeds(src, dst):
    # pipe.scheduler = Dst.from_config(pipe.scheduler.config), for every pair
    src_kw, dst_kw = SPECS[src].kwargs, SPECS[dst].kwargs
    try:
        ref = reference_class(dst).from_config(reference_class(src).from_config(SD15, **src_kw).config, **dst_kw)
    except ValueError:  # e.g. UnCLIP takes only squaredcos_cap_v2 betas: we must refuse it as well
        with pytest.raises(ValueError):
            OURS.cls(dst).from_config(OURS.cls(src).from_config(SD15, **src_kw).config, **dst_kw)
        return
    ours = OURS.cls(dst).from_config(OURS.cls(src).from_config(SD15, **src_kw).config, **dst_kw)
    _same_values(_public(ours.config), _public(ref.config))
