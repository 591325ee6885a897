"""Import and load time in fresh processes (issue 18 item 4): `import edge_sched` and the built-in digits
model's `from_pretrained` (the README's first command without the pip install) against `import torch;
import diffusers`, diffusers loading the same digits model from its torch weights, and optimum's pipeline
load beside ours on one exported folder (the tiny test SD, ONNX); plus what `import edge_sched` costs,
module by module (`python -X importtime`), and what the first scheduler costs after it (numpy and the
scheduler's modules, loaded on first use since `import edge_sched` imports neither).

    python benchmarks/import_time.py [--rounds 7]     # --quick: one round (tests/benchmarks runs it)

Every case runs in its own fresh process, the cases interleaved round by round, so that the machine's
drift lands on every case alike; figures are medians over the rounds with their spread (min-max).
The parent exports the tiny SD with torch before any timing and only waits while the children run.
Writes benchmarks/results/import_time.json and import_time.md (``--out`` names another results folder)
and, where that folder holds the suite's performance.json, regenerates RESULTS.md from it (report.py
appends import_time.md there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_DIGITS = ROOT / "tests" / "digits" / "model"  # the digits model's torch weights (DEVELOPERS.md)

# case -> (what it is, the child's code: "import" and "load" parts, each timed in the child)
CASES = {
    "edge_sched-import": ("import edge_sched", "import edge_sched", None),
    "edge_sched-scheduler": ("import edge_sched + the first scheduler: DPMSolverMultistepScheduler(), "
                             "set_timesteps(20)", "import edge_sched",
                             "edge_sched.DPMSolverMultistepScheduler().set_timesteps(20)"),
    "edge_sched-digits": ("import edge_sched + DiffusionPipeline.from_pretrained('digits')", "import edge_sched",
                          "edge_sched.DiffusionPipeline.from_pretrained('digits')"),
    "torch-diffusers-import": ("import torch; import diffusers", "import torch\nimport diffusers", None),
    "diffusers-digits": ("import torch, diffusers + DDPMPipeline.from_pretrained(digits torch weights)",
                         "import torch\nimport diffusers",
                         "diffusers.DDPMPipeline.from_pretrained({torch_digits!r})"),
    "edge_sched-tiny-sd": ("import edge_sched + StableDiffusionPipeline.from_pretrained(tiny SD, ONNX)",
                           "import edge_sched", "edge_sched.StableDiffusionPipeline.from_pretrained({onnx!r})"),
    "optimum-tiny-sd": ("import optimum.onnxruntime + ORTStableDiffusionPipeline.from_pretrained(tiny SD, ONNX)",
                        "from optimum.onnxruntime import ORTStableDiffusionPipeline",
                        "ORTStableDiffusionPipeline.from_pretrained({onnx!r})"),
}

CHILD = """
import time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
{load}
t2 = time.perf_counter()
import json, sys
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "optimum") if m in sys.modules)
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0, "heavy": heavy}}))
"""


def child_code(case: str, folders: dict) -> str:
    _, imports, load = CASES[case]
    load = (load or "pass").format(torch_digits=str(TORCH_DIGITS), onnx=str(folders.get("onnx")))
    return CHILD.format(imports=imports, load=load)


def run_case(case: str, folders: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", child_code(case, folders)], capture_output=True, text=True,
                          env=_child_env(), cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    if proc.returncode:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall}


# what -X importtime measures: the import, and the first scheduler after it (what a user's script runs)
COST_STATEMENTS = {"import": "import edge_sched",
                   "first_scheduler": "import edge_sched; edge_sched.DPMSolverMultistepScheduler().set_timesteps(20)"}


def import_costs(statement: str) -> dict:
    """`statement` under -X importtime: self time (ms) summed by owner: numpy, each edge_sched module,
    and each top-level module of the standard library (and site)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True,
                          text=True, cwd=tempfile.gettempdir(), check=True, env=_child_env())
    groups: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, name = _parse(line)
        if name.split(".")[0] == "numpy":
            owner = "numpy"
        elif name.startswith("edge_sched"):
            owner = name
        else:  # the standard library by top-level module (site: the interpreter's start)
            owner = f"Python: {name.split('.')[0]}"
        groups[owner] = groups.get(owner, 0.0) + self_us / 1000
    return groups


