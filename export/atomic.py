"""Where an export may write, and writing it all or nothing.

- ``check_not_nested(output, sources)``: OUTPUT may not be a source, contain one, or lie inside one
  (``--overwrite`` would otherwise delete the pipeline being exported).
- ``check_replaceable(output, overwrite)``: an existing OUTPUT is replaced only with ``overwrite`` and
  only if it is empty or a folder this tool made (its manifest is there and lists every file in it).
- ``atomic_folder(output, overwrite, ...)``: build in a hidden ``.NAME.partial-XXXX`` folder next to
  OUTPUT (with a marker file naming this process), swap it in at the end; on any error or interrupt,
  remove it. Partial folders whose process has died (SIGKILL, power loss) are removed by the next export
  into the same parent.
- The new folder gets the mode the umask gives (``mkdtemp`` makes it 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import ExportError

MANIFEST = "edge_sched.json"
PARTIAL_MARKER = ".edge_sched_partial"  # inside a partial folder: {"pid", "start", "host", "output"}
PARTIAL_INFIX = ".partial-"


# ---------------------------------------------------------------------------- where OUTPUT may be
def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_not_nested(output: Path, sources) -> None:
    """Refuse an OUTPUT that is a source folder (or file), contains one, or lies inside one."""
    out = _real(output)
    for source in sources:
        if source is None:
            continue
        src = _real(Path(source))
        if out == src:
            raise ExportError(f"{output}: OUTPUT is the source {source} itself; choose another OUTPUT")
        if _inside(src, out):
            raise ExportError(f"{output}: OUTPUT contains the source {source}; replacing it would delete the "
                              "source: choose another OUTPUT")
        if src.is_dir() and _inside(out, src):
            raise ExportError(f"{output}: OUTPUT lies inside the source folder {source}; choose a folder outside it")


def _manifest_files(folder: Path) -> set[str] | None:
    """The files the folder's manifest lists, or None when it has no readable edge_sched manifest."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "edge_sched_manifest" not in data or not isinstance(data.get("files"), dict):
        return None
    return set(data["files"]) | {MANIFEST}


def check_replaceable(output: Path, overwrite: bool) -> None:
    """An existing OUTPUT: refused unless ``overwrite``, and then only an empty folder or one we made."""
    if not (output.exists() or output.is_symlink()):
        return
    if output.is_symlink() or not output.is_dir():
        raise ExportError(f"{output}: exists and is not a folder; refusing to replace it")
    if not overwrite:
        raise ExportError(f"{output}: already exists; pass overwrite=True (--overwrite) to replace it")
    entries = list(output.iterdir())
    if not entries:
        return
    listed = _manifest_files(output)
    if listed is None:
        raise ExportError(f"{output}: not a folder made by edge-sched export (no {MANIFEST}); --overwrite only "
                          "replaces an empty folder or an earlier export: remove it yourself or choose another OUTPUT")
    present = {p.relative_to(output).as_posix() for p in output.rglob("*") if not p.is_dir() or p.is_symlink()}
    foreign = sorted(present - listed)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ExportError(f"{output}: holds files the export did not make ({shown}); --overwrite would delete "
                          "them: move them away or choose another OUTPUT")


# ---------------------------------------------------------------------------- partial folders
def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data.rsplit(")", 1)[-1].split()[19]  # field 22 of stat; fields 1-2 end at the last ')'


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    now = _process_start(pid)
    return start is None or now is None or now == start


def _marker(output: Path) -> dict:
    return {"pid": os.getpid(), "start": _process_start(os.getpid()), "host": socket.gethostname(),
            "output": str(output)}


def stale_partials(parent: Path) -> list[tuple[Path, dict]]:
    """Partial export folders in ``parent`` that this tool made and whose process no longer runs."""
    found = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(".") and PARTIAL_INFIX in p.name]
    except OSError:
        return []
    for folder in candidates:
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            info = json.loads((folder / PARTIAL_MARKER).read_text(encoding="utf-8"))
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no marker of ours: not ours to delete
        if info.get("host") != socket.gethostname():
            continue  # a shared folder: that process may run on another machine
        if not _alive(pid, info.get("start")):
            found.append((folder, info))
    return found


def remove_stale_partials(parent: Path, say=None) -> list[Path]:
    removed = []
    for folder, info in stale_partials(parent):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
            if say is not None:
                say(f"removed {folder}, an unfinished export left by process {info['pid']} (no longer running)")
    return removed


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and put it back)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------- the atomic folder
@contextmanager
def atomic_folder(output: Path, overwrite: bool, say=None, guard=None):
    """Yield a fresh partial folder next to ``output``; on success swap it in, on any error remove it
    (and the parents this export created). ``guard``: an ``edge_sched.interrupt.StopOnInterrupt`` whose
    watchdog removes the partial folder if the process must end before unwinding, and whose interrupt
    flag stops the swap."""
    created = []
    parent = output.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(output.parent, say)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}{PARTIAL_INFIX}", dir=output.parent))

    def remove_partial():
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # innermost first; only folders this export created
            try:
                folder.rmdir()
            except OSError:
                break

    if guard is not None:
        guard.on_exit(remove_partial)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / PARTIAL_MARKER).write_text(json.dumps(_marker(output)), encoding="utf-8")
        yield tmp
        if guard is not None:
            guard.check()  # an interrupt that a library swallowed: publish nothing
        check_replaceable(output, overwrite)  # again: something may have appeared meanwhile
        (tmp / PARTIAL_MARKER).unlink()
        _swap_in(tmp, output)
    except BaseException:
        remove_partial()
        raise
    finally:
        if guard is not None:
            guard.forget(remove_partial)


def _swap_in(tmp: Path, output: Path) -> None:
    if not output.exists():
        os.rename(tmp, output)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    os.rmdir(backup)
    os.rename(output, backup)
    try:
        os.rename(tmp, output)
    except BaseException:
        os.rename(backup, output)
        raise
    shutil.rmtree(backup, ignore_errors=True)

