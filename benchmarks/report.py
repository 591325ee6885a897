"""RESULTS.md, performance.json and the chart from the performance suite's results (benchmarks/performance.py)."""

from __future__ import annotations

import json
from pathlib import Path

# runners in the order of the table, with what they are
LABELS = {
    "edge_sched-ort": "edge_sched, ONNX Runtime",
    "edge_sched-ort-lowmem": "edge_sched, ONNX Runtime, low-memory mode",
    "edge_sched-ort-noarena": "edge_sched, ONNX Runtime, memory arena off",
    "edge_sched-ort-fast": "edge_sched, ONNX Runtime, precision=\"fast\" (float32 on the CPU provider)",
    "optimum-ort": "optimum ORTStableDiffusionPipeline",
    "edge_sched-ov": "edge_sched, OpenVINO, static shapes (pipe.reshape)",
    "edge_sched-ov-cache": "edge_sched, OpenVINO, static shapes, warm compile cache",
    "edge_sched-ov-dynamic": "edge_sched, OpenVINO, dynamic shapes",
    "edge_sched-ov-lowmem": "edge_sched, OpenVINO, low-memory mode, static shapes",
    "edge_sched-ov-fast": "edge_sched, OpenVINO, static shapes, precision=\"fast\" (device default)",
    "edge_sched-ov-dynamic-fast": "edge_sched, OpenVINO, dynamic shapes, precision=\"fast\" (device default)",
    "optimum-ov": "optimum OVStableDiffusionPipeline",
    "optimum-ov-static": "optimum OVStableDiffusionPipeline, reshaped",
    "optimum-ov-bf16": "optimum OVStableDiffusionPipeline, device default precision",
    "genai": "openvino-genai Text2ImagePipeline (C++)",
    "genai-static": "openvino-genai Text2ImagePipeline, reshaped",
    "genai-bf16": "openvino-genai Text2ImagePipeline, device default precision",
}


