"""Faults that end a run from outside (issue 31): its store deleted or replaced mid-run, and
SIGTERM from the command's first moment to its last. Real `gml-ray` processes on a local Ray of
their own, real stores; nothing of the run may be lost or left running."""
from __future__ import annotations

import glob
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import owned_processes, write_files
from helpers.runs import SLOW_TRAIN, jobs_in, run_env, start, wait_for

from gml_ray.store import Store


@pytest.mark.ray
def test_the_store_deleted_during_a_run_is_saved_and_the_run_fails(tmp_path):
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "c.yaml": """
        task:
          template: python train.py {x} 100
          search_args: [{type: Categorical, name: x, data: [1, 2, 3, 4]}]
        scheduler: {parallel_size: 2}
        """})
    wd = tmp_path / "wd"
    db = str(wd / "gml.db")
    Store(str(wd)).create_task("other", status="FINISHED")  # an unrelated task in the same file
    run = start(["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"], tmp_path)
    try:
        wait_for(lambda: jobs_in(db, "RUNNING") == 2 or run.poll() is not None, what="running jobs")
        time.sleep(1.0)  # some scalars
        for f in glob.glob(db + "*"):
            os.remove(f)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, (out, err)
    line = err.strip().splitlines()[-1]
    assert "was deleted or replaced during the run" in line and "Traceback" not in err
    saved = glob.glob(str(wd / "spill" / "gml.db.recovered-t-*"))
    assert len(saved) == 1 and saved[0] in line
    # the saved file is a whole store: the other task, this run's jobs (ERROR: resume reruns
    # them) and their scalars; moved into place, --resume takes it as its store
    os.replace(saved[0], db)
    store = Store(str(wd), create=False)
    assert store.require_task("other")["status"] == "FINISHED"
    assert store.require_task("t")["status"] == "ERROR"
    assert [j["status"] for j in store.jobs("t")] == ["ERROR", "ERROR"]
    assert store.count_scalars("t") > 0


@pytest.mark.ray
def test_the_store_replaced_during_a_run_is_noticed(tmp_path):
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "c.yaml": """
        task:
          template: python train.py {x} 100
          search_args: [{type: Categorical, name: x, data: [1, 2]}]
        """})
    wd = tmp_path / "wd"
    db = str(wd / "gml.db")
    run = start(["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"], tmp_path)
    try:
        wait_for(lambda: jobs_in(db, "RUNNING") >= 1 or run.poll() is not None, what="a running job")
        copy = sqlite3.connect(str(tmp_path / "copy.db"))
        sqlite3.connect(db).backup(copy)  # an older copy of the store, put back over it
        copy.close()
        os.replace(tmp_path / "copy.db", db)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, (out, err)
    assert "was deleted or replaced during the run" in err.strip().splitlines()[-1]
    assert glob.glob(str(wd / "spill" / "gml.db.recovered-t-*"))


@pytest.mark.parametrize("moment", [  # the moments in between: test_sigterm_while_ray_starts_..., _as_the_command_starts
    "startup", *(pytest.param(m, marks=pytest.mark.ray) for m in ("ray starting", "jobs running"))])
def test_sigterm_at_any_moment_ends_the_run_with_its_line(tmp_path, moment):
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "c.yaml": """
        task:
          template: python train.py {x} 100
          search_args: [{type: Categorical, name: x, data: [1, 2, 3]}]
        scheduler: {parallel_size: 2}
        """})
    db = str(tmp_path / "wd" / "gml.db")
    run = start(["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"], tmp_path)
    try:
        if moment == "startup":
            time.sleep(0.3)
        elif moment == "ray starting":  # the task is claimed: Ray is starting now
            wait_for(lambda: os.path.exists(db) or run.poll() is not None, what="the task row")
            time.sleep(0.5)
        else:
            wait_for(lambda: jobs_in(db, "RUNNING") == 2 or run.poll() is not None, what="jobs")
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, f"{moment}: {run.returncode}\n{err}"  # err whole, not a truncated repr
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    assert err.strip().splitlines()[-1].startswith("terminated (SIGTERM)"), err
    if os.path.exists(db):
        task = Store(str(tmp_path / "wd"), create=False).get_task("t")
        if task is not None:
            assert task["status"] == "ERROR"
            statuses = {j["status"] for j in Store(str(tmp_path / "wd"), create=False).jobs("t")}
            assert statuses <= {"ERROR"}, statuses
    wait_for(lambda: not owned_processes(run.pid), timeout=20, what="the run's Ray to end")


