"""Engines behind one small interface (:class:`Component`): ONNX Runtime and OpenVINO.

``load_component(name, folder, backend, **options)`` finds the graph file of a component folder
(``model.onnx`` or ``openvino_model.xml``, optimum's names) and loads it with the chosen engine.
The engines themselves are imported only when used, so a device with only one of them installed
works.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .base import Component, EngineError, TensorSpec

BACKENDS = ("onnxruntime", "openvino")
GRAPH_FILES = {"onnxruntime": ("model.onnx",), "openvino": ("openvino_model.xml", "model.onnx")}


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def graph_file(folder: Path, backend: str, variant: str | None = None) -> Path | None:
    """The graph this backend would load from a component folder (OpenVINO also reads ONNX); with a
    ``variant`` ("fp16"), ``model.fp16.onnx`` / ``openvino_model.fp16.xml`` first where present."""
    for name in GRAPH_FILES[backend]:
        stem, suffix = name.rsplit(".", 1)
        for candidate in ([f"{stem}.{variant}.{suffix}"] if variant else []) + [name]:
            if (folder / candidate).is_file():
                return folder / candidate
    return None


def choose_backend(component_folders: list[Path], backend: str = "auto") -> str:
    """``"auto"``: ONNX Runtime for folders of ``model.onnx``, OpenVINO for IR, whichever is installed."""
    if backend not in ("auto", *BACKENDS):
        raise EngineError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    installed = installed_backends()
    if backend != "auto":
        if backend not in installed:
            extra = {"onnxruntime": "onnx", "openvino": "openvino"}[backend]
            raise EngineError(f"backend {backend} is not installed: pip install 'edge-sched[{extra}]'")
        return backend
    has_ir = all((f / "openvino_model.xml").is_file() for f in component_folders)
    has_onnx = all((f / "model.onnx").is_file() for f in component_folders)
    for candidate, ok in (("openvino", has_ir), ("onnxruntime", has_onnx), ("openvino", has_onnx)):
        if ok and candidate in installed:
            return candidate
    if not installed:
        raise EngineError("no inference engine installed: pip install 'edge-sched[onnx]' or 'edge-sched[openvino]'")
    broken = [p for f in component_folders for name in ("model.onnx", "openvino_model.xml")
              if (p := f / name).is_symlink() and not p.exists()]
    if broken:
        raise EngineError(f"{broken[0]} is a broken symlink (to {os.readlink(broken[0])}): the graph it names is "
                          "missing; copy the file there or fix the link")
    raise EngineError(
        f"no installed backend ({', '.join(installed)}) can load these graphs: "
        + ", ".join(f"{f.name}/ has {sorted(p.name for p in f.glob('*')) if f.is_dir() else 'no folder'}" for f in component_folders)
    )


def load_component(name: str, folder: str | Path, backend: str, variant: str | None = None, **options) -> Component:
    """Load ``folder``'s graph (``variant`` first, see graph_file) with ``backend``; ``options`` go to the
    engine (providers=, device=, ...)."""
    folder = Path(folder)
    path = graph_file(folder, backend, variant)
    if path is None:
        raise EngineError(f"{name}: no graph for {backend} in {folder} (looked for {', '.join(GRAPH_FILES[backend])})")
    if backend == "onnxruntime":
        from .onnxruntime_engine import OnnxRuntimeComponent

        return OnnxRuntimeComponent(name, path, **options)
    from .openvino_engine import OpenVINOComponent

    return OpenVINOComponent(name, path, **options)


__all__ = ["BACKENDS", "Component", "EngineError", "TensorSpec", "choose_backend", "installed_backends", "load_component"]
