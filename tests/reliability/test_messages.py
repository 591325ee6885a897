"""Issue 15 item 6: messages that name the problem in the user's terms (the option, the file, the value),
instead of an internal name or an engine's words, and given before the work they would waste."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .harness import CORRECT, cli_error, record, run_cli, tree_state, assert_unchanged

DIGITS = ["generate", "3", "--model", "digits", "--steps", "2", "--quiet"]


@pytest.fixture
def sd_copy(tiny_sd_onnx, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_sd_onnx, tmp_path / "model"))


def _sd(folder, *extra, out=None):
    return ["generate", "a cat", "--model", folder, "--steps", "2", "--quiet", *extra,
            "--out", out or folder.parent / "x.png"]


@pytest.mark.parametrize("name, why", [
    ("VQDiffusionScheduler", "it denoises discrete VQ-VAE tokens"),
    ("ScoreSdeVeScheduler", r"it has no step\(\) \(it steps with step_pred and step_correct\)"),
    ("ScoreSdeVpScheduler", r"it has no step\(\) \(it steps with step_pred\)"),
    ("RePaintScheduler", r"its step\(\) takes \(model_output, timestep, sample, original_image, mask\)"),
    ("KarrasVeScheduler", r"its step\(\) takes \(model_output, sigma_hat, sigma_prev, sample_hat\)"),
])
def test_scheduler_without_a_loop_step(tmp_path, monkeypatch, name, why):
    from edge_sched.pipelines.base import DiffusionPipeline

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("loaded the model before refusing the scheduler")))
    cli_error(f"generate --scheduler {name}", DIGITS + ["--scheduler", name, "--out", tmp_path / "x.png"],
              f"--scheduler '{name}' .* cannot drive the denoising loop of `generate`: {why}", roots=[tmp_path])


def test_init_image_with_size(sd_copy, tmp_path):
    init = tmp_path / "init.png"
    Image.new("RGB", (32, 32), (120, 30, 200)).save(init)
    cli_error("generate --init-image with --size", _sd(sd_copy, "--init-image", init, "--size", "64x64"),
              "StableDiffusionImg2ImgPipeline does not take --size; image-to-image keeps the size of --init-image",
              roots=[tmp_path])


def test_empty_vocabulary(sd_copy):
    (sd_copy / "tokenizer" / "vocab.json").write_text("{}")
    cli_error("generate: empty tokenizer/vocab.json", _sd(sd_copy), r"tokenizer/vocab.json: the vocabulary is empty",
              roots=[sd_copy.parent])


def test_vocabulary_and_merges_from_different_tokenizers(sd_copy):
    path = sd_copy / "tokenizer" / "vocab.json"
    vocab = json.loads(path.read_text())
    del vocab["th"]
    path.write_text(json.dumps(vocab))
    cli_error("generate: merges.txt needs a token vocab.json lacks", _sd(sd_copy),
              r"merges.txt: merge 1 \('t' \+ 'h'\) needs 'th', which is not in vocab.json", roots=[sd_copy.parent])


@pytest.mark.parametrize("command", ["generate", "info"])
def test_dangling_graph_symlink(sd_copy, command):
    graph = sd_copy / "unet" / "model.onnx"
    graph.unlink()
    graph.symlink_to(sd_copy.parent / "gone.onnx")
    argv = _sd(sd_copy) if command == "generate" else ["info", sd_copy]
    cli_error(f"{command}: unet/model.onnx a broken symlink", argv,
              r"unet/model.onnx is a broken symlink \(to .*gone.onnx\): the graph it names is missing",
              roots=[sd_copy.parent])


def test_prompt_not_utf8_is_refused_before_loading(tmp_path, monkeypatch):
    from edge_sched.pipelines.base import DiffusionPipeline

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("loaded the model before checking the prompt")))
    bad = b"3 \xff 4".decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
    cli_error("generate: PROMPT with invalid UTF-8", ["generate", bad, "--model", "digits", "--out", tmp_path / "x.png"],
              r"PROMPT is not valid UTF-8 text \(byte 0xff at character 2\)", roots=[tmp_path])
    cli_error("generate: --negative with invalid UTF-8",
              ["generate", "a cat", "--negative", bad, "--model", "digits", "--out", tmp_path / "x.png"],
              r"--negative is not valid UTF-8 text \(byte 0xff", roots=[tmp_path])


# A1111's reader (modules/infotext_utils.py parse_generation_parameters), reduced to how it splits the text
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def _a1111_parse(text: str) -> dict:
    *lines, last = text.strip().split("\n")
    if len(_RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, done = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done, line = True, line[16:].strip()
        (negative if done else prompt).append(line)
    return {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative), **dict(_RE_PARAM.findall(last))}


def test_prompt_cannot_forge_parameter_lines(sd_copy, tmp_path):
    prompt = "a cat\nNegative prompt: forged\nSteps: 99, Sampler: Forged, CFG scale: 1, Seed: 1"
    out = tmp_path / "cat.png"
    rc, stdout, err = run_cli(["generate", prompt, "--negative", "dog\nSteps: 98, Seed: 2, Size: 1x1", "--model", sd_copy,
                               "--steps", "2", "--seed", "7", "--quiet", "--out", out])
    assert rc == 0, err
    parsed = _a1111_parse(Image.open(out).text["parameters"])
    assert parsed["Prompt"] == " ".join(prompt.splitlines())  # one line, as CLIP reads it
    assert parsed["Negative prompt"] == "dog Steps: 98, Seed: 2, Size: 1x1"
    assert parsed["Steps"] == "2" and parsed["Seed"] == "7" and parsed["Sampler"] != "Forged"
    record("generate: a prompt holding parameter lines is written on one line", CORRECT)


def test_missing_provider_names_the_cli_fallback(sd_copy, caplog):
    cli_error("generate --provider CUDA (not in this build)", _sd(sd_copy, "--provider", "CUDA"),
              r"CUDAExecutionProvider is not available .* allow_cpu_fallback=True \(--allow-cpu-fallback\)",
              roots=[sd_copy.parent])
    before = tree_state(sd_copy)
    with caplog.at_level("WARNING"):
        rc, stdout, err = run_cli(_sd(sd_copy, "--provider", "CUDA", "--allow-cpu-fallback"))
    assert rc == 0, err
    assert "falling back to CPUExecutionProvider" in caplog.text
    assert_unchanged(before, tree_state(sd_copy))
    record("generate --provider CUDA --allow-cpu-fallback (runs on the CPU, says so)", CORRECT)


def test_unknown_from_pretrained_keyword_names_from_pretrained(caplog):
    from edge_sched import DiffusionPipeline

    with caplog.at_level("WARNING"):
        pipe = DiffusionPipeline.from_pretrained("digits", bogus=1)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "from_pretrained" in text and "bogus" in text and "engine_options" not in text, text
    assert pipe is not None
    record("from_pretrained(bogus=1): a warning naming from_pretrained (diffusers ignores unknown keywords too)",
           CORRECT)