@pytest.mark.ray
def test_sigterm_while_the_run_ends_keeps_its_result(tmp_path):
    """SIGTERM once the task is FINISHED, while the driver stops Ray and prints: the task stays
    FINISHED, the run says so in its one line and exits 143, and its Ray ends all the same."""
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "c.yaml": """
        task:
          template: python train.py {x} 1
          search_args: [{type: Categorical, name: x, data: [1, 2]}]
        """})
    db = str(tmp_path / "wd" / "gml.db")

    def finished() -> bool:
        if not os.path.exists(db):
            return False
        conn = sqlite3.connect(db, timeout=30)
        try:
            return conn.execute("SELECT status FROM tasks").fetchone() == ("FINISHED",)
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    run = start(["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"], tmp_path)
    try:
        wait_for(lambda: finished() or run.poll() is not None, what="the task's end")
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    # 0: it was out before the signal came. Never -15: ray.shutdown() puts SIGTERM's default action
    # back partway through, and the run puts its handler back (engine/sigterm_guard.py).
    assert run.returncode in (0, 143), (out, err)
    if run.returncode == 143:
        assert err.strip().splitlines()[-1] == "terminated (SIGTERM): task t had ended (FINISHED)", err
    assert Store(str(tmp_path / "wd"), create=False).require_task("t")["status"] == "FINISHED"
    wait_for(lambda: not owned_processes(run.pid), timeout=20, what="the run's Ray to end")


# `gml-ray run` with a SIGTERM sent from inside the driver at a chosen point: "command built" once
# typer has built the command, before it runs it (outside typer's own catch); "fork hook" from an at-fork hook (Python drops what a signal handler raises there, so a handler
# that raises loses the signal); "core worker" once the core worker is up (its C-level
# failure-signal handler would print a stack dump first).
SIGNALLED_RUN = """
import os, signal, sys
import ray, ray._private.worker as ray_worker
point, sent = sys.argv[1], []

def signal_once():
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)

if point == "command built":  # gml-ray's own handler, before typer's catch of a KeyboardInterrupt
    import typer.main
    build = typer.main.get_command
    def built(*args, **kwargs):
        command = build(*args, **kwargs)
        signal_once()
        return command
    typer.main.get_command = built
elif point == "fork hook":
    started = ray.init
    def init(*args, **kwargs):
        os.register_at_fork(after_in_parent=signal_once)
        return started(*args, **kwargs)
    ray.init = init
else:
    connect = ray_worker.connect
    def connected(*args, **kwargs):
        connect(*args, **kwargs)
        signal_once()
    ray_worker.connect = connected
from gml_ray.cli.main import main
sys.argv = ["gml-ray", "run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"]
main()
"""


@pytest.mark.ray
@pytest.mark.parametrize("point", ["fork hook", "core worker"])
def test_sigterm_while_ray_starts_is_neither_lost_nor_dumped(tmp_path, point):
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "driver.py": SIGNALLED_RUN, "c.yaml": """
        task:
          template: python train.py {x} 1000
          search_args: [{type: Categorical, name: x, data: [1, 2]}]
        scheduler: {parallel_size: 2}
        """})
    run = subprocess.Popen([sys.executable, "driver.py", point], cwd=tmp_path, env=run_env(), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = run.communicate(timeout=90)  # a lost signal: the jobs run for 200 s
    finally:
        if run.poll() is None:
            run.kill()
            out, err = run.communicate()
    assert run.returncode == 143, f"{point}: {run.returncode}\n{err}"
    assert "Traceback" not in err and "SIGTERM received" not in err and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1] == "terminated (SIGTERM): task t ended before any job ran (ERROR)", err
    assert Store(str(tmp_path / "wd"), create=False).require_task("t")["status"] == "ERROR"
    wait_for(lambda: not owned_processes(run.pid), timeout=20, what="the run's Ray to end")


def test_sigterm_as_the_command_starts_is_its_line_not_a_traceback(tmp_path):
    write_files(tmp_path, {"driver.py": SIGNALLED_RUN, "c.yaml": """
        task:
          template: python train.py {x}
          search_args: [{type: Categorical, name: x, data: [1, 2]}]
        """})
    run = subprocess.run([sys.executable, "driver.py", "command built"], cwd=tmp_path, env=run_env(),
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr.strip()) == (143, "terminated (SIGTERM)"), run.stderr
    assert not (tmp_path / "wd").exists()
