"""What a command job leaves behind: its process tree, held by a child subreaper.

A process that leaves the job's process group (setsid, process_group=0, a double-forked daemon)
and even its environment (env={}) still descends from the job's shell: when its parent ends it is
re-parented to the nearest living ancestor that is a "child subreaper" (Linux >= 3.4), else to
init. The process that runs command jobs (a Ray worker) makes itself one while they run, so
whatever a job leaves behind ends up as its child, or below one, when the job's shell is gone.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any, NamedTuple

from gml_ray.engine.procgroup import TOKEN_ENV, signal_all
from gml_ray.engine.spec import KILL_GRACE_S

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
ADOPTED_GONE_S = 1.0  # after the SIGKILL, how long an end waits for its leftovers to be reapable

_libc: Any = None


def _prctl(option: int, arg: Any) -> int:
    """``prctl(option, arg)``; -1 where there is no prctl (not Linux)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return -1
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return int(_libc.prctl(option, arg, 0, 0, 0))
    except (OSError, AttributeError):
        return -1


def subreaper() -> bool | None:
    """Whether this process is a child subreaper (None: it cannot tell, so it cannot be one)."""
    flag = ctypes.c_int(0)
    if _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag)) != 0:
        return None
    return bool(flag.value)


def set_subreaper(on: bool) -> bool:
    """Make this process a child subreaper, or stop it being one; whether that worked."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0) == 0


def has_children() -> bool:
    """Whether this process (any of its threads) has a child, live or a zombie: one system call."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    except (AttributeError, OSError):  # no waitid: assume there may be
        return True
    return True


class _Stat(NamedTuple):
    state: str
    ppid: int
    sid: int
    start: int  # clock ticks after boot


