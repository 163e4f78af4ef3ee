"""Keeps the driver's SIGTERM handler in place while Ray starts and while it stops.

Ray changes SIGTERM's handling in the driver at both ends, and each change loses a signal or the
run's one line (exit 143):

- ``ray.init`` installs a Python handler of its own that raises ``SystemExit``. Ray forks its
  processes while it starts, and a handler that raises inside an at-fork hook (logging has one)
  is dropped by Python ("Exception ignored"): the SIGTERM is lost and the run goes on.
- The core worker, created inside ``ray.init``, puts a failure-signal handler in at the C level,
  behind Python's back: a SIGTERM then prints a stack dump before it reaches Python.
- ``ray.shutdown()`` uninstalls that handler, which puts the default action (end the process)
  back at the C level while Python still reports its own handler: a SIGTERM in the rest of the
  shutdown ends the driver silently (-15).

:func:`sigterm_kept` undoes all three for the length of a block. Ray's Python handler is not
installed (the run's own handler only records the signal, which no at-fork hook can lose); the
C-level action is read and, once something else put in, written back with libc's ``sigaction``
from a thread, since Python's ``signal.signal`` is allowed in the main thread only, which is
inside Ray's call.
"""
from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
from typing import Iterator

# How often the guard looks (seconds): the window in which a SIGTERM can still meet Ray's C-level
# action is at most this long (Ray changes it once as it starts and once as it stops).
POLL_S = 0.0002


class _Sigaction(ctypes.Structure):
    """glibc's ``struct sigaction`` (Linux, every architecture glibc supports)."""

    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong)))),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL | None:
    """libc where the guard can work (Linux with glibc); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sigaction  # noqa: B018 - present in glibc and musl alike
    except (OSError, AttributeError):
        return None
    return libc


def _read(libc: ctypes.CDLL, signum: int) -> _Sigaction:
    action = _Sigaction()
    libc.sigaction(signum, None, ctypes.byref(action))
    return action


@contextlib.contextmanager
def sigterm_kept() -> Iterator[None]:
    """While the block runs, SIGTERM keeps the handler in place when it began: Ray's own Python
    handler is not installed, and a C-level action put in behind Python's back is replaced by
    the kept one within :data:`POLL_S`. Does nothing where the handler in place is the default or
    ignore (nothing to keep); the C-level part does nothing where libc cannot be reached (not
    Linux)."""
    if not callable(signal.getsignal(signal.SIGTERM)):
        yield
        return
    with _ray_handler_skipped(), _c_action_kept(signal.SIGTERM):
        yield


@contextlib.contextmanager
def _ray_handler_skipped() -> Iterator[None]:
    import ray._private.utils as ray_utils  # ray.init installs its handler through this (Ray 2.60)

    install = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = install


@contextlib.contextmanager
def _c_action_kept(signum: int) -> Iterator[None]:
    libc = _libc()
    if libc is None:
        yield
        return
    kept = _read(libc, signum)
    done = threading.Event()

    def guard() -> None:
        while not done.wait(POLL_S):
            if _read(libc, signum).handler != kept.handler:
                libc.sigaction(signum, ctypes.byref(kept), None)

    thread = threading.Thread(target=guard, name="gml-sigterm-guard", daemon=True)
    # The guard needs the GIL to look: a shorter switch interval than Python's 5 ms lets it in
    # between the main thread's bytecodes soon after a change (for the guard's short life only).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(POLL_S)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(interval)
        # a change in the guard's last interval is undone here
        if _read(libc, signum).handler != kept.handler:
            libc.sigaction(signum, ctypes.byref(kept), None)
