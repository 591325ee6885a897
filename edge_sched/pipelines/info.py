"""``edge-sched info``: what a pipeline folder holds and what this machine can run it on."""

from __future__ import annotations

from ..jsonfile import read_json
from ..runtime import installed_backends
from .loading import (
    PipelineLoadError, engine_options, graph_folders, load_scheduler, pick_backend, read_model_index, resolve_folder,
)


def machine_devices() -> list[str]:
    lines = []
    for backend in installed_backends():
        if backend == "onnxruntime":
            from ..runtime.onnxruntime_engine import available_providers

            lines.append(f"onnxruntime providers: {', '.join(available_providers())}")
        else:
            from ..runtime.openvino_engine import available_devices

            lines.append(f"openvino devices: {', '.join(available_devices())}")
    return lines or ["no inference engine installed (pip install 'edge-sched[onnx]' or 'edge-sched[openvino]')"]


def describe(source, backend: str = "auto") -> str:
    from ..runtime import load_component

    folder = resolve_folder(source)
    index = read_model_index(folder)
    names = graph_folders(folder, index)
    lines = [f"{folder}", f"pipeline: {index.get('_class_name')}"]
    manifest = folder / "edge_sched.json"
    if manifest.is_file():
        m = read_json(manifest, error=PipelineLoadError)
        lines.append(f"exported by edge-sched: format {m.get('format')}, dtype {m.get('dtype')}, "
                     f"source {m.get('source', {}).get('id')}")
    scheduler = load_scheduler(folder)
    lines.append(f"scheduler: {type(scheduler).__name__} (compatible: "
                 f"{', '.join(sorted(c.__name__ for c in scheduler.compatibles))})")
    chosen = pick_backend(folder, names, backend)
    lines.append(f"backend: {chosen}")
    options = engine_options(chosen)
    for name in names:
        component = load_component(name, folder / name, chosen, **options)
        lines.append(f"{name}: {component.path.name}")
        lines += [f"    in  {s.describe()}" for s in component.inputs.values()]
        lines += [f"    out {s.describe()}" for s in component.outputs.values()]
        component.release()
    lines += machine_devices()
    return "\n".join(lines)
