"""Searchers: GridSearcher, RandomSearcher, the BaseSearcher bookkeeping, and the manual's custom searcher."""
from __future__ import annotations

import math
import os
import pickle
import shutil
import textwrap

import pytest
from helpers import DATA_DIR

from gml_ray.config import load_config, parse_config
from gml_ray.engine.components import build_components
from gml_ray.errors import ConfigError
from gml_ray.searchers import SEARCHERS, BaseSearcher, GridSearcher, RandomSearcher
from gml_ray.space import Categorical, Dict, Int, Real, config_key, grid

DATA = os.path.join(DATA_DIR, "config")


@pytest.fixture
def manual_space(tmp_path) -> Dict:
    """The search space of the manual's section 2.1 config: 2 * 2 * 3 * 2 = 24 configs."""
    for name in ("manual_search_config.yaml", "config.yaml"):
        shutil.copy(os.path.join(DATA, name), tmp_path / name)
    return load_config(str(tmp_path / "manual_search_config.yaml")).search_space()


def drain(searcher, limit=10_000) -> list[dict]:
    """Every config a searcher proposes until it returns None."""
    out = []
    while (config := searcher.get_config()) is not None:
        out.append(config)
        assert len(out) <= limit, "searcher never ran out"
    return out


def keys(configs) -> list[str]:
    return [config_key(c) for c in configs]


# ---- GridSearcher ----------------------------------------------------------------------------------

def test_grid_searcher_yields_the_cartesian_product(manual_space):
    searcher = GridSearcher(manual_space, reward_attribute="Test Acc")
    assert len(searcher) == 24
    configs = []
    for left in range(23, -1, -1):
        configs.append(searcher.get_config())
        assert len(searcher) == left
    assert searcher.get_config() is None
    assert searcher.get_config() is None
    assert len(set(keys(configs))) == 24
    assert sorted(keys(configs)) == sorted(keys(grid(manual_space)))
    flat = {(c["batch-size"], c["log-interval"], c["config"]["epochs"],
             tuple(sorted(next(v for k, v in c["config"].items() if k != "epochs").items())))
            for c in configs}
    assert {f[0] for f in flat} == {1024, 512}
    assert {f[1] for f in flat} == {10, 20}
    assert {f[2] for f in flat} == {3, 4, 5}
    assert {f[3] for f in flat} == {(("scheduler.gamma", 0.5), ("scheduler.step_size", 1)),
                                    (("scheduler.gamma", 0.7), ("scheduler.step_size", 2))}


def test_grid_searcher_marks_proposed_configs_pending():
    searcher = GridSearcher(Dict(a=Int(1, 2)))
    config = searcher.get_config()
    assert searcher._results[pickle.dumps(config)] == -math.inf
    assert searcher.get_best_config() is None


def test_grid_searcher_rejects_a_continuous_real():
    with pytest.raises(ValueError, match="cannot enumerate arg .lr.*step"):
        GridSearcher(Dict(lr=Real(0.001, 0.1)))


# ---- RandomSearcher --------------------------------------------------------------------------------

def test_random_searcher_same_seed_same_sequence(manual_space):
    a = RandomSearcher(manual_space, seed=7)
    b = RandomSearcher(manual_space, seed=7)
    assert keys(drain(a)) == keys(drain(b))


def test_random_searcher_different_seeds_differ(manual_space):
    seqs = {tuple(keys(drain(RandomSearcher(manual_space, seed=s)))) for s in range(4)}
    assert len(seqs) == 4


def test_random_searcher_exhausts_a_finite_space_without_repeats(manual_space):
    searcher = RandomSearcher(manual_space, seed=3)
    assert len(searcher) == 24
    configs = drain(searcher)
    assert len(configs) == 24
    assert sorted(keys(configs)) == sorted(keys(grid(manual_space)))
    assert len(searcher) == 0
    assert searcher.get_config() is None


def test_random_searcher_is_not_grid_order(manual_space):
    assert keys(drain(RandomSearcher(manual_space, seed=0))) != keys(grid(manual_space))


def test_random_searcher_on_an_infinite_space():
    searcher = RandomSearcher(Dict(lr=Real(1e-4, 1e-1, log=True), bs=Categorical(16, 32)), seed=1)
    configs = [searcher.get_config() for _ in range(200)]
    assert len(set(keys(configs))) == 200
    assert all(1e-4 <= c["lr"] <= 1e-1 and c["bs"] in (16, 32) for c in configs)
    assert len(searcher) > 10 ** 9


# ---- BaseSearcher bookkeeping ----------------------------------------------------------------------

class ListSearcher(BaseSearcher):
    """Proposes the configs it is given, marking them pending like the built-in searchers."""

    def __init__(self, search_space, configs, optimize_mode="maximize"):
        super().__init__(search_space, "acc", optimize_mode)
        self._todo = list(configs)

    def get_config(self):
        if not self._todo:
            return None
        return self._proposed(self._todo.pop(0))


