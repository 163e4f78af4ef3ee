"""ASHA and Hyperband with promotions: jobs pause at their rungs' checkpoints and the best go on."""
from __future__ import annotations

import pytest

from gml_ray.assessors import AshaAssessor, AssessResult, HyperbandAssessor


def _hist(values):
    return [{"iteration": i, "value": v, "created": 0} for i, v in enumerate(values)]


def test_a_job_pauses_at_each_rung_it_reaches_and_never_gets_a_bad_verdict():
    asha = AshaAssessor(min_step=2, reduction_factor=2, max_step=8, promotion=True)
    assert asha.promotes and asha.assess_job("a", _hist([0.0] * 7)) == AssessResult.Good
    assert asha.at_checkpoint("a", _hist([0.1])) is False  # before rung 2
    assert asha.at_checkpoint("a", _hist([0.1, 0.2])) is True  # rung 2: paused
    assert asha.paused_at("a") == 2
    assert asha.promotion() == "a"  # alone at its rung: the top 1
    assert asha.at_checkpoint("a", _hist([0.1, 0.2, 0.3])) is False
    assert asha.at_checkpoint("a", _hist([0.1, 0.2, 0.3, 0.4])) is True  # rung 4
    assert asha.promotion() == "a"
    assert asha.at_checkpoint("a", _hist([0.5] * 7)) is False  # no rung at or past max_step 8


def test_only_the_top_of_a_rung_is_promoted_and_each_job_once():
    asha = AshaAssessor(min_step=1, reduction_factor=2, max_step=8, promotion=True)
    for name, value in (("a", 0.1), ("b", 0.9), ("c", 0.5), ("d", 0.3)):
        assert asha.at_checkpoint(name, _hist([value]))
    # 4 recorded at rung 1: the top 2 (b, c) may go on, best first; then nobody
    assert [asha.promotion() for _ in range(3)] == ["b", "c", None]
    # more arrivals widen the top: with 6 recorded, 3 may go on (d at rank 3 now does)
    for name, value in (("e", 0.05), ("f", 0.01)):
        asha.at_checkpoint(name, _hist([value]))
    assert asha.promotion() == "d" and asha.promotion() is None


def test_the_highest_rung_is_promoted_first_and_minimize_ranks_low_first():
    asha = AshaAssessor(min_step=1, reduction_factor=2, max_step=8, optimize_mode="minimize", promotion=True)
    asha.at_checkpoint("a", _hist([1.0]))
    assert asha.promotion() == "a"
    asha.at_checkpoint("a", _hist([1.0, 0.5]))  # rung 2
    asha.at_checkpoint("b", _hist([0.2]))  # rung 1, better than a was there
    assert asha.promotion() == "a"  # rung 2 before rung 1
    assert asha.promotion() == "b"


def test_hyperband_with_promotion_keeps_its_brackets():
    hb = HyperbandAssessor(min_step=1, reduction_factor=3, max_step=27, promotion=True)
    assert hb.promotes and len(hb.brackets) == 3


@pytest.mark.parametrize("value", ["yes", 1])
def test_promotion_must_be_a_bool(value):
    with pytest.raises(ValueError, match="promotion must be true or false"):
        AshaAssessor(promotion=value)


# value = x * (step + 1): the ranking by x never changes; a checkpoint every step, then a pause
# long enough for the scheduler's pause to land before the next step starts.
TRIAL = """
import json, os, time
import gml_ray

def trial(config):
    start = 0 if gml_ray.get_checkpoint() is None else gml_ray.restored_step() + 1
    with open("steps.log", "a") as log:
        for step in range(start, 8):
            log.write(f"{step}\\n")
            with open("state.json", "w") as f:
                json.dump({"step": step}, f)
            gml_ray.report(step, score=config["x"] * (step + 1), checkpoint="state.json")
            time.sleep(0.5)
"""

CONFIG = """
task:
  function: trial:trial
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.8, 0.3, 0.5, 0.2, 0.7, 0.4, 0.6]}
searcher: {type: GridSearcher, reward_attribute: score}
scheduler:
  parallel_size: 2
  assessor: {type: AshaAssessor, min_step: 2, reduction_factor: 2, max_step: 8, promotion: true}
"""


