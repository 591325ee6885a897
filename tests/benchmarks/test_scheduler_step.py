"""benchmarks/scheduler_step.py runs end to end: diffusers here, edge_sched in its torch-free child,
a row per scheduler and the floors. Timings are the benchmark's business (no timed assertions)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_a_row_per_scheduler_and_the_floors():
    names = ["EulerDiscreteScheduler", "DDPMScheduler", "FlowMatchEulerDiscreteScheduler"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scheduler_step.py"), "--quick", "--steps", "4", "--only", *names],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r"^\| (\w+) \| 1x4x64x64 \| (\d+) \| (\d+) \| ([\d.]+)x \| ([\d.]+)x \|$", proc.stdout, re.M)
    assert sorted(r[0] for r in rows) == sorted(names * 2)  # the live rows and the final table
    assert all(int(ref) > 0 and int(ours) > 0 for _, ref, ours, _, _ in rows)
    assert re.search(r"Update floor \(x \+ c \* eps\) [\d.]+ us\. One noise draw: torch.randn \d+ us, "
                     r"TorchGenerator.randn \d+ us, of which numpy's Mersenne Twister words \d+ us\.", proc.stdout)


def test_unknown_scheduler_is_refused_by_name():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scheduler_step.py"), "--quick", "--only", "NoSuchScheduler"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "NoSuchScheduler" in proc.stderr
