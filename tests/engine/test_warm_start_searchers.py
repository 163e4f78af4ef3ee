"""Warm start (``gml-ray run --warm-start-from OLD``) for the built-in searchers that learn, besides
Skopt (tests/engine/test_warm_start.py): Evolution, LA-MCTS and Optuna (TPE), each through the real
command line on a real Ray and SQLite store.

One earlier task (RandomSearcher, 10 jobs) is shared by the three cases. Each new task runs 3 jobs
one at a time, so its proposals are a deterministic function of the seed and of what its searcher
was told. The checks:

* the new task's jobs are exactly what the searcher the engine builds from the same config
  proposes after being told the earlier results (replayed here, in job order), and not what it
  proposes cold: so the earlier results reached the searcher before its first proposal;
* what each searcher, told them, does that a user can see: Evolution breeds its first job (and
  every later one) from the earlier best individuals instead of drawing an initial population;
  LA-MCTS skips its initial design (the box's centre, then a Latin hypercube) and starts from
  its model; Optuna's study holds the earlier results as COMPLETE trials, and the task's first
  config is what a raw Optuna study with them proposes (TPE past its startup trials);
* the earlier jobs are not run again and not counted by max_tries; ``ctl show`` names the source.
"""
from __future__ import annotations

import pytest
from helpers import write_files
from helpers.cli import gml

from gml_ray.config import load_config
from gml_ray.engine.components import build_components
from gml_ray.engine.warm_start import WarmStart
from gml_ray.space import config_key
from gml_ray.store import Store
from gml_ray.vocab import JobStatus

pytestmark = pytest.mark.ray

ARGS = ("x", "y", "z")
OLD_TRIES, NEW_TRIES = 10, 3

OBJECTIVE = {"objective.py": """
    import gml_ray
    def trial(config):
        x, y, z = config["x"], config["y"], config["z"]
        gml_ray.report(loss=(x - 0.3) ** 2 + (y + 0.2) ** 2 + (z - 0.5) ** 2, step=0)
"""}

# Real args only (LA-MCTS searches nothing else): no two configs drawn from them coincide by chance.
CONFIG = """
task:
  function: "objective:trial"
  search_args:
    - {{type: Real, name: x, data: [-1, 1]}}
    - {{type: Real, name: y, data: [-1, 1]}}
    - {{type: Real, name: z, data: [-1, 1]}}
searcher: {searcher}
scheduler: {{parallel_size: {parallel}, stop_criterion: {{max_tries: {tries}}}}}
"""

OLD = CONFIG.format(searcher="{type: RandomSearcher, seed: 11, reward_attribute: loss, optimize_mode: minimize}",
                    parallel=2, tries=OLD_TRIES)

SEARCHERS = {
    # mutate_prob 0: a child is a crossover of two parents, so each of its values is a parent's
    "evolution": "{type: EvolutionSearcher, population_size: 4, mutate_prob: 0.0, seed: 3}",
    "lamcts": "{type: LamctsSearcher, ninits: 3, seed: 3}",
    # the 10 earlier results are past TPE's 5 startup trials: its first ask uses its model
    "optuna": "{type: OptunaSearcher, sampler: tpe, sampler_kwargs: {n_startup_trials: 5}, seed: 3}",
}


def new_config(name: str) -> str:
    searcher = SEARCHERS[name][:-1] + ", reward_attribute: loss, optimize_mode: minimize}"
    return CONFIG.format(searcher=searcher, parallel=1, tries=NEW_TRIES)


def point(config: dict) -> list[float]:
    return [config[a] for a in ARGS]


def points(configs) -> list[float]:
    """The configs' values, flat (what pytest.approx compares)."""
    return [v for c in configs for v in point(c)]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, ray_head):
    """(root, address, the earlier task's jobs): task ``old`` of work dir ``root/wd``."""
    root = tmp_path_factory.mktemp("warm")
    write_files(root / "old", {"search_config.yaml": OLD, **OBJECTIVE})
    result = gml("run", str(root / "old" / "search_config.yaml"), "--task", "old", "--workdir", "wd",
                 "--address", ray_head, cwd=root, timeout=180)
    assert result.returncode == 0, result.stderr
    jobs = Store(str(root / "wd"), create=False).jobs("old")
    return root, ray_head, jobs


