"""Keeps the driver's SIGTERM handler in place while Ray stops.

``ray.shutdown()`` stops the driver's core worker, and with it Ray's logging, which uninstalls
the failure-signal handlers it had installed at ``ray.init``: SIGTERM's action goes back to the
default (end the process) at the C level, while Python still reports its own handler. A SIGTERM
in the rest of the shutdown (about a second: Ray's processes are stopped after that) then ends the
driver silently (-15) instead of the run's one line and exit 143. The guard puts the handler that
was in place back the moment it sees the default action; it reads and writes the action with
libc's ``sigaction`` from a thread, since Python's ``signal.signal`` is allowed in the main thread
only, which is inside ``ray.shutdown()``.
"""
from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
from typing import Iterator

# How often the guard looks (seconds): the window in which a SIGTERM can still end the process
# silently is at most this long (the uninstall happens once per shutdown).
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
def sigterm_kept(signum: int = signal.SIGTERM) -> Iterator[None]:
    """While the block runs, ``signum``'s C-level action is put back to the one in place when it
    began whenever something resets it to the default. Does nothing where libc cannot be reached
    (not Linux) or when the action in place is the default or ignore (nothing to keep)."""
    libc = _libc()
    kept = _read(libc, signum) if libc is not None else None
    if libc is None or kept is None or kept.handler in (None, 1):  # SIG_DFL is 0 (None), SIG_IGN 1
        yield
        return
    done = threading.Event()

    def guard() -> None:
        while not done.wait(POLL_S):
            if _read(libc, signum).handler is None:
                libc.sigaction(signum, ctypes.byref(kept), None)

    thread = threading.Thread(target=guard, name="gml-sigterm-guard", daemon=True)
    # The guard needs the GIL to look: a shorter switch interval than Python's 5 ms lets it in
    # between the main thread's bytecodes soon after the reset (for the guard's short life only).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(POLL_S)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(interval)
        # a reset in the guard's last interval is undone here
        if _read(libc, signum).handler is None:
            libc.sigaction(signum, ctypes.byref(kept), None)
