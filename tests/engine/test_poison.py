"""Poison from jobs: trials that exit, pipe lines that are not scalar records, steps that are not
integers, boolean values, all-NaN rewards, huge tags, and jobs with very many tags. Each test runs
real jobs (the session's Ray, or `gml-ray run` on the session's Ray head) and checks what is stored,
the job's status and message, and the one line each problem leaves in `scheduler.log`."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest
from helpers import write_files
from helpers.cli import gml

from gml_ray.store import Store


def scheduler_log(run) -> str:
    with open(os.path.join(run.work_dir, "tasks", run.task, "scheduler.log")) as f:
        return f.read()


def by_tag(run, job_id: int, tag: str) -> list[tuple]:
    return [(r["step"], r["value"], r["text"], r["flag"]) for r in run.scalars(job_id, tag)]


# ---- 1. a function trial that exits ---------------------------------------------------------------

EXITS = """
import os, sys, threading, time
import gml_ray

def train(config):
    how = config["how"]
    gml_ray.report(score=1.0)
    if how.endswith("slow"):
        time.sleep(0.3)  # past the first 50 ms: it streams its reports
    gml_ray.report(score=2.0)
    if how.startswith("sys."):
        arg = how.split(".")[1]
        sys.exit(int(arg) if arg.isdigit() else "bad input\\nsecond line")
    if how.startswith("os."):
        os._exit(int(how.split(".")[1]))
    if how == "thread.4":  # os._exit from a thread of the trial, while the trial sleeps
        threading.Thread(target=os._exit, args=(4,)).start()
        time.sleep(30)
"""


def test_a_function_trial_that_exits_keeps_what_it_reported(run_task):
    cases = ["sys.0", "sys.1", "sys.why", "os.0", "os.3", "os.3.slow", "thread.4", "ok"]
    cfg = f"""
task:
  function: "exits:train"
  search_args:
    - {{type: Categorical, name: how, data: {cases}}}
searcher: {{reward_attribute: score}}
scheduler: {{parallel_size: 1}}
"""
    run = run_task(cfg, {"exits.py": EXITS})
    jobs = {j["arg_dict"]["how"]: j for j in run.jobs}
    assert sorted(jobs) == sorted(cases)
    expected = {  # how -> (status, message, exit code)
        "sys.0": ("FINISHED", None, 0), "sys.1": ("ERROR", "exited with code 1", 1),
        "sys.why": ("ERROR", "exited with code 1: bad input second line", 1),
        "os.0": ("FINISHED", None, 0), "os.3": ("ERROR", "exited with code 3", 3),
        "os.3.slow": ("ERROR", "exited with code 3", 3), "thread.4": ("ERROR", "exited with code 4", 4),
        "ok": ("FINISHED", None, None)}
    for how, (status, message, code) in expected.items():
        job = jobs[how]
        assert (job["status"], job["message"], job["exit_code"]) == (status, message, code), how
        # what it reported before it exited is stored and counts for its reward
        assert [r["value"] for r in run.scalars(job["job_id"], "score")] == [1.0, 2.0], how
        assert job["reward"] == 2.0, how
    # the pool replaced each actor os._exit ended: the jobs after them ran (parallel_size 1)
    assert run.summary["counts"] == {"FINISHED": 3, "ERROR": 5}
    log = scheduler_log(run)
    assert "ActorDiedError" not in log and "running it again" not in log
    with open(os.path.join(jobs["sys.1"]["job_dir"], "stderr.log")) as f:
        assert "sys.exit(1)" in f.read()


STOPPED_EXIT = """
import sys, time
import gml_ray

def train(config):
    gml_ray.report(score=1.0)
    try:
        for _ in range(300):
            time.sleep(0.1)
    except KeyboardInterrupt:  # stopped by time_limits_per_job: it exits instead of returning
        sys.exit(2)
"""


def test_a_stopped_trial_that_answers_with_sys_exit_is_killed(run_task):
    cfg = """
task:
  function: "stopped:train"
  search_args:
    - {type: Categorical, name: x, data: [1]}
searcher: {reward_attribute: score}
scheduler:
  stop_criterion: {time_limits_per_job: 1s}