def _f(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def floor_of(results: dict, runner: str) -> float | None:
    """The floor measured with the runner's own engine and shape settings."""
    settings = results["runners"].get(runner, {}).get("settings", {})
    if "ort" in runner:
        name = "floor-ort"  # precision="fast" is float32 on ONNX Runtime's CPU provider
    else:
        name = "floor-ov-static" if settings.get("static", False) else "floor-ov"
        if settings.get("precision") == "default":  # the floor measured in the same (device default) precision
            name += "-fast"
    return results["floors"].get(name, {}).get("floor_s")


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, bound, met) rows."""
    r, rows = results["runners"], []

    def get(runner, key):
        return r.get(runner, {}).get(key)

    def row(name, value, bound, text_value, text_bound):
        met = None if value is None or bound is None else value <= bound
        rows.append((name, text_value, text_bound, met))

    def over_floor(runner):
        steady, floor = get(runner, "steady_s"), floor_of(results, runner)
        return steady / floor if steady and floor else None

    for ours, peer in (("edge_sched-ov", "genai-static"), ("edge_sched-ov-dynamic", "genai")):
        ratio = over_floor(ours)
        row(f"steady image / floor, {LABELS[ours]}", ratio, 1.05, f"{_f(ratio, 3)}x",
            f"<= 1.05x ({LABELS[peer]}: {_f(over_floor(peer), 3)}x)")
    for ours, peer in (("edge_sched-ov-fast", "genai-bf16"), ("edge_sched-ov-dynamic-fast", "genai-bf16")):
        steady, theirs = get(ours, "steady_s"), get(peer, "steady_s")
        ratio = steady / theirs if steady and theirs else None
        row(f"steady image, {LABELS[ours]} / {LABELS[peer]}", ratio, 1.0, f"{_f(ratio, 3)}x ({_f(steady)} s)",
            f"<= 1.0x ({_f(theirs)} s)")
        ratio = over_floor(ours)
        row(f"steady image / floor in that precision, {LABELS[ours]}", ratio, 1.05, f"{_f(ratio, 3)}x",
            f"<= 1.05x ({LABELS[peer]}: {_f(over_floor(peer), 3)}x)")
    ours, theirs = get("edge_sched-ort", "steady_s"), get("optimum-ort", "steady_s")
    ratio = ours / theirs if ours and theirs else None
    row("ONNX Runtime steady image / optimum's", ratio, 1.0, f"{_f(ratio, 3)}x", "<= 1.0x")
    cold = {n: get(n, "cold_start_s") for n in ("edge_sched-ov", "edge_sched-ov-dynamic", "edge_sched-ov-cache")
            if get(n, "cold_start_s")}
    best = min(cold, key=cold.get) if cold else None
    theirs = get("genai", "cold_start_s")
    row("cold start to first image vs openvino-genai", cold.get(best), theirs,
        f"{_f(cold.get(best))} s ({LABELS.get(best, '-')})", f"< {_f(theirs)} s")
    load, cold_load = get("edge_sched-ov-cache", "load_s"), get("edge_sched-ov-cache", "cold_cache_load_s")
    row("import+load, warm compile cache (static shapes)", load, 3.0, f"{_f(load)} s (cold cache: {_f(cold_load)} s; "
        f"static shapes, no cache: {_f(get('edge_sched-ov', 'load_s'))} s; "
        f"dynamic shapes, no cache: {_f(get('edge_sched-ov-dynamic', 'load_s'))} s)", "<= 3 s")
    base = get("optimum-ort", "peak_rss_mb")
    for runner in ("edge_sched-ort", "edge_sched-ov", "edge_sched-ov-dynamic"):
        ours = get(runner, "peak_rss_mb")
        ratio = ours / base if ours and base else None
        row(f"peak RSS, {LABELS[runner]} / optimum ORT", ratio, 0.75, f"{_f(ratio, 3)}x ({_f(ours, 0)} MB)",
            f"<= 0.75x ({_f(base, 0)} MB)")
    largest = max(results.get("component_mb", {}).values(), default=None)
    for runner in ("edge_sched-ov-lowmem", "edge_sched-ort-lowmem"):
        ours = get(runner, "peak_rss_mb")
        row(f"peak RSS, {LABELS[runner]}", ours, largest * 1.2 if largest else None, f"{_f(ours, 0)} MB",
            f"<= {_f(largest * 1.2 if largest else None, 0)} MB (largest component {_f(largest, 0)} MB + 20%)")
    for runner in ("edge_sched-ov", "edge_sched-ov-dynamic", "edge_sched-ort"):
        over, steady = get(runner, "overhead_s"), get(runner, "steady_s")
        share = over / steady if over is not None and steady else None
        row(f"non-model overhead, {LABELS[runner]}", share, 0.01,
            f"{_f(100 * share if share is not None else None, 2)}% ({_f(over * 1000 if over is not None else None, 0)} ms)",
            "<= 1%")
    fp = results.get("footprint_mb", {})
    for ours, theirs in (("edge_sched[onnx]", "optimum-onnx + torch"), ("edge_sched[openvino]", "optimum-intel + torch")):
        if fp.get(ours) and fp.get(theirs):
            ratio = fp[ours] / fp[theirs]
            row(f"install footprint, {ours} / {theirs}", ratio, 0.1, f"{ratio:.3f}x ({fp[ours]:.0f} MB)",
                f"<= 0.1x ({fp[theirs]:.0f} MB)")
    return rows


def markdown(results: dict) -> str:
    s = results["settings"]
    rounds_text = ""
    if any(r.get("rounds", 1) > 1 for r in results["runners"].values()):
        rounds_text = (", and where a runner ran in several interleaved rounds (`--rounds`), the median over the "
                       "rounds (each round's in brackets)")
    lines = [
        "# Performance: edge_sched against optimum and openvino-genai",
        "",
        f"Generated by `python benchmarks/performance.py` on {results['date']}. Machine: {results['machine']}.",
        "",
        f"Model: {'SD1.5 architecture with random weights (same FLOPs and sizes as the real model)' if results['model'] == 'sd15' else 'tiny test pipeline'},"
        f" exported by our `export/` (fp32): ONNX {_f(results['sizes_mb'].get('onnx'), 0)} MB, OpenVINO IR {_f(results['sizes_mb'].get('openvino'), 0)} MB."
        f" {s['height']}x{s['width']}, {s['steps']} steps (Euler), guidance {s['guidance_scale']} (classifier-free: UNet batch 2), one image,"
        f" fp32 compute unless marked, all cores, one process per runner. Steady image: median of {s['repeats']} after the first"
        f"{rounds_text};"
        " peak RSS: the process's VmHWM; import+load counts from the runner's first line, imports included"
        " (the graphs' folder was read into the page cache just before; no compile cache unless marked).",
        "",
        *[f"Note: {n}" for n in results.get("notes", [])],
        *([""] if results.get("notes") else []),
        "| runner | import+load s | first image s | cold start s | steady image s | steady / floor | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["runners"].items():
        label = LABELS.get(name, name)
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error'].splitlines()[-1][:120]} | | | | | |")
            continue
        floor = floor_of(results, name)
        ratio = f"{r['steady_s'] / floor:.3f}x" if floor else "-"
        steady = _f(r["steady_s"])
        if r.get("rounds_steady_s"):  # the median over rounds, and each round's
            steady += f" ({', '.join(_f(v) for v in r['rounds_steady_s'])})"
        lines.append(f"| {label} | {_f(r['load_s'])} | {_f(r['first_s'])} | {_f(r['cold_start_s'])} | "
                     f"{steady} | {ratio} | {_f(r['peak_rss_mb'], 0)} |")
    if results["floors"]:
        lines += ["", "Floors: each graph alone through the engine's own API (median of "
                  f"{s['floor_repeats']}), times the calls one image makes (text encoder x2, UNet x{s['steps']}, VAE decoder x1):", "",
                  "| floor | text encoder s | UNet s (batch 2) | VAE decoder s | image floor s |", "|---|---|---|---|---|"]
        for name, f in results["floors"].items():
            if "error" in f:
                lines.append(f"| {name} | failed: {f['error'].splitlines()[-1][:120]} | | | |")
                continue
            g = f["graphs_s"]
            rounds = f" ({', '.join(_f(v) for v in f['rounds_floor_s'])})" if f.get("rounds_floor_s") else ""
            lines.append(f"| {name} | {_f(g['text_encoder'], 3)} | {_f(g['unet'], 3)} | {_f(g['vae_decoder'], 3)} | "
                         f"{_f(f['floor_s'])}{rounds} |")
    lines += precision_table(results)
    lines += memory_profile(results)
    rows = targets(results)
    lines += ["", "## Targets", "", "| target | measured | bound | met |", "|---|---|---|---|"]
    for name, measured, bound, met in rows:
        lines.append(f"| {name} | {measured} | {bound} | {'-' if met is None else ('yes' if met else 'NO')} |")
    if results.get("variants"):
        v = results["variants"]
        lines += ["", "## Weight precision (`python benchmarks/weight_variants.py`)", "",
                  f"edge_sched (OpenVINO with static shapes), fp32 compute, {v['settings']['height']}x{v['settings']['width']}, "
                  f"{v['settings']['steps']} steps; image difference against the fp32 graphs of the same format, same "
                  "seed (images in [0, 1]; random weights make the images noise-like, so this is a worst case "
                  "for how far the numbers move, not a judgement of picture quality):", "",
                  "| weights | size MB | steady image s | peak RSS MB | max abs image diff | mean abs image diff |",
                  "|---|---|---|---|---|---|"]
        for name, r in v["rows"].items():
            if "error" in r:
                lines.append(f"| {name} | failed: {r['error'].splitlines()[-1][:120]} | | | | |")
                continue
            lines.append(f"| {name} | {r['size_mb']:.0f} | {_f(r['steady_s'])} | {_f(r['peak_rss_mb'], 0)} | "
                         f"{_f(r.get('max_abs_image_diff'), 4)} | {_f(r.get('mean_abs_image_diff'), 5)} |")
    if results.get("footprint_mb"):
        lines += ["", "Install footprint (fresh virtual environment, constraints.txt; MB on disk):", "",
                  "| install | MB |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in results["footprint_mb"].items()]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v), ""]
    return "\n".join(lines)


def precision_table(results: dict) -> list[str]:
    """The device-default-precision rows against the same runner in f32: time, and how far the image moved."""
    from performance import F32_PEERS

    r = results["runners"]
    rows = [(fast, exact) for fast, exact in F32_PEERS.items() if fast in r and "error" not in r[fast]]
    if not rows:
        return []
    lines = ["", "## Device default precision against f32", "",
             "Each runner in the device's default precision (ours: `precision=\"fast\"`; the peers' default) against "
             "the same runner in f32, same seed; image difference on [0, 1] images (openvino-genai's are 8-bit; "
             "random weights make the images noise-like: a worst case for how far the numbers move).", "",
             "| runner | computes in | steady image s | f32 steady s | speed-up | steady / floor (same precision) "
             "| max abs image diff | mean abs image diff |", "|---|---|---|---|---|---|---|---|"]
    for fast, exact in rows:
        diff = r[fast].get("image_diff_vs_f32", {})
        steady, base = r[fast].get("steady_s"), r.get(exact, {}).get("steady_s")
        floor = floor_of(results, fast)
        lines.append(f"| {LABELS.get(fast, fast)} | {r[fast].get('inference_precision') or ('f32' if 'ort' in fast else 'device default')} | "
                     f"{_f(steady)} | {_f(base)} | {_f(base / steady if steady and base else None)}x | "
                     f"{_f(steady / floor if steady and floor else None, 3)}x | {_f(diff.get('max_abs'), 4)} | "
                     f"{_f(diff.get('mean_abs'), 5)} |")
    return lines


def memory_profile(results: dict) -> list[str]:
    """Where the peak comes from: RSS after the imports, after loading and between images, and the
    high-water mark inside each graph call of one more image (VmHWM reset before each call)."""
    rows = {n: r["memory_mb"] for n, r in results["runners"].items() if r.get("memory_mb")}
    if not rows:
        return []
    sizes = results.get("component_mb", {})
    lines = ["", "## Memory profile (MB)", "",
             "RSS after the runner's imports, after loading, between two images, and the peak inside each graph "
             "call of one more image (edge_sched runners; measured after the peak RSS was taken). On disk: "
             + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()) + ".", "",
             "| runner | after imports | after load | between images | peak in text encoder | peak in UNet "
             "| peak in VAE decoder | peak RSS |", "|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        inside = m.get("peak_in_graph", {})
        lines.append(f"| {LABELS.get(name, name)} | {_f(m.get('after_imports'), 0)} | {_f(m.get('after_load'), 0)} | "
                     f"{_f(m.get('between_images'), 0)} | {_f(inside.get('text_encoder'), 0)} | "
                     f"{_f(inside.get('unet'), 0)} | {_f(inside.get('vae_decoder'), 0)} | "
                     f"{_f(results['runners'][name]['peak_rss_mb'], 0)} |")
    return lines


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runners = [n for n, r in results["runners"].items() if "error" not in r]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(runners) + 1.6), sharey=True)
    for ax, key, title in zip(axes, ("steady_s", "cold_start_s", "peak_rss_mb"),
                              ("steady image (s)", "cold start to first image (s)", "peak RSS (MB)")):
        values = [results["runners"][n][key] for n in runners]
        colors = ["tab:green" if n.startswith("edge_sched") else "tab:gray" for n in runners]
        ax.barh(range(len(runners)), values, color=colors)
        ax.set_title(title)
        if key == "steady_s":
            floor = results["floors"].get("floor-ov-static", {}).get("floor_s")
            if floor:
                ax.axvline(floor, color="tab:red", linestyle="--", label="OpenVINO floor (static)")
                ax.legend(loc="lower right")
    axes[0].set_yticks(range(len(runners)), [LABELS.get(n, n) for n in runners])
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    (out / "results" / "performance.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "RESULTS.md").write_text(markdown(results) + "\n![performance chart](results/performance.png)\n")
    chart(results, out / "results" / "performance.png")
