"""The porting catalogue (catalogue.py): every case's port runs unchanged with torch blocked (or is
refused with its documented message), and where diffusers / optimum run the original here, what the two
leave behind agrees: float images and latents within 1e-3, 8-bit images within one level (a value within
1e-3 of a rounding boundary may round the other way) on at most 1% of the values, integers exactly."""

from __future__ import annotations

import re

import numpy as np
import pytest

from .catalogue import CASES, IMPORT_LINE, changed_lines
from .conftest import CATALOGUE_DIFFS, OUTCOMES

BOUND = 1e-3


def _compare(name: str, ours: np.ndarray, ref: np.ndarray) -> tuple[str, float]:
    """("levels", the largest 8-bit difference) or ("float", the largest float difference)."""
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} vs {ref.shape}"
    if ours.dtype == np.uint8 and ref.dtype == np.uint8:
        levels = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
        assert levels.max() <= 1, f"{name}: 8-bit images differ by {levels.max()} levels"
        assert np.mean(levels > 0) <= 0.01, f"{name}: {np.mean(levels > 0):.2%} of the 8-bit values differ"
        return "levels", float(levels.max())
    if ours.dtype.kind in "iub" and ref.dtype.kind in "iub":
        np.testing.assert_array_equal(ours, ref, err_msg=name)
        return "float", 0.0
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64)))) if ours.size else 0.0
    assert diff <= BOUND, f"{name}: max abs difference {diff:.3g}"
    return "float", diff


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, catalogue_runs):
    ours = catalogue_runs["ours"]["cases"][case.name]
    if case.expect.startswith("refused:"):
        pattern = case.expect.removeprefix("refused:").strip()
        assert not ours["ok"], f"{case.name} should be refused ({pattern}) but ran"
        assert re.search(pattern, ours["error"]), ours["error"]
        OUTCOMES[case.name] = "refused with its message (not counted as passing)"
        return
    assert ours["ok"], f"{case.name}: the port failed:\n{ours.get('traceback')}"
    if not case.reference:
        OUTCOMES[case.name] = "port runs unchanged (no reference run here)"
        return
    ref = catalogue_runs["reference"]["cases"][case.name]
    assert ref["ok"], f"{case.name}: the original failed here:\n{ref.get('traceback')}"
    ours_values = np.load(catalogue_runs["ours"]["folder"] / f"{case.name}.npz")
    ref_values = np.load(catalogue_runs["reference"]["folder"] / f"{case.name}.npz")
    shared = sorted(set(ours_values.files) & set(ref_values.files))
    assert shared == sorted(ref_values.files), \
        f"{case.name}: the port kept {ours_values.files}, the original {ref_values.files}"
    for name in shared:
        kind, diff = _compare(f"{case.name}.{name}", ours_values[name], ref_values[name])
        CATALOGUE_DIFFS[kind][case.name] = max(diff, CATALOGUE_DIFFS[kind].get(case.name, 0.0))
    for name, value in ref["values"].items():  # configs, names: equal as JSON (the version stamp aside)
        mine = ours["values"].get(name)
        if isinstance(value, dict) and isinstance(mine, dict):  # diffusers lists defaults in set order
            value, mine = ({k: sorted(v) if k == "_use_default_values" else v for k, v in d.items()
                            if k != "_diffusers_version"} for d in (value, mine))
        assert mine == value, f"{case.name}.{name}: {mine!r} != {value!r}"
        CATALOGUE_DIFFS["equal"][case.name] = 0.0
    OUTCOMES[case.name] = "port runs unchanged, same result as the original"


def test_ports_change_import_lines_only():
    for case in CASES:
        for before, after in changed_lines(case.script):
            assert IMPORT_LINE.match(before), f"{case.name}: changed a line that is not an import: {before!r}"
            assert after.startswith(("import edge_sched", "from edge_sched")), after


def test_the_ported_run_imported_no_torch_stack(catalogue_runs):
    assert catalogue_runs["ours"]["heavy_modules"] == []


def test_push_to_hub_uploaded_the_unet_folder(catalogue_runs):
    uploads = catalogue_runs["ours"]["uploads"]
    assert ("create_repo", "my-finetuned-unet") in [tuple(u[:2]) for u in uploads]
    folders = [u for u in uploads if u[0] == "upload_folder"]
    assert folders and all("model.onnx" in u[2] and "config.json" in u[2] for u in folders)
