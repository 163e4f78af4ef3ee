"""Assessors in real runs: the scheduler feeds them the streamed reward, Bad ends the job.

Each test runs a small task on the session's local Ray (see conftest.py) with real job processes.
"""
from __future__ import annotations

import json
import os

from helpers import pid_alive

from gml_ray.vocab import JobStatus

# A command job: `train.py LEVEL:EPOCHS:SLEEP` reports acc = LEVEL * (1 - 0.5^(epoch+1)) each
# epoch; first writes the pids of itself and of a child it keeps running (same process group) to
# $GML_JOB_DIR/pids.
TRAIN = """
import os, subprocess, sys, time
from gml_ray import SummaryWriter
level, epochs, sleep = sys.argv[1].split(":")
level, epochs, sleep = float(level), int(epochs), float(sleep)
child = subprocess.Popen(["sleep", "1000"])
with open(os.path.join(os.environ["GML_JOB_DIR"], "pids"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
w = SummaryWriter("train")
for e in range(epochs):
    w.add_scalar("acc", level * (1 - 0.5 ** (e + 1)), e)
    time.sleep(sleep)
"""

# A searcher that writes every reward it is told to a file: what the scheduler gives the searcher.
RECORDING_SEARCHER = """
import json
from gml_ray.searchers.builder import SEARCHERS
from gml_ray.searchers.grid import GridSearcher

@SEARCHERS.register_module()
class RecordingGrid(GridSearcher):
    def __init__(self, search_space, reward_attribute="acc", optimize_mode="maximize", log=""):
        super().__init__(search_space, reward_attribute, optimize_mode)
        self.log = log

    def update(self, config, reward, **kwargs):
        super().update(config, reward, **kwargs)
        with open(self.log, "a") as f:
            f.write(json.dumps([config, reward]) + "\\n")
"""


def _config(search_args: str, task: str, assessor: str, searcher: str = "type: GridSearcher",
            extra: str = "") -> str:
    return f"""
task:
{task}
  search_args:
{search_args}
searcher: {{{searcher}, reward_attribute: acc}}
scheduler:
  parallel_size: 1
  assessor: {assessor}
{extra}
"""


def _lines(path) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_median_stop_kills_a_clearly_bad_command_job_and_its_processes(run_task, tmp_path):
    log = tmp_path / "updates.jsonl"
    # job 1 (level 1) finishes 10 epochs quickly; job 2 (level 0.1) would take 200 x 0.05 s
    args = "    - {type: Categorical, name: spec, data: ['1.0:10:0.01', '0.1:200:0.05']}"
    task = '  template: "python train.py {spec}"'
    run = run_task(_config(args, task, "{type: MedianStopAssessor, start_step: 3}",
                           searcher=f"type: RecordingGrid, log: {log}",
                           extra="custom_imports: [recording.py]"),
                   {"train.py": TRAIN, "recording.py": RECORDING_SEARCHER})
    good, bad = run.jobs
    assert (good["status"], bad["status"]) == (JobStatus.FINISHED, JobStatus.EARLY_STOPPED)
    assert run.summary["status"] == JobStatus.FINISHED
    # judged at its 3rd value; stopped long before its 200th
    assert 3 <= len(run.scalars(bad["job_id"], "acc")) < 100
    with open(os.path.join(bad["job_dir"], "pids")) as f:
        pids = [int(p) for p in f.read().split()]
    assert not any(pid_alive(pid) for pid in pids)  # the script and its child
    # its reward so far reached the searcher
    assert bad["reward"] is not None
    assert [reward for _, reward in _lines(log)] == [good["reward"], bad["reward"]]


TRIAL = """
import os, time
import gml_ray

def train(config):
    top, epochs, sleep = config["spec"]
    for epoch in range(epochs):
        gml_ray.report(acc=top - (top - 0.1) * 0.7 ** (epoch + 1))
        time.sleep(sleep)
    open(os.path.join(os.environ.get("GML_JOB_DIR", "."), "completed"), "w").close()
"""


def test_curve_fitting_cancels_a_function_trial_headed_below_the_best(run_task):
    # job 1 rises to 0.9 in 30 epochs; job 2 levels off at 0.3 and would take 30 x 0.2 s.
    # (Job 1 reports over 1 s: a function trial's reports reach the assessor only while it runs.)
    args = "    - {type: Categorical, name: spec, data: [[0.9, 30, 0.03], [0.3, 30, 0.2]]}"
    run = run_task(_config(args, '  function: "trial:train"',
                           "{type: CurveFittingAssessor, epoch_num: 30, start_step: 6}"),
                   {"trial.py": TRIAL})
    good, bad = run.jobs
    assert (good["status"], bad["status"]) == (JobStatus.FINISHED, JobStatus.EARLY_STOPPED)
    assert 6 <= len(run.scalars(bad["job_id"], "acc")) < 30
    assert not os.path.exists(os.path.join(bad["job_dir"], "completed"))
    assert bad["reward"] == max(r["value"] for r in run.scalars(bad["job_id"], "acc"))


