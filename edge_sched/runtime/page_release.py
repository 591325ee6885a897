"""Give memory a loaded graph no longer uses back to the system: mapped weight files.
(Freed heap goes back through ``edge_sched.heap.trim_heap``.)

OpenVINO memory-maps an IR's ``.bin``; its CPU plugin reads every weight while compiling, repacks it
into its own buffers, and keeps the mapping. The pages it read stay resident (and counted in the
process's RSS) although they are clean copies of the file: for an fp32 graph that doubles the memory
it takes. ``madvise(MADV_DONTNEED)`` on a read-only shared file mapping drops those pages from the process;
any page still read later faults back in from the file (its contents are the file's: nothing
written can be lost), so results cannot change. Linux only (elsewhere a no-op).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)

_MADV_DONTNEED = 4
_libc = None


def _madvise():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.madvise.restype = ctypes.c_int
        _libc = libc
    return _libc.madvise


def release_file_pages(paths) -> int:
    """Drop the resident pages of every read-only shared mapping of ``paths`` (files, or folders: every
    file under them); returns the bytes advised."""
    if not sys.platform.startswith("linux") or not paths:
        return 0
    files = {os.path.realpath(p) for p in paths if not os.path.isdir(p)}
    folders = tuple(os.path.join(os.path.realpath(p), "") for p in paths if os.path.isdir(p))
    advised = 0
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
    except OSError:
        return 0
    madvise = _madvise()
    for line in lines:
        parts = line.split(maxsplit=5)
        # only read-only shared mappings: their pages are the file's, never a private modified copy
        mapped = parts[5].strip() if len(parts) == 6 else ""
        if len(parts) < 6 or parts[1] != "r--s" or not (mapped in files or (folders and mapped.startswith(folders))):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if madvise(lo, hi - lo, _MADV_DONTNEED) == 0:
            advised += hi - lo
        else:
            logger.debug("madvise failed on %s: errno %d", parts[5].strip(), ctypes.get_errno())
    return advised


class ReleasingPages:
    """``with ReleasingPages(paths):`` releases the files' pages every ``interval`` seconds while the
    block runs (a compile reads each weight once, so the peak stays near one copy), and once at the end."""

    def __init__(self, paths, interval: float = 0.25):
        self.paths, self.interval = list(paths), interval
        self._stop = threading.Event()
        self._thread = None

    def _loop(self):
        while not self._stop.wait(self.interval):
            release_file_pages(self.paths)

    def __enter__(self):
        if sys.platform.startswith("linux") and self.paths:
            self._thread = threading.Thread(target=self._loop, name="edge_sched-release-pages", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.paths:
            release_file_pages(self.paths)
        return False
