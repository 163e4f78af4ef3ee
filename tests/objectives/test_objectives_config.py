"""Objectives and constraints in search_config.yaml: how they read, and every mistake as one line
naming the field (in process through load_config, and through the real CLI: exit 2, no traceback)."""
from __future__ import annotations

import math

import pytest
from helpers import write_files
from helpers.cli import gml

from gml_ray.config.task import load_config
from gml_ray.errors import ConfigError
from gml_ray.objectives import Outcome, OutcomeSpec, parse_constraint
from gml_ray.vocab import OptimizeMode

BASE = """
task:
  function: "objective:trial"
  search_args:
    - {type: Real, name: x, data: [0, 1]}
SEARCHER
SCHEDULER
"""


def config(tmp_path, searcher: str, scheduler: str = "scheduler: {parallel_size: 1}"):
    write_files(tmp_path, {"search_config.yaml": BASE.replace("SEARCHER", searcher).replace("SCHEDULER", scheduler),
                           "objective.py": "def trial(config):\n    pass\n"})
    return str(tmp_path / "search_config.yaml")


def test_the_manuals_single_reward_reads_as_before(tmp_path):
    cfg = load_config(config(tmp_path, "searcher: {type: RandomSearcher, reward_attribute: loss, optimize_mode: minimize}"))
    assert cfg.outcome is None and cfg.reward_attribute == "loss" and cfg.optimize_mode == OptimizeMode.MINIMIZE
    assert cfg.outcome_spec.names == ["loss"] and cfg.searcher.kwargs["reward_attribute"] == "loss"


@pytest.mark.parametrize("searcher", [
    "searcher: {type: RandomSearcher, reward_attribute: [acc, latency_ms], optimize_mode: [maximize, minimize]}",
    "searcher: {type: RandomSearcher, reward_attribute: [{name: acc, mode: maximize}, {name: latency_ms, mode: minimize}]}",
    "searcher: {type: RandomSearcher, reward_attribute: [acc, {name: latency_ms, mode: minimize}]}",
])
def test_several_objectives_read_in_each_form(tmp_path, searcher):
    cfg = load_config(config(tmp_path, searcher))
    spec = cfg.outcome_spec
    assert [(o.name, o.mode) for o in spec.objectives] == [("acc", OptimizeMode.MAXIMIZE),
                                                           ("latency_ms", OptimizeMode.MINIMIZE)]
    # the first objective is the manual's reward: a single-objective searcher's kwargs see it alone
    assert cfg.reward_attribute == "acc" and cfg.searcher.kwargs["reward_attribute"] == "acc"
    assert cfg.scalar_columns[:2] == ["acc", "latency_ms"]


def test_constraints_and_reference_point(tmp_path):
    cfg = load_config(config(tmp_path, "searcher: {type: RandomSearcher, reward_attribute: [a, b], "
                                       "optimize_mode: minimize, constraints: ['mem_gb < 8', 'acc>=0.9'], "
                                       "reference_point: [1, 2]}"))
    spec = cfg.outcome_spec
    assert spec.modes == [OptimizeMode.MINIMIZE] * 2 and spec.reference_point == (1.0, 2.0)
    assert [c.text for c in spec.constraints] == ["mem_gb < 8", "acc >= 0.9"]
    assert "constraints" not in cfg.searcher.kwargs and "reference_point" not in cfg.searcher.kwargs
    outcome = spec.outcome({"a": 1.0, "b": 2.0, "mem_gb": 8.0, "acc": 0.95})
    assert not outcome.feasible and outcome.violations[0] > 0 and outcome.violations[1] == pytest.approx(-0.05)
    assert spec.outcome({"a": 1.0, "b": 2.0, "acc": 0.95}).violations[0] == math.inf  # never reported


def test_constraint_violation_follows_optunas_sign():
    assert parse_constraint("latency_ms <= 20").violation(25) == 5
    assert parse_constraint("latency_ms <= 20").violation(20) == 0  # holds
    assert parse_constraint("latency_ms < 20").violation(20) > 0  # strict: broken on the bound
    assert parse_constraint("acc >= 0.9").violation(0.95) == pytest.approx(-0.05)
    assert Outcome((1.0,), (0.0, -1.0)).feasible and not Outcome((1.0,), (1e-9,)).feasible


