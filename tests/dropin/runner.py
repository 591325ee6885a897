"""Run every catalogue case in this process: ``python -m tests.dropin.runner ours|reference OUT``.

"ours": the ported script (catalogue.port), with torch, diffusers, transformers, optimum (and jax,
flax, accelerate) made unimportable before anything else is imported, and huggingface_hub's uploads
replaced by a recorder (no network here). "reference": the script as written. The Hub comes from the
cache that HF_HUB_CACHE names (offline). Each case runs in its own folder under OUT (init.png and
mask.png are there); what it leaves in a few usual names (image, images, grid, latents, ...) is saved
to OUT/<case>.npz, and OUT/results.json records whether it ran, its output and its error.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import io
import json
import os
import shutil
import sys
import traceback
from pathlib import Path

BLOCKED = ("torch", "diffusers", "transformers", "optimum", "jax", "flax", "accelerate")
#: names whose values are kept for the comparison
KEPT = ("image", "images", "grid", "latents", "timesteps", "schedule", "config", "input_ids", "sample_size",
        "channels", "steps", "names", "first")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in the ported run (no torch stack on the device)", name=name)
        return None


def _record_uploads(log: list) -> None:
    import huggingface_hub

    class Repo:
        def __init__(self, repo_id):
            self.repo_id = repo_id

    def create_repo(api, repo_id, **kwargs):
        log.append(("create_repo", repo_id))
        return Repo(repo_id)

    def upload_folder(api, *, repo_id, folder_path, **kwargs):
        log.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
        return f"https://huggingface.co/{repo_id}"

    huggingface_hub.HfApi.create_repo = create_repo
    huggingface_hub.HfApi.upload_folder = upload_folder


def _value(value):
    """A kept value as a numpy array (images as their 8-bit levels), or None when it is not numeric."""
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor (reference side)
        value = value.detach().cpu()
        value = (value.float() if value.is_floating_point() else value).numpy()
    if hasattr(value, "getpixel"):
        return np.asarray(value.convert("RGB"), dtype=np.uint8)
    if isinstance(value, list) and value and hasattr(value[0], "getpixel"):
        return np.stack([np.asarray(v.convert("RGB"), dtype=np.uint8) for v in value])
    if isinstance(value, dict):
        return None
    try:
        array = np.asarray(value)
    except Exception:
        return None
    return array if array.dtype.kind in "fiub" else None


def _plain(value):
    """A kept value that is not numeric, as JSON (dicts, strings, lists of them), or None."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return None


def main(side: str, out: Path) -> None:
    uploads: list = []
    if side == "ours":
        sys.meta_path.insert(0, Blocker())
        _record_uploads(uploads)
    import numpy as np

    from tests.dropin.catalogue import CASES, port

    out.mkdir(parents=True, exist_ok=True)
    results = {}
    only = [n for n in os.environ.get("DROPIN_ONLY", "").split(",") if n]  # for working on a few cases
    for case in CASES:
        if only and case.name not in only:
            continue
        if side == "reference" and not case.reference:
            continue
        work = out / case.name
        work.mkdir(parents=True, exist_ok=True)
        for picture in ("init.png", "mask.png"):
            shutil.copy(out.parent / picture, work / picture)
        script = port(case.script) if side == "ours" else case.script
        namespace = {"__name__": "__main__"}
        printed = io.StringIO()
        entry = {"ok": True}
        with contextlib.chdir(work), contextlib.redirect_stdout(printed):
            try:
                exec(compile(script, f"<{case.name}>", "exec"), namespace)
            except BaseException as e:  # noqa: BLE001 - every failure is the case's result
                entry = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        entry["stdout"] = printed.getvalue()[-4000:]
        kept = {k: _value(namespace[k]) for k in KEPT if k in namespace}
        np.savez(out / f"{case.name}.npz", **{k: v for k, v in kept.items() if v is not None})
        entry["kept"] = sorted(k for k, v in kept.items() if v is not None)
        entry["values"] = {k: _plain(namespace[k]) for k, v in kept.items() if v is None}
        results[case.name] = entry
    heavy = sorted(m for m in BLOCKED if m in sys.modules)
    (out / "results.json").write_text(json.dumps({"cases": results, "uploads": uploads, "heavy_modules": heavy}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
