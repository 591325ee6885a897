"""The catalogue's checks: exit code, one line naming the problem, no traceback, nothing changed on disk.

Every case records its outcome ("clear error" or "correct result") in ``OUTCOMES``; the session summary
prints the counts (``conftest.py``)."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

#: case id -> outcome, filled as the cases pass
OUTCOMES: dict[str, str] = {}
CLEAR_ERROR, CORRECT = "clear error", "correct result"
REPO = Path(__file__).resolve().parents[2]


def record(case: str, outcome: str) -> None:
    assert outcome in (CLEAR_ERROR, CORRECT)
    OUTCOMES[case] = outcome


def counts() -> collections.Counter:
    return collections.Counter(OUTCOMES.values())


# ---------------------------------------------------------------------------- disk state
def tree_state(*roots) -> dict:
    """Every entry under ``roots``: kind, mode and content hash (files), link target (symlinks)."""
    state = {}
    for root in roots:
        root = Path(root)
        if not (root.exists() or root.is_symlink()):
            state[str(root)] = "absent"
            continue
        entries = [root] + (sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
        for p in entries:
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                state[str(p)] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                state[str(p)] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                state[str(p)] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                state[str(p)] = ("special", stat.S_IFMT(st.st_mode))
    return state


def assert_unchanged(before: dict, after: dict) -> None:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"changed on disk: {changed[:5]}"


# ---------------------------------------------------------------------------- running the command
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``edge-sched ARGV`` in this process: (exit status, stdout, stderr)."""
    from edge_sched.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def run_cli_process(argv: list[str], env: dict | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """``edge-sched ARGV`` in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-m", "edge_sched.cli", *map(str, argv)], capture_output=True, text=True,
                         timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})
    return res.returncode, res.stdout, res.stderr


def error_line(rc: int, err: str, *, expected_rc: int = 1) -> str:
    """The one error line of a failed command (checked: status, no traceback, one line, the last one)."""
    assert "Traceback (most recent call last)" not in err, err
    assert rc == expected_rc, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"edge-sched( \w[\w-]*)?: (error|interrupted)", line)]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], f"the error is not the last line: {err!r}"
    return errors[0]


def cli_error(case: str, argv, pattern: str, *, roots=(), expected_rc: int = 1) -> str:
    """Run a CLI case that must fail: one line matching ``pattern``, status ``expected_rc``, disk unchanged."""
    before = tree_state(*roots)
    rc, out, err = run_cli(argv)
    line = error_line(rc, err, expected_rc=expected_rc)
    assert re.search(pattern, line), (pattern, line)
    assert_unchanged(before, tree_state(*roots))
    record(case, CLEAR_ERROR)
    return line


def api_error(case: str, call, errors, pattern: str, *, roots=()):
    """A Python API case that must raise one of ``errors`` with a one-line message matching ``pattern``."""
    before = tree_state(*roots)
    with pytest.raises(errors) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.strip(), message
    assert re.search(pattern, message), (pattern, message)
    assert_unchanged(before, tree_state(*roots))
    record(case, CLEAR_ERROR)
    return info.value
