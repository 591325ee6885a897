"""Fixtures of the digits tests: the trained diffusers folder (never trained here)."""

from __future__ import annotations

import pytest

from .torch_sampling import model_dir

#: filled by test_digits_torch.py: label -> (accuracy, Frechet distance to real), printed at the end
RESULTS: dict[str, tuple[float, float]] = {}
#: label -> max abs image difference, edge_sched's numpy scheduler vs diffusers' (same torch UNet)
PARITY: dict[str, float] = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_digits_model: needs the trained digits model folder "
                                       "(examples/train_digits.py output); fails, never skips, without it")


@pytest.fixture(scope="session")
def digits_model_dir():
    path = model_dir()
    if path is None:
        pytest.fail("the trained digits model is missing: set EDGE_SCHED_DIGITS_MODEL to the folder written by "
                    "`python examples/train_digits.py --out DIR`, or put it at tests/digits/model (where the repository "
                    "ships it) or at ../digits_model next to the checkout", pytrace=False)
    return path


def pytest_terminal_summary(terminalreporter):
    if RESULTS:
        terminalreporter.write_sep("-", "digits: 20 steps, guided, 100 samples (accuracy, Frechet distance to real)")
        for label, (acc, fd) in RESULTS.items():
            terminalreporter.write_line(f"{label:30s} accuracy {acc:.2f}   Frechet {fd:.3f}")
    for label, worst in PARITY.items():
        terminalreporter.write_line(f"{label:30s} edge_sched vs diffusers: max abs image difference {worst:.3g}")
