"""End-to-end runs of the scheduler actor on a real local Ray with real job processes."""
from __future__ import annotations

import logging
import math
import os
import time

import pytest
from helpers import pid_alive

from gml_ray.store.schema import FLAG_INF, FLAG_NAN, FLAG_TEXT
from gml_ray.vocab import JobStatus

# A training script: reports `acc` = x * (epoch + 1) for `epochs` epochs, then obeys --then.
TRAIN = """
import argparse, os, sys, time
from gml_ray import SummaryWriter
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=1.0)
p.add_argument("--epochs", type=int, default=2)
p.add_argument("--then", default="exit0")
p.add_argument("--sleep", type=float, default=0.0)
a = p.parse_args()
w = SummaryWriter("train")
for e in range(a.epochs):
    w.add_scalar("acc", a.x * (e + 1), e)
    time.sleep(a.sleep)
if a.then == "crash":
    raise RuntimeError("boom after reporting")
if a.then == "hang":
    import subprocess
    child = subprocess.Popen(["sleep", "1000"])
    with open(os.environ["GML_JOB_DIR"] + "/pids", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(1000)
"""


def _config(search_args: str, template: str = "python train.py --x {x}", searcher: str = "",
            scheduler: str = "", extra: str = "") -> str:
    return f"""
task:
  template: "{template}"
  search_args:
{search_args}
searcher:
  type: GridSearcher
  reward_attribute: acc
{searcher}
scheduler:
  parallel_size: 2
{scheduler}
{extra}
"""


X_ARGS = "    - {type: Categorical, name: x, data: [0.1, 0.3, 0.2]}"


def test_grid_runs_every_config_and_ranks_rewards(run_task):
    run = run_task(_config(X_ARGS), {"train.py": TRAIN})
    jobs = run.jobs
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 3
    assert [j["arg_dict"]["x"] for j in jobs] == [0.1, 0.3, 0.2]
    # reward = best acc reported = x * epochs
    assert [j["reward"] for j in jobs] == pytest.approx([0.2, 0.6, 0.4])
    assert run.summary["best_reward"] == pytest.approx(0.6)
    assert run.summary["best_job"] == "job_0002"
    assert run.summary["status"] == JobStatus.FINISHED
    assert all(j["node"] for j in jobs) and all(j["ended"] >= j["started"] for j in jobs)


def test_minimize_picks_the_lowest_reward(run_task):
    run = run_task(_config(X_ARGS, searcher="  optimize_mode: minimize"), {"train.py": TRAIN})
    # for minimize the job's reward is the lowest acc it reported: x * 1
    assert [j["reward"] for j in run.jobs] == pytest.approx([0.1, 0.3, 0.2])
    assert run.summary["best_job"] == "job_0001"


def test_failing_job_is_error_and_others_finish(run_task):
    args = X_ARGS + "\n    - {type: Categorical, name: then, data: [exit0, crash]}"
    run = run_task(_config(args, template="python train.py --x {x} --then {then}"),
                   {"train.py": TRAIN})
    by_then = {}
    for j in run.jobs:
        by_then.setdefault(j["arg_dict"]["then"], []).append(j)
    assert [j["status"] for j in by_then["exit0"]] == [JobStatus.FINISHED] * 3
    assert [j["status"] for j in by_then["crash"]] == [JobStatus.ERROR] * 3
    # the crashed jobs' scalars, reported before the crash, are all there
    for j in by_then["crash"]:
        rows = run.scalars(j["job_id"], "acc")
        assert [r["step"] for r in rows] == [0, 1]
        assert j["exit_code"] == 1 and "exit code 1" in j["message"]
        stderr = open(os.path.join(j["job_dir"], "stderr.log")).read()
        assert "boom after reporting" in stderr


def test_max_tries_limits_launched_jobs(run_task):
    args = "    - {type: Int, name: x, data: [1, 50]}"
    run = run_task(_config(args, scheduler="  stop_criterion: {max_tries: 4}"), {"train.py": TRAIN})
    assert len(run.jobs) == 4
    assert run.summary["launched"] == 4
    assert "max_tries=4" in run.summary["reason"]


