"""Parity rule for the schedulers whose noise is torchsde's Brownian motion (DPM-Solver SDE, Cosine DPM).

Both sides draw their own noise from the same seed: diffusers through torchsde, ours through
edge_sched.brownian. torchsde rounds every query time to 6 decimals and a Brownian path moves by
about sqrt(1e-6) over one such grid step, so a query sigma one float32 ulp apart (torch's float32
exp / log / sqrt go through MKL and are not correctly rounded, ours are) can land on the next grid
point and change that step's noise by ~1e-3. Stock diffusers is tried first (the harness's
check_parity, bound 1e-5). Where it is further, the rule SA-Solver's test applies to torch's exp / log
holds: ours must match diffusers run with correctly rounded exp / log / sqrt within the bound (there
the query sigmas are bit-identical to ours), and stock diffusers within 10x the measured distance
between stock and correctly rounded diffusers. Cases of that kind are recorded apart.
"""

from __future__ import annotations

from .harness import RTOL, check_parity, check_timesteps, max_step_error, record, run_ours, run_reference
from .test_sa_solver import correctly_rounded_exp_log_in_torch


def check_brownian_parity(name, config, set_kwargs, step_kwargs=None, seed=0, runs=None) -> float:
    """Assert parity for one case; returns the worst relative error against the reference it met.

    ``runs`` = (reference, ours), two callables of no argument returning harness Traces, replaces
    the harness's runs (for loops the harness does not drive, e.g. a list of generators)."""
    if runs is None:
        try:
            return check_parity(name, config, set_kwargs, step_kwargs, seed)
        except AssertionError as failure:
            stock_failure = failure
        reference = lambda: run_reference(name, config, set_kwargs, step_kwargs, seed)  # noqa: E731
        ours = run_ours(name, config, set_kwargs, step_kwargs, seed)
    else:
        reference, run_ours_ = runs
        ours, stock = run_ours_(), reference()
        check_timesteps(ours.timesteps, stock.timesteps)
        err = max_step_error(stock, ours)
        if err <= RTOL:
            record(name, err)
            return err
        stock_failure = AssertionError(f"{name} {config}: worst step error {err:.3g} > bound {RTOL:.3g}")
    with correctly_rounded_exp_log_in_torch():
        rounded = reference()
    check_timesteps(ours.timesteps, rounded.timesteps)
    err = max_step_error(rounded, ours)
    assert err <= RTOL, f"{name} {config} {set_kwargs}: {err:.3g} from correctly rounded diffusers"
    stock = reference()
    effect = max_step_error(stock, rounded)
    stock_err = max_step_error(stock, ours)
    if stock_err > max(RTOL, 10 * effect):
        raise stock_failure
    record(f"{name} (vs correctly rounded torch exp/log/sqrt)", err)
    record(f"{name} (vs stock torch exp/log: within 10x its effect)", stock_err)
    return err
