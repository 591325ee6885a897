"""resolve_scheduler: diffusers class names and A1111 sampler names -> (class, options), one error for both."""

import pytest

from edge_sched.schedulers import (
    A1111_SAMPLERS, SCHEDULER_CLASSES, UnknownSchedulerError, from_a1111_name, resolve_scheduler, scheduler_class,
    scheduler_from_name,
)
from edge_sched.schedulers.a1111 import a1111_sampler

SD15 = {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "beta_end": 0.012, "num_train_timesteps": 1000, "steps_offset": 1, "skip_prk_steps": True}


@pytest.mark.parametrize("name", sorted(SCHEDULER_CLASSES))
def test_every_class_name_resolves_to_its_class_without_options(name):
    cls, options = resolve_scheduler(name)
    assert cls is SCHEDULER_CLASSES[name] and dict(options) == {}
    assert scheduler_class(name) is cls


@pytest.mark.parametrize("name", sorted(A1111_SAMPLERS))
def test_every_a1111_name_resolves_to_its_row(name):
    row = A1111_SAMPLERS[name]
    cls, options = resolve_scheduler(name)
    assert cls.__name__ == row.scheduler and options == row.options
    # case and repeated spaces do not matter for A1111 names
    assert resolve_scheduler("  " + "   ".join(name.upper().split()) + " ") == (cls, options)


def test_class_names_are_exact():
    with pytest.raises(UnknownSchedulerError, match="Did you mean 'EulerDiscreteScheduler'"):
        resolve_scheduler("eulerdiscretescheduler")


def test_near_miss_suggests_the_closest_of_both_kinds():
    with pytest.raises(UnknownSchedulerError) as err:
        resolve_scheduler("Euler Ancestral")
    assert err.value.name == "Euler Ancestral"
    assert err.value.suggestions == ("EulerAncestralDiscreteScheduler", "Euler a")
    message = str(err.value)
    assert message.startswith("unknown scheduler 'Euler Ancestral'. "
                              "Did you mean 'EulerAncestralDiscreteScheduler' or 'Euler a'?")
    assert all(n in message for n in [*SCHEDULER_CLASSES, *A1111_SAMPLERS])
    assert "diffusers class names (" in message and "or A1111 sampler names (" in message


@pytest.mark.parametrize("name, suggestions", [
    ("EulerDiscrete", ("EulerDiscreteScheduler",)),
    ("DDIM", ("DDIMScheduler",)),  # a class name without its "Scheduler" suffix
    ("DPM++ 2M Karas", ("DPM++ 2M Karras",)),
    ("k_euler_a", ("Euler a",)),  # A1111's older alias
])
def test_near_misses(name, suggestions):
    with pytest.raises(UnknownSchedulerError) as err:
        resolve_scheduler(name)
    assert err.value.suggestions == suggestions


def test_unknown_name_without_a_close_match():
    with pytest.raises(UnknownSchedulerError) as err:
        resolve_scheduler("xyzzy")
    assert err.value.suggestions == ()
    assert "Did you mean" not in str(err.value)
    assert str(err.value).startswith("unknown scheduler 'xyzzy'. Known schedulers: diffusers class names (")
    assert isinstance(err.value, ValueError)


def test_one_kind_only():
    # scheduler_class takes class names only (an A1111 name stands for options a class cannot carry)
    with pytest.raises(UnknownSchedulerError, match="unknown scheduler class 'Euler a'") as err:
        scheduler_class("Euler a")
    assert "A1111" not in str(err.value)
    with pytest.raises(UnknownSchedulerError, match="unknown A1111 sampler name 'EulerDiscreteScheduler'") as err:
        from_a1111_name("EulerDiscreteScheduler")
    assert err.value.suggestions == () and "diffusers class names" not in str(err.value)
    with pytest.raises(UnknownSchedulerError, match="Did you mean 'DPM2 a'"):
        a1111_sampler("DPM2 b")
    assert a1111_sampler("dpm2 a").name == "DPM2 a"


def test_not_a_string():
    for call in (resolve_scheduler, scheduler_class, from_a1111_name, a1111_sampler):
        with pytest.raises(TypeError, match="a scheduler name must be a string, got None"):
            call(None)


def test_scheduler_from_name_puts_options_over_the_config_and_overrides_over_both():
    sched = scheduler_from_name("DPM++ 2M SDE Karras", SD15, solver_order=3, use_karras_sigmas=False)
    assert type(sched).__name__ == "DPMSolverMultistepScheduler"
    assert sched.config.algorithm_type == "sde-dpmsolver++" and sched.config.use_karras_sigmas is False
    assert sched.config.solver_order == 3 and sched.config.beta_schedule == "scaled_linear"
    assert type(scheduler_from_name("HeunDiscreteScheduler", sched)).__name__ == "HeunDiscreteScheduler"


def test_the_export_side_gives_the_same_error_as_its_own_type():
    export = pytest.importorskip("export")

    with pytest.raises(export.SchedulerConversionError) as err:
        export.convert_scheduler(SD15, "Euler Ancestral")
    with pytest.raises(UnknownSchedulerError) as ours:
        resolve_scheduler("Euler Ancestral")
    assert str(err.value) == str(ours.value)