def test_max_reward_stops_the_task(run_task):
    args = "    - {type: Int, name: x, data: [1, 50]}"
    run = run_task(_config(args, scheduler="  parallel_size: 1\n  stop_criterion: {max_reward: 5}")
                   .replace("  parallel_size: 2\n", ""), {"train.py": TRAIN})
    # x=1 -> 2, x=2 -> 4, x=3 -> 6 >= 5: stop
    assert len(run.jobs) == 3
    assert run.summary["best_reward"] == 6
    assert "max_reward" in run.summary["reason"]


def test_time_limits_per_job_kills_the_process_group(run_task):
    args = "    - {type: Categorical, name: x, data: [1, 2]}"
    t0 = time.time()
    run = run_task(_config(args, template="python train.py --x {x} --then hang",
                           scheduler="  stop_criterion: {time_limits_per_job: 3s}"),
                   {"train.py": TRAIN})
    assert time.time() - t0 < 30
    for j in run.jobs:
        assert j["status"] == JobStatus.KILLED
        assert "time_limits_per_job" in j["message"]
        pids = [int(p) for p in open(os.path.join(j["job_dir"], "pids")).read().split()]
        assert not any(pid_alive(p) for p in pids), "a job process outlived its time limit"
        # scalars reported before the kill are kept and give the reward
        assert j["reward"] == 2 * j["arg_dict"]["x"]


def test_time_limits_stops_the_task_and_kills_running_jobs(run_task):
    args = "    - {type: Int, name: x, data: [1, 50]}"
    t0 = time.time()
    run = run_task(_config(args, template="python train.py --x {x} --then hang",
                           scheduler="  stop_criterion: {time_limits: 4s}"), {"train.py": TRAIN})
    assert time.time() - t0 < 30
    assert run.statuses() == [JobStatus.KILLED, JobStatus.KILLED]
    assert "time_limits" in run.summary["reason"]
    for j in run.jobs:
        pids = [int(p) for p in open(os.path.join(j["job_dir"], "pids")).read().split()]
        assert not any(pid_alive(p) for p in pids)


def test_file_args_are_rendered_per_job(run_task):
    files = {
        "train.py": """
            import argparse, yaml
            from gml_ray import SummaryWriter
            p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--bs", type=int)
            a = p.parse_args()
            cfg = yaml.safe_load(open(a.config))
            SummaryWriter().add_scalar("acc", cfg["epochs"] * 10 + cfg["scheduler"]["gamma"] + a.bs, 0)
        """,
        "config.yaml": "epochs: 1\nscheduler: {step_size: 9, gamma: 0.1}\nkeep: me\n",
    }
    args = """
    - {type: Categorical, name: bs, data: [1000, 2000]}
    - type: File
      name: config
      file: config.yaml
      place_holder: file_art
      search_args:
        - {type: Categorical, name: epochs, data: [3, 4]}
        - type: Nested
          data: [{scheduler.step_size: 1, scheduler.gamma: 0.5}, {scheduler.step_size: 2, scheduler.gamma: 0.7}]
"""
    run = run_task(_config(args, template="python train.py --config '{config}' --bs {bs}"), files)
    import yaml
    assert len(run.jobs) == 8 and run.statuses() == [JobStatus.FINISHED] * 8
    for j in run.jobs:
        a = j["arg_dict"]
        assert set(a) == {"bs", "config(epochs)", "config(scheduler.step_size)", "config(scheduler.gamma)"}
        path = os.path.join(j["job_dir"], "file_art.yaml")
        cfg = yaml.safe_load(open(path))
        assert cfg == {"epochs": a["config(epochs)"], "keep": "me",
                       "scheduler": {"step_size": a["config(scheduler.step_size)"],
                                     "gamma": a["config(scheduler.gamma)"]}}
        assert path in j["command"]
        assert j["reward"] == pytest.approx(a["config(epochs)"] * 10 + a["config(scheduler.gamma)"] + a["bs"])
    # the user's file is untouched
    assert "epochs: 1" in open(os.path.join(os.path.dirname(run.work_dir), "code", "config.yaml")).read()


