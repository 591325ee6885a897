"""The runtime must never import torch, diffusers, transformers or optimum, even indirectly."""

import subprocess
import sys

SCRIPT = r"""
import importlib, pkgutil, sys
import edge_sched
names = ["edge_sched"] + [m.name for m in pkgutil.walk_packages(edge_sched.__path__, "edge_sched.")]
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as e:
        # optional engines (onnxruntime, openvino) may be absent; anything else is a bug
        if e.name not in ("onnxruntime", "openvino", "tokenizers", "PIL"):
            raise
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "optimum") if m in sys.modules)
print(len(names), ",".join(heavy))
"""


def test_runtime_imports_no_heavy_packages():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    count, heavy = int(out[0]), out[1] if len(out) > 1 else ""
    assert count >= 10, f"only {count} edge_sched modules found"
    assert heavy == "", f"edge_sched imported {heavy}"


def test_cli_runs_without_torch():
    # `edge-sched schedulers` is the device-side smoke test of the README
    code = "import sys; from edge_sched.cli import main; rc = main(['schedulers']); " \
           "assert 'torch' not in sys.modules; sys.exit(rc)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "EulerDiscreteScheduler" in res.stdout
