"""One benchmark runner in this process: ``python benchmarks/runners.py RUNNER FOLDER SETTINGS_JSON``.

Prints one JSON line: import+load seconds (from this script's start: imports included), first image,
steady image (median of the repeats after the first), peak RSS (VmHWM: the process's own high-water
mark; ru_maxrss would carry the parent's over exec) and, for edge_sched runners, the seconds spent
inside the graphs during the steady images (everything else is our overhead).

Runners: edge_sched-ort, edge_sched-ort-lowmem, edge_sched-ov, edge_sched-ov-lowmem, optimum-ort, optimum-ov, genai, and
floor-ort / floor-ov (each graph alone, with the engine settings the edge_sched runner uses).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

PROMPT = "a photo of a cat and a dog"


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def peak_rss_mb() -> float:
    return status_mb("VmHWM")


def reset_peak() -> bool:
    """Start a new VmHWM from the current RSS (Linux: clear_refs 5); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# the memory profile: RSS after the imports and after loading, and the peak inside each graph
MEMORY: dict = {}


LAST_OUTPUT: list = [None]  # what the last timed call returned (the image, for --save-image)


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        LAST_OUTPUT[0] = fn()
        times.append(time.perf_counter() - t)
    return times


def ov_precision(settings) -> dict:
    """OpenVINO properties for the matched precision; "default" leaves the device's own (bf16 on
    CPUs with AVX-512 BF16 or AMX)."""
    return {} if settings["precision"] == "default" else {"INFERENCE_PRECISION_HINT": settings["precision"]}


# ---- edge_sched ------------------------------------------------------------------------------------

class GraphClock:
    """Sums the seconds spent inside each engine's run call (the graphs' own time), per graph."""

    def __init__(self):
        from edge_sched.runtime.onnxruntime_engine import OnnxRuntimeComponent
        from edge_sched.runtime.openvino_engine import OpenVINOComponent

        self.reset()
        self.components = {}  # graph name -> the component that ran it
        self.peaks = None  # {graph: VmHWM MB} while profiling memory
        for cls in (OnnxRuntimeComponent, OpenVINOComponent):
            original = cls._run

            def run(component, feeds, _original=original):
                if self.peaks is not None:
                    reset_peak()
                t = time.perf_counter()
                try:
                    return _original(component, feeds)
                finally:
                    self.per_graph[component.name] = self.per_graph.get(component.name, 0.0) + time.perf_counter() - t
                    self.calls[component.name] = self.calls.get(component.name, 0) + 1
                    self.components[component.name] = component
                    if self.peaks is not None:
                        self.peaks[component.name] = max(self.peaks.get(component.name, 0.0), peak_rss_mb())

            cls._run = run

    def reset(self):
        self.per_graph, self.calls = {}, {}

    @property
    def seconds(self) -> float:
        return sum(self.per_graph.values())


def edge_sched_pipeline(runner: str, folder: str, settings: dict):
    from edge_sched import DiffusionPipeline

    __import__("openvino" if runner.startswith("edge_sched-ov") else "onnxruntime")
    MEMORY["after_imports"] = status_mb("VmRSS")
    # the suite's "default" precision (the device's own, as the peers' default rows) is our precision="fast"
    precision = {"default": "fast", "f32": "exact"}.get(settings["precision"], settings["precision"])
    if runner.startswith("edge_sched-ov"):
        options = dict(backend="openvino", precision=precision, low_memory=runner.endswith("lowmem"))
        if settings.get("cache_dir"):
            options["cache_dir"] = settings["cache_dir"]
    else:
        options = dict(backend="onnxruntime", precision=precision, low_memory=runner.endswith("lowmem"))
    options.update(settings.get("engine", {}))  # engine options a runner variant sets (e.g. the ORT arena)
    static = settings.get("static", False)
    pipe = DiffusionPipeline.from_pretrained(folder, compile=not static, **options)
    if static:  # shapes first, then one compile per graph
        pipe.reshape(batch_size=1, height=settings["height"], width=settings["width"],
                     guidance_scale=settings["guidance_scale"])
        if not options["low_memory"]:
            pipe.compile()
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe(PROMPT, height=settings["height"], width=settings["width"],
                    num_inference_steps=settings["steps"], guidance_scale=settings["guidance_scale"],
                    generator=0, output_type="np", **call_options(settings)).images

    return run


def call_options(settings: dict) -> dict:
    """Pipeline-call options a runner variant sets: SD3's max_sequence_length (the T5 part of the joint text;
    zeros without T5), our guidance_interval (sigma_low, sigma_high)."""
    options = {k: settings[k] for k in ("max_sequence_length",) if k in settings}
    if "guidance_interval" in settings:
        options["guidance_interval"] = tuple(settings["guidance_interval"])
    return options


