"""AshaAssessor / HyperbandAssessor decisions on crafted histories, and their config errors."""
from __future__ import annotations

import pytest

from gml_ray.assessors import ASSESSORS, AshaAssessor, AssessResult, HyperbandAssessor
from gml_ray.vocab import JobStatus

Good, Bad = AssessResult.Good, AssessResult.Bad


def hist(values):
    return [{"iteration": i, "value": v, "created": 1000 + i} for i, v in enumerate(values)]


def test_registered():
    assert ASSESSORS.get("AshaAssessor") is AshaAssessor
    assert ASSESSORS.get("HyperbandAssessor") is HyperbandAssessor


def test_rungs_below_max_step():
    a = AshaAssessor(min_step=2, reduction_factor=3, max_step=30)
    b = a.brackets[0]
    assert [b.rung(k) for k in range(4)] == [2, 6, 18, None]
    assert AshaAssessor(min_step=1).brackets[0].rung(10) == 3 ** 10  # unbounded without max_step


def test_first_job_passes_and_later_ones_need_the_top_third():
    a = AshaAssessor(min_step=1, reduction_factor=3, max_step=100)
    assert a.assess_job("j1", hist([0.5])) is Good      # alone at rung 1
    assert a.assess_job("j2", hist([0.4])) is Bad       # 2 at rung 1: only the best passes
    assert a.assess_job("j3", hist([0.6])) is Good      # the best of 3
    assert a.assess_job("j4", hist([0.55])) is Bad      # rank 2 of 4, top max(1, 4 // 3) = 1
    assert a.assess_job("j5", hist([0.52])) is Bad      # rank 3 of 5
    assert a.assess_job("j6", hist([0.58])) is Good     # rank 2 of 6: top 6 // 3 = 2
    assert a.rung_counts() == [[6]]


def test_decisions_are_final_and_the_next_rung_judges_again():
    a = AshaAssessor(min_step=1, reduction_factor=2, max_step=100)
    assert a.assess_job("j1", hist([0.5])) is Good
    assert a.assess_job("j2", hist([0.9])) is Good      # rank 1 of 2
    # j1 is not recalled although it is now second at rung 1
    assert a.assess_job("j1", hist([0.5])) is Good
    # rung 2: j1 arrives first (alone: passes), then j2 with a better value; j1 is judged once
    assert a.assess_job("j1", hist([0.5, 0.1])) is Good
    assert a.assess_job("j2", hist([0.9, 0.95])) is Good
    assert a.assess_job("j1", hist([0.5, 0.1, 0.1])) is Good  # between rungs 2 and 4
    assert a.assess_job("j3", hist([0.1])) is Bad       # rank 3 of 3 at rung 1 (top 1)
    assert a.rung_counts() == [[3, 2]]


def test_value_at_a_rung_is_the_best_so_far_and_a_batch_crossing_rungs_stops_at_the_first_failure():
    a = AshaAssessor(min_step=1, reduction_factor=3, max_step=100)
    assert a.assess_job("j1", hist([0.5, 0.5, 0.5])) is Good  # rungs 1 and 3 in one batch
    # best of the first 3 values is 0.8 > 0.5 even though the last value is lower
    assert a.assess_job("j2", hist([0.6, 0.8, 0.2])) is Good
    # fails at rung 1 (0.1 < 0.6 and 0.5): its later values are never ranked at rung 3
    assert a.assess_job("j3", hist([0.1, 0.99, 0.99])) is Bad
    assert a.rung_counts() == [[3, 2]]


def test_minimize_ranks_low_values_first():
    a = AshaAssessor(min_step=2, reduction_factor=3, optimize_mode="minimize")
    assert a.assess_job("j1", hist([3.0])) is Good      # before the first rung
    assert a.assess_job("j1", hist([3.0, 2.0])) is Good
    assert a.assess_job("j2", hist([1.0, 5.0])) is Good  # min of the first 2 values: 1.0
    assert a.assess_job("j3", hist([2.5, 2.4])) is Bad


def test_no_rung_at_or_past_max_step_and_non_finite_values_skipped():
    a = AshaAssessor(min_step=3, reduction_factor=3, max_step=9)
    assert a.assess_job("j1", hist([0.9] * 3)) is Good
    assert a.assess_job("j2", hist([0.1, float("nan"), 0.1, 0.1])) is Bad  # 3 finite values: rung 3
    assert a.assess_job("j1", hist([0.9] * 20)) is Good  # no rung at 9 or after
    assert a.assess_job("j3", hist([0.2, float("nan"), 0.2])) is Good  # 2 finite values: no rung yet


def test_job_end_keeps_the_records():
    a = AshaAssessor(min_step=1, reduction_factor=3)
    a.assess_job("j1", hist([0.9]))
    a.job_end("j1", success=False)
    assert a.assess_job("j2", hist([0.5])) is Bad  # j1's value still counts at rung 1


def test_hyperband_brackets_and_assignment():
    h = HyperbandAssessor(min_step=1, reduction_factor=3, max_step=30)
    assert [b.first_rung for b in h.brackets] == [1, 3, 9, 27]
    assert h.bracket_sizes == [27, 12, 6, 4]
    ids = [f"job_{i:04d}" for i in range(1, 301)]
    again = HyperbandAssessor(min_step=1, reduction_factor=3, max_step=30)
    assert [h.bracket_of(j) for j in ids] == [again.bracket_of(j) for j in ids]  # deterministic
    counts = [sum(h.bracket_of(j) == b for j in ids) for b in range(4)]
    assert counts[0] > counts[1] > counts[3] > 0
    assert HyperbandAssessor(min_step=2, max_step=30, brackets=2).n_brackets == 2