def engine_searcher(config_path):
    """The searcher the engine builds for this config (the same kwargs, max_tries, parallel_size)."""
    return build_components(load_config(str(config_path))).searcher


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_a_learning_searcher_starts_from_the_earlier_tasks_results(earlier, name):
    root, address, old = earlier
    # (a) the earlier task ran its 10 jobs, each with a result
    assert len(old) == OLD_TRIES
    assert all(j["status"] == JobStatus.FINISHED and j["reward"] is not None for j in old)

    code = root / name
    write_files(code, {"search_config.yaml": new_config(name), **OBJECTIVE})
    result = gml("run", str(code / "search_config.yaml"), "--task", name, "--workdir", "wd",
                 "--address", address, "--warm-start-from", "old", cwd=root, timeout=180)
    assert result.returncode == 0, result.stderr
    store = Store(str(root / "wd"), create=False)
    jobs = store.jobs(name)

    # (c) max_tries counts the new task's own jobs only; none of them runs an earlier config again,
    # and the earlier task is untouched
    assert len(jobs) == NEW_TRIES and all(j["status"] == JobStatus.FINISHED for j in jobs)
    assert not {config_key(j["config"]) for j in jobs} & {config_key(j["config"]) for j in old}
    assert [(j["job_id"], j["status"]) for j in store.jobs("old")] == [(j["job_id"], j["status"]) for j in old]
    warm = WarmStart.from_task(store.require_task(name))
    assert warm is not None and warm.sources == ["old"] and warm.told == OLD_TRIES and not warm.skipped

    # (b) the task ran what its searcher proposes once told the earlier results (then its own),
    # which is not what the same searcher proposes cold
    told = engine_searcher(code / "search_config.yaml")
    for j in old:
        told.tell(j["config"], j["reward"], JobStatus.FINISHED)
    told.warm_started(len(old))  # as the engine says after a warm start's results
    replay = []
    for j in jobs:
        replay.append(told.get_config())
        told.tell(j["config"], j["reward"], JobStatus.FINISHED)
    assert points(replay) == pytest.approx(points(j["config"] for j in jobs))
    cold = engine_searcher(code / "search_config.yaml")
    cold_first = [cold.get_config() for _ in range(NEW_TRIES)]
    assert point(jobs[0]["config"]) != pytest.approx(point(cold_first[0]))

    # ... and what that means for each searcher
    if name == "evolution":
        # no random initial population: every job is bred from the 4 best earlier individuals
        # (crossover only), so each value is one of theirs; a cold start draws values at random
        best = sorted(old, key=lambda j: j["reward"])[:4]
        for a in ARGS:
            parents = {j["config"][a] for j in best}
            assert {j["config"][a] for j in jobs} <= parents, a
            assert cold_first[0][a] not in {j["config"][a] for j in old}
    elif name == "lamcts":
        # the initial design (centre first, then a Latin hypercube) is skipped: every job comes
        # from the tree and the trust region, none is a design point
        assert point(cold_first[0]) == pytest.approx([0.0, 0.0, 0.0])
        design = {config_key(c) for c in cold_first}
        assert not design & {config_key(j["config"]) for j in jobs}
        # the replaying searcher handed out no design point: one model iteration per job
        assert told._lhs_next == 0 and told.iterations == NEW_TRIES
        assert told.samples == OLD_TRIES + NEW_TRIES
    else:
        # the study holds the earlier results as COMPLETE trials; a raw Optuna study given the
        # same trials and seed proposes the task's first config (TPE's model: 10 >= 5 startup)
        import optuna
        fresh = engine_searcher(code / "search_config.yaml")
        for j in old:
            fresh.tell(j["config"], j["reward"], JobStatus.FINISHED)
        complete = fresh.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert sorted(t.value for t in complete) == pytest.approx(sorted(j["reward"] for j in old))
        dists = fresh.distributions
        raw = optuna.create_study(direction="minimize",
                                  sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=5))
        for j in old:
            raw.add_trial(optuna.trial.create_trial(params={a: j["config"][a] for a in dists},
                                                    distributions=dists, value=j["reward"]))
        first = raw.ask(dists).params
        assert point(jobs[0]["config"]) == pytest.approx(point(first))

    # (d) `ctl show` says where the task started from
    show = gml("ctl", "show", "--task", name, "--workdir", "wd", cwd=root, timeout=60)
    assert show.returncode == 0, show.stderr
    assert f"warm-started from old: {OLD_TRIES} results told" in show.stdout, show.stdout