def pipeline_class(folder: str) -> str:
    from pathlib import Path

    return json.loads((Path(folder) / "model_index.json").read_text())["_class_name"]


# ---- peers -------------------------------------------------------------------------------------------

def optimum_pipeline(runner: str, folder: str, settings: dict):
    import torch

    if runner == "optimum-ort":
        from optimum.onnxruntime import ORTStableDiffusionPipeline

        MEMORY["after_imports"] = status_mb("VmRSS")
        pipe = ORTStableDiffusionPipeline.from_pretrained(folder)
    else:
        import optimum.intel

        # the folder's own pipeline class: OVStableDiffusionPipeline, OVStableDiffusion3Pipeline (the flow row)
        cls = getattr(optimum.intel, "OV" + pipeline_class(folder))
        MEMORY["after_imports"] = status_mb("VmRSS")
        static = settings.get("static")
        pipe = cls.from_pretrained(folder, ov_config=ov_precision(settings) or None, compile=not static)
        if static:
            pipe.reshape(batch_size=1, height=settings["height"], width=settings["width"], num_images_per_prompt=1)
            pipe.compile()
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe(PROMPT, height=settings["height"], width=settings["width"],
                    num_inference_steps=settings["steps"], guidance_scale=settings["guidance_scale"],
                    generator=torch.Generator().manual_seed(0), output_type="np").images

    return run


def genai_pipeline(runner: str, folder: str, settings: dict):
    import openvino_genai

    MEMORY["after_imports"] = status_mb("VmRSS")
    if settings.get("static"):
        pipe = openvino_genai.Text2ImagePipeline(folder)
        pipe.reshape(1, settings["height"], settings["width"], settings["guidance_scale"])
        pipe.compile("CPU", **ov_precision(settings))
    else:
        pipe = openvino_genai.Text2ImagePipeline(folder, "CPU", **ov_precision(settings))

    def run():
        image = pipe.generate(PROMPT, height=settings["height"], width=settings["width"],
                              num_inference_steps=settings["steps"], guidance_scale=settings["guidance_scale"],
                              rng_seed=0)
        return image.data  # uint8 [batch, H, W, 3]: the others' float images are in [0, 1]

    return run


# ---- floors: each graph alone ---------------------------------------------------------------------