def test_hyperband_jobs_compete_only_within_their_bracket():
    h = HyperbandAssessor(min_step=1, reduction_factor=3, max_step=30)
    by_bracket: dict[int, list[str]] = {}
    for i in range(1, 200):
        by_bracket.setdefault(h.bracket_of(f"job_{i:04d}"), []).append(f"job_{i:04d}")
    j0, j0b = by_bracket[0][:2]
    j1 = by_bracket[1][0]
    assert h.assess_job(j0, hist([0.9])) is Good
    # bracket 1's first rung is 3: a low value at step 1 is not judged, and at step 3 it is the
    # first job of its own bracket's rung, whatever bracket 0 holds
    assert h.assess_job(j1, hist([0.1])) is Good
    assert h.assess_job(j1, hist([0.1, 0.1, 0.1])) is Good
    assert h.assess_job(j0b, hist([0.2])) is Bad
    assert h.rung_counts() == [[2], [1], [], []]


@pytest.mark.parametrize("kwargs, message", [
    ({"min_step": 0}, "min_step must be an integer >= 1"),
    ({"reduction_factor": 1}, "reduction_factor must be an integer >= 2"),
    ({"min_step": 5, "max_step": 5}, "max_step must be above min_step"),
    ({"optimize_mode": "max"}, "optimize_mode must be"),
])
def test_asha_setting_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AshaAssessor(**kwargs)


def test_hyperband_setting_errors():
    with pytest.raises(ValueError, match="max_step is required"):
        HyperbandAssessor(min_step=1)
    with pytest.raises(ValueError, match="brackets must be at most 4"):
        HyperbandAssessor(min_step=1, max_step=30, brackets=5)


# A command job: `train.py LEVEL` reports acc = LEVEL * (1 - 0.5^(epoch+1)) for 9 epochs.
TRAIN = """
import sys, time
from gml_ray import SummaryWriter
level = float(sys.argv[1])
w = SummaryWriter("train")
for e in range(9):
    w.add_scalar("acc", level * (1 - 0.5 ** (e + 1)), e)
    time.sleep(0.1)
"""


def test_hyperband_stops_command_jobs_at_their_brackets_rungs(run_task):
    pass

    # levels fall job after job: each job is the worst at every rung it reaches
    run = run_task("""
task:
  template: "python train.py {level}"
  search_args:
    - {type: Categorical, name: level, data: [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler:
  parallel_size: 1
  assessor: {type: HyperbandAssessor, min_step: 1, reduction_factor: 3, max_step: 9}
""", {"train.py": TRAIN})
    jobs = run.jobs
    h = HyperbandAssessor(min_step=1, reduction_factor=3, max_step=9)
    first_rung = {j["name"]: h.brackets[h.bracket_of(j["name"])].first_rung for j in jobs}
    seen_bracket: set[int] = set()
    for j in jobs:
        n = len(run.scalars(j["job_id"], "acc"))
        b = h.bracket_of(j["name"])
        if b in seen_bracket:  # not the first of its bracket: stopped at its first rung
            assert j["status"] == JobStatus.EARLY_STOPPED and first_rung[j["name"]] <= n < 9, (j["name"], n)
        else:  # alone at its bracket's rungs: runs to the end
            assert j["status"] == JobStatus.FINISHED and n == 9
        seen_bracket.add(b)
    assert j["reward"] is not None


def _components(tmp_path, assessor: str, searcher: str = "{type: RandomSearcher, optimize_mode: minimize}"):
    from helpers import write_files

    from gml_ray.config import load_config
    from gml_ray.engine.components import build_components

    write_files(tmp_path, {"train.py": "print(1)\n", "search_config.yaml": f"""
        task:
          template: "python train.py {{x}}"
          search_args: [{{type: Real, name: x, data: [0.0, 1.0]}}]
        searcher: {searcher}
        scheduler:
          assessor: {assessor}
    """})
    return build_components(load_config(str(tmp_path / "search_config.yaml")))


def test_built_from_yaml_with_the_searchers_optimize_mode(tmp_path):
    comps = _components(tmp_path, "{type: HyperbandAssessor, max_step: 27, reduction_factor: 3}")
    assert isinstance(comps.assessor, HyperbandAssessor)
    assert comps.assessor.optimize_mode == "minimize" and comps.assessor.n_brackets == 3
    assert comps.assessor.assess_job("job_0001", hist([0.5])) is Good


def test_yaml_mistakes_are_config_errors_naming_the_field(tmp_path):
    from gml_ray.errors import ConfigError

    with pytest.raises(ConfigError, match=r"scheduler\.assessor\.grace_period: AshaAssessor has no "
                                          r"parameter 'grace_period' \(it takes: min_step, "
                                          r"reduction_factor, max_step, optimize_mode, promotion\)"):
        _components(tmp_path, "{type: AshaAssessor, grace_period: 1}")
    with pytest.raises(ConfigError, match=r"scheduler\.assessor.*max_step is required"):
        _components(tmp_path, "{type: HyperbandAssessor}")
