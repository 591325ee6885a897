"""edge_sched.heap: with its malloc thresholds a scheduler loop reuses freed memory instead of
page-faulting fresh pages in at every step (measured in fresh processes; no timings asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

LOOP = r"""
import json, resource
import numpy as np
import edge_sched
from edge_sched.heap import trim_heap
s = edge_sched.HeunDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
rng = np.random.default_rng(0)
x0 = rng.standard_normal((2, 4, 128, 128)).astype(np.float32)
eps = rng.standard_normal((2, 4, 128, 128)).astype(np.float32)
faults = []
for loop in range(3):
    s.set_timesteps(10)
    x, before = x0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for t in s.timesteps:
        x = s.step(eps, t, s.scale_model_input(x, t)).prev_sample
    faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(s.timesteps))
trim_heap()  # still gives freed heap back when asked
print(json.dumps(faults[1:]))
"""


def _faults_per_step(tuning: str) -> list[float]:
    env = {**os.environ, "EDGE_SCHED_MALLOC_TUNING": tuning}
    out = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_scheduler_loop_reuses_freed_memory():
    tuned, untuned = _faults_per_step("1"), _faults_per_step("0")
    assert max(tuned) <= 1, tuned  # warm loops: the step's 512 KB temporaries come from the heap
    assert min(untuned) > 10 * max(max(tuned), 1), untuned  # glibc's adaptive thresholds alone fault them in
