"""The training-script side: SummaryWriter and report, inside and outside gml-ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest
from helpers import REPO_DIR

from gml_ray.engine.runners import run_command
from gml_ray.engine.spec import JobSpec

SCRIPT = textwrap.dedent("""
    import numpy as np
    from gml_ray import SummaryWriter
    w = SummaryWriter("by-hand")
    w.add_scalar("acc", 0.5, 0)
    w.add_scalar("acc", np.float32(0.75))
    w.add_scalars("val", {"loss": 1.25, "acc2": 2}, 7)
    print("done")
""")


def test_writer_outside_gml_ray_writes_a_local_file_and_warns_once(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GML_")}
    result = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr.count("not running under gml-ray") == 1
    lines = (tmp_path / "gml_scalars" / "by-hand.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["t"], r["v"], r["s"]) for r in records] == [
        ("acc", 0.5, 0), ("acc", 0.75, 1), ("loss", 1.25, 7), ("acc2", 2, 7)]


def test_command_job_collects_scalars_without_ray(tmp_path):
    """A CommandJob's runner, called directly, returns what the script reported."""
    (tmp_path / "train.py").write_text(SCRIPT + "\nimport sys; sys.exit(4)\n")
    out = run_command(JobSpec(job_id=1, name="j", command="python train.py", cwd=str(tmp_path),
                              job_dir=str(tmp_path / "job")))
    assert out["status"] == "ERROR" and out["exit_code"] == 4
    assert [(r["t"], r["v"]) for r in out["scalars"]] == [("acc", 0.5), ("acc", 0.75),
                                                          ("loss", 1.25), ("acc2", 2)]
    assert (tmp_path / "job" / "stdout.log").read_text().strip() == "done"
    assert not (tmp_path / "gml_scalars").exists()


def reported(tmp_path, script: str) -> list[tuple]:
    """(tag, value, step) of what ``script`` reported, run as a command job that must finish."""
    (tmp_path / "t.py").write_text(script)
    out = run_command(JobSpec(job_id=1, name="j", command="python t.py", cwd=str(tmp_path),
                              job_dir=str(tmp_path / "job")))
    assert out["status"] == "FINISHED", (tmp_path / "job" / "stderr.log").read_text()
    return [(r["t"], r["v"], r["s"]) for r in out["scalars"]]


def test_report_takes_its_step_first_or_by_name(tmp_path):
    """``report(acc=..., step=7)`` (how Tune and Optuna users write it) sets the step; it is not
    a scalar called "step"."""
    assert reported(tmp_path, "from gml_ray import report\nreport(acc=0.5)\nreport(acc=0.6, loss=1.0, step=7)\n"
                              "report(9, acc=0.7)\nreport(acc=0.8)\n") == [
        ("acc", 0.5, 0), ("acc", 0.6, 7), ("loss", 1.0, 7), ("acc", 0.7, 9), ("acc", 0.8, 10)]


def test_torch_tensor_values_are_reported_as_numbers(tmp_path):
    pytest.importorskip("torch")
    assert reported(tmp_path, "import torch\nfrom gml_ray import SummaryWriter\n"
                              "SummaryWriter().add_scalar('acc', torch.tensor([0.25]), 3)\n") == [("acc", 0.25, 3)]


