"""Running a whole-loop denoising graph (``denoise/model.onnx``, made by ``edge-sched export-loop``) from
Python: the same call an app makes from C, C#, Java or JavaScript, through edge_sched's engines.

``DenoiseLoop(folder, backend="onnxruntime" | "openvino")`` reads the folder's ``edge_sched.json``
(``loop``) and loads the graph; ``loop(prompt_embeds=..., guidance_scale=..., seed=... | initial_latents=...,
noise=...)`` returns the final latents. ``loop.draw_noise(generator)`` draws ``initial_latents`` and
``noise`` for ``rng="input"`` graphs from a noise source (``TorchGenerator(seed)``: torch's CPU
generator) in the order diffusers draws them; Brownian-tree draws (DPM++ SDE) come from the scheduler's
own noise sampler, which needs a fixed ``noise_sampler_seed``.

A loop exported with ``--format openvino`` (``denoise/openvino_model.xml``) runs on OpenVINO only.
``rng="cuda"`` / ``rng="cpu"`` graphs compute torch's generators (Philox, the Mersenne Twister) in
unsigned integer arithmetic, which OpenVINO's CPU plugin does not compute exactly: they are refused for
OpenVINO.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from .jsonfile import read_json
from .random import as_generator
from .runtime import EngineError, load_component

MANIFEST = "edge_sched.json"
#: why OpenVINO does not run the graphs that draw their own noise (measured with OpenVINO 2026.4's CPU plugin)
OPENVINO_REASONS = {
    "cuda": "its Philox noise multiplies 32-bit words into 64-bit products, and OpenVINO's CPU plugin does not "
            "compute uint64 products exactly (it returned the low 32 bits sign-extended, and NaN for every noise "
            "value of the graph)",
    "cpu": "its Mersenne Twister works on uint32 words (wrapping products, logical shifts, xor), and OpenVINO's "
           "CPU plugin computed every noise value of the graph differently from torch",
}


class DenoiseLoop:
    """A loaded ``denoise/model.onnx``; ``engine_options`` go to the engine (providers=, device=...)."""

    def __init__(self, folder: str | Path, backend: str = "onnxruntime", **engine_options):
        self.folder = Path(folder)
        manifest = read_json(self.folder / MANIFEST, "the export's manifest", error=EngineError)
        self.spec = manifest.get("loop")
        if not isinstance(self.spec, dict):
            raise EngineError(f"{self.folder / MANIFEST}: no 'loop' section; not a folder made by edge-sched export-loop")
        self.rng = self.spec.get("rng")
        if backend == "openvino" and self.rng in OPENVINO_REASONS:
            raise EngineError(f"{self.folder}: this loop graph draws torch's noise itself (rng {self.rng!r}) and cannot "
                              f"run on OpenVINO: {OPENVINO_REASONS[self.rng]}; run it with ONNX Runtime, or export "
                              "the loop with rng='input' and feed the noise")
        graph = self.folder / self.spec["graph"]
        if backend == "onnxruntime" and graph.suffix == ".xml":
            raise EngineError(f"{self.folder}: the loop graph is OpenVINO IR ({self.spec['graph']}, exported with --format "
                              "openvino): run it with backend='openvino', or export the loop with --format onnx")
        self.graph = load_component("denoise", graph.parent, backend, **engine_options)
        self.latent_shape = tuple(self.spec["latent_shape"])

    def draw_noise(self, generator) -> dict[str, np.ndarray]:
        """``initial_latents`` and (where the steps draw any) ``noise`` from ``generator`` (an int seed, a
        TorchGenerator, any NoiseSource), drawn as diffusers draws them from one generator."""
        if self.rng != "input":
            raise EngineError(f"{self.folder}: the loop graph draws its own noise (rng {self.rng!r}); pass seed=")
        gen = as_generator(generator)
        feeds = {"initial_latents": gen.randn(self.latent_shape, np.float32)}
        rows, brownian = [], None
        for d in self.spec["noise"]["draws"]:
            if d["kind"] == "normal":
                rows.append(gen.randn(self.latent_shape, np.float32))
            elif d["kind"] == "uniform":
                rows.append(gen.rand(self.latent_shape, np.float32))
            elif d["kind"] == "brownian":
                brownian = brownian or self._brownian_sampler()
                rows.append(np.asarray(brownian(*d["interval"]), np.float32))
            else:
                raise EngineError(f"draw {len(rows)} is of an unknown kind {d['kind']!r}")
        if rows:
            feeds["noise"] = np.stack(rows)
        return feeds

    def _brownian_sampler(self):
        """The scheduler's own Brownian-tree noise sampler: made by its first step, as in the pipeline."""
        from .schedulers import scheduler_class

        config = read_json(self.folder / "scheduler" / "scheduler_config.json", "the loop's scheduler config",
                           error=EngineError)
        sched = scheduler_class(config["_class_name"]).from_config(config)
        if config.get("noise_sampler_seed") is None or "generator" in inspect.signature(sched.step).parameters:
            raise EngineError(f"{self.folder}: {config['_class_name']} draws Brownian noise from a seed of its own "
                              "(diffusers picks a fresh one unless noise_sampler_seed is set): export the loop with "
                              "--set noise_sampler_seed=N to reproduce it")
        sched.set_timesteps(**self.spec["scheduler"]["set_timesteps"])
        zeros = np.zeros(self.latent_shape, np.float32)
        sched.step(zeros, sched.timesteps[0], zeros)  # builds the tree over the schedule's sigmas
        return sched.noise_sampler

    def __call__(self, **feeds) -> np.ndarray:
        return self.graph(**feeds)["latents"]


__all__ = ["DenoiseLoop", "OPENVINO_REASONS"]
