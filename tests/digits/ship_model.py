"""Build the built-in ``digits`` model folder (``edge_sched/models/digits/``) from the trained diffusers
folder, through ``export.export_pipeline`` (workstation side: needs torch, diffusers, openvino).

    python -m tests.digits.ship_model [--model /work/digits_model]

What ships (optimum's layout):

- ``unet/model.onnx``: ONNX, float32 weights, ``scheduler/``, ``model_index.json`` (``DDPMPipeline``),
  ``unet/config.json``: the built-in ``"digits"``; ONNX Runtime runs it, and so does OpenVINO (which
  reads ONNX), both at image parity with torch;
- ``openvino/``: the same pipeline as OpenVINO IR with float16 weights (half the size, computed in
  float32), its own ``model_index.json`` etc.; a separate folder because ``backend="auto"`` prefers IR
  over ONNX, and the fp16 weights move images by ~4e-3 (ONNX: ~4e-6), so "digits" stays exact;
- ``class_labels.json`` (both folders): class names, the null class, the default guidance scale;
- ``edge_sched.json`` (both folders): the export manifest; file hashes recomputed over the final
  folder (``export.verify_manifest`` passes);
- ``README.md`` (the model card) and ``classifier.npz`` are kept as they are.

The trained torch folder is copied to ``tests/digits/model/`` (tests only, not in the wheel; the torch
parity tests and a re-export read it there), with its model card (``README.md``, how it was trained).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "edge_sched" / "models" / "digits"
TEST_MODEL = REPO / "tests" / "digits" / "model"
TEST_FILES = ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
              "unet/diffusion_pytorch_model.safetensors", "training.json", "labels.json", "README.md")
KEEP = ("README.md", "classifier.npz")  # written by hand / by the classifier's trainer
CLASS_LABELS = {"names": [str(d) for d in range(10)], "null_class": 10, "guidance_scale": 3.0}
MAX_BYTES = 5_000_000  # everything shipped in the package folder ("5 MB", decimal, to be safe)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _finish_manifest(folder: Path, manifest: dict) -> None:
    from export.pipeline import MANIFEST, file_hashes

    manifest["source"] = {"id": "examples/train_digits.py (seed 0)", "kind": "local", "revision": None}
    manifest["files"] = file_hashes(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def ship(model: Path) -> dict:
    import export

    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "onnx"
        ov = Path(tmp) / "openvino"
        manifest = export.export_pipeline(model, onnx, format="onnx", dtype="fp32")
        ov_manifest = export.export_pipeline(model, ov, format="openvino", dtype="fp16")
        for folder in (onnx, ov):
            (folder / "class_labels.json").write_text(json.dumps(CLASS_LABELS, indent=2) + "\n", encoding="utf-8")
            index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
            index["_name_or_path"] = "digits"  # not the workstation's path
            (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for name in KEEP:
            if (TARGET / name).is_file():
                shutil.copy2(TARGET / name, onnx / name)
        _finish_manifest(ov, ov_manifest)
        shutil.copytree(ov, onnx / "openvino")
        _finish_manifest(onnx, manifest)
        size = folder_bytes(onnx)
        if size > MAX_BYTES:
            raise SystemExit(f"the digits folder would be {size} bytes, more than {MAX_BYTES}")
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(onnx, TARGET)
        for folder in (TARGET, TARGET / "openvino"):
            folder.chmod(0o755)  # the temporary folders were private

    if model.resolve() != TEST_MODEL.resolve():
        for rel in TEST_FILES:
            (TEST_MODEL / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model / rel, TEST_MODEL / rel)
    return {"bytes": folder_bytes(TARGET), "onnx": manifest["validation"], "openvino": ov_manifest["validation"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=TEST_MODEL,
                        help="the trained diffusers folder (default: the copy under tests/digits/model)")
    args = parser.parse_args(argv)
    print(json.dumps(ship(args.model), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