def test_odd_scalars_are_stored_flagged_and_never_a_reward(run_task):
    files = {"train.py": """
        import sys
        from gml_ray import SummaryWriter
        w = SummaryWriter()
        w.add_scalar("acc", float("nan"), 0)
        w.add_scalar("acc", float("inf"), 1)
        w.add_scalar("acc", "n/a", 2)
        w.add_scalar("acc", 0.5, 3)
        w.add_scalar("loss", 1.5)
        print("x" * 100000)
    """}
    run = run_task(_config("    - {type: Categorical, name: x, data: [1]}",
                           template="python train.py {x}"), files)
    (job,) = run.jobs
    assert job["status"] == JobStatus.FINISHED
    assert job["reward"] == 0.5
    rows = run.scalars(job["job_id"], "acc")
    assert [r["flag"] for r in rows] == [FLAG_NAN, FLAG_INF, FLAG_TEXT, 0]
    assert math.isnan(rows[0]["value"]) and rows[1]["value"] == math.inf and rows[2]["text"] == "n/a"
    assert run.scalars(job["job_id"], "loss")[0]["value"] == 1.5


def test_function_trials_report_through_gml_ray_report(run_task):
    files = {"objective.py": """
        import gml_ray
        def train(config):
            for step in range(3):
                gml_ray.report(score=(config["x"] - 0.3) ** 2 + step, other=step)
        def broken(config):
            gml_ray.report(score=1.0)
            raise ValueError("bad config")
    """}
    cfg = """
task:
  function: "objective:train"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.3, 0.5]}
searcher: {reward_attribute: score, optimize_mode: minimize}
scheduler: {parallel_size: 2}
"""
    run = run_task(cfg, files)
    assert run.statuses() == [JobStatus.FINISHED] * 3
    assert [j["reward"] for j in run.jobs] == pytest.approx([0.04, 0.0, 0.04])
    assert [r["step"] for r in run.scalars(1, "score")] == [0, 1, 2]
    assert run.summary["best_job"] == "job_0002"


def test_function_trial_exception_is_error_with_scalars_kept(run_task):
    files = {"objective.py": """
        import gml_ray
        def broken(config):
            gml_ray.report(score=config["x"])
            raise ValueError("bad config")
    """}
    cfg = """
task:
  function: "objective:broken"
  search_args:
    - {type: Categorical, name: x, data: [1, 2]}
searcher: {reward_attribute: score}
"""
    run = run_task(cfg, files)
    assert run.statuses() == [JobStatus.ERROR, JobStatus.ERROR]
    assert all("ValueError: bad config" in j["message"] for j in run.jobs)
    assert [r["value"] for r in run.scalars(2, "score")] == [2]


MANUAL_STOP = '''
from gml_ray.schedulers import STOP_CRITERIONS, BaseStopCriterion, get_current_time

@STOP_CRITERIONS.register_module()
class MyStopCriterion(BaseStopCriterion):

    def __init__(self, *args, **kwargs):
        pass

    def before_run(self, scheduler):
        self.start_task_time = get_current_time()
        scheduler.step = 0

    def after_run(self, scheduler):
        pass

    def before_iter(self, scheduler):
        scheduler.step += 1
        if scheduler.step > 2:
            scheduler.is_stop = True

    def after_iter(self, scheduler):
        pass
'''

MANUAL_FILTER = '''
from gml_ray.schedulers import FILTER_CRITERIONS, BaseFilterCriterion

@FILTER_CRITERIONS.register_module()
class MyFilterCriterion(BaseFilterCriterion):

    def __init__(self, *args, **kwargs):
        pass

    def filter(self, job):
        """When batch_size >= 512, epochs must stay below 4."""
        arg_dict = job.arg_dict
        batch_size = arg_dict['batch-size']
        epochs = arg_dict['config(epochs)']
        needFilter = batch_size >= 512 and epochs >= 4
        return needFilter
'''


def test_manual_stop_and_filter_plugins_run_unchanged(run_task):
    files = {
        "custom_stop_criterion.py": MANUAL_STOP,
        "custom_filter_criterion.py": MANUAL_FILTER,
        "train.py": "from gml_ray import SummaryWriter\nSummaryWriter().add_scalar('acc', 1.0, 0)\n",
        "config.yaml": "epochs: 1\n",
    }
    cfg = """
custom_imports: [custom_stop_criterion.py, custom_filter_criterion.py]
task:
  template: "python train.py --bs {batch-size} --config {config}"
  search_args:
    - {type: Categorical, name: batch-size, data: [256, 1024]}
    - type: File
      name: config
      file: config.yaml
      args:
        - {type: Categorical, name: epochs, data: [3, 4, 5]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler:
  parallel_size: 1
  stop_criterion: {type: MyStopCriterion}
  filter_criterion: {type: MyFilterCriterion}
"""
    run = run_task(cfg, files)
    launched = [(j["arg_dict"]["batch-size"], j["arg_dict"]["config(epochs)"]) for j in run.jobs]
    # grid order: (256,3) (256,4) (256,5) ...; the custom criterion stops after two launches
    assert launched == [(256, 3), (256, 4)]
    assert run.statuses() == [JobStatus.FINISHED, JobStatus.FINISHED]