# The manual's 5.4 example, unchanged but for `gml` -> `gml_ray` in the import it relies on.
MANUAL_ASSESSOR = '''
from gml_ray.assessors import ASSESSORS, AssessResult, BaseAssessor

@ASSESSORS.register_module()
class MyAssessor:

    def __init__(self, optimize_mode='maximize'):
        pass

    def assess_job(self, trial_job_id, latest_trial_history):
        """Assesses whether the job should be stopped early

        Args:
            trial_job_id: unique id
            latest_trial_history: get from pavi.get_latest_scalar()
            example:
                [{
                    'iteration': 0,
                    'value': 0.9,
                    'created': 1640238929992
                },
                {
                    'iteration': 1,
                    'value': 0.92,
                    'created': 1640238951211
                },
                {
                    'iteration': 2,
                    'value': 0.93,
                    'created': 1640238989978
                }]

        Returns:
            EarlyStop flag: AssessResult.Good or AssessResult.Bad
        """
        return AssessResult.Good

    def job_end(self, trial_job_id):
        """Finish the assessing by updating rewards.

        Use this method only when the status of job is finished
        """
        pass
'''

# A custom assessor that records what it is given and stops any job at its 3rd value below 0.5.
RECORDING_ASSESSOR = '''
import json
from gml_ray.assessors import ASSESSORS, AssessResult, BaseAssessor

@ASSESSORS.register_module()
class Recorder(BaseAssessor):
    def __init__(self, log, optimize_mode="maximize"):
        super().__init__(optimize_mode)
        self.log = log

    def _write(self, *record):
        with open(self.log, "a") as f:
            f.write(json.dumps(record) + "\\n")

    def assess_job(self, job_id, history):
        self._write("assess", job_id, history)
        if len(history) >= 3 and history[-1]["value"] < 0.5:
            return AssessResult.Bad
        return AssessResult.Good

    def job_end(self, job_id, success=True):
        self._write("end", job_id, success)
'''

RAISING_ASSESSOR = '''
from gml_ray.assessors import ASSESSORS, BaseAssessor

@ASSESSORS.register_module()
class Broken(BaseAssessor):
    def assess_job(self, job_id, history):
        raise RuntimeError("assessor bug")

    def job_end(self, job_id, success=True):
        raise RuntimeError("assessor bug at the end")
'''

LEVELS = "    - {type: Categorical, name: level, data: [1.0, 0.2]}"
QUICK = '  template: "python train.py {level}:6:0.05"'


def test_the_manuals_custom_assessor_runs_unchanged(run_task):
    run = run_task(_config(LEVELS, QUICK, "{type: MyAssessor}",
                           extra="custom_imports: [my_assessor.py]"),
                   {"train.py": TRAIN, "my_assessor.py": MANUAL_ASSESSOR})
    assert run.statuses() == [JobStatus.FINISHED, JobStatus.FINISHED]


def test_a_custom_assessor_gets_the_manuals_history_format_and_job_end(run_task, tmp_path):
    log = tmp_path / "assessor.jsonl"
    run = run_task(_config(LEVELS, QUICK.replace(":6:", ":100:"),
                           f"{{type: Recorder, log: {log}}}",
                           extra="custom_imports: [recorder.py]"),
                   {"train.py": TRAIN, "recorder.py": RECORDING_ASSESSOR})
    assert run.statuses() == [JobStatus.FINISHED, JobStatus.EARLY_STOPPED]
    records = _lines(log)
    ends = [r[1:] for r in records if r[0] == "end"]
    assert ends == [["job_0001", True], ["job_0002", False]]
    history = [r[2] for r in records if r[0] == "assess" and r[1] == "job_0002"][-1]
    stored = run.scalars(2, "acc")
    assert [set(p) for p in history] == [{"iteration", "value", "created"}] * len(history)
    assert [p["iteration"] for p in history] == list(range(len(history)))
    assert [p["value"] for p in history] == [r["value"] for r in stored][:len(history)]
    job = run.jobs[1]
    assert all(job["started"] * 1000 - 1000 <= p["created"] <= job["ended"] * 1000 for p in history)


def test_a_failing_assessor_counts_as_good(run_task):
    run = run_task(_config(LEVELS, QUICK, "{type: Broken}", extra="custom_imports: [broken.py]"),
                   {"train.py": TRAIN, "broken.py": RAISING_ASSESSOR})
    assert run.statuses() == [JobStatus.FINISHED, JobStatus.FINISHED]
    assert run.summary["status"] == JobStatus.FINISHED
