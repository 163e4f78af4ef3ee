"""A command job's process group: started in its own session, with a watchdog, ended whole.

Every job runs in a new process group; when it ends, is killed or times out, the whole group is
terminated (SIGTERM, then SIGKILL after :data:`~gml_ray.schedulers.spec.KILL_GRACE_S`). A
watchdog in the group ends it if the Ray worker that owns the job dies. What the job started
outside its group (setsid, a daemon, a child with an empty environment) is ended with it too:
:class:`JobTree` holds the job's process tree as a child subreaper, and :func:`kill_marked` finds
what carries the job's ``GML_JOB_TOKEN`` where there is no subreaper.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, NamedTuple

from .spec import KILL_GRACE_S

ZOMBIE_SCAN_AFTER_S = 0.1  # a group still there after this may hold only zombies: look in /proc


def group_exists(pgid: int) -> bool:
    """Whether any process, zombies included, is left in the process group ``pgid`` (cheap)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the process group ``pgid``."""
    if not group_exists(pgid):
        return False
    if not os.path.isdir("/proc"):
        return True
    # Orphaned members are zombies until init reaps them, which can take seconds: skip those.
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the job's process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    started = time.time()
    deadline, delay = started + KILL_GRACE_S, 0.001
    while time.time() < deadline:
        if proc.poll() is None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(delay)
        # Scanning /proc for zombies costs milliseconds of CPU per job: first give init a moment
        # to reap the group's orphans, which the cheap check then sees gone.
        if not group_exists(proc.pid) or (time.time() - started > ZOMBIE_SCAN_AFTER_S
                                           and not group_alive(proc.pid)):
            return
        delay = min(delay * 2, 0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def end_group_in_background(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    threading.Thread(target=kill_group, args=(proc,), daemon=True).start()


def shell() -> list[str]:
    bash = shutil.which("bash")
    return [bash, "-c"] if bash else ["/bin/sh", "-c"]


_lifeline: tuple[int, int, int] | None = None  # (pid, read end, write end) of this process's pipe


def lifeline_fd() -> int:
    """The read end of a pipe whose write end only this process holds (it is not inherited):
    a reader sees end-of-file exactly when this process is gone, however it died."""
    global _lifeline
    if _lifeline is None or _lifeline[0] != os.getpid():  # made once per process (and after a fork)
        read_end, write_end = os.pipe()
        _lifeline = (os.getpid(), read_end, write_end)
    return _lifeline[1]


# Runs in the job's process group beside the command, which the shell starts with the lifeline
# (:func:`lifeline_fd`) as its stdin: when the Ray worker that owns the job dies (the driver was
# SIGKILLed, the node lost its raylet), the lifeline reads end-of-file and the watchdog ends the
# whole group, so no job process outlives its run. It waits in a shell builtin, so a job costs no
# process but this subshell. The lifeline moves to the spare descriptor {spare} (a single digit,
# for POSIX shells) and the command runs with /dev/null as stdin and without the scalar pipe's
# copy ({close}), whose end-of-file then comes with the job's end. When the shell exits, its EXIT
# trap ends and reaps the watchdog: a job that leaves nothing behind leaves an empty group, which
# costs no /proc scan to confirm (kill_group). The trap keeps the command's exit status. The
# watchdog ignores its own SIGTERM to the group (only then), so that it lives to send the SIGKILL.
WATCHDOG = ("exec {spare}<&0 </dev/null\n"
            "( trap - TERM; {close}read -r _ <&{spare}; trap '' TERM; kill -TERM 0; sleep 3; kill -KILL 0 ) "
            ">/dev/null 2>&1 &\n"
            "__gml_watchdog=$!; trap 'kill $__gml_watchdog 2>/dev/null; wait $__gml_watchdog 2>/dev/null' EXIT\n"
            "exec {spare}<&-\n")


TOKEN_ENV = "GML_JOB_TOKEN"  # every process a job starts inherits it, setsid or not


def marked_pids(token: str) -> list[int]:
    """Live processes whose environment holds ``GML_JOB_TOKEN=token``: a job's processes that
    left its process group (``setsid``, a daemon) but not its environment."""
    needle = f"{TOKEN_ENV}={token}".encode() + b"\0"
    me = os.getpid()
    found: list[int] = []
    if not os.path.isdir("/proc"):
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry.name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except (OSError, IndexError):
            continue
        found.append(int(entry.name))
    return found


def kill_marked(token: str, grace: float = KILL_GRACE_S) -> int:
    """SIGTERM every live process marked with ``token``, SIGKILL what is left after ``grace``;
    returns how many there were."""
    pids = found = marked_pids(token)
    _signal_all(pids, signal.SIGTERM)
    deadline = time.time() + grace
    while pids and time.time() < deadline:
        time.sleep(0.05)
        pids = marked_pids(token)
    _signal_all(pids, signal.SIGKILL)
    return len(found)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):  # gone, or not ours to end (sudo)
            pass


# ---- what a job leaves behind: its process tree, held by a child subreaper ------------------------
#
# A process that leaves the job's process group (setsid, process_group=0, a double-forked daemon)
# and even its environment (env={}) still descends from the job's shell: when its parent ends it is
# re-parented to the nearest living ancestor that is a "child subreaper" (Linux >= 3.4), else to
# init. The process that runs command jobs (a Ray worker) makes itself one while they run, so
# whatever a job leaves behind ends up as its child, or below one, when the job's shell is gone.

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
                _signal_all([p for p in live if p not in ended], signal.SIGTERM)
            else:
                _signal_all(live, signal.SIGKILL)
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