def _child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _parse(line: str) -> tuple[int, str]:
    self_us, _cumulative_us, name = line.removeprefix("import time:").split("|")
    return int(self_us), name.strip()


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one round (a check of the script, not a measurement)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "import_time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="results folder (results/ inside)")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds

    def say(message):
        print(message, file=sys.stderr, flush=True)

    folders = {}
    if any(c.endswith("tiny-sd") for c in args.cases):  # exported here, with torch, before any timing
        sys.path.insert(0, str(ROOT))
        folders["onnx"] = args.cache / "tiny-sd-onnx"
        if not folders["onnx"].exists():
            import export
            from tests.export.tiny import build_tiny_sd

            source = build_tiny_sd(args.cache / "tiny-sd-source")
            export.export_pipeline(source, folders["onnx"], format="onnx", progress=None)
    cases = [c for c in args.cases if c != "diffusers-digits" or TORCH_DIGITS.is_dir()]
    runs: dict[str, list[dict]] = {c: [] for c in cases}
    costs: dict[str, list[dict]] = {key: [] for key in COST_STATEMENTS}
    load_start = os.getloadavg()
    for round_no in range(rounds):
        say(f"round {round_no + 1} of {rounds}")
        for case in cases:
            runs[case].append(run_case(case, folders))
        for key, statement in COST_STATEMENTS.items():
            costs[key].append(import_costs(statement))
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": rounds,
               "load_average": [round(load_start[0], 2), round(os.getloadavg()[0], 2)], "cases": {}}
    for case, rows in runs.items():
        failed = next((r for r in rows if "error" in r), None)
        if failed:
            results["cases"][case] = {"what": CASES[case][0], **failed}
            continue
        results["cases"][case] = {"what": CASES[case][0], "heavy_modules": rows[0]["heavy"],
                                  **{key: summarize([r[key] for r in rows])
                                     for key in ("import_s", "load_s", "total_s", "process_s")}}
    for key, rows in costs.items():
        owners = {k for c in rows for k in c}
        medians = {k: statistics.median(c.get(k, 0.0) for c in rows) for k in owners}
        results[f"{key}_costs_ms"] = dict(sorted(medians.items(), key=lambda kv: -kv[1]))
    (args.out / "results").mkdir(parents=True, exist_ok=True)
    (args.out / "results" / "import_time.json").write_text(json.dumps(results, indent=1) + "\n")
    text = "\n".join(markdown(results))
    (args.out / "results" / "import_time.md").write_text(text + "\n")
    print(text)
    if (args.out / "results" / "performance.json").is_file():  # RESULTS.md appends import_time.md
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from report import regenerate

        regenerate(args.out)
        say(f"wrote {args.out / 'RESULTS.md'}")
    return 1 if any("error" in r for r in results["cases"].values()) else 0


def markdown(results: dict) -> list[str]:
    """The import/load table and what the import and the first scheduler cost by module."""
    load = results.get("load_average")
    lines = ["# Import and load time (`python benchmarks/import_time.py`)", "",
             f"Fresh processes, cases interleaved over {results['rounds']} rounds ({results['date']}"
             + (f"; 1-minute load average {load[0]:.2f} at the start, {load[1]:.2f} at the end" if load else "")
             + "); medians (min-max) in seconds: the import, the load after it, both, and the whole process as the "
             "shell sees it (interpreter start and exit included).", "",
             "| case | import s | load s | import + load s | process s | torch-side modules loaded |",
             "|---|---|---|---|---|---|"]

    def cell(v):
        return f"{v['median']:.3f} ({v['min']:.3f}-{v['max']:.3f})"

    for case, r in results["cases"].items():
        if "error" in r:
            lines.append(f"| {r['what']} | failed: {r['error'][:120]} | | | | |")
            continue
        lines.append(f"| {r['what']} | {cell(r['import_s'])} | {cell(r['load_s'])} | {cell(r['total_s'])} | "
                     f"{cell(r['process_s'])} | {', '.join(r['heavy_modules']) or 'none'} |")
    for key, statement in COST_STATEMENTS.items():
        costs = results.get(f"{key}_costs_ms", {})
        if not costs:
            continue
        lines += ["", f"What `{statement}` costs (`python -X importtime`, self times summed by owner, median over "
                  f"the rounds; total {sum(costs.values()):.0f} ms):", "", "| module | ms |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in costs.items() if v >= 1.0]
        small = [v for v in costs.values() if v < 1.0]
        if small:
            lines.append(f"| {len(small)} other modules, under 1 ms each | {sum(small):.1f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