def test_filter_drops_configs_and_they_do_not_count_as_tries(run_task):
    files = {
        "custom_filter_criterion.py": MANUAL_FILTER,
        "train.py": "from gml_ray import SummaryWriter\nSummaryWriter().add_scalar('acc', 1.0, 0)\n",
        "config.yaml": "epochs: 1\n",
    }
    cfg = """
custom_imports: [custom_filter_criterion.py]
task:
  template: "python train.py --bs {batch-size} --config {config}"
  search_args:
    - {type: Categorical, name: batch-size, data: [256, 1024]}
    - type: File
      name: config
      file: config.yaml
      args:
        - {type: Categorical, name: epochs, data: [3, 4, 5]}
scheduler:
  parallel_size: 2
  stop_criterion: {max_tries: 10}
  filter_criterion: {type: MyFilterCriterion}
"""
    run = run_task(cfg, files)
    launched = sorted((j["arg_dict"]["batch-size"], j["arg_dict"]["config(epochs)"]) for j in run.jobs)
    assert launched == [(256, 3), (256, 4), (256, 5), (1024, 3)]
    assert run.summary["filtered"] == 2


MANUAL_ASSESSOR = '''
from gml_ray.assessors import ASSESSORS, AssessResult, BaseAssessor

@ASSESSORS.register_module()
class MyAssessor(BaseAssessor):

    def __init__(self, optimize_mode='maximize'):
        self.ended = []

    def assess_job(self, trial_job_id, latest_trial_history):
        # stop any job whose second value is still below 1
        if len(latest_trial_history) >= 2 and latest_trial_history[-1]['value'] < 1:
            return AssessResult.Bad
        return AssessResult.Good

    def job_end(self, trial_job_id):
        self.ended.append(trial_job_id)
'''


def test_assessor_bad_stops_the_job_early(run_task):
    files = {"my_assessor.py": MANUAL_ASSESSOR, "train.py": TRAIN}
    # x 0.01: every value of the 100 is below 1, so the assessor may judge at any point (with
    # x 0.1 only the 2nd to 9th were, a 0.8 s window that a loaded CI machine could miss)
    args = "    - {type: Categorical, name: x, data: [0.01, 2]}"
    run = run_task(_config(args, template="python train.py --x {x} --epochs 100 --sleep 0.1",
                           scheduler="  assessor: {type: MyAssessor}",
                           extra="custom_imports: [my_assessor.py]"), files)
    low, high = run.jobs
    assert low["status"] == JobStatus.EARLY_STOPPED and high["status"] == JobStatus.FINISHED
    # stopped after its 2nd epoch, long before its 100th (a loaded CI machine took 4 s to stop it)
    assert len(run.scalars(low["job_id"], "acc")) < 60
    assert low["reward"] is not None


def test_metrics_none_runs_jobs_without_scalars(run_task):
    run = run_task(_config(X_ARGS, extra="metrics: none"), {"train.py": TRAIN})
    assert run.statuses() == [JobStatus.FINISHED] * 3
    assert run.scalars() == []
    assert not os.path.exists(os.path.join(os.path.dirname(run.work_dir), "code", "gml_scalars"))


