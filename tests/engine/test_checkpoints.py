"""Checkpoints: the job-side calls, and jobs that restart from their last checkpoint (real Ray,
real job processes, a real store)."""
from __future__ import annotations

import json
import os

import pytest

import gml_ray
from gml_ray import checkpoints, reporting
from gml_ray.config import load_config
from gml_ray.schedulers import NaiveScheduler

# ---- the job side, without Ray ------------------------------------------------------------------


@pytest.fixture
def job_env(tmp_path, monkeypatch):
    """A job's checkpoint environment, and the records it sends."""
    ckpt_dir = tmp_path / "job" / "checkpoints"
    monkeypatch.setenv(checkpoints.ENV_DIR, str(ckpt_dir))
    monkeypatch.delenv(checkpoints.ENV_RESTORE, raising=False)
    monkeypatch.delenv(checkpoints.ENV_RESTORE_STEP, raising=False)
    sent: list[dict] = []
    reporting.set_function_sink(sent.extend)
    reporting.reset_report_step()
    yield ckpt_dir, sent
    reporting.set_function_sink(None)
    reporting.reset_report_step()


def test_a_checkpoint_is_moved_to_its_final_name_then_announced(tmp_path, job_env):
    ckpt_dir, sent = job_env
    written = tmp_path / "state"
    written.mkdir()
    (written / "model.bin").write_bytes(b"x" * 100)
    final = gml_ray.checkpoint(str(written), 7)
    assert final == str(ckpt_dir / "ckpt-7")
    assert not written.exists() and (ckpt_dir / "ckpt-7" / "model.bin").read_bytes() == b"x" * 100
    assert [(r["ckpt"], r["s"], r["b"]) for r in sent] == [(final, 7, 100)]


def test_the_same_step_again_replaces_the_checkpoint(tmp_path, job_env):
    ckpt_dir, _ = job_env
    for text in ("first", "second"):
        (tmp_path / "f.txt").write_text(text)
        gml_ray.checkpoint(str(tmp_path / "f.txt"), 3)
    assert (ckpt_dir / "ckpt-3").read_text() == "second"
    assert sorted(os.listdir(ckpt_dir)) == ["ckpt-3"]


@pytest.mark.parametrize("step", ["three", 2.5, None, True])
def test_a_step_that_is_no_integer_is_refused(tmp_path, job_env, step):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="step must be an integer"):
        gml_ray.checkpoint(str(tmp_path / "f"), step)
    assert job_env[1] == []


def test_a_missing_path_is_refused_and_nothing_is_announced(tmp_path, job_env):
    with pytest.raises(FileNotFoundError, match="nope"):
        gml_ray.checkpoint(str(tmp_path / "nope"), 1)
    assert job_env[1] == []


def test_a_fresh_job_has_no_checkpoint_and_counts_steps_from_0(job_env):
    _, sent = job_env
    assert gml_ray.get_checkpoint() is None and gml_ray.restored_step() is None
    gml_ray.SummaryWriter().add_scalar("acc", 1.0)
    gml_ray.report(loss=2.0)
    assert [r["s"] for r in sent] == [0, 0]


def test_a_restored_job_counts_its_steps_on_from_the_checkpoint(tmp_path, job_env, monkeypatch):
    _, sent = job_env
    (tmp_path / "ckpt").write_text("state")
    monkeypatch.setenv(checkpoints.ENV_RESTORE, str(tmp_path / "ckpt"))
    monkeypatch.setenv(checkpoints.ENV_RESTORE_STEP, "4")
    assert gml_ray.get_checkpoint() == str(tmp_path / "ckpt") and gml_ray.restored_step() == 4
    writer = gml_ray.SummaryWriter()
    writer.add_scalar("acc", 1.0)
    writer.add_scalar("acc", 1.1)
    gml_ray.report(loss=2.0)
    assert [r["s"] for r in sent] == [5, 6, 5]


def test_report_announces_its_checkpoint_at_its_step_after_its_scalars(tmp_path, job_env):
    ckpt_dir, sent = job_env
    for epoch in range(2):
        (tmp_path / "w").write_text(str(epoch))
        gml_ray.report(acc=0.5 + epoch, checkpoint=str(tmp_path / "w"))
    assert [("ckpt" if "ckpt" in r else r["t"], r["s"]) for r in sent] == [
        ("acc", 0), ("ckpt", 0), ("acc", 1), ("ckpt", 1)]
    assert (ckpt_dir / "ckpt-1").read_text() == "1"


