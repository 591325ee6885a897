"""Ctrl-C for long commands: stop within a few seconds, clean up, one line, exit status 130.

Python turns SIGINT into ``KeyboardInterrupt`` only when the main thread next runs Python code, and
libraries may catch it (exporters that retry, C++ code that reports it as an error). ``StopOnInterrupt``
makes an interrupt stick and bounded in time:

- the first SIGINT raises ``KeyboardInterrupt`` as usual and is remembered: ``check()`` (called at each
  progress message) raises it again if something swallowed it, and ``interrupted`` lets a commit step
  refuse to publish its result;
- a watchdog thread, woken by the signal itself (``signal.set_wakeup_fd``, so also while the main
  thread sits in a long C call), runs the cleanup callbacks, prints one line and ends the process with
  status 130 if the main thread has not finished within ``grace`` seconds; a second Ctrl-C does it at once.

SIGTERM (``kill``, ``systemctl stop``, ``docker stop``, a CI timeout) is handled the same way where its
disposition is the default (which would end the process without any cleanup): it raises ``Terminated``, a
``KeyboardInterrupt``, so every cleanup path runs, and the status is 143 (128 + SIGTERM).

Only the main thread can install signal handlers: elsewhere (or when the program installed its own
handler for a signal) the guard leaves that signal alone and Python's default behaviour stays.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading
import time

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python would raise KeyboardInterrupt for SIGINT (so the same cleanups run)."""


def exit_status(interrupt: BaseException) -> int:
    """The shell's status for a command stopped by this interrupt: 143 for SIGTERM, else 130."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
GRACE_SECONDS = 5.0


class StopOnInterrupt:
    """``with StopOnInterrupt("edge-sched export", message) as guard:`` see the module docstring.
    ``guard.on_exit(callback)`` registers a cleanup the watchdog runs before ending the process."""

    def __init__(self, program: str, message: str = "interrupted", grace: float = GRACE_SECONDS):
        self.program, self.message, self.grace = program, message, grace
        self.interrupted = False
        self.active = False
        self._cleanups: list = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._counts = {"handler": 0, "wakeup": 0}  # the same signal is seen by both; count each way
        self._old_handlers: dict = {}
        self._signum = None  # the first signal that came
        self._old_wakeup = -1
        self._sockets = None
        self._threads: list[threading.Thread] = []
        self._first_at = None

    # -- public --------------------------------------------------------------------------------
    def on_exit(self, callback) -> None:
        with self._lock:
            self._cleanups.append(callback)

    def forget(self, callback) -> None:
        with self._lock:
            if callback in self._cleanups:
                self._cleanups.remove(callback)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` (``Terminated`` for SIGTERM) if one came and a library swallowed it."""
        if self.interrupted:
            raise _exception(self._signum)

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> "StopOnInterrupt":
        if threading.current_thread() is not threading.main_thread():
            return self
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for signum, default in defaults.items():
            if signal.getsignal(signum) is default:  # else the program handles it itself
                self._old_handlers[signum] = signal.signal(signum, self._handler)
        if signal.SIGINT not in self._old_handlers:
            for signum, old in self._old_handlers.items():
                signal.signal(signum, old)
            self._old_handlers = {}
            return self
        self.active = True
        try:
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._old_wakeup = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
            self._sockets = (r, w)
            self._start(self._watch_wakeups)
        except (ValueError, OSError):  # no wakeup fd here: the Python-level handler still works
            self._sockets = None
        return self

    def __exit__(self, *exc) -> bool:
        self._done.set()
        if self.active:
            for signum, old in self._old_handlers.items():
                signal.signal(signum, old)
            if self._sockets is not None:
                signal.set_wakeup_fd(self._old_wakeup)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        if self._sockets is not None:
            for s in self._sockets:
                s.close()
        return False

    # -- machinery -----------------------------------------------------------------------------
    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name="edge_sched-interrupt", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _handler(self, signum, frame):
        self._note_signal("handler", signum)
        raise _exception(signum)

    def _note_signal(self, way: str, signum: int) -> None:
        with self._lock:
            self.interrupted = True
            if self._signum is None:
                self._signum = signum
            self._counts[way] += 1
            first = self._first_at is None
            if first:
                self._first_at = time.monotonic()
            again = self._counts[way] > 1
        if again:  # a second Ctrl-C: stop now
            self._finish()
        elif first:
            self._start(self._watchdog)

    def _watch_wakeups(self) -> None:
        r = self._sockets[0]
        while not self._done.is_set():
            try:
                ready, _, _ = select.select([r], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = r.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            # the C-level handler writes this byte at once, also while the main thread is inside a long C
            # call (the Python-level handler then waits for it to return)
            for byte in data:
                if byte in self._old_handlers and not self._done.is_set():
                    self._note_signal("wakeup", byte)

    def _watchdog(self) -> None:
        if not self._done.wait(self.grace):
            self._finish()

    def _finish(self) -> None:
        """Run the cleanups, print one line, end the process now (the main thread did not finish in time)."""
        if self._done.is_set():
            return
        with self._lock:
            cleanups, self._cleanups = list(self._cleanups), []
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception:
                pass
        try:
            print(f"{self.program}: {self.message}", file=sys.stderr, flush=True)
        finally:
            os._exit(exit_status(_exception(self._signum)))


def _exception(signum) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
