"""A `gml-ray run` in the background and the store it writes, for the tests of faults around a
run's life (tests/engine/test_faults_run.py, tests/engine/test_faults_outside.py)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import time

from helpers.cli import BIN


def run_env(**extra: str) -> dict[str, str]:
    """The environment of a background run: this test's (read now, so a ``RAY_TMPDIR`` the test
    was given is passed on), a wide terminal, a short staleness limit."""
    return dict(os.environ, COLUMNS="200", GML_STALE_S="3", **extra)

SLOW_TRAIN = """
import sys, time
from gml_ray import SummaryWriter
w = SummaryWriter()
for s in range(int(sys.argv[2])):
    w.add_scalar("acc", float(sys.argv[1]) + s, s)
    time.sleep(0.2)
"""


def start(args, cwd, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([os.path.join(BIN, "gml-ray"), *args], cwd=cwd, env=env or run_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def jobs_in(db: str, status: str) -> int:
    if not os.path.exists(db):
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", [status]).fetchone()[0]
    except sqlite3.OperationalError:  # the run is creating its tables
        return 0
    finally:
        conn.close()


def on_head(args: list[str], address: str) -> list[str]:
    """``gml-ray`` ARGS joining the Ray at ``address`` in place of a local Ray of their own (a
    resume after a killed run: the local Ray's start is the killed run's to test, not the resume's)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--num-cpus", "--num-gpus"):
            skip = True
        else:
            out.append(arg)
    return [*out, "--address", address]


def killed_9_when(args: list[str], cwd, ready, what: str, timeout: float = 120.0) -> None:
    """Run ``gml-ray ARGS`` in a session of its own until ``ready()`` holds, then SIGKILL the
    driver alone (as a lost machine would) and wait for the local Ray it started to end."""
    import signal

    from helpers import owned_processes

    output = os.path.join(cwd, "killed-run.log")  # what the run printed, for a failure's message
    with open(output, "w") as out:
        proc = subprocess.Popen([os.path.join(BIN, "gml-ray"), *args], cwd=cwd, env=run_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout=timeout, what=what)
        if proc.poll() is not None:
            with open(output) as f:
                printed = f.read()[-3000:]
            raise AssertionError(f"the run ended before {what} (exit {proc.returncode}):\n{printed}")
        proc.send_signal(signal.SIGKILL)  # the driver only
        proc.wait(timeout=30)
        wait_for(lambda: not owned_processes(proc.pid), timeout=30, what="the run's Ray to end")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
