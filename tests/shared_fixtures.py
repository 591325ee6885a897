"""Where the GPU-measured ground truth lives: the ``shared/`` folder beside the repository
(``<repo>/../shared``), or the folder named by the environment variable ``EDGE_SCHED_SHARED``.

A missing folder fails the tests that need it (with this explanation); it never skips them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("EDGE_SCHED_SHARED")
    return Path(env).resolve() if env else (REPO / ".." / "shared").resolve()


def fixture_path(name: str) -> Path:
    return shared_dir() / "fixtures" / name


def load_meta(name: str) -> dict | None:
    """``meta.json`` of a shared fixture, or None when it is not there (see :func:`require`)."""
    path = fixture_path(name) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else None


def require(name: str) -> Path:
    """The fixture's folder; fails the calling test when it is missing."""
    path = fixture_path(name)
    if not (path / "meta.json").is_file():
        pytest.fail(
            f"ground-truth fixture {path} is missing: these tests compare against references measured on a "
            "GPU, kept in the shared/ folder beside the repository; check it out there or set "
            "EDGE_SCHED_SHARED to that shared/ folder.",
            pytrace=False,
        )
    return path