def test_resume_reruns_error_jobs_first_and_never_reruns_finished_ones(run_task, tmp_path):
    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    # First attempt: x=2 fails because a marker file is missing; the rest finish.
    marker = tmp_path / "marker"
    train = TRAIN.replace('if a.then == "crash":',
                          f'if a.x == 2 and not os.path.exists({str(marker)!r}):\n'
                          '    raise SystemExit(5)\nif a.then == "crash":')
    args = "    - {type: Categorical, name: x, data: [1, 2, 3, 4, 5]}"
    first = run_task(_config(args, scheduler="  stop_criterion: {max_tries: 4}"), {"train.py": train})
    assert first.statuses() == [JobStatus.FINISHED, JobStatus.ERROR, JobStatus.FINISHED, JobStatus.FINISHED]
    marker.write_text("fixed")
    cfg = load_config(str(tmp_path / "code" / "search_config.yaml"))
    cfg.stop.max_tries = 5
    again = NaiveScheduler(first.work_dir, cfg, task="t", resume=True)
    again.prepare()
    summary = again.run()
    jobs = first.store.jobs("t")
    assert [j["arg_dict"]["x"] for j in jobs] == [1, 2, 3, 4, 5]
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 5
    assert [j["attempt"] for j in jobs] == [1, 2, 1, 1, 1]
    assert jobs[1]["reward"] == 4  # from the second attempt
    # scalars of both attempts of job 2 are kept, marked by attempt: the first one reported too
    attempts = sorted({r["attempt"] for r in first.store.scalars("t", [2])})
    assert attempts == [1, 2]
    assert summary["launched"] == 5 and summary["best_reward"] == 10


def test_a_resumed_function_trial_that_failed_runs_again_on_the_runs_actor_pool(run_task, tmp_path):
    """A failed function trial is run again by --resume on the run's actor pool (a Ray task would
    wait forever for a CPU the pool's actors hold; the time limit turns that into a failure)."""
    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    marker = tmp_path / "marker"
    objective = (f"import os\nimport gml_ray\n\n\ndef trial(config):\n"
                 f"    if config['x'] == 2 and not os.path.exists({str(marker)!r}):\n"
                 f"        raise ValueError('not yet')\n"
                 f"    gml_ray.report(acc=config['x'])\n")
    first = run_task("""
task:
  function: "objective:trial"
  search_args: [{type: Categorical, name: x, data: [1, 2, 3]}]
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2, stop_criterion: {time_limits: 120}}
""", {"objective.py": objective})
    assert first.statuses() == [JobStatus.FINISHED, JobStatus.ERROR, JobStatus.FINISHED]
    marker.write_text("")
    again = NaiveScheduler(first.work_dir, load_config(str(tmp_path / "code" / "search_config.yaml")),
                           task="t", resume=True)
    again.prepare()
    again.run()
    jobs = first.store.jobs("t")
    assert [(j["status"], j["attempt"], j["reward"]) for j in jobs] == [
        (JobStatus.FINISHED, 1, 1), (JobStatus.FINISHED, 2, 2), (JobStatus.FINISHED, 1, 3)]


def test_jobs_run_in_a_snapshot_with_symlinked_paths(ray_session, tmp_path):
    from helpers import write_files

    from gml_ray.schedulers import NaiveScheduler

    code = tmp_path / "code"
    write_files(code, {
        "train.py": """
            import os
            from gml_ray import SummaryWriter
            here = os.getcwd()
            SummaryWriter().add_scalar("acc", len(open("data/big.txt").read()), 0)
            print(here, os.path.islink("data"), os.path.exists("notes.txt"))
        """,
        "data/big.txt": "12345",
        "notes.txt": "copied",
        "search_config.yaml": _config("    - {type: Categorical, name: x, data: [1]}",
                                      template="python train.py {x}"),
    })
    os.makedirs(code / ".git")
    (code / ".git" / "HEAD").write_text("ref")
    sched = NaiveScheduler(str(code / "wd"), str(code / "search_config.yaml"), ["data"], task="snap")
    sched.prepare()
    (code / "train.py").write_text("raise SystemExit(9)\n")  # editing the code after the start
    sched.run()
    (job,) = sched.store.jobs("snap")
    assert job["status"] == JobStatus.FINISHED and job["reward"] == 5
    snap = os.path.join(sched.task_dir, "code")
    out = open(os.path.join(job["job_dir"], "stdout.log")).read().split()
    assert out == [snap, "True", "True"]
    assert os.path.islink(os.path.join(snap, "data"))
    assert not os.path.exists(os.path.join(snap, ".git")) and not os.path.exists(os.path.join(snap, "wd"))


THINKING_SEARCHER = '''
import os, time
from gml_ray.searchers.builder import SEARCHERS
from gml_ray.searchers.random import RandomSearcher

@SEARCHERS.register_module()
class ThinkingSearcher(RandomSearcher):
    """Takes 1.5 s per config (a GP would), and says so in a marker file while it thinks."""
    def get_config(self):
        marker = MARKER
        open(marker, "w").close()
        time.sleep(1.5)
        os.remove(marker)
        return super().get_config()
'''


