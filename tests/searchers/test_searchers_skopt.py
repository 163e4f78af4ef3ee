"""SkoptSearcher (manual 2.3.4): skopt.Optimizer behind the searcher contract."""
from __future__ import annotations

import math
import textwrap

import pytest
import yaml

from gml_ray.config import load_config
from gml_ray.engine.components import build_components
from gml_ray.errors import ConfigError
from gml_ray.searchers import SEARCHERS, SkoptSearcher
from gml_ray.space import Categorical, Dict, File, Int, Nested, Real, config_key

# Fast settings for tests: EI on 2000 random candidates instead of gp_hedge with L-BFGS restarts.
FAST = dict(acq_func="EI", acq_optimizer="sampling", acq_optimizer_kwargs={"n_points": 2000})

MIXED = Dict(
    bs=Categorical(16, 32, 64),
    lr=Real(1e-4, 1.0, log=True),
    wd=Real(0.0, 0.3, step=0.1),
    depth=Int(2, 10, step=2),
    opt=Nested({"name": "sgd", "momentum": 0.9}, {"name": "adam", "momentum": 0.0}),
    fixed=Categorical("only"),
    config=File("c.yaml", epochs=Int(1, 5), sched=Nested({"gamma": 0.5}, {"gamma": 0.7})),
)


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


BRANIN = Dict(x1=Real(-5.0, 10.0), x2=Real(0.0, 15.0))
BRANIN_MIN = 0.397887


def score(config: dict) -> float:
    """A made-up reward over MIXED, highest near lr=0.01, bs=32, adam, depth 6."""
    return (-abs(math.log10(config["lr"]) + 2) - abs(config["bs"] - 32) / 16
            - abs(config["depth"] - 6) / 2 + (config["opt"]["name"] == "adam")
            + config["config"]["epochs"] / 5 - config["wd"])


def run(searcher, objective, n: int, parallel: int = 1) -> list[dict]:
    """The scheduler's pattern: keep `parallel` configs outstanding, tell the oldest, ask again."""
    proposed, pending = [], []
    while len(proposed) < n:
        while len(pending) < parallel and len(proposed) < n:
            config = searcher.get_config()
            assert config is not None
            proposed.append(config)
            pending.append(config)
        config = pending.pop(0)
        searcher.update(config, objective(config))
    for config in pending:
        searcher.update(config, objective(config))
    return proposed


def in_space(config: dict) -> bool:
    return (config["bs"] in (16, 32, 64) and 1e-4 <= config["lr"] <= 1.0
            and config["wd"] in (0.0, 0.1, 0.2, 0.3) and config["depth"] in (2, 4, 6, 8, 10)
            and config["opt"] in MIXED["opt"].data and config["fixed"] == "only"
            and config["config"]["epochs"] in range(1, 6)
            and config["config"]["sched"] in MIXED["config"]["sched"].data)


def test_configs_cover_every_arg_kind_with_plain_python_values():
    searcher = SkoptSearcher(MIXED, random_state=0, n_initial_points=4, **FAST)
    configs = run(searcher, score, 10)
    assert all(in_space(c) for c in configs)
    assert {type(c["bs"]) for c in configs} == {int}
    assert {type(c["lr"]) for c in configs} == {float}
    assert {type(c["depth"]) for c in configs} == {int}
    assert {type(c["config"]["epochs"]) for c in configs} == {int}
    yaml.safe_dump(configs)  # numpy scalars would raise RepresenterError here
    # the model phase was reached: one point told per finished config
    assert len(searcher.optimizer.Xi) == 10 and searcher.optimizer.models


def test_same_random_state_same_sequence_and_another_differs():
    def sequence(seed):
        return [config_key(c) for c in run(SkoptSearcher(MIXED, random_state=seed, n_initial_points=4,
                                                        **FAST), score, 8, parallel=2)]
    assert sequence(3) == sequence(3)
    assert sequence(3) != sequence(4)