# ---- jobs that restart from their checkpoint ------------------------------------------------------

# Trains `epochs` epochs, one checkpoint per epoch; its first attempt dies after the checkpoint of
# epoch `die_at`. Every epoch it runs is logged to epochs.log (shared by its attempts).
TRAIN = """
import json, os, sys, time
import gml_ray
x, epochs, die_at = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
w = gml_ray.SummaryWriter()
start, state = 0, {"sum": 0.0}
ckpt = gml_ray.get_checkpoint()
if ckpt is not None:
    state = json.load(open(os.path.join(ckpt, "state.json")))
    start = gml_ray.restored_step() + 1
log = open(os.path.join(os.environ["GML_JOB_DIR"], "epochs.log"), "a")
for epoch in range(start, epochs):
    state["sum"] += x
    log.write(f"{os.environ['GML_JOB_ATTEMPT']} {epoch} {ckpt or '-'}\\n"); log.flush()
    w.add_scalar("acc", state["sum"], epoch)
    tmp = os.path.join(gml_ray.checkpoint_dir(), "writing")
    os.makedirs(tmp, exist_ok=True)
    json.dump(state, open(os.path.join(tmp, "state.json"), "w"))
    gml_ray.checkpoint(tmp, epoch)
    if epoch == die_at and os.environ["GML_JOB_ATTEMPT"] == "1":
        os._exit(3)
"""

FUNCTION = """
import json, os
import gml_ray

def trial(config):
    start, total = 0, 0.0
    ckpt = gml_ray.get_checkpoint()
    if ckpt is not None:
        total = json.load(open(ckpt))["total"]
        start = gml_ray.restored_step() + 1
    with open("epochs.log", "a") as log:
        for epoch in range(start, 5):
            total += config["x"]
            log.write(f"{os.environ['GML_JOB_ATTEMPT']} {epoch}\\n")
            with open("state.json", "w") as f:
                json.dump({"total": total}, f)
            gml_ray.report(epoch, acc=total, checkpoint="state.json")
            if epoch == 2 and os.environ["GML_JOB_ATTEMPT"] == "1":
                raise RuntimeError("the node went away")
"""


def _config(template: str = "python train.py {x} 6 2", keep: int | None = None, function: str = "") -> str:
    task = "  function: trial:trial\n" if function else f'  template: "{template}"\n'
    checkpoint = f"  checkpoint: {{keep: {keep}}}\n" if keep else ""
    return f"""
task:
{task}  search_args:
    - {{type: Categorical, name: x, data: [1.0, 2.0]}}
searcher:
  type: GridSearcher
  reward_attribute: acc
scheduler:
  parallel_size: 2
{checkpoint}"""


def _run(tmp_path, config: str, files: dict[str, str], resume: bool = False):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "search_config.yaml").write_text(config)
    for name, text in files.items():
        (code / name).write_text(text)
    cfg = load_config(str(code / "search_config.yaml"))
    scheduler = NaiveScheduler(str(tmp_path / "wd"), cfg, task="t", resume=resume)
    store = scheduler.prepare()
    notices: list[str] = []
    summary = scheduler.run(on_notice=notices.append)
    return summary, store, notices


def _epochs(job: dict) -> list[tuple[str, ...]]:
    with open(os.path.join(job["job_dir"], "epochs.log")) as f:
        return [tuple(line.split()) for line in f]


def _curve(store, job_id: int) -> list[tuple[int, float]]:
    """The job's `acc` curve as the views show it: its last attempt's scalars."""
    rows = store.scalars("t", [job_id], ["acc"])
    last = max(r["attempt"] for r in rows)
    return [(r["step"], r["value"]) for r in rows if r["attempt"] == last]


def test_resume_restarts_a_command_job_from_its_checkpoint(ray_session, tmp_path):
    summary, store, _ = _run(tmp_path, _config(), {"train.py": TRAIN})
    assert summary["counts"] == {"ERROR": 2}
    summary, store, notices = _run(tmp_path, _config(), {"train.py": TRAIN}, resume=True)
    assert summary["counts"] == {"FINISHED": 2} and notices == []
    for job in store.jobs("t"):
        ran = _epochs(job)
        # epochs 0-2 once in attempt 1; attempt 2 starts at 3, from the checkpoint of epoch 2
        assert [(a, e) for a, e, _ in ran] == [("1", "0"), ("1", "1"), ("1", "2"),
                                              ("2", "3"), ("2", "4"), ("2", "5")]
        assert ran[3][2].endswith(os.path.join(job["name"], "checkpoints", "ckpt-2"))
        x = job["config"]["x"]
        assert _curve(store, job["job_id"]) == [(e, x * (e + 1)) for e in range(6)]  # one curve, no gap
        assert job["reward"] == x * 6 and job["attempt"] == 2


