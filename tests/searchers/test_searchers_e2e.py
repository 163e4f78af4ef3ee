"""Every searcher under the scheduler's calling pattern, and real runs through the scheduler and CLI."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import yaml
from helpers import DATA_DIR, resumed_core, write_files

from gml_ray.searchers import BatchSearcher, EvolutionSearcher, GridSearcher, RandomSearcher, SkoptSearcher
from gml_ray.space import Categorical, Dict, Int, Nested, Real, config_key
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus

BIN = os.path.dirname(sys.executable)
FAST = dict(acq_func="EI", acq_optimizer="sampling", acq_optimizer_kwargs={"n_points": 1000})

# 3 * 5 * 2 = 30 configs
FINITE = Dict(a=Categorical(1, 2, 3), b=Int(0, 8, step=2), c=Nested({"z": 0}, {"z": 1}))
CONTINUOUS = Dict(x=Real(0.0, 1.0), lr=Real(1e-4, 1.0, log=True), k=Int(1, 50))

SEARCHERS = {
    "grid": lambda space, seed: GridSearcher(space),
    "random": lambda space, seed: RandomSearcher(space, seed=seed),
    "skopt": lambda space, seed: SkoptSearcher(space, random_state=seed, n_initial_points=4, **FAST),
    "evolution": lambda space, seed: EvolutionSearcher(space, population_size=4, mutate_prob=0.3,
                                                       seed=seed),
}
SEEDED = ["random", "skopt", "evolution"]


def reward(config: dict) -> float:
    if "x" in config:
        return -(config["x"] - 0.3) ** 2 - config["k"] / 100
    if "r" in config:
        return config["r"]["seed"]
    return config["a"] + config["b"] / 4 + config["c"]["z"]


def run(searcher, n: int, parallel: int) -> list[dict]:
    """The scheduler's pattern: up to `parallel` configs outstanding; the oldest ends first."""
    proposed, pending = [], []
    while len(proposed) < n:
        while len(pending) < parallel and len(proposed) < n:
            config = searcher.get_config()
            if config is None:
                break
            proposed.append(config)
            pending.append(config)
        if not pending:
            break
        config = pending.pop(0)
        searcher.update(config, reward(config))
    return proposed


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_no_duplicate_proposals_under_parallel_asks(name):
    searcher = SEARCHERS[name](FINITE, 0)
    configs = run(searcher, 30, parallel=4)
    assert len({config_key(c) for c in configs}) == len(configs)
    assert len(configs) >= (30 if name != "evolution" else 10)
    if len(configs) == 30:
        assert searcher.get_config() is None


def test_batch_with_several_asks_outstanding_proposes_each_entry_once():
    runs = [{"seed": s} for s in range(7)]
    configs = run(BatchSearcher(Dict(r=Nested(*runs))), 100, parallel=3)
    assert [c["r"] for c in configs] == runs


@pytest.mark.parametrize("name", SEEDED)
def test_same_seed_same_config_sequence(name):
    def sequence(seed):
        return [config_key(c) for c in run(SEARCHERS[name](CONTINUOUS, seed), 12, parallel=3)]
    assert sequence(1) == sequence(1)
    assert sequence(1) != sequence(2)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_error_and_killed_jobs_are_not_a_reward_of_zero(name):
    searcher = SEARCHERS[name](FINITE, 0)
    first, second, third = (searcher.get_config() for _ in range(3))
    searcher.job_failed(first, JobStatus.ERROR)
    searcher.job_failed(second, "KILLED")
    searcher.update(third, -1.0)
    # a failure recorded as 0 would beat the real reward -1.0
    assert searcher.get_best_reward() == -1.0
    assert searcher.get_best_config() == third
    assert 0 not in searcher._results.values()
    rest = run(searcher, 30, parallel=2)
    assert {config_key(c) for c in rest}.isdisjoint({config_key(first), config_key(second)})


# ---- real runs ---------------------------------------------------------------------------------------

OBJECTIVE = """
import gml_ray

def train(config):
    if config.get("crash"):
        raise RuntimeError("this config crashes")
    score = -(config["x"] - 0.3) ** 2 - config.get("k", 0) / 100 + config.get("bonus", 0)
    gml_ray.report(score=score)
"""


def test_skopt_run_with_parallel_jobs_and_a_crashing_config(run_task):
    run = run_task("""
task:
  function: "objective:train"
  search_args:
    - {type: Real, name: x, data: [0.0, 1.0]}
    - {type: Int, name: k, data: [1, 20]}
    - type: Nested
      data: [{crash: false, bonus: 0}, {crash: false, bonus: 1}, {crash: true, bonus: 2}]
searcher:
  type: SkoptSearcher
  reward_attribute: score
  random_state: 3
  n_initial_points: 3
  acq_func: EI
  acq_optimizer: sampling
scheduler: {parallel_size: 2, stop_criterion: {max_tries: 8}}
""", {"objective.py": OBJECTIVE})
    jobs = run.jobs
    assert len(jobs) == 8
    assert len({config_key(j["config"]) for j in jobs}) == 8
    for job in jobs:
        crashed = job["config"]["_nested2"]["crash"]
        assert job["status"] == (JobStatus.ERROR if crashed else JobStatus.FINISHED)
        assert (job["reward"] is None) == crashed
    assert run.summary["status"] == JobStatus.FINISHED
    assert run.summary["best_reward"] == max(j["reward"] for j in jobs if j["reward"] is not None)


TRAIN_FILE = """
import sys, yaml
from gml_ray import SummaryWriter
cfg = yaml.safe_load(open(sys.argv[1]))
acc = cfg["lr"] * 10 + cfg["sched"]["gamma"] - abs(cfg["depth"] - 4) / 10
SummaryWriter().add_scalar("acc", acc, 0)
"""