@pytest.mark.slow
def test_branin_40_evaluations_get_within_0_1_of_the_optimum():
    searcher = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=0, **FAST)
    configs = run(searcher, lambda c: branin(c["x1"], c["x2"]), 40)
    best = min(branin(c["x1"], c["x2"]) for c in configs)
    assert best - BRANIN_MIN < 0.1
    assert searcher.get_best_reward() == pytest.approx(best)


def test_maximize_tells_skopt_the_negated_reward_and_finds_the_maximum():
    searcher = SkoptSearcher(BRANIN, random_state=1, **FAST)  # maximize -branin
    configs = run(searcher, lambda c: -branin(c["x1"], c["x2"]), 30)
    rewards = [-branin(c["x1"], c["x2"]) for c in configs]
    assert searcher.optimizer.yi == pytest.approx([-r for r in rewards])
    assert max(rewards) > -BRANIN_MIN - 0.5
    minimize = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=1, **FAST)
    config = minimize.get_config()
    minimize.update(config, 2.5)
    assert minimize.optimizer.yi == [2.5]


def test_parallel_asks_get_distinct_configs_in_the_model_phase():
    searcher = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=2, n_initial_points=5, **FAST)
    run(searcher, lambda c: branin(c["x1"], c["x2"]), 5)
    # four at once after the random phase: skopt alone would answer the same point four times
    batch = [searcher.get_config() for _ in range(4)]
    assert len({config_key(c) for c in batch}) == 4
    assert searcher.random_fallbacks == 0  # the model itself moved away from the pending ones
    for config in batch:
        searcher.update(config, branin(config["x1"], config["x2"]))
    assert len(searcher.optimizer.Xi) == 9


def test_no_duplicates_under_parallel_asks_and_a_finite_space_ends():
    space = Dict(a=Categorical("x", "y", "z"), b=Int(1, 3), c=Nested({"k": 1}, {"k": 2}))
    searcher = SkoptSearcher(space, random_state=0, n_initial_points=3, **FAST)
    assert len(searcher) == 18
    configs = run(searcher, lambda c: c["b"] + (c["a"] == "y") + c["c"]["k"], 18, parallel=3)
    assert len({config_key(c) for c in configs}) == 18
    assert searcher.get_config() is None and len(searcher) == 0


def test_failed_jobs_are_not_told_as_a_reward_and_never_proposed_again():
    searcher = SkoptSearcher(Dict(a=Categorical(1, 2, 3, 4), b=Categorical("p", "q")), random_state=0,
                             n_initial_points=2, **FAST)
    first, second, third = (searcher.get_config() for _ in range(3))
    searcher.job_failed(first, "ERROR")
    searcher.job_failed(second, "KILLED")
    searcher.update(third, 0.7)
    assert searcher.optimizer.yi == [-0.7]  # the failures reached no model: no fake 0
    assert searcher.get_best_reward() == 0.7
    assert searcher.history == [(first, None), (second, None), (third, 0.7)]
    assert searcher.failed == {config_key(first): "ERROR", config_key(second): "KILLED"}
    rest = []
    while (config := searcher.get_config()) is not None:
        rest.append(config)
        searcher.update(config, 0.1)
    assert len(rest) == 5
    assert {config_key(c) for c in rest}.isdisjoint({config_key(first), config_key(second),
                                                     config_key(third)})


def test_resume_tells_every_result_and_continues_the_search():
    objective = lambda c: branin(c["x1"], c["x2"])  # noqa: E731
    before = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=5, n_initial_points=6, **FAST)
    configs = run(before, objective, 12)
    failed = before.get_config()
    before.job_failed(failed, "ERROR")
    # what SchedulerCore._restore does: a fresh searcher is told every earlier job
    after = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=5, n_initial_points=6, **FAST)
    for config in configs:
        after.update(config, objective(config))
    after.job_failed(failed, "ERROR")
    assert after.history == before.history
    nxt = after.get_config()
    opt = after.optimizer
    assert sorted(map(tuple, opt.Xi)) == sorted((c["x1"], c["x2"]) for c in configs)
    assert len(opt.models) == 1  # one model fit for all the earlier results, not one each
    # the model phase goes on: no new random phase, no earlier config again
    assert opt._n_initial_points <= 0
    assert config_key(nxt) not in {config_key(c) for c in configs + [failed]}