def graph_inputs(settings: dict, folder: str) -> dict:
    """Random inputs of the shapes one image makes: text encoder batch 1 (run twice: prompt and
    negative prompt), UNet batch 2 (classifier-free guidance), VAE decoder batch 1."""
    from pathlib import Path

    import numpy as np

    if pipeline_class(folder) == "StableDiffusion3Pipeline":
        return sd3_graph_inputs(settings, folder)
    config = {n: json.loads((Path(folder) / n / "config.json").read_text()) for n in ("text_encoder", "unet", "vae_decoder")}
    factor = 2 ** (len(config["vae_decoder"]["block_out_channels"]) - 1)
    latent = (config["unet"]["in_channels"], settings["height"] // factor, settings["width"] // factor)
    hidden = config["text_encoder"]["hidden_size"]
    rng = np.random.default_rng(0)
    unet_batch = 2 if settings["guidance_scale"] > 1 else 1
    return {
        "text_encoder": {"input_ids": np.zeros((1, 77), np.int64)},
        "unet": {"sample": rng.standard_normal((unet_batch, *latent), np.float32),
                 "timestep": np.array([500] * unet_batch, np.int64),
                 "encoder_hidden_states": rng.standard_normal((unet_batch, 77, hidden), np.float32)},
        "vae_decoder": {"latent_sample": rng.standard_normal((1, *latent), np.float32)},
    }


def sd3_graph_inputs(settings: dict, folder: str) -> dict:
    """SD3 without T5 (the flow row): both CLIP encoders batch 1 (prompt and negative prompt), the
    transformer batch 2 with the joint text of 77 CLIP tokens + max_sequence_length (256, or the settings')
    T5 zeros, as diffusers builds it, and the VAE decoder batch 1."""
    from pathlib import Path

    import numpy as np

    config = {n: json.loads((Path(folder) / n / "config.json").read_text()) for n in ("transformer", "vae_decoder")}
    t = config["transformer"]
    factor = 2 ** (len(config["vae_decoder"]["block_out_channels"]) - 1)
    latent = (t["in_channels"], settings["height"] // factor, settings["width"] // factor)
    rng = np.random.default_rng(0)
    batch = 2 if settings["guidance_scale"] > 1 else 1
    ids = {"input_ids": np.zeros((1, 77), np.int64)}
    return {
        "text_encoder": ids, "text_encoder_2": ids,
        "transformer": {"hidden_states": rng.standard_normal((batch, *latent), np.float32),
                        "encoder_hidden_states": rng.standard_normal((batch, 77 + settings.get("max_sequence_length", 256),
                                                                      t["joint_attention_dim"]),
                                                                     np.float32),
                        "pooled_projections": rng.standard_normal((batch, t["pooled_projection_dim"]), np.float32),
                        "timestep": np.full((batch,), 500.0, np.float32)},
        "vae_decoder": {"latent_sample": rng.standard_normal((1, *latent), np.float32)},
    }


# per image; the UNet / transformer: one call per step
CALLS = {"text_encoder": 2, "text_encoder_2": 2, "vae_decoder": 1}


def floor(runner: str, folder: str, settings: dict) -> dict:
    """Median time of each graph alone, through the engines directly (no edge_sched code)."""
    from pathlib import Path

    inputs = graph_inputs(settings, folder)
    per_graph = {}
    for name, feeds in inputs.items():
        if runner == "floor-ov":
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(Path(folder) / name / "openvino_model.xml"))
            feeds = {p.get_any_name(): feeds[p.get_any_name()].astype(p.get_element_type().to_dtype())
                     for p in model.inputs}
            if settings.get("static"):
                model.reshape({k: list(v.shape) for k, v in feeds.items()})
            compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", **ov_precision(settings)})
            request = compiled.create_infer_request()
            call = lambda: request.infer(feeds)  # noqa: E731
        else:
            import onnxruntime as ort

            session = ort.InferenceSession(str(Path(folder) / name / "model.onnx"), providers=["CPUExecutionProvider"])
            feeds = {i.name: _fit(feeds[i.name], i) for i in session.get_inputs()}
            call = lambda: session.run(None, feeds)  # noqa: E731
        call()  # warm-up
        per_graph[name] = statistics.median(timed(call, settings["floor_repeats"]))
        del call
    calls = {**{n: CALLS[n] for n in per_graph if n in CALLS}, "unet": settings["steps"], "transformer": settings["steps"]}
    calls = {n: c for n, c in calls.items() if n in per_graph}
    total = sum(per_graph[n] * calls[n] for n in per_graph)
    return {"graphs_s": per_graph, "calls": calls, "floor_s": total, "peak_rss_mb": peak_rss_mb()}


def _fit(value, node):
    """``value`` in an ONNX input's element type, and a scalar where the input has rank 0."""
    import numpy as np

    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32}[node.type]
    value = value.astype(dtype)
    return value.reshape(-1)[:1].reshape(()) if len(node.shape) == 0 else value


def main() -> None:
    runner, folder, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if runner.startswith("floor"):
        print(json.dumps(floor(runner, folder, settings)))
        return
    make = edge_sched_pipeline if runner.startswith("edge_sched") else (
        genai_pipeline if runner == "genai" else optimum_pipeline)
    clock = GraphClock() if runner.startswith("edge_sched") else None
    run = make(runner, folder, settings)
    load = time.perf_counter() - T0
    MEMORY["after_load"] = status_mb("VmRSS")
    first = timed(run, 1)[0]
    steady, in_graphs = [], []
    for _ in range(settings["repeats"]):
        if clock:
            clock.reset()
        steady += timed(run, 1)
        in_graphs.append(clock.seconds if clock else 0.0)
    image = LAST_OUTPUT[0]  # the last steady image (same seed every time), kept for save_image
    result = {"load_s": load, "first_s": first, "cold_start_s": load + first, "steady_s": statistics.median(steady),
              "steady_all_s": steady, "peak_rss_mb": peak_rss_mb()}
    if clock and runner.startswith("edge_sched-ov"):  # what the device computed in (precision="fast": its default)
        result["inference_precision"] = getattr(clock.components.get("unet"), "inference_precision", None)
    if clock:
        result["graphs_s"] = statistics.median(in_graphs)
        result["per_graph_s"] = {k: v / clock.calls[k] for k, v in clock.per_graph.items()}  # per call, last image
        result["graph_calls"] = dict(clock.calls)  # per image
        # per image: its time minus its time inside the graphs
        result["overhead_s"] = statistics.median(t - g for t, g in zip(steady, in_graphs))
        # one more image, after the peak is taken: the peak inside each graph call
        MEMORY["between_images"] = status_mb("VmRSS")
        if reset_peak():
            clock.peaks = {}
            run()
            MEMORY["peak_in_graph"], clock.peaks = clock.peaks, None
    result["memory_mb"] = MEMORY
    if settings.get("save_image"):  # the last steady image, for comparisons across precisions (in [0, 1])
        import numpy as np

        image = np.asarray(image)
        np.save(settings["save_image"], image.astype(np.float32) / 255 if image.dtype == np.uint8 else image)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