def test_hypervolume_of_a_small_front_is_the_area_it_dominates():
    spec = OutcomeSpec.from_task({"objectives": '{"objectives": [["a", "minimize"], ["b", "minimize"]], '
                                                '"constraints": [], "reference_point": [4, 4]}'})
    # (1, 3) and (3, 1) against (4, 4): 3*1 + 1*3 - overlap... = 2*1*3 + ... -> direct: 5
    assert spec.hypervolume([(1, 3), (3, 1)]) == pytest.approx(3 * 1 + 1 * 2)
    assert spec.hypervolume([(1, 3), (3, 1), (2, 2)]) == pytest.approx(6.0)


MISTAKES = [
    ("searcher: {type: RandomSearcher, reward_attribute: [a, b], optimize_mode: [maximize]}",
     "searcher.optimize_mode: needs one mode per reward_attribute (2), got 1"),
    ("searcher: {type: RandomSearcher, reward_attribute: [a, b], optimize_mode: [maximize, upward]}",
     "searcher.optimize_mode[1]: must be maximize or minimize, got 'upward'"),
    ("searcher: {type: RandomSearcher, reward_attribute: [a, {name: b, mode: most}]}",
     "searcher.reward_attribute[1].mode: must be maximize or minimize"),
    ("searcher: {type: RandomSearcher, reward_attribute: [a, a]}",
     "searcher.reward_attribute[1]: 'a' is already an objective"),
    ("searcher: {type: RandomSearcher, reward_attribute: a, optimize_mode: [maximize, minimize]}",
     "searcher.optimize_mode: one reward_attribute takes one mode"),
    ("searcher: {type: RandomSearcher, constraints: ['latency_ms about 20']}",
     "searcher.constraints[0]: 'latency_ms about 20' is not 'scalar OP number'"),
    ("searcher: {type: RandomSearcher, constraints: ['latency_ms <= fast']}",
     "searcher.constraints[0]: 'latency_ms <= fast': the bound 'fast' is not a number"),
    ("searcher: {type: RandomSearcher, reward_attribute: [a, b], reference_point: [1]}",
     "searcher.reference_point: needs one number per objective (2)"),
]


@pytest.mark.parametrize("searcher,message", MISTAKES)
def test_mistakes_name_the_field(tmp_path, searcher, message):
    with pytest.raises(ConfigError) as err:
        load_config(config(tmp_path, searcher))
    assert message in str(err.value) and "search_config.yaml" in str(err.value)


@pytest.mark.parametrize("scheduler,message", [
    ("scheduler: {stop_criterion: {max_reward: [1, 2, 3]}}",
     "scheduler.stop_criterion.max_reward: needs one number per objective (2)"),
    ("scheduler: {assessor: {type: MedianStopAssessor, objective: c}}",
     "scheduler.assessor.objective: must be one of the objectives (a, b), got 'c'"),
    ("scheduler: {pbt: {population_size: 2}}", "scheduler.pbt: PBT ranks jobs by one reward"),
])
def test_scheduler_mistakes_with_several_objectives(tmp_path, scheduler, message):
    with pytest.raises(ConfigError) as err:
        load_config(config(tmp_path, "searcher: {type: RandomSearcher, reward_attribute: [a, b]}", scheduler))
    assert message in str(err.value)


@pytest.mark.parametrize("searcher,message", [
    ("searcher: {type: SkoptSearcher, reward_attribute: [a, b]}",
     "searcher.type: SkoptSearcher optimises one objective and reward_attribute names 2: use "
     "BatchSearcher, GridSearcher, OptunaSearcher, RandomSearcher"),
    ("searcher: {type: OptunaSearcher, sampler: cmaes, reward_attribute: [a, b]}",
     "sampler cmaes optimises one objective"),
    ("searcher: {type: RandomSearcher, reward_attribute: [a, b], optimize_mode: [maximize]}",
     "searcher.optimize_mode: needs one mode per reward_attribute"),
])
def test_cli_says_it_in_one_red_line_and_exits_2(tmp_path, searcher, message):
    path = config(tmp_path, searcher)
    result = gml("run", path, "--workdir", str(tmp_path / "wd"), cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