CONFIGS = [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]


@pytest.mark.parametrize("mode, pending, best", [("maximize", -math.inf, {"a": 2}),
                                                  ("minimize", math.inf, {"a": 3})])
def test_best_config_per_optimize_mode(mode, pending, best):
    searcher = ListSearcher(Dict(a=Int(1, 4)), CONFIGS, optimize_mode=mode)
    assert searcher._reward_while_pending() == pending
    for _ in CONFIGS:
        searcher.get_config()
    assert list(searcher._results.values()) == [pending] * 4
    assert searcher.get_best_config() is None and searcher.get_best_reward() is None
    searcher.update({"a": 1}, 0.5)
    searcher.update({"a": 2}, 0.9)
    searcher.update({"a": 3}, 0.1)
    # {"a": 4} is still running: its placeholder reward never wins
    assert searcher._results[pickle.dumps({"a": 4})] == pending
    assert searcher.get_best_config() == best
    assert searcher.get_best_reward() == {"maximize": 0.9, "minimize": 0.1}[mode]


def test_update_records_rewards_in_results():
    searcher = ListSearcher(Dict(a=Int(1, 4)), CONFIGS)
    searcher.get_config()
    searcher.update({"a": 1}, 0.75)
    assert dict(searcher._results) == {pickle.dumps({"a": 1}): 0.75}


def test_job_failed_forgets_the_pending_entry():
    searcher = ListSearcher(Dict(a=Int(1, 4)), CONFIGS)
    first, second = searcher.get_config(), searcher.get_config()
    searcher.update(first, 0.4)
    searcher.job_failed(second, "ERROR")
    assert pickle.dumps(second) not in searcher._results
    searcher.job_failed(first, "KILLED")  # a config with a reward keeps it
    assert searcher._results[pickle.dumps(first)] == 0.4
    assert searcher.get_best_config() == first


def test_is_better_and_bad_mode():
    assert ListSearcher(Dict(), [], "maximize").is_better(2, 1)
    assert ListSearcher(Dict(), [], "minimize").is_better(1, 2)
    with pytest.raises(ValueError):
        ListSearcher(Dict(), [], "max")
    with pytest.raises(TypeError, match="get_config"):  # the proposal rule is abstract
        BaseSearcher(Dict())


def test_searchers_are_registered():
    assert SEARCHERS.get("GridSearcher") is GridSearcher
    assert SEARCHERS.get("RandomSearcher") is RandomSearcher
    searcher = SEARCHERS.build({"type": "RandomSearcher", "seed": 1}, search_space=Dict(a=Int(1, 3)))
    assert isinstance(searcher, RandomSearcher) and searcher.seed == 1


# ---- searchers built from a config -----------------------------------------------------------------

def build(tmp_path, searcher_yaml: str, extra: str = ""):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py --lr {lr} --bs {bs}"
          search_args:
            - {type: Real, name: lr, data: [0.1, 0.3], step: 0.1}
            - {type: Categorical, name: bs, data: [16, 32]}
        """) + searcher_yaml + extra)
    cfg = load_config(str(tmp_path / "search_config.yaml"))
    return build_components(cfg).searcher


def test_build_components_passes_config_settings(tmp_path):
    searcher = build(tmp_path, "searcher: {type: RandomSearcher, seed: 5, optimize_mode: minimize, "
                               "reward_attribute: loss}\n")
    assert isinstance(searcher, RandomSearcher)
    assert (searcher.seed, searcher.optimize_mode, searcher.reward_attribute) == (5, "minimize", "loss")
    assert len(drain(searcher)) == 6


def test_build_components_default_is_grid(tmp_path):
    searcher = build(tmp_path, "")
    assert isinstance(searcher, GridSearcher)
    assert [(c["lr"], c["bs"]) for c in drain(searcher)] == [
        (0.1, 16), (0.1, 32), (0.2, 16), (0.2, 32), (0.3, 16), (0.3, 32)]


@pytest.mark.parametrize("searcher_yaml, path", [
    ("searcher: {type: GridSearch}\n", "searcher.type"),
    ("searcher: {type: GridSearcher, seed: 1}\n", "searcher.seed"),
    ("searcher: {type: RandomSearcher, sed: 1}\n", "searcher.sed"),
])
def test_build_components_rejects_bad_searchers(tmp_path, searcher_yaml, path):
    with pytest.raises(ConfigError) as info:
        build(tmp_path, searcher_yaml)
    assert info.value.path == path


# ---- the manual's custom searcher (section 5.3, with gml -> gml_ray) -------------------------------

# The manual 5.3 custom searcher, verbatim (gml -> gml_ray), shared with test_searchers_e2e.py.
MY_SEARCHER = open(os.path.join(DATA_DIR, "manual_searcher.py")).read()


@pytest.fixture
def clean_my_searcher():
    """MySearcher registers itself globally; keep each test's plugin file from clashing with another's."""
    SEARCHERS._modules.pop("MySearcher", None)
    yield
    SEARCHERS._modules.pop("MySearcher", None)


def test_manual_custom_searcher_via_custom_imports(tmp_path, clean_my_searcher):
    (tmp_path / "my_searcher.py").write_text(MY_SEARCHER)
    searcher = build(tmp_path, "searcher: {type: MySearcher, reward_attribute: acc}\n",
                     "custom_imports: [my_searcher.py]\n")
    assert type(searcher).__name__ == "MySearcher"
    assert isinstance(searcher, BaseSearcher)
    assert searcher.reward_attribute == "acc" and searcher.optimize_mode == "maximize"
    assert len(searcher) == 6
    configs = drain(searcher)
    assert sorted((c["lr"], c["bs"]) for c in configs) == [
        (0.1, 16), (0.1, 32), (0.2, 16), (0.2, 32), (0.3, 16), (0.3, 32)]
    assert len(searcher) == 0
    searcher.update(configs[0], 0.8)
    searcher.update(configs[1], 0.9)
    assert searcher.get_best_config() == configs[1]


def test_manual_custom_searcher_rejects_continuous_space(tmp_path, clean_my_searcher):
    (tmp_path / "my_searcher.py").write_text(MY_SEARCHER)
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py --lr {lr}"
          search_args:
            - {type: Real, name: lr, data: [0.1, 0.3]}
        searcher: {type: MySearcher}
        custom_imports: [my_searcher.py]
        """))
    with pytest.raises(ConfigError) as info:
        build_components(load_config(str(tmp_path / "search_config.yaml")))
    assert info.value.path == "searcher" and "Only Categorical" in info.value.message