"""
    run = run_task(cfg, {"stopped.py": STOPPED_EXIT})
    (job,) = run.jobs
    assert job["status"] == "KILLED" and "time_limits_per_job" in job["message"], job
    assert job["reward"] == 1.0
    assert "did not stop within" not in scheduler_log(run)  # it ended itself, not its actor


# ---- 2. lines on the scalar pipe that are not scalar records --------------------------------------

GARBAGE = r"""
import os, sys, time
fd = int(os.environ["GML_SCALAR_FD"])
def line(text):
    os.write(fd, text.encode())
line("not json\n")
line('{"t": "acc", "v": 0.5, "s": 0}\n')
line("[1, 2]\n")
line('{"t": "acc"}\n')
line('"just a string"\n')
if sys.argv[1] == "slow":
    time.sleep(0.3)  # the job streams: its reports travel as messages, not with its outcome
line('{"t": "acc", "v": 0.7, "s": 1}\n')
line('{"t": "acc", "v": 0.9, "s"')  # torn: the job ends in the middle of a line
"""


def test_lines_on_the_scalar_pipe_that_are_not_records_are_counted_once_per_job(run_task):
    cfg = """
task:
  template: "python garbage.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [quick, slow]}
searcher: {reward_attribute: acc}
scheduler: {parallel_size: 2}
"""
    run = run_task(cfg, {"garbage.py": GARBAGE})
    assert run.statuses() == ["FINISHED", "FINISHED"]
    log = scheduler_log(run)
    for job in run.jobs:
        assert [(r["step"], r["value"]) for r in run.scalars(job["job_id"])] == [(0, 0.5), (1, 0.7)]
        assert job["reward"] == 0.7
        line = (f"{job['name']}: 5 lines on the scalar pipe were not scalar records "
                f"(first: 'not json'); they were skipped")
        assert log.count(line) == 1, log


def test_pump_reads_a_line_written_in_many_pieces_and_counts_bad_ones():
    from gml_ray.engine.messages import pump
    read_fd, write_fd = os.pipe()
    big = json.dumps({"t": "big", "v": 1.0, "s": 0, "pad": "x" * (4 << 20)}) + "\n"
    got: list = []

    def writer():
        with os.fdopen(write_fd, "wb") as f:
            f.write(b'\xff\xfe not utf-8\n' + b"[" * 100_000 + b"\n")
            for i in range(0, len(big), 10_000):
                f.write(big[i:i + 10_000].encode())
                f.flush()
            f.write(b'{"t": "acc", "v": 0.5}\n')

    t = threading.Thread(target=writer)
    t.start()
    t0 = time.perf_counter()
    assert pump(read_fd, got.extend) == 2  # the deep nesting does not end the reader
    t.join()
    os.close(read_fd)
    assert time.perf_counter() - t0 < 5
    assert [r.get("t") for r in got] == ["big", "acc", None]
    assert got[-1]["skipped"] == 2 and got[-1]["first"].endswith(" not utf-8")


# ---- 3. steps that are not numbers, boolean values, export-tb of old text steps -------------------

ODD_STEPS = r"""
import json, os, sys
fd = int(os.environ["GML_SCALAR_FD"])
def raw(**rec):
    os.write(fd, (json.dumps(rec) + "\n").encode())
if sys.argv[1] == "a":
    raw(t="acc", v=True, s=0)             # a bool: stored, flagged, never the reward
    raw(t="acc", v=0.2, s="abc")          # a text step
    raw(t="acc", v=0.1, s=2.5)            # not an integer: the same tag, no second warning
    raw(t="acc", v=0.15, s=3.0)           # an integral float is a step
    raw(t="ok", v=False, s=[1])
else:
    raw(t="acc", v=0.3, s=0)
"""


def test_text_steps_and_bool_values_are_refused_and_tensorboard_works(run_task):
    pytest.importorskip("tensorboardX")
    cfg = """
task:
  template: "python odd.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [a, b]}
