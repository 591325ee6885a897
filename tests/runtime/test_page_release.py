"""Pages of read-only mapped weight files are given back (RSS drops) and read back unchanged."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

from edge_sched.runtime.page_release import ReleasingPages, release_file_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.fixture
def weights(tmp_path):
    data = np.random.default_rng(0).standard_normal(64 * 2**20 // 8)  # 64 MiB
    path = tmp_path / "openvino_model.bin"
    data.tofile(path)
    return path, data


def test_release_drops_resident_pages_and_the_data_reads_back(weights):
    path, data = weights
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # read-only shared: "r--s"
    view = np.frombuffer(mapped, dtype=np.float64)
    assert view.sum() == data.sum()  # every page touched: resident
    before = rss_mb()
    advised = release_file_pages([path])
    after = rss_mb()
    assert advised >= 64 * 2**20
    assert before - after > 48, (before, after)  # most of the 64 MiB left the process
    np.testing.assert_array_equal(view, data)  # faulted back in from the file, unchanged
    del view
    mapped.close()


def test_folders_and_the_context_manager(weights, tmp_path):
    path, data = weights
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mapped, dtype=np.float64)
    with ReleasingPages([tmp_path], interval=0.01):
        assert view.sum() == data.sum()
    assert release_file_pages([tmp_path / "other.bin"]) == 0  # other files are left alone
    np.testing.assert_array_equal(view, data)
    del view
    mapped.close()


def test_writable_and_private_mappings_are_never_touched(weights):
    path, data = weights
    with open(path, "r+b") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private copy-on-write: "rw-p"
    view = np.frombuffer(mapped, dtype=np.float64)
    view[0] = 42.0  # a private modification that a DONTNEED would lose
    assert release_file_pages([path]) == 0
    assert view[0] == 42.0
    del view
    mapped.close()