def _stat(pid: int | str) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return _Stat(fields[0], int(fields[1]), int(fields[3]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


_children_files: bool | None = None  # whether /proc/PID/task/TID/children exists (CONFIG_PROC_CHILDREN)


def child_pids(pid: int | str = "self") -> list[int]:
    """The children of process ``pid`` (of all its threads)."""
    global _children_files
    if _children_files is None:
        _children_files = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
    if not _children_files:  # one pass over /proc
        parent = os.getpid() if pid == "self" else int(pid)
        kids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                st = _stat(entry.name)
                if st is not None and st.ppid == parent:
                    kids.append(int(entry.name))
        return kids
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            pass
    return kids


def token_of(pid: int) -> str | None:
    """The ``GML_JOB_TOKEN`` in process ``pid``'s environment (None: none, or it cannot be read)."""
    needle = f"{TOKEN_ENV}=".encode()
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(needle):
            return item[len(needle):].decode(errors="replace")
    return None


_lock = threading.Lock()
_active: dict[str, "JobTree"] = {}  # token -> the command jobs this process runs now
_set_by_us = False  # this process became a subreaper for the jobs in _active (and stops after)
_is_reaper = False
_unreaped: set[int] = set()  # adopted leftovers that outlived a SIGKILL: reaped by a later end


class JobTree:
    """What a command job may leave behind, and its end: every process the job started on this
    machine, in its process group or not, carrying ``GML_JOB_TOKEN`` or not.

    Made before the job's shell starts, in the process that starts it (the Ray worker), it makes
    that process a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``) until the job has been
    cleaned up. When the shell has exited, every process of the job still running was orphaned, so
    it was re-parented to this process (or descends from one that was): :meth:`end` SIGTERMs that
    whole tree, SIGKILLs what is left after the grace period, and reaps it. A job that leaves
    nothing behind costs one ``waitid`` call to confirm it (this process has no child left).

    A child of this process is taken for the job's only if it started after the job's shell, is
    not in this process's own session (the job runs in a session of its own, and everything it
    starts in that one or in new ones), was not a child before the job started, and carries this
    job's token or none; while other command jobs run in the same process, one without a token
    is left to the last of them to end.

    What it cannot end:

    * a process not forked from the job: work it handed to a service that was already running
      (``docker run``, ``systemd-run``, an existing ``tmux``/``screen`` server, ``at``, ``ssh``
      to another machine, tasks it submitted to a Ray cluster);
    * anything, where the subreaper cannot be set (not Linux, a kernel before 3.4, a seccomp filter
      that forbids prctl): then only processes that still carry the job's token are ended
      (:func:`kill_marked`), and one started with ``env={}`` survives;
    * the job's processes outside its process group when the process running the job dies
      (SIGKILL, a lost node): the watchdog ends the group; orphans go to init;
    * a process that survives SIGKILL (uninterruptible sleep, e.g. on a hung NFS mount): it is
      reaped by a later job's end once it dies;
    * a child that this process itself starts, in a new session, from another thread while a job
      runs is taken for the job's (gml-ray runs nothing else beside a command job).
    """

    def __init__(self, token: str) -> None:
        global _set_by_us, _is_reaper
        self.token = token
        self.shell: int | None = None
        self.start = 0
        self.sid = os.getsid(0)
        self._closed = False
        with _lock:
            if not _active:
                was = subreaper()
                _set_by_us = was is False and set_subreaper(True)
                _is_reaper = bool(was) or _set_by_us
            _active[token] = self
            self.subreaper = _is_reaper
        self.before: set[tuple[int, int]] = set()  # (pid, start) of this process's own children
        if self.subreaper and has_children():
            self.before = {(pid, st.start) for pid in child_pids() if (st := _stat(pid)) is not None}

    def started(self, pid: int) -> None:
        """The job's shell runs as ``pid`` (call before anything waits for it)."""
        self.shell = pid
        st = _stat(pid)
        self.start = st.start if st is not None else 0

    def reap(self) -> None:
        """Reap the job's processes that were adopted and have exited (call it now and then while
        the job runs: a job that keeps orphaning short-lived processes would otherwise pile up
        zombies here). One ``waitid`` call when there is no zombie but the shell's."""
        if not self.subreaper or self._closed:
            return
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except (ChildProcessError, AttributeError, OSError):
            return
        if info is None or info.si_pid == self.shell:
            return
        self._members()  # reaps the job's zombie children

    def end(self, grace: float = KILL_GRACE_S) -> int:
        """Once the job's shell was reaped: SIGTERM every process of the job still running,
        SIGKILL what is left after ``grace``, reap them; returns how many there were. Then this
        process stops being a subreaper (unless it was one before, or another job still runs)."""
        try:
            if not self.subreaper or self._closed:
                return 0
            return self._end(grace)
        finally:
            self.close()

    def close(self) -> None:
        global _set_by_us, _is_reaper
        if self._closed:
            return
        self._closed = True
        with _lock:
            _active.pop(self.token, None)
            if not _active and _set_by_us:
                set_subreaper(False)
                _set_by_us = _is_reaper = False

    def _end(self, grace: float) -> int:
        _reap(list(_unreaped))
        if not has_children():  # the common case: the job left nothing behind
            return 0
        ended: set[int] = set()
        term_until = time.monotonic() + grace
        give_up: float | None = None
        delay = 0.001
        while True:
            direct, live = self._members()
            if not live:
                return len(ended)
            now = time.monotonic()
            if now < term_until:
                signal_all([p for p in live if p not in ended], signal.SIGTERM)
            else:
                signal_all(live, signal.SIGKILL)
                if give_up is None:
                    give_up = now + ADOPTED_GONE_S
                elif now > give_up:
                    _unreaped.update(direct)
                    return len(ended | set(live))
            ended.update(live)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _members(self) -> tuple[list[int], list[int]]:
        """(the job's processes that are this process's children, all its live processes);
        its zombie children are reaped."""
        direct: list[int] = []
        for pid in child_pids():
            st = _stat(pid)
            if pid == self.shell or st is None or not self._adopted(pid, st):
                continue
            if st.state in "ZX":
                _reap([pid])
            else:
                direct.append(pid)
        live, todo = list(direct), list(direct)
        while todo:
            for kid in child_pids(todo.pop()):
                st = _stat(kid)
                if st is not None and st.state not in "ZX":  # a zombie's parent reaps it
                    live.append(kid)
                    todo.append(kid)
        return direct, live

    def _adopted(self, pid: int, st: _Stat) -> bool:
        """Whether child ``pid`` of this process is the job's (see the class docstring)."""
        if st.start < self.start or st.sid == self.sid or (pid, st.start) in self.before:
            return False
        token = token_of(pid)
        with _lock:
            others = [t for t in _active if t != self.token]
        if token is None or token == self.token:
            return token == self.token or not others
        return token not in others  # a token of no job running here: an earlier job's leftover


def _reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                _unreaped.discard(pid)
        except ChildProcessError:
            _unreaped.discard(pid)