def test_resume_restarts_a_function_trial_from_its_checkpoint(ray_session, tmp_path):
    summary, store, _ = _run(tmp_path, _config(function="trial"), {"trial.py": FUNCTION})
    assert summary["counts"] == {"ERROR": 2}
    summary, store, _ = _run(tmp_path, _config(function="trial"), {"trial.py": FUNCTION}, resume=True)
    assert summary["counts"] == {"FINISHED": 2}
    for job in store.jobs("t"):
        assert _epochs(job) == [("1", "0"), ("1", "1"), ("1", "2"), ("2", "3"), ("2", "4")]
        x = job["config"]["x"]
        assert _curve(store, job["job_id"]) == [(e, x * (e + 1)) for e in range(5)]


def test_only_the_newest_checkpoints_are_kept(ray_session, tmp_path):
    summary, store, _ = _run(tmp_path, _config("python train.py {x} 6 99", keep=2), {"train.py": TRAIN})
    assert summary["counts"] == {"FINISHED": 2}
    for job in store.jobs("t"):
        ckpt_dir = os.path.join(job["job_dir"], "checkpoints")
        kept = sorted(n for n in os.listdir(ckpt_dir) if not n.startswith(".trash-"))
        assert kept == ["ckpt-4", "ckpt-5"]
        assert [r["step"] for r in store.checkpoints("t", job["job_id"])] == [4, 5]
    assert store.checkpoint_bytes("t") == sum(os.path.getsize(os.path.join(r["path"], "state.json"))
                                              for r in store.checkpoints("t"))


def test_a_missing_checkpoint_means_a_restart_from_scratch_with_one_warning(ray_session, tmp_path):
    _run(tmp_path, _config(), {"train.py": TRAIN})
    first = next(iter(_jobs(tmp_path)))
    for name in os.listdir(os.path.join(first["job_dir"], "checkpoints")):
        checkpoints.remove_tree(os.path.join(first["job_dir"], "checkpoints", name))
    summary, store, notices = _run(tmp_path, _config(), {"train.py": TRAIN}, resume=True)
    assert summary["counts"] == {"FINISHED": 2}
    assert len(notices) == 1 and "job_0001" in notices[0] and "starts from scratch" in notices[0]
    again = store.jobs("t", ["job_0001"])[0]
    assert [(a, e) for a, e, _ in _epochs(again)][3:] == [("2", str(e)) for e in range(6)]
    assert [s for s, _ in _curve(store, 1)] == list(range(6))


def test_a_checkpoint_never_announced_is_never_restored(ray_session, tmp_path):
    _run(tmp_path, _config(), {"train.py": TRAIN})
    jobs = _jobs(tmp_path)
    # a checkpoint under a final name the store was never told of (its announcement was lost)
    stray = os.path.join(jobs[0]["job_dir"], "checkpoints", "ckpt-9")
    os.makedirs(stray)
    with open(os.path.join(stray, "state.json"), "w") as f:
        json.dump({"sum": 1000.0}, f)
    summary, store, _ = _run(tmp_path, _config(), {"train.py": TRAIN}, resume=True)
    assert summary["counts"] == {"FINISHED": 2}
    ran = _epochs(store.jobs("t", ["job_0001"])[0])
    assert ran[3][2].endswith("ckpt-2") and not os.path.exists(stray)


def _jobs(tmp_path) -> list[dict]:
    from gml_ray.store import Store
    return Store(str(tmp_path / "wd"), create=False).jobs("t")


SLOW_TRAIN = TRAIN.replace("    if epoch == die_at", "    time.sleep(0.4)\n    if epoch == die_at")


