"""EvolutionSearcher (manual 2.3.5): initial population, crossover, mutation, selection, exhaustion."""
from __future__ import annotations

import math
import textwrap
from collections import Counter

import pytest

from gml_ray.config import load_config
from gml_ray.engine.components import build_components
from gml_ray.errors import ConfigError
from gml_ray.searchers import SEARCHERS, EvolutionSearcher, RandomSearcher
from gml_ray.space import Categorical, Dict, File, Int, Nested, Real, config_key

# Six continuous values: two random individuals share no value, so a child's origin is visible.
CONT = Dict(**{f"x{i}": Real(0.0, 1.0) for i in range(6)})
NAMES = [f"x{i}" for i in range(6)]


def sphere(config: dict) -> float:
    return sum((config[k] - 0.3) ** 2 for k in NAMES)


def run(searcher, objective, n: int, parallel: int = 1) -> list[dict]:
    """The scheduler's pattern: keep `parallel` configs outstanding, tell the oldest, ask again."""
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
        searcher.update(config, objective(config))
    for config in pending:
        searcher.update(config, objective(config))
    return proposed


def values(configs) -> list[set]:
    """Per position, the set of values the configs hold."""
    return [{c[k] for c in configs} for k in NAMES]


def test_alias_and_manual_keys_build_from_a_config(tmp_path):
    assert SEARCHERS.get("EvolutionSearhcer") is EvolutionSearcher
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {lr} {bs}"
          search_args:
            - {type: Real, name: lr, data: [0.0001, 0.1], log: true}
            - {type: Categorical, name: bs, data: [32, 64, 128]}
        searcher:
            type: EvolutionSearhcer
            optimize_mode: 'maximize'
            population_size: 32
            mutate_prob: 0.1
            reward_attribute: acc
            gen_trial_limit: 100
            seed: 2021
        """))
    searcher = build_components(load_config(str(tmp_path / "search_config.yaml"))).searcher
    assert isinstance(searcher, EvolutionSearcher)
    assert (searcher.population_size, searcher.mutate_prob, searcher.gen_trial_limit, searcher.seed) == \
        (32, 0.1, 100, 2021)
    config = searcher.get_config()
    assert 0.0001 <= config["lr"] <= 0.1 and config["bs"] in (32, 64, 128)


@pytest.mark.parametrize("line, words", [
    ("population_size: 0", "population_size must be an integer >= 1"),
    ("mutate_prob: 1.5", "mutate_prob must be a number in [0, 1]"),
    ("gen_trial_limit: many", "gen_trial_limit must be an integer"),
])
def test_bad_settings_are_config_errors(tmp_path, line, words):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent(f"""\
        task:
          template: "python train.py {{lr}}"
          search_args:
            - {{type: Real, name: lr, data: [0.1, 0.2]}}
        searcher: {{type: EvolutionSearcher, {line}}}
        """))
    with pytest.raises(ConfigError) as info:
        build_components(load_config(str(tmp_path / "search_config.yaml")))
    assert info.value.path == "searcher." + line.split(":")[0] and words in info.value.message


def test_same_seed_same_sequence_and_another_differs():
    space = Dict(lr=Real(1e-4, 1.0, log=True), bs=Categorical(16, 32, 64), n=Int(1, 20),
                 cfg=File("c.yaml", opt=Nested({"o": "sgd"}, {"o": "adam"})))

    def sequence(seed):
        searcher = EvolutionSearcher(space, population_size=5, mutate_prob=0.3, seed=seed)
        score = lambda c: -abs(math.log10(c["lr"]) + 2) - c["n"] / 10  # noqa: E731
        return [config_key(c) for c in run(searcher, score, 30, parallel=3)]
    assert sequence(11) == sequence(11)
    assert sequence(11) != sequence(12)


def test_initial_population_first_then_children_of_it():
    searcher = EvolutionSearcher(CONT, population_size=4, mutate_prob=0.0, seed=0)
    initial = [searcher.get_config() for _ in range(4)]
    for config in initial:
        searcher.update(config, -sphere(config))
    children = run(searcher, lambda c: -sphere(c), 10)
    parents_values = values(initial)
    for child in children:
        # without mutation every value of a child is one of its ancestors', all from the first 4
        assert all(child[k] in parents_values[i] for i, k in enumerate(NAMES))
    # with no mutation the population soon holds mixes of one another, and the search ends
    assert len(children) >= 3
    assert len({config_key(c) for c in initial + children}) == 4 + len(children)


def test_crossover_swaps_one_segment_of_the_second_parent():
    searcher = EvolutionSearcher(CONT, population_size=2, mutate_prob=0.0, seed=3)
    a, b = searcher.get_config(), searcher.get_config()
    searcher.update(a, 1.0)
    searcher.update(b, 0.5)
    for _ in range(5):
        child = searcher.get_config()
        from_a = [child[k] == a[k] for k in NAMES]
        assert all(child[k] in (a[k], b[k]) for k in NAMES)
        assert 0 < sum(from_a) < len(NAMES)  # a real mix, never a copy of a parent
        # the values of one parent form one contiguous run: p1[:i] + p2[i:j] + p1[j:]
        for segment in (from_a, [not v for v in from_a]):
            inner = [i for i, v in enumerate(segment) if v]
            if inner == list(range(inner[0], inner[-1] + 1)):
                break
        else:
            pytest.fail(f"not one segment swap: {from_a}")
        searcher.update(child, 0.0)  # worse than both: the parents stay a and b


def test_mutation_brings_values_no_ancestor_had_and_steps_stay_in_range():
    space = Dict(lr=Real(1e-4, 1e-1, log=True), bs=Int(16, 256, step=16), x=Real(0.0, 1.0, step=0.25))
    searcher = EvolutionSearcher(space, population_size=3, mutate_prob=1.0, seed=4)
    initial = [searcher.get_config() for _ in range(3)]
    for config in initial:
        searcher.update(config, config["lr"])
    children = run(searcher, lambda c: c["lr"], 40)
    assert any(c["lr"] not in {i["lr"] for i in initial} for c in children)
    assert any(c["bs"] not in {i["bs"] for i in initial} for c in children)
    for c in children:
        assert 1e-4 <= c["lr"] <= 1e-1 and c["bs"] in range(16, 257, 16) and c["x"] in (0, .25, .5, .75, 1)


@pytest.mark.parametrize("mode", ["maximize", "minimize"])
def test_selection_favours_the_better_parents(mode):
    searcher = EvolutionSearcher(CONT, optimize_mode=mode, population_size=4, mutate_prob=0.0, seed=1)
    initial = [searcher.get_config() for _ in range(4)]
    rewards = [4.0, 3.0, 2.0, 1.0] if mode == "maximize" else [1.0, 2.0, 3.0, 4.0]
    for config, reward in zip(initial, rewards):
        searcher.update(config, reward)
    worst = -100.0 if mode == "maximize" else 100.0  # children never enter the population
    origin = Counter()
    for child in run(searcher, lambda c: worst, 50):
        for i, k in enumerate(NAMES):
            origin[next(j for j, p in enumerate(initial) if p[k] == child[k])] += 1
    assert origin[0] > origin[1] > origin[3]  # the best individual passes on the most values
    assert origin[0] > 2 * origin[3]


def test_failed_individuals_never_become_parents():
    searcher = EvolutionSearcher(CONT, population_size=3, mutate_prob=0.0, seed=2)
    a, b, c = (searcher.get_config() for _ in range(3))
    searcher.update(a, 1.0)
    searcher.job_failed(b, "ERROR")
    searcher.update(c, 0.5)
    assert searcher.history == [(a, 1.0), (b, None), (c, 0.5)]
    assert searcher.failed == {config_key(b): "ERROR"}
    assert searcher.get_best_reward() == 1.0
    children = run(searcher, lambda x: 0.0, 8)
    b_values = values([b])
    assert not any(child[k] in b_values[i] for child in children for i, k in enumerate(NAMES))


def test_never_re_emits_an_individual_in_a_small_finite_space():
    space = Dict(a=Categorical(1, 2, 3), b=Categorical("p", "q"), c=Nested({"z": 0}, {"z": 1}))
    searcher = EvolutionSearcher(space, population_size=2, mutate_prob=0.5, seed=0)
    configs = run(searcher, lambda c: c["a"] + c["c"]["z"], 100, parallel=2)
    assert len(configs) == len({config_key(c) for c in configs}) <= 12
    assert searcher.get_config() is None and len(searcher) == 0


def test_search_ends_after_gen_trial_limit_failed_attempts_to_breed():
    # Two parents and no mutation: only a few children exist, although the space is continuous.
    searcher = EvolutionSearcher(CONT, population_size=2, mutate_prob=0.0, gen_trial_limit=7, seed=5)
    breed = searcher._breed
    attempts = []

    def counting_breed():
        attempts.append(1)
        return breed()
    searcher._breed = counting_breed
    configs = run(searcher, lambda c: -sphere(c), 1000)
    assert len(configs) == len({config_key(c) for c in configs}) < 100
    attempts.clear()
    assert searcher.get_config() is None  # exhausted: stays so, without breeding again
    assert attempts == []
    assert len(searcher) == 0


def test_the_ending_call_made_exactly_gen_trial_limit_attempts():
    searcher = EvolutionSearcher(CONT, population_size=2, mutate_prob=0.0, gen_trial_limit=7, seed=5)
    calls = []
    breed = searcher._breed
    searcher._breed = lambda: calls.append(1) or breed()
    while (config := searcher.get_config()) is not None:
        searcher.update(config, -sphere(config))
        calls.clear()
    assert len(calls) == 7


def test_parallel_asks_before_any_reward_give_distinct_random_individuals():
    searcher = EvolutionSearcher(CONT, population_size=3, seed=0)
    batch = [searcher.get_config() for _ in range(8)]  # more than the population, nothing told
    assert len({config_key(c) for c in batch}) == 8
    configs = batch + run(searcher, lambda c: -sphere(c), 100, parallel=4)
    assert len({config_key(c) for c in configs}) == 108


def test_evolution_beats_random_on_a_sphere():
    def best(searcher):
        return min(sphere(c) for c in run(searcher, lambda c: -sphere(c), 150))
    evolution = [best(EvolutionSearcher(CONT, population_size=10, mutate_prob=0.3, seed=s)) for s in range(5)]
    random = [best(RandomSearcher(CONT, seed=s)) for s in range(5)]
    assert sorted(evolution)[2] < sorted(random)[2]


def test_resume_tells_every_result_and_breeds_from_them():
    before = EvolutionSearcher(CONT, population_size=4, mutate_prob=0.0, seed=9)
    configs = run(before, lambda c: -sphere(c), 6)
    failed = before.get_config()
    before.job_failed(failed, "ERROR")
    # what SchedulerCore._restore does: a fresh searcher (same seed) is told every earlier job
    after = EvolutionSearcher(CONT, population_size=4, mutate_prob=0.0, seed=9)
    for config in configs:
        after.update(config, -sphere(config))
    after.job_failed(failed, "ERROR")
    assert after.history == before.history
    told = {config_key(c) for c in configs + [failed]}
    new = run(after, lambda c: -sphere(c), 5)
    # no new initial population: every new config is a child of the told individuals
    known = values(configs)
    assert all(c[k] in known[i] for c in new for i, k in enumerate(NAMES))
    assert told.isdisjoint(config_key(c) for c in new)