def test_a_thinking_searcher_does_not_hold_the_store_write_lock(run_task, tmp_path):
    """Other runs in the work dir and `ctl stop` write to the same SQLite file: they must not wait
    for a searcher that takes seconds per config."""
    import sqlite3

    marker, writes = tmp_path / "thinking", []
    searcher = THINKING_SEARCHER.replace("MARKER", repr(str(marker)))

    def try_a_write():
        if marker.exists() and len(writes) < 3:
            conn = sqlite3.connect(str(tmp_path / "wd" / "gml.db"), timeout=0.3)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                writes.append("ok")
            except sqlite3.OperationalError as exc:
                writes.append(str(exc))
            finally:
                conn.close()

    cfg = """
custom_imports: [thinking.py]
task:
  template: "python train.py --x {x}"
  search_args: [{type: Int, name: x, data: [1, 100]}]
searcher: {type: ThinkingSearcher, reward_attribute: acc}
scheduler: {parallel_size: 1, stop_criterion: {max_tries: 3}}
"""
    run = run_task(cfg, {"train.py": TRAIN, "thinking.py": searcher}, on_progress=try_a_write)
    assert run.statuses() == [JobStatus.FINISHED] * 3
    assert writes and set(writes) == {"ok"}, writes


FAILING_CHECK = '''
from gml_ray.schedulers import STOP_CRITERIONS, BaseStopCriterion

@STOP_CRITERIONS.register_module()
class FailsOnFirstResult(BaseStopCriterion):
    def check(self, scheduler):
        # in the round where the first job ended (its reports may have come earlier, as it ran)
        if scheduler.best_reward is not None and not scheduler.running:
            raise RuntimeError("my stop criterion is broken")
'''


def test_a_failing_stop_criterion_keeps_what_its_round_stored(ray_session, tmp_path):
    """The job that ended in the round where a plugin failed stays FINISHED with its scalars."""
    from helpers import write_files

    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    write_files(tmp_path / "code", {"train.py": TRAIN, "failing.py": FAILING_CHECK, "search_config.yaml": """
        custom_imports: [failing.py]
        task:
          template: "python train.py --x {x}"
          search_args: [{type: Categorical, name: x, data: [1, 2, 3]}]
        searcher: {type: GridSearcher, reward_attribute: acc}
        scheduler: {parallel_size: 1, stop_criterion: {type: FailsOnFirstResult}}
    """})
    scheduler = NaiveScheduler(str(tmp_path / "wd"), load_config(str(tmp_path / "code" / "search_config.yaml")),
                               task="t")
    store = scheduler.prepare()
    with pytest.raises(RuntimeError, match="my stop criterion is broken"):
        scheduler.run()
    jobs = store.jobs("t")
    assert jobs[0]["status"] == JobStatus.FINISHED and jobs[0]["reward"] == 2.0
    assert [s["value"] for s in store.scalars("t", [jobs[0]["job_id"]])] == [1.0, 2.0]
    assert store.get_task("t")["status"] == JobStatus.ERROR


POOL_TRIALS = {"objective.py": """
    import os, time
    import gml_ray

    def train(config):
        gml_ray.report(acc=float(config["x"]), pid=os.getpid())
        if config["x"] == 2:      # a Python loop that never ends
            n = 0
            while True:
                n += 1
        if config["x"] == 3:      # blocked in C (a sleep), where no interrupt can land
            time.sleep(1000)
"""}


def _function_config(xs: str, stop: str = "") -> str:
    return f"""
task:
  function: "objective:train"
  search_args:
    - {{type: Categorical, name: x, data: {xs}}}
searcher: {{type: GridSearcher, reward_attribute: acc}}
scheduler: {{parallel_size: 2{', stop_criterion: ' + stop if stop else ''}}}
"""


def test_function_trials_reuse_one_process_per_slot(run_task):
    run = run_task(_function_config("[1, 4, 5, 6, 7, 8]"), POOL_TRIALS)
    assert run.statuses() == [JobStatus.FINISHED] * 6
    pids = {r["value"] for r in run.scalars(tag="pid")}
    assert 1 <= len(pids) <= 2  # two slots: two worker processes, not one per trial
    # the pool ends with its run: the session's 2 CPUs are free again
    import ray
    deadline = time.time() + 15
    while ray.available_resources().get("CPU", 0) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2