@pytest.mark.parametrize("estimator", ["RF", "ET", "GBRT", "dummy", "gp"])
def test_every_base_estimator_runs_past_the_random_phase(estimator):
    searcher = SkoptSearcher(BRANIN, optimize_mode="minimize", base_estimator=estimator,
                             n_initial_points=3, random_state=0, acq_optimizer="sampling",
                             acq_optimizer_kwargs={"n_points": 500})
    configs = run(searcher, lambda c: branin(c["x1"], c["x2"]), 6, parallel=2)
    assert len({config_key(c) for c in configs}) == 6
    fitted = len(searcher.optimizer.models)
    assert fitted == 0 if estimator == "dummy" else fitted > 0


def yaml_searcher(tmp_path, searcher: str):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {x} {config}"
          search_args:
            - {type: Real, name: x, data: [0.001, 1.0], log: true}
            - type: File
              name: config
              file: c.yaml
              search_args:
                - {type: Categorical, name: epochs, data: [3, 4]}
                - type: Nested
                  data: [{sched.gamma: 0.5}, {sched.gamma: 0.7}]
        """) + searcher)
    (tmp_path / "c.yaml").write_text("epochs: 1\nsched: {gamma: 0.1}\n")
    return build_components(load_config(str(tmp_path / "search_config.yaml"))).searcher


def test_every_documented_kwarg_reaches_skopt_optimizer(tmp_path):
    searcher = yaml_searcher(tmp_path, textwrap.dedent("""\
        searcher:
          type: SkoptSearcher
          optimize_mode: minimize
          reward_attribute: loss
          base_estimator: ET
          n_initial_points: 3
          acq_func: LCB
          acq_optimizer: sampling
          random_state: 7
          model_queue_size: 2
          acq_func_kwargs: {kappa: 3.0}
          acq_optimizer_kwargs: {n_points: 300}
          initial_point_generator: lhs
        """))
    assert isinstance(searcher, SkoptSearcher)
    assert (searcher.optimize_mode, searcher.reward_attribute) == ("minimize", "loss")
    assert searcher.random_state == 7
    opt = searcher.optimizer
    assert type(opt.base_estimator_).__name__ == "ExtraTreesRegressor"
    assert (opt.n_initial_points_, opt.acq_func, opt.acq_optimizer) == (3, "LCB", "sampling")
    assert (opt.max_model_queue_size, opt.acq_func_kwargs, opt.n_points) == (2, {"kappa": 3.0}, 300)
    assert type(opt._initial_point_generator).__name__ == "Lhs"
    configs = run(searcher, lambda c: c["x"], 6)
    assert len(opt.models) == 2  # model_queue_size kept the last two
    assert {c["config"]["epochs"] for c in configs} <= {3, 4}


def test_n_random_starts_is_the_old_name_of_n_initial_points(tmp_path):
    searcher = yaml_searcher(tmp_path, "searcher: {type: SkoptSearcher, n_random_starts: 4}\n")
    assert searcher.optimizer.n_initial_points_ == 4


def test_the_manual_example_builds(tmp_path):
    searcher = yaml_searcher(tmp_path, textwrap.dedent("""\
        searcher:
            type: SkoptSearcher
            optimize_mode: 'maximize'
            random_state: 1
            reward_attribute: acc
        """))
    assert isinstance(searcher, SkoptSearcher) and searcher.random_state == 1
    assert SEARCHERS.get("SkoptSearcher") is SkoptSearcher


@pytest.mark.parametrize("line, path, words", [
    ("n_initial_point: 3", "searcher.n_initial_point", "no parameter"),
    ("seed: 3", "searcher.seed", "random_state"),
    ("acq_func: EIps", "searcher.acq_func", "acq_func must be one of"),
    ("acq_func: UCB", "searcher.acq_func", "acq_func must be one of"),
    ("base_estimator: SVM", "searcher.base_estimator", "base_estimator must be one of"),
    ("acq_optimizer: adam", "searcher.acq_optimizer", "acq_optimizer must be one of"),
    ("n_initial_points: 0", "searcher.n_initial_points", "n_initial_points must be an integer >= 1"),
    ("acq_func_kwargs: {kapa: 2}", "searcher.acq_func_kwargs", "acq_func_kwargs has no key 'kapa'"),
    ("acq_optimizer_kwargs: 5", "searcher.acq_optimizer_kwargs", "acq_optimizer_kwargs must be a mapping"),
    ("random_state: abc", "searcher.random_state", "random_state must be an integer"),
    ("{base_estimator: RF, acq_optimizer: lbfgs}", "searcher", "scikit-optimize rejected"),
])
def test_bad_settings_are_one_line_config_errors(tmp_path, line, path, words):
    body = line if line.startswith("{") else "{" + line + "}"
    body = "{type: SkoptSearcher, " + body[1:]
    with pytest.raises(ConfigError) as info:
        yaml_searcher(tmp_path, f"searcher: {body}\n")
    assert info.value.path == path
    assert words in info.value.message and "\n" not in info.value.message


def test_a_space_with_a_single_config_proposes_it_once():
    searcher = SkoptSearcher(Dict(a=Categorical(1), b=Int(3, 3)))
    assert searcher.get_config() == {"a": 1, "b": 3}
    assert searcher.get_config() is None


# ---- the same configs and the same model fits as raw skopt (issue: ask time at 150 results) --------

def raw_skopt_run(objective, n: int, seed: int, **settings) -> list[dict]:
    """Raw ``skopt.Optimizer`` over BRANIN, ask/tell one config at a time, one BLAS thread (as
    SkoptSearcher runs it: the thread count changes the GP's rounding)."""
    import warnings

    from skopt import Optimizer
    from skopt.space import Real as SR
    from threadpoolctl import threadpool_limits

    opt = Optimizer([SR(-5.0, 10.0), SR(0.0, 15.0)], random_state=seed, **settings)
    configs = []
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        for _ in range(n):
            x1, x2 = opt.ask()
            config = {"x1": float(x1), "x2": float(x2)}
            configs.append(config)
            opt.tell([config["x1"], config["x2"]], objective(config))
    return configs


@pytest.fixture
def gp_fits(monkeypatch):
    """Counts the fits of skopt's GP (each costs most of a tell + ask cycle in 10-D)."""
    from skopt.learning import GaussianProcessRegressor

    calls = []
    fit = GaussianProcessRegressor.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(len(args[0]))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(GaussianProcessRegressor, "fit", counting_fit)
    return calls


def test_same_configs_and_same_number_of_gp_fits_as_raw_skopt(gp_fits):
    objective = lambda c: branin(c["x1"], c["x2"])  # noqa: E731
    raw = raw_skopt_run(objective, 16, 3, n_initial_points=5, **FAST)
    raw_fits = list(gp_fits)
    gp_fits.clear()
    searcher = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=3, n_initial_points=5,
                             **FAST)
    ours = run(searcher, objective, 16)
    assert ours == raw
    # raw skopt fits once per tell from the 5th result on (each ask reuses that fit): the wrapper
    # adds no fit of its own (no second fit per cycle, no refit when asked, no rebuilt optimizer)
    assert raw_fits == list(range(5, 17))
    assert gp_fits == raw_fits[:-1]  # the last result waits in the buffer for the next ask
    searcher.optimizer  # noqa: B018 (flushes it)
    assert gp_fits == raw_fits


def test_parallel_asks_fit_once_each(gp_fits):
    searcher = SkoptSearcher(BRANIN, optimize_mode="minimize", random_state=2, n_initial_points=5, **FAST)
    run(searcher, lambda c: branin(c["x1"], c["x2"]), 5)
    assert gp_fits == []  # the random phase fits nothing
    batch = [searcher.get_config() for _ in range(3)]
    # the first ask fits on the 5 results; each later one copies the optimizer and fits once on
    # the results and the lies for the pending configs, never on the results alone first
    assert gp_fits == [5, 6, 7]
    for config in batch:
        searcher.update(config, branin(config["x1"], config["x2"]))
    searcher.get_config()
    assert gp_fits == [5, 6, 7, 8]  # the three results told with one fit
