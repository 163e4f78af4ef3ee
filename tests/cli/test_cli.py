"""The command line as a user drives it: real `gml-ray` processes, on a local Ray of their own
where that is what a test is about (Ctrl+C, SIGKILL, entry points), else joining the session's
Ray head (conftest ``ray_head``)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml
from helpers import write_files
from helpers.cli import BIN, gml, pid_gone, running_pids, wait_for

from gml_ray.store import Store

SLOW_TRAIN = """
import os, sys, time
from gml_ray import SummaryWriter
x = float(sys.argv[1])
w = SummaryWriter()
with open(os.environ["GML_JOB_DIR"] + "/pid", "w") as f:
    f.write(str(os.getpid()))
for e in range(int(sys.argv[2])):
    w.add_scalar("acc", x * (e + 1), e)
    w.add_scalar("loss", 1.0 / (e + 1), e)
    time.sleep(0.2)
"""

CONFIG = """
task:
  template: "python train.py {x} {epochs}"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.2, 0.3, 0.4]}
    - {type: Categorical, name: epochs, data: [EPOCHS]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
pavi: {scalars: [loss]}
"""


def start_run(tmp_path, epochs: int, task: str, address: str | None = None) -> subprocess.Popen:
    """``gml-ray run`` in the background: on its own local Ray, or joining ``address``."""
    write_files(tmp_path, {"train.py": SLOW_TRAIN,
                           "search_config.yaml": CONFIG.replace("EPOCHS", str(epochs))})
    ray_args = ["--address", address] if address else ["--num-cpus", "2"]
    return subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", task,
                             "--workdir", "wd", *ray_args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its Ray processes share its process group


def test_run_then_show_tasks_jobs_scalars_and_yaml(tmp_path, ray_head):
    proc = start_run(tmp_path, epochs=3, task="quick", address=ray_head)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "task quick FINISHED" in out and "4 FINISHED" in out
    assert "Traceback" not in out + err

    tasks = gml("ctl", "show", "--workdir", "wd", cwd=tmp_path)
    assert tasks.returncode == 0 and "quick" in tasks.stdout and "FINISHED" in tasks.stdout

    jobs = gml("ctl", "show", "--task", "quick", "--workdir", "wd", cwd=tmp_path)
    assert jobs.returncode == 0
    for name in ("job_0001", "job_0004"):
        assert name in jobs.stdout
    assert "job_0004 *" in jobs.stdout  # best: x=0.4 -> 1.2
    assert "loss" in jobs.stdout  # the pavi.scalars column

    # the manual's spelling, with GML_WORKDIR instead of --workdir
    env_run = subprocess.run([os.path.join(BIN, "search-ctl"), "show", "-t", "quick", "--jobs",
                              "job_0002,3", "--scalar", "--out", "task.yaml"], cwd=tmp_path,
                             env=dict(os.environ, GML_WORKDIR="wd"), capture_output=True, text=True)
    assert env_run.returncode == 0, env_run.stderr
    doc = yaml.safe_load((tmp_path / "task.yaml").read_text())
    assert [j["name"] for j in doc["jobs"]] == ["job_0002", "job_0003"]
    assert doc["jobs"][0]["args"] == {"x": 0.2, "epochs": 3}
    assert doc["jobs"][0]["reward"] == pytest.approx(0.6)
    assert [s["value"] for s in doc["jobs"][1]["scalars"]["acc"]] == pytest.approx([0.3, 0.6, 0.9])


@pytest.mark.parametrize("args, message", [
    (["ctl", "show", "--task", "nope", "--workdir", "wd"], "no task named 'nope'"),
    (["ctl", "show", "--workdir", "missing-dir"], "no gml-ray store"),
    (["run", "no_such.yaml", "--workdir", "wd"], "no such file: no_such.yaml"),
    (["run", "search_config.yaml", "--task", "../evil", "--workdir", "wd"], "invalid task name"),
])
def test_user_mistakes_are_one_red_line_and_exit_2(tmp_path, args, message):
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "search_config.yaml": CONFIG.replace("EPOCHS", "1")})
    gml("init", "--workdir", "wd", cwd=tmp_path)
    result = gml(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_show_works_while_running_and_ctl_stop_kills_jobs(tmp_path, ray_head):
    proc = start_run(tmp_path, epochs=500, task="long", address=ray_head)
    try:
        pids = running_pids(tmp_path, "long")
        shown = gml("ctl", "show", "--task", "long", "--workdir", "wd", cwd=tmp_path)
        assert shown.returncode == 0
        assert sum("job_" in line and "RUNNING" in line for line in shown.stdout.splitlines()) == 2
        scal = gml("ctl", "show", "--task", "long", "--scalar", "--workdir", "wd", cwd=tmp_path)
        assert scal.returncode == 0 and "acc" in scal.stdout

        t0 = time.time()
        stop = gml("ctl", "stop", "--task", "long", "--workdir", "wd", cwd=tmp_path)
        assert stop.returncode == 0, stop.stderr
        out, err = proc.communicate(timeout=60)
        assert time.time() - t0 < 15
        assert proc.returncode == 0, err
        assert "stopped by `ctl stop`" in out
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store(str(tmp_path / "wd"), create=False)
    statuses = [j["status"] for j in store.jobs("long")]
    assert statuses == ["KILLED", "KILLED"]
    assert store.get_task("long")["status"] == "KILLED"
    assert all(pid_gone(p) for p in pids)


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_ctrl_c_marks_jobs_error_and_exits_130(tmp_path):
    proc = start_run(tmp_path, epochs=500, task="intr")
    try:
        pids = running_pids(tmp_path, "intr")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    store = Store(str(tmp_path / "wd"), create=False)
    assert [j["status"] for j in store.jobs("intr")] == ["ERROR", "ERROR"]
    assert store.get_task("intr")["status"] == "ERROR"
    assert all(pid_gone(p) for p in pids)


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_search_run_and_search_init_entry_points(tmp_path):
    write_files(tmp_path, {"train.py": SLOW_TRAIN, "search_config.yaml": CONFIG.replace("EPOCHS", "1")})
    init = gml("--workdir", "wd", cwd=tmp_path, tool="search-init")
    assert init.returncode == 0 and (tmp_path / "wd" / "gml.db").exists()
    result = gml("--task", "manual", "search_config.yaml", "--workdir", "wd", "--num-cpus", "2",
                 cwd=tmp_path, tool="search-run", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "task manual FINISHED" in result.stdout


def test_resume_from_the_command_line_reruns_only_failed_jobs(tmp_path, ray_head):
    write_files(tmp_path, {
        "train.py": """
            import os, sys
            from gml_ray import SummaryWriter
            x = float(sys.argv[1])
            if x == 0.2 and not os.path.exists(os.environ["GML_TASK"] + ".ok"):
                sys.exit(3)
            SummaryWriter().add_scalar("acc", x, 0)
        """,
        "search_config.yaml": CONFIG.replace("EPOCHS", "1"),
    })
    # jobs run in the task's snapshot of the code: the marker goes there
    first = gml("run", "search_config.yaml", "--task", "res", "--workdir", "wd", "--address", ray_head,
                cwd=tmp_path, timeout=180)
    assert first.returncode == 0, first.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    assert [j["status"] for j in store.jobs("res")] == ["FINISHED", "ERROR", "FINISHED", "FINISHED"]

    again = gml("run", "search_config.yaml", "--task", "res", "--workdir", "wd", cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr

    (tmp_path / "res.ok").write_text("")  # copied into the new snapshot by the resume
    resumed = gml("run", "search_config.yaml", "--task", "res", "--workdir", "wd", "--address", ray_head,
                  "--resume", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    jobs = store.jobs("res")
    assert [j["status"] for j in jobs] == ["FINISHED"] * 4
    assert [j["attempt"] for j in jobs] == [1, 2, 1, 1]


def test_a_crashing_searcher_plugin_is_one_red_line_and_exit_1(tmp_path, ray_head):
    write_files(tmp_path, {
        "train.py": SLOW_TRAIN,
        "bad_searcher.py": """
            from gml_ray.plugins.searcher import BaseSearcher
            from gml_ray.searchers.builder import SEARCHERS

            @SEARCHERS.register_module()
            class BadSearcher(BaseSearcher):
                def get_config(self):
                    raise ZeroDivisionError("my searcher is broken")
        """,
        "search_config.yaml": "custom_imports: [bad_searcher.py]\n" + CONFIG.replace("EPOCHS", "1")
        .replace("type: GridSearcher", "type: BadSearcher"),
    })
    result = gml("run", "search_config.yaml", "--task", "bad", "--workdir", "wd", "--address", ray_head,
                 cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "ZeroDivisionError: my searcher is broken" in result.stderr
    assert "\x1b[" not in Store(str(tmp_path / "wd"), create=False).get_task("bad")["message"]
    log = (tmp_path / "wd" / "tasks" / "bad" / "scheduler.log").read_text()
    assert "my searcher is broken" in log


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_a_sigkilled_run_leaves_no_job_processes_and_no_stale_running(tmp_path):
    proc = start_run(tmp_path, epochs=500, task="killed")
    try:
        pids = running_pids(tmp_path, "killed")
        proc.kill()
        proc.communicate(timeout=30)
        # the jobs notice their Ray worker is gone and end their process groups
        wait_for(lambda: all(pid_gone(p) for p in pids), timeout=30)
    finally:
        # Ray's node agents outlive a SIGKILLed driver: end what this test started
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shown = gml("ctl", "show", "--task", "killed", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0
    store = Store(str(tmp_path / "wd"), create=False)
    assert store.get_task("killed")["status"] == "ERROR"
    assert [j["status"] for j in store.jobs("killed")] == ["ERROR", "ERROR"]
