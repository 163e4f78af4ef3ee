"""Several objectives and constraints, end to end on a real Ray run: what the store keeps for each
job (its objective values, violations, feasibility), the front, the searcher told every value."""
from __future__ import annotations

import pytest

from gml_ray.objectives import OutcomeSpec, front_indices
from gml_ray.vocab import JobStatus

# Two objectives on [0, 1]^2, both minimised (a convex front: f2 = (1 - sqrt(f1))^2 ... shaped),
# and a "cost" every job reports, used by constraints.
OBJECTIVE = {"objective.py": """
    import gml_ray
    def trial(config):
        x, y = config["x"], config["y"]
        for step in range(3):
            gml_ray.report(f1=x + step * 0.001, f2=(1 - x) ** 2 + y, cost=10 * x + y, step=step)
"""}

SPACE = """
task:
  function: "objective:trial"
  search_args:
    - {type: Real, name: x, data: [0, 1]}
    - {type: Real, name: y, data: [0, 1]}
"""


def front_of(jobs, spec: OutcomeSpec):
    done = [j for j in jobs if j["status"] == JobStatus.FINISHED and j.get("feasible") != 0]
    return {done[i]["name"] for i in front_indices([spec.scores(j["rewards"]) for j in done])}


@pytest.mark.parametrize("searcher", ["type: RandomSearcher, seed: 3",
                                      "type: OptunaSearcher, sampler: nsga2, seed: 3"])
def test_two_objectives_keep_each_jobs_last_values_and_a_front(run_task, searcher):
    run = run_task(SPACE + f"""
searcher: {{{searcher}, reward_attribute: [f1, f2], optimize_mode: [minimize, minimize]}}
scheduler:
  parallel_size: 2
  stop_criterion: {{max_tries: 12}}
""", OBJECTIVE)
    assert run.statuses() == [JobStatus.FINISHED] * 12
    task = run.store.require_task("t")
    spec = OutcomeSpec.from_task(task)
    assert spec.names == ["f1", "f2"] and spec.multi
    for job in run.jobs:
        x, y = job["config"]["x"], job["config"]["y"]
        # the last reported value of each (step 2), not the best (step 0 for f1)
        assert job["rewards"] == pytest.approx([x + 0.002, (1 - x) ** 2 + y])
        assert job["reward"] == pytest.approx(x + 0.002)  # the reward column: the first objective
        assert job["feasible"] is None  # no constraints
    front = front_of(run.jobs, spec)
    assert 1 <= len(front) <= 12
    # every job off the front is dominated by one on it
    by_name = {j["name"]: spec.scores(j["rewards"]) for j in run.jobs}
    for name, s in by_name.items():
        if name not in front:
            assert any(all(a >= b for a, b in zip(by_name[f], s)) for f in front)


def test_constrained_run_marks_infeasible_jobs_and_the_best_is_feasible(run_task):
    run = run_task(SPACE + """
searcher:
  type: RandomSearcher
  seed: 5
  reward_attribute: f1
  optimize_mode: maximize
  constraints: ["cost <= 6"]
scheduler:
  parallel_size: 2
  stop_criterion: {max_tries: 10}
""", OBJECTIVE)
    assert run.statuses() == [JobStatus.FINISHED] * 10
    for job in run.jobs:
        cost = 10 * job["config"]["x"] + job["config"]["y"]
        assert job["feasible"] == int(cost <= 6)
        assert job["violations"] == pytest.approx([cost - 6])
    feasible = [j for j in run.jobs if j["feasible"]]
    infeasible = [j for j in run.jobs if not j["feasible"]]
    assert feasible and infeasible  # the seed gives both kinds
    best = max(feasible, key=lambda j: j["reward"])
    # the best job is the best feasible one, though an infeasible job has a larger f1
    assert max(j["reward"] for j in infeasible) > best["reward"]
    assert run.summary["best_job"] == best["name"]


def test_max_reward_per_objective_stops_when_one_job_reaches_both(run_task):
    run = run_task((SPACE + """
searcher:
  type: GridSearcher
  reward_attribute: [f1, f2]
  optimize_mode: [minimize, minimize]
scheduler:
  parallel_size: 1
  stop_criterion: {max_reward: [0.6, 0.5]}
""").replace("{type: Real, name: x, data: [0, 1]}", "{type: Categorical, name: x, data: [0.9, 0.8, 0.5, 0.1]}")
         .replace("{type: Real, name: y, data: [0, 1]}", "{type: Categorical, name: y, data: [0.0]}"), OBJECTIVE)
    # x=0.9: f2=0.01 but f1 too large; 0.8: likewise; 0.5: f1=0.502, f2=0.25 -> both reached
    assert [j["config"]["x"] for j in run.jobs] == [0.9, 0.8, 0.5]
    assert "max_reward" in (run.store.require_task("t")["message"] or "")


def test_a_constraint_on_a_scalar_no_job_reports_warns_once(run_task, caplog):
    """A misspelt or missing constrained scalar: every job is infeasible (nothing shows it held),
    and the run says so once, naming the scalar and the constraint."""
    with caplog.at_level("WARNING"):
        run = run_task(SPACE + """
searcher: {type: RandomSearcher, seed: 1, reward_attribute: f1, optimize_mode: maximize,
           constraints: ["cost <= 100", "mem_gb < 8"]}
scheduler:
  parallel_size: 1
  stop_criterion: {max_tries: 3}
""", OBJECTIVE)
    assert run.statuses() == [JobStatus.FINISHED] * 3
    assert [j["feasible"] for j in run.jobs] == [0, 0, 0]
    warned = [r.getMessage() for r in caplog.records if "without reporting" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "without reporting mem_gb, which constraint 'mem_gb < 8' (the job counts as infeasible)" in warned[0]
    assert run.summary["best_job"] is None  # no feasible job: no best
