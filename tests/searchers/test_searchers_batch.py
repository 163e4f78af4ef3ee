"""BatchSearcher (manual 2.3.1): the Nested entries, in order, then None; and GridSearcher's order."""
from __future__ import annotations

import textwrap

import pytest

from gml_ray.config import load_config
from gml_ray.engine.components import build_components
from gml_ray.errors import ConfigError
from gml_ray.searchers import SEARCHERS, BatchSearcher, GridSearcher
from gml_ray.space import Categorical, Dict, File, Int, Nested, Real

RUNS = [{"lr": 0.1, "bs": 32, "opt": "sgd"},
        {"lr": 0.01, "bs": 64, "opt": "adam"},
        {"lr": 0.001, "bs": 128, "opt": "adam"}]


def drain(searcher, limit=1000) -> list[dict]:
    out = []
    while (config := searcher.get_config()) is not None:
        out.append(config)
        assert len(out) <= limit, "searcher never ran out"
    return out


def build(tmp_path, search_args: str, searcher: str = "{type: BatchSearcher}"):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {lr} {bs} {opt}"
          search_args:
        """) + textwrap.indent(textwrap.dedent(search_args), "    ") + f"searcher: {searcher}\n")
    return build_components(load_config(str(tmp_path / "search_config.yaml"))).searcher


def test_batch_returns_each_entry_in_order_then_none():
    searcher = BatchSearcher(Dict(runs=Nested(*RUNS)))
    assert len(searcher) == 3
    configs = []
    for left in (2, 1, 0):
        configs.append(searcher.get_config())
        assert len(searcher) == left
    assert configs == [{"runs": run} for run in RUNS]
    assert searcher.get_config() is None
    assert searcher.get_config() is None  # stays exhausted


def test_batch_from_a_config_file_keys_an_unnamed_nested_arg(tmp_path):
    searcher = build(tmp_path, """\
        - type: Nested
          data: [{lr: 0.1, bs: 32, opt: sgd}, {lr: 0.01, bs: 64, opt: adam}, {lr: 0.001, bs: 128, opt: adam}]
        """)
    assert isinstance(searcher, BatchSearcher)
    assert drain(searcher) == [{"_nested0": run} for run in RUNS]


def test_batch_entries_may_repeat_and_are_run_as_written():
    runs = [{"seed": 1}, {"seed": 1}, {"seed": 2}]
    assert drain(BatchSearcher(Dict(r=Nested(*runs)))) == [{"r": run} for run in runs]


def test_batch_combines_several_nested_args_first_slowest():
    searcher = BatchSearcher(Dict(a=Nested({"x": 1}, {"x": 2}), b=Nested({"y": "p"}, {"y": "q"}, {"y": "r"})))
    assert len(searcher) == 6
    assert [(c["a"]["x"], c["b"]["y"]) for c in drain(searcher)] == [
        (1, "p"), (1, "q"), (1, "r"), (2, "p"), (2, "q"), (2, "r")]


def test_batch_configs_are_copies_the_caller_may_change():
    searcher = BatchSearcher(Dict(r=Nested({"x": 1}, {"x": 2})))
    first = searcher.get_config()
    first["r"]["x"] = 99
    searcher.update(first, 0.5)
    assert searcher.get_config() == {"r": {"x": 2}}


@pytest.mark.parametrize("space, arg, kind", [
    (Dict(runs=Nested({"x": 1}), lr=Real(0.1, 0.2)), "lr", "Real"),
    (Dict(bs=Categorical(1, 2)), "bs", "Categorical"),
    (Dict(n=Int(1, 3)), "n", "Int"),
    (Dict(config=File("c.yaml", runs=Nested({"x": 1}))), "config", "File"),
])
def test_batch_rejects_every_other_arg_type_naming_it(space, arg, kind):
    with pytest.raises(ValueError) as info:
        BatchSearcher(space)
    assert f"'{arg}' is {kind}" in str(info.value)


def test_batch_rejects_a_non_nested_arg_as_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        build(tmp_path, """\
            - {type: Nested, data: [{lr: 0.1, bs: 32}]}
            - {type: Categorical, name: opt, data: [sgd, adam]}
            """)
    assert info.value.path == "searcher"
    assert "only Nested" in info.value.message and "'opt'" in info.value.message


def test_batch_rejects_entries_that_are_not_plain_values():
    with pytest.raises(ValueError) as info:
        BatchSearcher(Dict(runs=Nested({"layers": [1, 2]})))
    assert "'layers'" in str(info.value) and "plain value" in str(info.value)


def test_batch_rejects_a_space_without_args():
    with pytest.raises(ValueError, match="needs a Nested arg"):
        BatchSearcher(Dict())


def test_batch_is_registered_and_keeps_rewards():
    assert SEARCHERS.get("BatchSearcher") is BatchSearcher
    searcher = BatchSearcher(Dict(r=Nested(*RUNS)), optimize_mode="minimize")
    configs = drain(searcher)
    for config, reward in zip(configs, (0.3, 0.1, 0.2)):
        searcher.update(config, reward)
    assert searcher.get_best_config() == configs[1]


# ---- GridSearcher: counts and order over Nested and File args ----------------------------------------

def test_grid_over_nested_and_file_args_counts_and_orders_first_arg_slowest():
    space = Dict(bs=Categorical(16, 32),
                 cfg=File("c.yaml", epochs=Int(1, 3), _nested0=Nested({"g": 0.5}, {"g": 0.7})))
    searcher = GridSearcher(space)
    assert len(searcher) == 2 * 3 * 2
    configs = drain(searcher)
    assert len(configs) == 12
    assert [(c["bs"], c["cfg"]["epochs"], c["cfg"]["_nested0"]["g"]) for c in configs] == [
        (bs, e, g) for bs in (16, 32) for e in (1, 2, 3) for g in (0.5, 0.7)]
    assert searcher.get_config() is None and len(searcher) == 0


def test_batch_and_grid_agree_on_a_single_nested_arg():
    space = Dict(runs=Nested(*RUNS))
    assert drain(BatchSearcher(space)) == drain(GridSearcher(space))
