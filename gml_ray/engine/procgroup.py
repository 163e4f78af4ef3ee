"""A command job's process group: started in its own session, with a watchdog, ended whole.

Every job runs in a new process group; when it ends, is killed or times out, the whole group is
terminated (SIGTERM, then SIGKILL after :data:`~gml_ray.engine.spec.KILL_GRACE_S`). A
watchdog in the group ends it if the Ray worker that owns the job dies. What the job started
outside its group (setsid, a daemon, a child with an empty environment) is ended with it too:
:class:`~gml_ray.engine.jobtree.JobTree` holds the job's process tree as a child subreaper, and :func:`kill_marked` finds
what carries the job's ``GML_JOB_TOKEN`` where there is no subreaper.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

from gml_ray.engine.spec import KILL_GRACE_S

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
    signal_all(pids, signal.SIGTERM)
    deadline = time.time() + grace
    while pids and time.time() < deadline:
        time.sleep(0.05)
        pids = marked_pids(token)
    signal_all(pids, signal.SIGKILL)
    return len(found)


def signal_all(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids`` that is still there and ours to signal."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):  # gone, or not ours to end (sudo)
            pass
