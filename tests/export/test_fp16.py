"""fp16 to OpenVINO: weights stored in half precision, validated against the looser stated bound."""

from __future__ import annotations

import pytest

import export

from .conftest import COMPONENTS


@pytest.mark.parametrize("exported", ["openvino"], indirect=True)  # compared with the fp32 OpenVINO export
def test_openvino_fp16(tiny_sd, tmp_path, exported):
    assert exported.format == "openvino"
    out = tmp_path / "fp16"
    m = export.export_pipeline(tiny_sd, out, format="openvino", dtype="fp16", progress=None)
    assert m["dtype"] == "fp16"
    for c in COMPONENTS:
        numbers = m["validation"][c]
        assert numbers["threshold_rel"] == 2e-2
        assert numbers["max_rel"] <= 2e-2, (c, numbers)
        # graph inputs and outputs stay float32; the weights file shrinks to about half
        assert all(i["dtype"] in ("float32", "int64") for i in m["components"][c]["inputs"])
        half = (out / c / "openvino_model.bin").stat().st_size
        full = exported.graph(c).with_suffix(".bin").stat().st_size
        assert 0.4 * full < half < 0.6 * full, (c, half, full)
    assert export.verify_manifest(out) == []