def test_the_wheel_ships_the_cli_inside_gml_ray_not_as_a_top_level_cli_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), REPO_DIR], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("gml_ray-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gml_ray/cli/main.py" in names
    assert not [n for n in names if n.startswith("cli/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("gml-ray =", "search-init =", "search-run =", "search-ctl ="):
        assert script in text


def test_a_short_command_job_sends_no_message_and_a_long_one_streams(ray_session, tmp_path):
    """Under 50 ms a job's reports come back with its outcome (no scheduler wake-up); a longer job
    announces its start and streams its reports while it runs, and none is lost either way."""
    import ray

    from gml_ray.engine.channel import MessageChannel

    (tmp_path / "quick.py").write_text("from gml_ray import report\nreport(acc=0.5)\n")
    (tmp_path / "slow.py").write_text(
        "import time\nfrom gml_ray import report\nreport(acc=0.1)\ntime.sleep(0.4)\nreport(acc=0.2)\n")
    channel = MessageChannel.remote()
    try:
        quick = run_command(JobSpec(job_id=1, name="q", command="exec python quick.py",
                                    cwd=str(tmp_path), job_dir=str(tmp_path / "q")), channel)
        if quick["ended"] - quick["started"] < 0.04:  # a loaded machine may take longer to start
            assert quick["sent"] == 0 and ray.get(channel.size.remote()) == 0
        sent_by_quick = ray.get(channel.get_all.remote()) if quick["sent"] else []
        assert [r["v"] for m in sent_by_quick if m[0] == "scalars" for r in m[3]] + \
            [r["v"] for r in quick.get("scalars", [])] == [0.5]

        slow = run_command(JobSpec(job_id=2, name="s", command="python slow.py", cwd=str(tmp_path),
                                   job_dir=str(tmp_path / "s")), channel)
        messages = ray.get(channel.get_all.remote())
        # The channel is an async actor: messages may arrive out of order (reports carry steps).
        assert sorted(m[0] for m in messages) == ["scalars"] * (len(messages) - 1) + ["start"]
        assert {m[1] for m in messages} == {2}
        streamed = sorted((r["s"], r["v"]) for m in messages if m[0] == "scalars" for r in m[3])
        assert slow["sent"] == len(messages) and "scalars" not in slow
        assert [v for _, v in streamed] == [0.1, 0.2]
    finally:
        ray.kill(channel)


def test_the_jobs_alarm_runs_callbacks_in_time_order_and_a_cancel_waits_for_a_running_one():
    """Short trials schedule their start message on one shared thread: a cancelled one never
    runs, a cancel during its run returns after it, and a failing callback stops nothing."""
    import threading
    import time

    from gml_ray.engine.timers import Alarm as _Alarm

    alarm, ran = _Alarm(), []
    slow_runs, last_ran = threading.Event(), threading.Event()
    alarm.cancel(alarm.schedule(0.05, lambda: ran.append("cancelled")))
    alarm.schedule(0.0, lambda: 1 / 0)
    slow = alarm.schedule(0.03, lambda: (slow_runs.set(), time.sleep(0.3), ran.append("slow")))
    alarm.schedule(0.01, lambda: ran.append("first"))
    alarm.schedule(0.06, last_ran.set)  # after the cancelled one's time: it has had its chance
    assert slow_runs.wait(10)
    alarm.cancel(slow)  # returns once the running callback is done
    assert ran == ["first", "slow"]
    assert last_ran.wait(10)
    assert ran == ["first", "slow"]


def test_a_trial_worker_cancelled_before_its_trial_starts_never_calls_it(tmp_path):
    from gml_ray.engine.workers import TrialWorker

    (tmp_path / "objective.py").write_text(
        "def train(config):\n    open('ran', 'w').close()\n")  # in the job dir (its cwd)
    worker = TrialWorker()
    spec = JobSpec(job_id=7, attempt=2, function="objective:train", cwd=str(tmp_path),
                   job_dir=str(tmp_path / "job"))
    worker.cancel((7, 2), "stopped by `ctl stop`")  # arrives before the trial (queued behind it)
    out = worker.run(spec)
    assert (out["status"], out["message"]) == ("KILLED", "stopped by `ctl stop`")
    assert not (tmp_path / "job" / "ran").exists()
    # the next trial on the same worker runs normally
    again = worker.run(JobSpec(job_id=8, function="objective:train", cwd=str(tmp_path),
                               job_dir=str(tmp_path / "job8")))
    assert again["status"] == "FINISHED" and (tmp_path / "job8" / "ran").exists()