@pytest.mark.ray
@pytest.mark.slow
def test_resume_after_kill_9_of_the_driver_redoes_no_checkpointed_epoch(tmp_path):
    import signal
    import subprocess
    import time

    from helpers import owned_processes
    from helpers.cli import gml
    from helpers.runs import run_env, wait_for

    (tmp_path / "train.py").write_text(SLOW_TRAIN)
    (tmp_path / "c.yaml").write_text(_config("python train.py {x} 12 99"))
    args = ["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"]
    bin_dir = os.path.dirname(subprocess.sys.executable)
    proc = subprocess.Popen([os.path.join(bin_dir, "gml-ray"), *args], cwd=tmp_path, env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def announced() -> bool:
            if not (tmp_path / "wd" / "gml.db").exists():
                return False
            from gml_ray.store import Store
            rows = Store(str(tmp_path / "wd"), create=False).checkpoints("t")
            return len({r["job_id"] for r in rows if r["step"] >= 3}) == 2
        wait_for(announced, timeout=120, what="both jobs' checkpoint of epoch 3")
        proc.send_signal(signal.SIGKILL)  # the driver only
        proc.wait(timeout=30)
        wait_for(lambda: not owned_processes(proc.pid), timeout=30, what="the run's Ray to end")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    resumed = gml(*args, "--resume", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    for job in _jobs(tmp_path):
        ran = _epochs(job)
        first = [int(e) for a, e, _ in ran if a == "1"]
        again = [(int(e), c) for a, e, c in ran if a == "2"]
        restored = again[0][1]
        step = int(restored.rsplit("ckpt-", 1)[1])
        # attempt 2 went on from the last checkpoint the store recorded: at most the epoch in
        # flight when the driver died is done twice, and every epoch at least once
        assert again[0][0] == step + 1 and step >= 3
        assert max(first) - step <= 1
        assert sorted({*first, *(e for e, _ in again)}) == list(range(12))
    from gml_ray.store import Store
    store = Store(str(tmp_path / "wd"), create=False)
    for job in store.jobs("t"):
        assert job["status"] == "FINISHED"
        assert [s for s, _ in _curve(store, job["job_id"])] == list(range(12))


def test_ctl_shows_checkpoint_bytes_and_exports_them_only_when_asked(ray_session, tmp_path):
    import tarfile

    from helpers.cli import gml

    _run(tmp_path, _config("python train.py {x} 3 99", keep=1), {"train.py": TRAIN})
    shown = gml("ctl", "show", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0 and "checkpoints" in shown.stdout, shown.stdout
    for flag, carried in (([], False), (["--checkpoints"], True)):
        tar_path = tmp_path / f"t{len(flag)}.tar.gz"
        out = gml("ctl", "export", "--task", "t", "--tar-path", str(tar_path), *flag, "--workdir", "wd", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        names = tarfile.open(tar_path).getnames()
        assert any(n.endswith("checkpoints/ckpt-2/state.json") for n in names) == carried
        assert any(n.endswith("epochs.log") for n in names)
        imported = gml("ctl", "import", "--tar-path", str(tar_path), "--task", f"copy{len(flag)}",
                       "--workdir", "wd2", cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        from gml_ray.store import Store
        rows = Store(str(tmp_path / "wd2"), create=False).checkpoints(f"copy{len(flag)}")
        assert len(rows) == (2 if carried else 0)
        assert all(os.path.isfile(os.path.join(r["path"], "state.json")) and "wd2" in r["path"] for r in rows)


@pytest.mark.parametrize("section, message", [
    ("{keep: 0}", "scheduler.checkpoint.keep: must be an integer >= 1, got 0"),
    ("{preempt_grace: 30}", "scheduler.checkpoint.preempt_grace: needs a duration with its unit, like '30s'"),
    ("{preempt_grace: soon}", "scheduler.checkpoint.preempt_grace: needs a duration like"),
    ("{keeps: 2}", "scheduler.checkpoint.keeps: unknown key (did you mean 'keep'?)"),
])
def test_checkpoint_config_mistakes_are_one_line_naming_the_field(tmp_path, section, message):
    from helpers.cli import gml

    (tmp_path / "c.yaml").write_text(_config().replace("scheduler:\n", f"scheduler:\n  checkpoint: {section}\n"))
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
    assert every["message"].endswith(f"paused at its checkpoint of step {newest[1]}")
    assert "no checkpoint within the grace period" in once["message"] and newest[2] == 0
    assert took < 30  # the grace period (2 s) ended it, not the jobs' own end
    assert store.get_task("t")["status"] == "ERROR"

    resumed = gml(*args, "--resume", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    for job in store.jobs("t"):
        assert job["status"] == "FINISHED"
        ran = [(int(a), int(e)) for a, e, _ in _epochs(job)]
        again = [e for a, e in ran if a == 2]
        if job["job_id"] == 1:
            assert again[0] == newest[1] + 1  # not one checkpointed epoch done twice
        elif job["job_id"] == 2:
            assert again[0] == 1
        else:
            assert again[0] == 0  # it never checkpointed: from scratch
        assert [s for s, _ in _curve(store, job["job_id"])] == list(range(30))


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