@pytest.mark.slow
def test_promotion_asha_pauses_at_rungs_and_the_best_config_runs_to_the_end(run_task):
    import os

    run = run_task(CONFIG, {"trial.py": TRIAL})
    assert run.summary["status"] == "FINISHED", run.summary
    jobs = run.jobs
    by_x = {j["config"]["x"]: j for j in jobs}
    assert len(jobs) == 8
    finished = [j for j in jobs if j["status"] == "FINISHED"]
    assert by_x[0.8] in finished  # the best config was kept to the end
    assert {j["status"] for j in jobs} == {"FINISHED", "EARLY_STOPPED"}
    steps_run = 0  # distinct steps trained (a step in flight when a pause lands is done again)
    for job in jobs:
        ran = [int(s) for s in open(os.path.join(job["job_dir"], "steps.log")).read().split()]
        steps_run += len(set(ran))
        assert len(ran) - len(set(ran)) <= 2 * (job["attempt"] - 1)  # at most the step in flight redone per pause
        curve = [s["step"] for s in run.scalars(job["job_id"], "score") if s["attempt"] == job["attempt"]]
        assert curve == list(range(len(curve)))  # a promoted job's curve goes on without a gap
        if job["status"] == "EARLY_STOPPED":
            assert job["message"] == "not promoted: stopped at its rung" and max(ran) < 7
    # fewer steps than running every config to the end (64): 8 x 2 to the first rung, then the
    # promoted ones only (the first job at a rung always passes, so early jobs climb more easily)
    assert 16 < steps_run <= 44
    assert len(finished) <= 4


def test_only_jobs_paused_now_are_promoted():
    asha = AshaAssessor(min_step=1, reduction_factor=2, max_step=8, promotion=True)
    asha.at_checkpoint("a", _hist([0.9]))  # asked to pause; its pause has not landed yet
    assert asha.promotion(paused=[]) is None
    assert asha.promotion(paused=["a"]) == "a"


def test_promotion_with_jobs_that_never_checkpoint_says_so_once_and_runs_them_to_the_end(ray_session, tmp_path):
    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    (tmp_path / "trial.py").write_text("import gml_ray\n\ndef trial(config):\n"
                                       "    for step in range(4):\n        gml_ray.report(step, score=config['x'] * step)\n")
    (tmp_path / "c.yaml").write_text(CONFIG.replace("data: [0.1, 0.8, 0.3, 0.5, 0.2, 0.7, 0.4, 0.6]", "data: [0.1, 0.2, 0.3]"))
    scheduler = NaiveScheduler(str(tmp_path / "wd"), load_config(str(tmp_path / "c.yaml")), task="t")
    store = scheduler.prepare()
    notices: list[str] = []
    summary = scheduler.run(on_notice=notices.append)
    assert summary["counts"] == {"FINISHED": 3}
    assert len(notices) == 1 and "promotion needs checkpoints" in notices[0]
    assert len(store.scalars("t")) == 12


def test_resumed_rebuilds_the_rungs_and_the_jobs_waiting_for_promotion():
    asha = AshaAssessor(min_step=1, reduction_factor=2, max_step=8, promotion=True)
    asha.resumed("a", _hist([0.9, 0.9, 0.9]), paused=False)  # went past rungs 1 and 2: promoted from both
    asha.resumed("b", _hist([0.5]), paused=True)  # waits at rung 1
    asha.resumed("c", _hist([0.1]), paused=True)
    assert asha.rung_counts() == [[3, 1]]
    assert asha.promotion(["b", "c"]) is None  # 3 at rung 1: only the top 1 (a, gone on already)
    assert asha.at_checkpoint("d", _hist([0.05]))  # a 4th at rung 1: the top 2 may go on
    assert asha.promotion(["b", "c", "d"]) == "b" and asha.promotion(["c", "d"]) is None


@pytest.mark.ray
@pytest.mark.slow
def test_a_promotion_task_stopped_by_sigterm_resumes_with_its_rungs(tmp_path, ray_head):
    import os
    import signal

    from helpers.cli import gml
    from helpers.runs import on_head, start, wait_for

    from gml_ray.store import Store

    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"]
    run = start(args, tmp_path)
    try:
        def some_paused() -> bool:
            if not (tmp_path / "wd" / "gml.db").exists():
                return False
            jobs = Store(str(tmp_path / "wd"), create=False).jobs("t", columns=("status",))
            return sum(j["status"] == "PAUSED" for j in jobs) >= 3
        wait_for(some_paused, timeout=120, what="three jobs paused at rungs")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    resumed = gml(*on_head(args, ray_head), "--resume", cwd=tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    jobs = store.jobs("t")
    assert {j["status"] for j in jobs} <= {"FINISHED", "EARLY_STOPPED"} and len(jobs) == 8
    assert next(j for j in jobs if j["config"]["x"] == 0.8)["status"] == "FINISHED"
    # The rungs held across the resume: the jobs not promoted stopped at their rung, as in an
    # uninterrupted run (4 or more of the 8 there: only the top 1/2 of a rung goes on) — had the
    # resume forgotten the rungs, every paused job would have run on to its end.
    stopped = [j for j in jobs if j["status"] == "EARLY_STOPPED"]
    assert len(stopped) >= 3 and {j["message"] for j in stopped} == {"not promoted: stopped at its rung"}
    for job in stopped:
        ran = {int(s) for s in open(os.path.join(job["job_dir"], "steps.log")).read().split()}
        assert max(ran) < 7, (job["config"], sorted(ran))
