"""Issue 15 item 4: refuse before spending. The memory a generation needs is estimated from the shapes before
the first graph call and compared with the memory available; too much is one line naming the options and
the estimate, and --no-memory-check overrides it. The available memory is set by the test, so the outcome
does not depend on this machine."""

from __future__ import annotations

import pytest

from edge_sched.pipelines import memory

from .harness import CORRECT, api_error, cli_error, record, run_cli

GiB = 1 << 30


@pytest.fixture
def available(monkeypatch):
    def set_to(n_bytes):
        monkeypatch.setattr(memory, "available_memory", lambda root="/": n_bytes)

    return set_to


def _never_run_the_unet(monkeypatch):
    from edge_sched.pipelines import loop

    monkeypatch.setattr(loop, "denoise", lambda *a, **k: pytest.fail("a graph ran before the memory check"))


def test_huge_size(tiny_sd_onnx, tmp_path, available, monkeypatch):
    available(2 * GiB)
    _never_run_the_unet(monkeypatch)
    cli_error("generate --size 16384x16384 (2 GiB available)",
              ["generate", "a cat", "--model", tiny_sd_onnx, "--size", "16384x16384", "--quiet", "--out", tmp_path / "x.png"],
              r"--size 16384x16384 needs at least [\d.]+ TiB of memory \(VAE decoder activations .*\) and 2.0 GiB is "
              r"available: choose a smaller size or fewer images, or pass --no-memory-check", roots=[tmp_path])


def test_size_no_machine_has(tiny_sd_onnx, tmp_path):
    cli_error("generate --size 100000x100000 (this machine's memory)",
              ["generate", "a cat", "--model", tiny_sd_onnx, "--size", "100000x100000", "--quiet", "--out",
               tmp_path / "x.png"], r"--size 100000x100000 needs at least [\d.]+ TiB of memory", roots=[tmp_path])


def test_many_images(tmp_path, available, monkeypatch):
    available(2 * GiB)
    _never_run_the_unet(monkeypatch)
    cli_error("generate --images 20000 (digits, 2 GiB available)",
              ["generate", "3", "--model", "digits", "--images", "20000", "--quiet", "--out", tmp_path / "x.png"],
              r"--images 20000 needs at least [\d.]+ GiB of memory \(UNet activations", roots=[tmp_path])


def test_override(tmp_path, available):
    available(16 << 10)  # 16 KiB: even one digit is over it
    cli_error("generate with 16 KiB available", ["generate", "3", "--model", "digits", "--steps", "2", "--quiet",
                                                "--out", tmp_path / "x.png"],
              r"this generation needs at least .* and 16 KiB is available", roots=[tmp_path])
    rc, out, err = run_cli(["generate", "3", "--model", "digits", "--steps", "2", "--quiet", "--no-memory-check",
                            "--out", tmp_path / "x.png"])
    assert rc == 0 and (tmp_path / "x.png").is_file(), err
    record("generate --no-memory-check runs past the estimate", CORRECT)


def test_python_api_check():
    from edge_sched import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained("digits")
    api_error("memory.check_memory(digits, 100000 images, 1 GiB)",
              lambda: memory.check_memory(pipe, {"prompt": "3", "num_images_per_prompt": 100000}, available=GiB),
              memory.NotEnoughMemoryError, r"this generation needs at least [\d.]+ GiB")
    small = memory.check_memory(pipe, {"prompt": "3 4"}, available=GiB)
    assert 0 < small.total < 10 * (1 << 20), small  # two 16x16 digits: well under 10 MiB
    record("memory.check_memory(digits, 2 images): a few MiB, accepted", CORRECT)


def test_available_memory_reads_meminfo_and_the_cgroup(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 4000000 kB\nMemAvailable:    3000000 kB\n")
    assert memory.available_memory(str(tmp_path)) == 3000000 * 1024
    cgroup = tmp_path / "sys" / "fs" / "cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "memory.max").write_text(f"{GiB}\n")
    (cgroup / "memory.current").write_text(f"{GiB // 4}\n")
    assert memory.available_memory(str(tmp_path)) == GiB - GiB // 4  # a container's limit wins
    (cgroup / "memory.max").write_text("max\n")
    assert memory.available_memory(str(tmp_path)) == 3000000 * 1024
    record("available memory: MemAvailable, bounded by a cgroup limit", CORRECT)