searcher: {reward_attribute: acc}
scheduler: {parallel_size: 1}
tensorboard: true
"""
    run = run_task(cfg, {"odd.py": ODD_STEPS})
    assert run.statuses() == ["FINISHED", "FINISHED"]
    a, b = run.jobs
    assert by_tag(run, 1, "acc") == [(None, 0.2, None, 0), (None, 0.1, None, 0), (0, None, "True", 3),
                                     (3, 0.15, None, 0)]
    assert by_tag(run, 1, "ok") == [(None, None, "False", 3)]
    assert (a["reward"], b["reward"]) == (0.2, 0.3)
    assert run.summary["best_job"] == "job_0002" and run.summary["best_reward"] == 0.3
    log = scheduler_log(run)
    assert log.count("job_0001: scalar 'acc': its step 'abc' is not a number (stored without a step; "
                     "warned once per job and tag)") == 1
    assert log.count("job_0001: scalar 'acc': its step") == 1
    assert log.count("job_0001: scalar 'ok': its step [1] is not a number") == 1
    assert "Traceback" not in log and "could not write TensorBoard" not in log
    for name in ("job_0001", "job_0002"):
        run_dir = os.path.join(run.work_dir, "tasks", run.task, "tensorboard", name)
        assert any(f.startswith("events.out.tfevents.") for f in os.listdir(run_dir))


def test_export_tb_counts_on_over_steps_an_older_version_stored_as_text(tmp_path):
    pytest.importorskip("tensorboardX")
    wd = str(tmp_path / "wd")
    store = Store(wd)
    store.create_task("t", status="FINISHED", task_dir=os.path.join(wd, "tasks", "t"),
                      reward_attribute="acc", optimize_mode="maximize")
    store.add_job("t", 1, "job_0001", {"x": 1}, {"x": 1}, "python t.py", os.path.join(wd, "tasks", "t", "jobs", "j"),
                  status="FINISHED")
    # rows as an older gml-ray stored them: a text step, an inf step, a fractional one
    store.insert_scalar_rows([("t", 1, "acc", 0, 0.1, None, 0, 0, 1), ("t", 1, "acc", "abc", 0.2, None, 0, 0, 1),
                              ("t", 1, "acc", float("inf"), 0.3, None, 0, 0, 1),
                              ("t", 1, "acc", 7.5, 0.4, None, 0, "when", 1)])
    out = gml("ctl", "export-tb", "--task", "t", "--workdir", wd, cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    run_dir = os.path.join(wd, "tasks", "t", "tensorboard", "job_0001")
    assert any(f.startswith("events.out.tfevents.") for f in os.listdir(run_dir))
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    assert sorted(e.step for e in acc.Scalars("acc")) == [0, 1, 2, 3]


# ---- 4. every reward value NaN ----------------------------------------------------------------------

NAN_TRIAL = """
import gml_ray
def train(config):
    gml_ray.report(acc=float(config["v"]), loss=0.5)
    gml_ray.report(acc=float("nan"))
"""


def test_a_run_whose_reward_values_are_all_nan_says_so(tmp_path, ray_head):
    write_files(tmp_path, {"nan_trial.py": NAN_TRIAL, "c.yaml": """
        task:
          function: "nan_trial:train"
          search_args:
            - {type: Categorical, name: v, data: [nan, inf, -inf]}
        searcher: {reward_attribute: acc}
        scheduler: {parallel_size: 1}
    """})
    out = gml("run", "c.yaml", "--task", "n", "--workdir", "wd", "--address", ray_head, cwd=tmp_path,
              timeout=120)
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "no job of n finished with a reward ('acc'): 3 FINISHED reporting only NaN, inf or " \
           "non-numeric values for 'acc'" in last, out.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    assert [r["flag"] for r in store.scalars("n", [3], ["acc"])] == [2, 1]  # -inf, then NaN


# ---- 5. a huge tag --------------------------------------------------------------------------------

LONG_TAGS = r"""
import json, os, sys
from gml_ray import SummaryWriter
fd = int(os.environ["GML_SCALAR_FD"])
tag = "x" * 5_000_000
for step in range(2):
    os.write(fd, (json.dumps({"t": tag, "v": 0.5, "s": step}) + "\n").encode())
os.write(fd, (json.dumps({"t": "y" * 300, "v": 0.5, "s": 0}) + "\n").encode())
SummaryWriter().add_scalar("z" * 1000, 0.25, 0)
SummaryWriter().add_scalar("acc", 0.5, 0)
"""

LONG_TAG_TRIAL = """
import gml_ray
def train(config):
    gml_ray.report(**{"w" * 100_000: 1.0, "acc": 0.5})
"""


def test_a_huge_tag_is_cut_with_one_warning_per_job(run_task):
    cfg = """
