"""PB2's explore step: a GP bandit over the reward changes PBT's decisions saw (no Ray), then a real run."""
from __future__ import annotations

import json
import math
import os
import random

import pytest
from helpers.pbt import CONFIG, TRIAL

from gml_ray.config.checkpointing import PbtConfig
from gml_ray.engine.pb2 import MIN_POINTS, Pb2Explorer
from gml_ray.engine.pbt import PopulationBasedTraining
from gml_ray.space import Categorical, Dict, Int, Real


def _space() -> Dict:
    return Dict(lr=Real(1e-4, 1.0, log=True), width=Int(16, 128, step=16), act=Categorical("relu", "tanh", "gelu"))


def test_proposals_stay_within_bounds_on_the_step_and_only_real_and_int_are_modelled():
    pb2 = Pb2Explorer(_space(), ["lr", "width", "act"], seed=0)
    assert pb2.names == ["lr", "width"]  # Categorical args are not modelled
    assert pb2.propose(0, {"lr": 0.01, "width": 32}) == {}  # too few points: PBT's perturbation explores
    rng = random.Random(0)
    for step in range(2, 2 + 2 * MIN_POINTS, 2):
        pb2.observe(step, {"lr": 10 ** rng.uniform(-4, 0), "width": rng.choice(range(16, 129, 16))}, rng.random())
    draws = [pb2.propose(20, {"lr": 0.01, "width": 32}) for _ in range(20)]
    assert all(1e-4 <= d["lr"] <= 1.0 and d["width"] in range(16, 129, 16) for d in draws)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_proposes_where_the_reward_grew_most(seed):
    # the reward grows most with lr near 1e-2 (the middle of the log range), whatever the width
    pb2 = Pb2Explorer(_space(), ["lr", "width"], seed=seed)
    rng = random.Random(seed)
    for step in range(4, 124, 4):
        lr, width = 10 ** rng.uniform(-4, 0), rng.choice(range(16, 129, 16))
        pb2.observe(step, {"lr": lr, "width": width}, 1.0 - (math.log10(lr) + 2) ** 2 / 4 + rng.gauss(0, 0.02))
    proposals = [pb2.propose(124, {"lr": 0.5, "width": 64})["lr"] for _ in range(5)]
    assert all(-3 <= math.log10(lr) <= -1 for lr in proposals), proposals


def test_a_nan_change_and_unmodelled_args_teach_nothing():
    pb2 = Pb2Explorer(_space(), ["act"], seed=0)
    pb2.observe(4, {"act": "relu"}, 1.0)
    assert pb2.points == [] and pb2.propose(4, {"act": "relu"}) == {}
    pb2 = Pb2Explorer(_space(), ["lr"], seed=0)
    pb2.observe(4, {"lr": 0.1}, float("nan"))
    assert pb2.points == []


def test_pbt_with_pb2_learns_from_each_decision_and_explores_categoricals_as_pbt_does():
    cfg = PbtConfig(mutable=["lr", "act"], perturbation_interval=2, quantile_fraction=0.5,
                    resample_probability=0.0, explore="pb2", seed=3)
    pbt = PopulationBasedTraining(cfg, _space(), "maximize")
    for job_id, lr in zip((1, 2, 3, 4), (0.001, 0.01, 0.1, 0.5)):
        pbt.joined(job_id, {"lr": lr, "width": 32, "act": "tanh"})
        pbt.reported(job_id, [(s, lr * (s + 1)) for s in range(8)])
    for step in (1, 3):
        for job_id in (4, 3, 2):
            pbt.checkpointed(job_id, step)
    # a decision at step 1 has no earlier one to measure from; each at step 3 adds a point
    assert len(pbt.pb2.points) == 3 and pbt.pb2.points[0][2] == pytest.approx(0.5 * 2)
    decision = pbt.checkpointed(1, 3)  # the worst (its first decision: no point): exploits a top member
    assert decision is not None and decision.donor in (3, 4) and len(pbt.pb2.points) == 3 < MIN_POINTS
    assert decision.config["act"] in ("relu", "gelu") and decision.config["width"] == 32  # width is not mutable
    # too few points for the GP: the donor's lr perturbed, as PBT does
    donor_lr = {3: 0.1, 4: 0.5}[decision.donor]
    assert decision.config["lr"] in (pytest.approx(0.8 * donor_lr), pytest.approx(1.2 * donor_lr))
    pbt.left(1)
    pbt.joined(5, decision.config, start_step=3, parent=decision.donor)
    pbt.reported(5, [(s, 1.0 + s) for s in range(4, 8)])
    for job_id in (5, 4, 3, 2):  # a decision at step 5 each: 4 more points, then the GP proposes
        pbt.checkpointed(job_id, 5)
    assert len(pbt.pb2.points) >= MIN_POINTS
    later = pbt.explore({"lr": 0.5, "width": 32, "act": "tanh"}, 5)[0]["lr"]
    assert 1e-4 <= later <= 1.0 and later not in (pytest.approx(0.4), pytest.approx(0.6))


def test_explore_must_be_perturb_or_pb2(tmp_path):
    import re

    from gml_ray.config import parse_config
    from gml_ray.errors import ConfigError

    raw = {"task": {"function": "t:f", "search_args": [{"type": "Real", "name": "lr", "data": [0.01, 1.0]}]},
           "scheduler": {"pbt": {"explore": "pb3"}}}
    with pytest.raises(ConfigError, match=re.escape("c.yaml: scheduler.pbt.explore: must be one of perturb, pb2, got 'pb3'")):
        parse_config(raw, "c.yaml", str(tmp_path))


@pytest.mark.slow
def test_a_pb2_run_exploits_with_args_from_the_bandit_and_a_consistent_lineage(run_task):
    # steps of 0.3 s (not 0.15): on a loaded machine the scheduler may take its decisions a second
    # or two after the members' checkpoints, and a member already ended makes none
    slow = TRIAL.replace("time.sleep(0.15)", "time.sleep(0.3)")
    run = run_task(CONFIG.replace("seed: 1}", "seed: 1, explore: pb2}"), {"trial.py": slow})
    assert run.summary["status"] == "FINISHED", run.summary
    jobs = {j["job_id"]: j for j in run.jobs}
    children = [j for j in jobs.values() if j["parent_id"] is not None]
    assert children, "no exploit happened"
    for child in children:
        seen = json.load(open(os.path.join(child["job_dir"], "restored.json")))
        assert seen["step"] == child["parent_step"]  # it started from its parent's checkpoint
        steps = [r["step"] for r in run.scalars(child["job_id"], "score")]
        assert steps == list(range(len(steps)))
        assert 0.05 <= child["config"]["lr"] <= 1.0
    # the bandit's lr is not PBT's x0.8 / x1.2 of the parent's (it would be by chance only)
    ratios = [c["config"]["lr"] / jobs[c["parent_id"]]["config"]["lr"] for c in children]
    assert any(abs(r - 0.8) > 1e-6 and abs(r - 1.2) > 1e-6 for r in ratios), ratios