def test_evolution_run_renders_file_args(run_task):
    run = run_task("""
task:
  template: "python train.py {config}"
  search_args:
    - type: File
      name: config
      file: base.yaml
      search_args:
        - {type: Real, name: lr, data: [0.01, 0.1], log: true}
        - {type: Int, name: depth, data: [2, 6]}
        - type: Nested
          data: [{sched.gamma: 0.5}, {sched.gamma: 0.7}]
searcher: {type: EvolutionSearhcer, population_size: 3, mutate_prob: 0.5, seed: 0}
scheduler: {parallel_size: 2, stop_criterion: {max_tries: 6}}
""", {"train.py": TRAIN_FILE, "base.yaml": "lr: 0.0\ndepth: 0\nsched: {gamma: 0.1, step: 1}\n"})
    jobs = run.jobs
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 6
    for job in jobs:
        args = job["arg_dict"]
        expected = args["config(lr)"] * 10 + args["config(sched.gamma)"] - abs(args["config(depth)"] - 4) / 10
        assert job["reward"] == pytest.approx(expected)
    assert len({config_key(j["config"]) for j in jobs}) == 6


def test_batch_run_goes_through_the_entries_in_order(run_task):
    run = run_task("""
task:
  function: "objective:train"
  search_args:
    - type: Nested
      data: [{x: 0.1, bonus: 0}, {x: 0.3, bonus: 0}, {x: 0.5, bonus: 1}]
searcher: {type: BatchSearcher, reward_attribute: score}
scheduler: {parallel_size: 2}
""", {"objective.py": OBJECTIVE})
    assert [j["arg_dict"] for j in run.jobs] == [{"x": 0.1, "bonus": 0}, {"x": 0.3, "bonus": 0},
                                                 {"x": 0.5, "bonus": 1}]
    assert run.statuses() == [JobStatus.FINISHED] * 3 and run.summary["best_job"] == "job_0003"


def test_resume_continues_the_evolution_instead_of_starting_over(run_task, tmp_path):

    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    first = run_task("""
task:
  function: "objective:train"
  search_args:
    - {type: Real, name: x, data: [0.0, 1.0]}
    - {type: Real, name: k, data: [0.0, 10.0]}
    - {type: Real, name: bonus, data: [0.0, 1.0]}
searcher: {type: EvolutionSearcher, reward_attribute: score, population_size: 4, mutate_prob: 0.0, seed: 1}
scheduler: {parallel_size: 2, stop_criterion: {max_tries: 4}}
""", {"objective.py": OBJECTIVE})
    earlier = first.jobs
    assert len(earlier) == 4
    cfg = load_config(str(tmp_path / "code" / "search_config.yaml"))
    # The searcher a resume builds has been told every earlier result, in job order.
    with resumed_core(first, cfg) as core:
        assert core.searcher.history == [(j["config"], j["reward"]) for j in earlier]

    # a finished search goes on when its config asks for more tries (the one edit a resume takes)
    path = tmp_path / "code" / "search_config.yaml"
    path.write_text(path.read_text().replace("max_tries: 4", "max_tries: 8"))
    cfg = load_config(str(path))
    again = NaiveScheduler(first.work_dir, cfg, task="t", resume=True)
    again.prepare()
    summary = again.run()
    jobs = first.store.jobs("t")
    assert len(jobs) == 8 and summary["launched"] == 8
    assert len({config_key(j["config"]) for j in jobs}) == 8
    # Started over, the searcher would draw a new random population; continuing, it breeds the
    # earlier four (no mutation), so every new value is one the earlier jobs had.
    for job in jobs[4:]:
        for arg in ("x", "k", "bonus"):
            assert job["config"][arg] in {e["config"][arg] for e in earlier}


# The manual 5.3 custom searcher, verbatim (gml -> gml_ray).
MANUAL_SEARCHER = open(os.path.join(DATA_DIR, "manual_searcher.py")).read()


def test_the_manuals_custom_searcher_runs_through_gml_ray_run(tmp_path, ray_head):
    write_files(tmp_path, {
        "custom_searcher.py": MANUAL_SEARCHER,
        "train.py": """
            import sys
            from gml_ray import SummaryWriter
            bs, lr, epochs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
            SummaryWriter().add_scalar("acc", lr * epochs - bs / 1000, 0)
        """,
        "search_config.yaml": """
            task:
              template: "python train.py {batch-size} {lr} {epochs}"
              search_args:
                - {type: Categorical, name: batch-size, data: [256, 512]}
                - {type: Real, name: lr, data: [0.1, 0.2], step: 0.1}
                - {type: Int, name: epochs, data: [1, 2]}
            searcher:
              type: MySearcher
              reward_attribute: acc
            scheduler: {parallel_size: 2}
            custom_imports: [custom_searcher.py]
        """,
    })
    result = subprocess.run([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "custom",
                             "--workdir", "wd", "--address", ray_head], cwd=tmp_path, capture_output=True,
                            text=True, timeout=180, env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    jobs = Store(str(tmp_path / "wd"), create=False).jobs("custom")
    # the manual's searcher pops from the end of the grid: the last combination runs first
    grid = list(itertools.product([256, 512], [0.1, 0.2], [1, 2]))
    assert [(j["arg_dict"]["batch-size"], j["arg_dict"]["lr"], j["arg_dict"]["epochs"]) for j in jobs] == \
        grid[::-1]
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 8
    best = max(jobs, key=lambda j: j["reward"])["arg_dict"]
    assert (best["lr"], best["epochs"], best["batch-size"]) == (0.2, 2, 256)
    saved = yaml.safe_load(open(tmp_path / "wd" / "tasks" / "custom" / "search_config.yaml"))
    assert saved["searcher"] == {"type": "MySearcher", "reward_attribute": "acc"}