def test_custom_searcher_kwargs_are_checked(tmp_path, clean_my_searcher):
    (tmp_path / "my_searcher.py").write_text(MY_SEARCHER)
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "searcher: {type: MySearcher, seed: 3}\n", "custom_imports: [my_searcher.py]\n")
    assert info.value.path == "searcher.seed"


def test_custom_import_errors_name_the_entry(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    raw = {"task": {"template": "python t.py {a}",
                    "search_args": [{"type": "Int", "name": "a", "data": [1, 2]}]},
           "custom_imports": ["missing.py", "broken.py"]}
    cfg = parse_config(raw, "s.yaml", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        build_components(cfg)
    assert info.value.path == "custom_imports[0]"
    cfg.custom_imports = ["broken.py"]
    with pytest.raises(ConfigError) as info:
        build_components(cfg)
    assert info.value.path == "custom_imports[0]" and "boom" in info.value.message


@pytest.mark.parametrize("statement", ["assert False, 'needs Categorical args'",
                                       "raise RuntimeError('needs Categorical args')"])
def test_custom_searcher_constructor_failure_is_a_config_error(tmp_path, clean_my_searcher, statement):
    (tmp_path / "my_searcher.py").write_text(textwrap.dedent(f"""\
        from gml_ray.plugins.searcher import BaseSearcher
        from gml_ray.searchers.builder import SEARCHERS

        @SEARCHERS.register_module()
        class MySearcher(BaseSearcher):
            def __init__(self, search_space, reward_attribute='acc'):
                {statement}

            def get_config(self):
                return None
        """))
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "searcher: {type: MySearcher}\n", "custom_imports: [my_searcher.py]\n")
    assert info.value.path == "searcher" and "needs Categorical args" in info.value.message


def test_a_searcher_without_get_config_is_a_config_error_naming_it(tmp_path, clean_my_searcher):
    (tmp_path / "my_searcher.py").write_text(textwrap.dedent("""\
        from gml_ray.plugins.searcher import BaseSearcher
        from gml_ray.searchers.builder import SEARCHERS

        @SEARCHERS.register_module()
        class MySearcher(BaseSearcher):
            pass
        """))
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "searcher: {type: MySearcher}\n", "custom_imports: [my_searcher.py]\n")
    assert info.value.path == "searcher" and "get_config" in info.value.message


def test_base_bookkeeping_is_shared_by_every_searcher():
    s = ListSearcher(Dict(), [{"a": 1}, {"a": 2}, {"a": 3}])
    c1, c2, c3 = s.get_config(), s.get_config(), s.get_config()
    assert set(s.pending) == {s.key(c) for c in (c1, c2, c3)}
    s.update(c1, 0.5)
    s.job_failed(c2, "ERROR")
    s.update(c3, float("nan"))  # not a number: a failure, never a result
    assert s.pending == {} and s.seen == {s.key(c) for c in (c1, c2, c3)}
    assert s.failed == {s.key(c2): "ERROR", s.key(c3): "NO_REWARD"}
    assert s.history == [(c1, 0.5), (c2, None), (c3, None)]
    assert s.get_best_config() == c1 and s.get_best_reward() == 0.5
