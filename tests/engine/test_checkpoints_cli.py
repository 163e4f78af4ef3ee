"""Checkpoints through the command line: a run killed -9 and resumed, SIGTERM's preemption, the
config's mistakes, a full disk while a checkpoint is copied in (real processes, real stores)."""
from __future__ import annotations

import os

import pytest
from helpers.checkpointing import TRAIN, checkpoint_config, curve_of, epochs_run, jobs_of

from gml_ray import checkpoints

SLOW_TRAIN = TRAIN.replace("    if epoch == die_at", "    time.sleep(0.4)\n    if epoch == die_at")


@pytest.mark.ray
@pytest.mark.slow
def test_resume_after_kill_9_of_the_driver_redoes_no_checkpointed_epoch(tmp_path, ray_head):
    from helpers.cli import gml
    from helpers.runs import killed_9_when, on_head

    from gml_ray.store import Store

    (tmp_path / "train.py").write_text(SLOW_TRAIN)
    (tmp_path / "c.yaml").write_text(checkpoint_config("python train.py {x} 12 99"))
    args = ["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"]

    def announced() -> bool:
        if not (tmp_path / "wd" / "gml.db").exists():
            return False
        rows = Store(str(tmp_path / "wd"), create=False).checkpoints("t")
        return len({r["job_id"] for r in rows if r["step"] >= 3}) == 2
    killed_9_when(args, tmp_path, announced, "both jobs' checkpoint of epoch 3")
    resumed = gml(*on_head(args, ray_head), "--resume", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    for job in jobs_of(tmp_path):
        ran = epochs_run(job)
        first = [int(e) for a, e, _ in ran if a == "1"]
        again = [(int(e), c) for a, e, c in ran if a == "2"]
        restored = again[0][1]
        step = int(restored.rsplit("ckpt-", 1)[1])
        # attempt 2 went on from the last checkpoint the store recorded: at most the epoch in
        # flight when the driver died is done twice, and every epoch at least once
        assert again[0][0] == step + 1 and step >= 3
        assert max(first) - step <= 1
        assert sorted({*first, *(e for e, _ in again)}) == list(range(12))
    store = Store(str(tmp_path / "wd"), create=False)
    for job in store.jobs("t"):
        assert job["status"] == "FINISHED"
        assert [s for s, _ in curve_of(store, job["job_id"])] == list(range(12))


@pytest.mark.parametrize("section, message", [
    ("{keep: 0}", "scheduler.checkpoint.keep: must be an integer >= 1, got 0"),
    ("{preempt_grace: 30}", "scheduler.checkpoint.preempt_grace: needs a duration with its unit, like '30s'"),
    ("{preempt_grace: soon}", "scheduler.checkpoint.preempt_grace: needs a duration like"),
    ("{keeps: 2}", "scheduler.checkpoint.keeps: unknown key (did you mean 'keep'?)"),
])
def test_checkpoint_config_mistakes_are_one_line_naming_the_field(tmp_path, section, message):
    from helpers.cli import gml

    (tmp_path / "c.yaml").write_text(checkpoint_config().replace("scheduler:\n", f"scheduler:\n  checkpoint: {section}\n"))
    out = gml("run", "c.yaml", "--workdir", "wd", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr


# Checkpoints every epoch (`every`), only at epoch 0 (`once`), or never (`never`).
PREEMPTED = """
import json, os, sys, time
import gml_ray
how = sys.argv[1]
w = gml_ray.SummaryWriter()
start = 0 if gml_ray.get_checkpoint() is None else gml_ray.restored_step() + 1
log = open(os.path.join(os.environ["GML_JOB_DIR"], "epochs.log"), "a")
for epoch in range(start, 30):
    log.write(f"{os.environ['GML_JOB_ATTEMPT']} {epoch} -\\n"); log.flush()
    w.add_scalar("acc", float(epoch), epoch)
    if how == "every" or (how == "once" and epoch == 0):
        tmp = os.path.join(gml_ray.checkpoint_dir(), "w")
        os.makedirs(tmp, exist_ok=True)
        gml_ray.checkpoint(tmp, epoch)
    time.sleep(0.1 if os.environ["GML_JOB_ATTEMPT"] != "1" else 0.4)
"""


@pytest.mark.ray
@pytest.mark.slow
def test_sigterm_pauses_jobs_at_their_next_checkpoint_and_resume_goes_on_from_there(tmp_path):
    import signal
    import time

    from helpers.cli import gml
    from helpers.runs import start, wait_for

    from gml_ray.store import Store

    (tmp_path / "train.py").write_text(PREEMPTED)
    (tmp_path / "c.yaml").write_text("""
task:
  template: "python train.py {how}"
  search_args: [{type: Categorical, name: how, data: [every, once, never]}]
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler:
  parallel_size: 3
  checkpoint: {preempt_grace: 2s}
""")
    args = ["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "3"]
    run = start(args, tmp_path)
    try:
        def ready() -> bool:
            if not (tmp_path / "wd" / "gml.db").exists():
                return False
            store = Store(str(tmp_path / "wd"), create=False)
            steps = {r["job_id"]: r["step"] for r in store.checkpoints("t")}
            running = [j for j in store.jobs("t") if j["status"] == "RUNNING"]
            return len(running) == 3 and steps.get(1, -1) >= 2 and 2 in steps
        wait_for(ready, timeout=120, what="three running jobs, two with checkpoints")
        sent = time.time()
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
        took = time.time() - sent
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("terminated (SIGTERM): 2 jobs of t paused at their checkpoints"), err
    store = Store(str(tmp_path / "wd"), create=False)
    every, once, never = store.jobs("t")
    assert (every["status"], once["status"], never["status"]) == ("PAUSED", "PAUSED", "ERROR")
    newest = {j: store.checkpoints("t", j)[-1]["step"] for j in (1, 2)}
    # paused right after a checkpoint (one more may land before the stop does: the newest counts)
    paused_at = int(every["message"].rsplit("paused at its checkpoint of step ", 1)[1])
    assert paused_at <= newest[1] <= paused_at + 1
    assert "no checkpoint within the grace period" in once["message"] and newest[2] == 0
    assert took < 30  # the grace period (2 s) ended it, not the jobs' own end
    assert store.get_task("t")["status"] == "ERROR"

    resumed = gml(*args, "--resume", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    for job in store.jobs("t"):
        assert job["status"] == "FINISHED"
        ran = [(int(a), int(e)) for a, e, _ in epochs_run(job)]
        again = [e for a, e in ran if a == 2]
        if job["job_id"] == 1:
            assert again[0] == newest[1] + 1  # not one checkpointed epoch done twice
        elif job["job_id"] == 2:
            assert again[0] == 1
        else:
            assert again[0] == 0  # it never checkpointed: from scratch
        assert [s for s, _ in curve_of(store, job["job_id"])] == list(range(30))


def test_a_full_disk_while_a_checkpoint_is_copied_in_leaves_the_previous_one_and_a_warning(tmp_path):
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "job.py").write_text("""
import os, gml_ray
open("small", "w").write("s")
assert gml_ray.checkpoint("small", 0).endswith("ckpt-0")
open("big", "wb").write(os.urandom(2 << 20))  # on another file system, and more than the 1 MiB left
print("returned", gml_ray.checkpoint("big", 1))
print("left", sorted(os.listdir(gml_ray.checkpoint_dir())), os.path.exists("big"))
""")
    script = f'mount -t tmpfs -o size=1m none ckpt || exit 99\n"{sys.executable}" job.py'
    env = {k: v for k, v in os.environ.items() if not k.startswith("GML_")}
    env[checkpoints.ENV_DIR] = str(tmp_path / "ckpt")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=env)
    if result.returncode == 99:
        pytest.skip("cannot mount a tmpfs here")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["returned None", "left ['ckpt-0'] True"]
    assert "checkpoint of step 1 not saved (No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