task:
  template: "python long.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [1]}
searcher: {reward_attribute: acc}
"""
    run = run_task(cfg, {"long.py": LONG_TAGS})
    assert run.statuses() == ["FINISHED"]
    tags = sorted({(r["tag"][0], len(r["tag"])) for r in run.scalars(1)})
    assert tags == [("a", 3), ("x", 200), ("y", 200), ("z", 200)]
    assert len(run.scalars(1)) == 5
    log = scheduler_log(run)
    assert log.count("job_0001: a scalar tag of 5,000,000 characters was cut to its first 200") == 1
    assert "a scalar tag of 300 characters" not in log  # one warning per job
    with open(os.path.join(run.jobs[0]["job_dir"], "stderr.log")) as f:  # the writer cut its own
        assert "a tag of 1,000 characters was cut to its first 200" in f.read()


def test_a_huge_tag_from_a_function_trial_is_cut(run_task):
    cfg = """
task:
  function: "longtrial:train"
  search_args:
    - {type: Categorical, name: x, data: [1]}
searcher: {reward_attribute: acc}
"""
    run = run_task(cfg, {"longtrial.py": LONG_TAG_TRIAL})
    assert run.statuses() == ["FINISHED"]
    assert sorted(len(r["tag"]) for r in run.scalars(1)) == [3, 200]


# ---- 6. very many tags ------------------------------------------------------------------------------

def test_many_distinct_tags_cost_about_what_many_steps_do(tmp_path):
    """ScalarIngest on a real store, batch by batch as the scheduler takes them: 20,000 distinct
    tags used to re-encode every tag seen so far per batch (quadratic)."""
    from gml_ray.engine.ingest import LATEST_MAX_TAGS, ScalarIngest
    store = Store(str(tmp_path / "wd"))
    store.create_task("t", scalar_columns=["acc", "tag_19998"])
    n, batch = 20_000, 10
    seconds = {}
    for job_id, kind in ((1, "steps"), (2, "tags")):
        store.add_job("t", job_id, f"job_000{job_id}", {}, {}, "cmd", str(tmp_path))
        ingest = ScalarIngest(store, "t", "acc", "maximize", keep_history=False)
        recs = [{"t": f"tag_{i}" if kind == "tags" else "loss", "v": 0.5, "s": i, "c": 0} for i in range(n)]
        recs[-1] = {"t": "acc", "v": 0.9, "s": 0, "c": 0}
        t0 = time.perf_counter()
        with store.transaction():
            for i in range(0, n, batch):
                ingest.take(job_id, recs[i:i + batch], 1)
                store.update_job("t", job_id, **ingest.pop_updates(job_id))
            ingest.save()
        seconds[kind] = time.perf_counter() - t0
    assert seconds["tags"] < 3 * seconds["steps"] + 0.5, seconds
    assert len(store.scalars("t", [2])) == n  # every scalar is stored
    (job,) = store.jobs("t", ["job_0002"])
    latest = json.loads(job["latest"])
    # the first LATEST_MAX_TAGS tags, and the reward attribute and scalar columns past them
    assert len(latest) == LATEST_MAX_TAGS + 2 and latest["acc"] == 0.9 and latest["tag_19998"] == 0.5
    assert store.latest_scalars("t", ["acc", "tag_19998"])[2] == {"acc": 0.9, "tag_19998": 0.5}


MANY_TAGS = """
import sys
from gml_ray import SummaryWriter
w = SummaryWriter()
for i in range(int(sys.argv[1])):
    w.add_scalar(f"tag_{i}", float(i), 0)
w.add_scalar("acc", 0.5, 0)
"""


def test_a_job_with_many_tags_keeps_every_scalar(run_task):
    cfg = """
task:
  template: "python many.py {n}"
  search_args:
    - {type: Categorical, name: n, data: [5000]}
searcher: {reward_attribute: acc}
"""
    run = run_task(cfg, {"many.py": MANY_TAGS})
    (job,) = run.jobs
    assert job["status"] == "FINISHED" and job["reward"] == 0.5
    assert len(run.scalars(1)) == 5001
    latest = json.loads(job["latest"])
    assert latest["acc"] == 0.5 and len(latest) == 1001
    assert "more than 1000 scalar tags" in scheduler_log(run)
