"""`import edge_sched` imports no scheduler module, no engine and not numpy (issue 18 item 4); every
public name still resolves, and the registry knows every scheduler class without importing it."""

import json
import subprocess
import sys

CHILD = r"""
import json, sys
import edge_sched
loaded = sorted(m for m in sys.modules if m.startswith(("edge_sched", "numpy", "onnxruntime", "openvino")))
import edge_sched.schedulers as s
from edge_sched.schedulers import SCHEDULER_CLASSES
names = sorted(SCHEDULER_CLASSES)                       # listing the names imports nothing
after_names = sorted(m for m in sys.modules if m.startswith("edge_sched.schedulers."))
missing = [n for n in edge_sched.__all__ if getattr(edge_sched, n, None) is None]
missing += [n for n in s.__all__ if getattr(s, n, None) is None]
star = {}
exec("from edge_sched.schedulers import *", star)
import importlib, pkgutil
for m in pkgutil.iter_modules(s.__path__):
    importlib.import_module("edge_sched.schedulers." + m.name)
defined = {n: c.__module__ for n, c in SCHEDULER_CLASSES.items()}
print(json.dumps({"loaded": loaded, "after_names": after_names, "names": names, "missing": missing,
                  "star_missing": [n for n in s.__all__ if n not in star], "dir_missing":
                  [n for n in edge_sched.__all__ if n not in dir(edge_sched)] + [n for n in s.__all__ if n not in dir(s)],
                  "defined": defined, "builtin": s.registry.BUILTIN}))
"""


def _child():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_is_lazy_and_every_name_resolves():
    r = _child()
    assert r["loaded"] == ["edge_sched", "edge_sched.heap", "edge_sched.schedulers", "edge_sched.schedulers.registry"]
    assert r["after_names"] == ["edge_sched.schedulers.registry"]
    assert r["missing"] == [] and r["star_missing"] == [] and r["dir_missing"] == []
    # the registry's table names exactly the classes the modules define, each with its module
    assert set(r["names"]) == set(r["defined"]) == set(r["builtin"])
    assert {n: m.rsplit(".", 1)[1] for n, m in r["defined"].items()} == r["builtin"]


def test_class_name_lookup_imports_only_its_module():
    code = ("import sys; from edge_sched.schedulers import scheduler_class; c = scheduler_class('LMSDiscreteScheduler');"
            "c2 = c.from_config({'_class_name': 'LMSDiscreteScheduler'}); print(type(c2).__name__,"
            "'edge_sched.schedulers.lms' in sys.modules, 'edge_sched.schedulers.sa_solver' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["LMSDiscreteScheduler", "True", "False"]
