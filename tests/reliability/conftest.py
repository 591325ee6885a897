"""Fixtures of the reliability catalogue: the built-in digits model and one tiny SD pipeline (random
weights, built and exported once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import OUTCOMES, counts


@pytest.fixture(scope="session")
def tiny_sd_src(tmp_path_factory) -> Path:
    from tests.export.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("rel_src") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_ddpm_src(tmp_path_factory) -> Path:
    from tests.export.tiny import build_tiny_ddpm

    return build_tiny_ddpm(tmp_path_factory.mktemp("rel_ddpm") / "tiny-ddpm")


@pytest.fixture(scope="session")
def tiny_sd_onnx(tiny_sd_src, tmp_path_factory) -> Path:
    """The tiny SD pipeline exported to ONNX by edge-sched (read-only for the cases: they copy it to edit it)."""
    import export

    out = tmp_path_factory.mktemp("rel_onnx") / "tiny-sd-onnx"
    export.export_pipeline(tiny_sd_src, out, format="onnx", progress=None)
    return out


def pytest_terminal_summary(terminalreporter):
    if not OUTCOMES:
        return
    c = counts()
    terminalreporter.write_sep("-", "reliability catalogue (bad inputs and their outcomes)")
    terminalreporter.write_line(f"{len(OUTCOMES)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(c.items())))