def test_time_limits_per_job_interrupts_a_function_trial_and_the_next_ones_run(run_task):
    t0 = time.time()
    run = run_task(_function_config("[1, 2, 3, 4, 5]", "{time_limits_per_job: 1s}"), POOL_TRIALS)
    statuses = run.statuses()
    assert statuses == [JobStatus.FINISHED, JobStatus.KILLED, JobStatus.KILLED, JobStatus.FINISHED, JobStatus.FINISHED], [j["message"] for j in run.jobs]
    assert all("time_limits_per_job (1s) reached" in j["message"] for j in run.jobs if j["status"] == JobStatus.KILLED)
    # both kept what they reported before the limit
    assert [r["value"] for r in run.scalars(2, "acc")] == [2.0] and [r["value"] for r in run.scalars(3, "acc")] == [3.0]
    # the sleeping one ended with its process (after the 3 s grace), not after 1000 s
    assert time.time() - t0 < 60


def test_function_trials_beyond_what_the_cluster_holds_run_a_few_at_a_time(run_task, caplog):
    """parallel_size 4 on the session's 2-CPU Ray: a pool actor that cannot start would hold its
    jobs forever; the run uses the 2 actors that fit, says so once, and every job finishes (the
    time limit turns a hang into a failure of this test)."""
    objective = "import gml_ray\n\n\ndef trial(config):\n    gml_ray.report(acc=config['x'])\n"
    with caplog.at_level(logging.WARNING, logger="gml_ray.scheduler"):
        run = run_task("""
task:
  function: "objective:trial"
  search_args: [{type: Categorical, name: x, data: [1, 2, 3, 4, 5, 6, 7, 8]}]
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 4, stop_criterion: {time_limits: 0.02}}
""", {"objective.py": objective})
    assert run.statuses() == [JobStatus.FINISHED] * 8
    notes = [r.getMessage() for r in caplog.records if "parallel_size 4" in r.getMessage()]
    assert len(notes) == 1 and "holds 2 actors of {num_cpus: 1}" in notes[0]
    assert "running 2 at a time" in notes[0]


def test_pool_size_is_what_the_nodes_hold_at_once(ray_session):
    from gml_ray.engine.runtime import pool_size_note

    assert pool_size_note({"num_cpus": 1}, 2) == (2, None)  # fits: nothing to say
    size, note = pool_size_note({"num_cpus": 0.5}, 8)
    assert size == 4 and "holds 4 actors of {num_cpus: 0.5}" in note


SLOW_SEARCHER = """
import time
from gml_ray.plugins.searcher import BaseSearcher
from gml_ray.searchers.builder import SEARCHERS


@SEARCHERS.register_module()
class SlowSearcher(BaseSearcher):
    def __init__(self, search_space, reward_attribute="acc", optimize_mode="maximize"):
        super().__init__(search_space, reward_attribute, optimize_mode)
        self.left = [1, 2, 3]

    def get_config(self):
        time.sleep(0.3)  # a searcher that thinks (a GP refit, an LA-MCTS iteration)
        return {"x": self.left.pop()} if self.left else None

    def update(self, config, reward):
        time.sleep(0.2)
"""


def test_the_run_summary_counts_the_time_spent_in_the_searcher(run_task):
    """summary['searcher_s']: the asks and tells of the run (4 asks, the last one answering
    None, and 3 tells here), the part of the wall time the jobs' actors cannot be fed."""
    run = run_task("""
task:
  function: "objective:trial"
  search_args: [{type: Categorical, name: x, data: [1, 2, 3]}]
searcher: {type: SlowSearcher, reward_attribute: acc}
scheduler: {parallel_size: 1}
custom_imports: [slow_searcher.py]
""", {"objective.py": "import gml_ray\n\n\ndef trial(config):\n    gml_ray.report(acc=config['x'])\n",
      "slow_searcher.py": SLOW_SEARCHER})
    assert run.statuses() == [JobStatus.FINISHED] * 3
    assert 4 * 0.3 + 3 * 0.2 <= run.summary["searcher_s"] <= run.summary["elapsed"]
