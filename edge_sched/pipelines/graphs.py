"""A pipeline's graphs (``pipe.graphs``): one engine session per component folder, loaded on first use,
with the component's ``config.json``. With ``low_memory`` the pipeline releases each graph after its
stage (load, run, release), so at most one graph is in memory at a time.

Pipelines made from another one's parts (``OtherPipeline(**pipe.components)``, ``from_pipe``) share
this object, and so the loaded sessions; ``pipe.to(...)`` and ``pipe.half()`` change its engine
options or graph variant and release what was loaded (reloaded at the next use).
"""

from __future__ import annotations

from pathlib import Path

from ..heap import return_large_blocks, trim_heap
from ..jsonfile import read_json
from ..runtime import EngineError, graph_file, load_component
from ..runtime.base import Component


class Graphs:
    """Graphs by component name (``unet``, ``vae_decoder``, ...), each from its folder in ``paths``."""

    def __init__(self, folder: Path, names: list[str], backend: str, options: dict, low_memory: bool = False,
                 variant: str | None = None, paths: dict[str, Path] | None = None):
        self.folder, self.backend, self.options, self.low_memory = Path(folder), backend, options, low_memory
        self.variant = variant
        self.names = list(names)
        self.paths = {n: Path(paths[n]) if paths and n in paths else self.folder / n for n in self.names}
        self._loaded: dict[str, Component] = {}
        self.configs = {n: self._config(n) for n in self.names}

    def _config(self, name: str) -> dict:
        from .loading import PipelineLoadError

        path = self.paths[name] / "config.json"
        return read_json(path, error=PipelineLoadError) if path.is_file() else {}

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Component:
        if name not in self.names:
            from .loading import PipelineLoadError

            raise PipelineLoadError(f"{self.folder}: this pipeline has no {name} component")
        if name not in self._loaded:
            if self.low_memory:
                return_large_blocks()  # freed activations leave the process at once (heap.py)
            options = dict(self.options)
            if options.get("static_shapes"):  # {component: {input: shape}}: this component's part only
                options["static_shapes"] = options["static_shapes"].get(name)
            self._loaded[name] = load_component(name, self.paths[name], self.backend, variant=self.variant, **options)
            trim_heap()  # the engine's parsing buffers, freed but still held by malloc
        return self._loaded[name]

    def graph_path(self, name: str) -> Path | None:
        """The graph file ``name`` loads (its variant where present)."""
        return graph_file(self.paths[name], self.backend, self.variant)

    def has_variant(self, variant: str) -> bool:
        """Whether every graph has a ``variant`` file (``model.fp16.onnx`` ...)."""
        return bool(self.names) and all(
            (p := graph_file(self.paths[n], self.backend, variant)) is not None and f".{variant}." in p.name
            for n in self.names)

    def size_on_disk(self, name: str) -> int:
        """Bytes of the component's folder (graph and weights)."""
        return sum(f.stat().st_size for f in self.paths[name].rglob("*") if f.is_file())

    def set_static_shapes(self, shapes: dict) -> None:
        """Fix graph input shapes ({component: {input: shape}}, OpenVINO); graphs already loaded are
        reloaded with them now (default mode) or at their next use (low-memory mode)."""
        if self.backend != "openvino":
            raise EngineError("static shapes at load time are an OpenVINO feature; for onnxruntime export "
                              "with static shapes (edge-sched export --static-shapes)")
        self.options["static_shapes"] = {**(self.options.get("static_shapes") or {}), **shapes}
        reload = [n for n in self._loaded if n in shapes]
        for name in reload:
            self._loaded.pop(name).release()
        for name in reload:
            self[name]

    def reconfigure(self, *, variant=..., low_memory=None, **options) -> None:
        """New engine options (``device=``, ``providers=``) or graph variant; loaded graphs are released
        and load again, with them, at their next use."""
        if variant is not ...:
            self.variant = variant
        if low_memory is not None:
            self.low_memory = bool(low_memory)
        self.options.update(options)
        self.release_all()

    def done_with(self, name: str) -> None:
        """End of a stage: in low-memory mode, free the graph (it is reloaded when needed again)."""
        if self.low_memory and name in self._loaded:
            self._loaded.pop(name).release()
            trim_heap()

    def release_all(self) -> None:
        """Free every loaded graph (they are reloaded on next use)."""
        while self._loaded:
            self._loaded.popitem()[1].release()

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)


class CombinedGraphs:
    """One pipeline's graphs when its models come from several folders (``from_pretrained(folder,
    unet=other_unet)``): each name is served by the Graphs of the model that brought it, so the models
    keep their identity and loaded sessions; ``primary`` (the folder's own) gives the folder and options."""

    def __init__(self, owners: dict[str, Graphs], primary: Graphs):
        self.owners, self.primary = owners, primary
        self.folder, self.backend = primary.folder, primary.backend
        self.names = list(owners)
        self.paths = {n: g.paths[n] for n, g in owners.items()}
        self.configs = {n: g.configs.setdefault(n, {}) for n, g in owners.items()}

    def _sets(self) -> list[Graphs]:
        return list({id(g): g for g in self.owners.values()}.values())

    options = property(lambda self: self.primary.options)
    variant = property(lambda self: self.primary.variant)
    low_memory = property(lambda self: self.primary.low_memory)

    @low_memory.setter
    def low_memory(self, value: bool) -> None:
        for graphs in self._sets():
            graphs.low_memory = value

    def __contains__(self, name: str) -> bool:
        return name in self.owners

    def __getitem__(self, name: str) -> Component:
        if name not in self.owners:
            return self.primary[name]  # the primary's error
        return self.owners[name][name]

    def graph_path(self, name: str) -> Path | None:
        return self.owners[name].graph_path(name)

    def has_variant(self, variant: str) -> bool:
        return all(g.has_variant(variant) for g in self._sets())

    def size_on_disk(self, name: str) -> int:
        return self.owners[name].size_on_disk(name)

    def set_static_shapes(self, shapes: dict) -> None:
        for graphs in self._sets():
            mine = {n: s for n, s in shapes.items() if self.owners.get(n) is graphs}
            if mine:
                graphs.set_static_shapes(mine)

    def reconfigure(self, **changes) -> None:
        for graphs in self._sets():
            graphs.reconfigure(**changes)

    def done_with(self, name: str) -> None:
        if name in self.owners:
            self.owners[name].done_with(name)

    def release_all(self) -> None:
        for graphs in self._sets():
            graphs.release_all()

    @property
    def loaded(self) -> list[str]:
        return [n for n, g in self.owners.items() if n in g.loaded]
