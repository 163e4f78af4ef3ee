"""Search spaces (gml_ray.space): .data grids, sampling, Dict/File flattening, grid sizes."""
from __future__ import annotations

import math
import os
import random
import shutil
import statistics

import pytest
from helpers import DATA_DIR

from gml_ray.config import load_config
from gml_ray.space import Categorical, Dict, File, Int, List, Nested, Real, config_key, grid, grid_size, sample

DATA = os.path.join(DATA_DIR, "config")


def manual_space(tmp_path) -> Dict:
    for name in ("manual_search_config.yaml", "config.yaml"):
        shutil.copy(os.path.join(DATA, name), tmp_path / name)
    return load_config(str(tmp_path / "manual_search_config.yaml")).search_space()


def draws(space, n=2000, seed=0):
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


# ---- leaves ------------------------------------------------------------------------------------

def test_categorical():
    space = Categorical(1024, 512, "auto")
    assert space.data == [1024, 512, "auto"]
    assert len(space) == 3
    assert set(draws(space, 300)) == {1024, 512, "auto"}
    with pytest.raises(ValueError):
        Categorical()


@pytest.mark.parametrize("args, data", [
    ((1, 5), [1, 2, 3, 4, 5]),
    ((1, 10, None, 3), [1, 4, 7, 10]),
    ((1, 10, None, 4), [1, 5, 9]),
    ((-2, 2, None, 2), [-2, 0, 2]),
    ((7, 7), [7]),
])
def test_int_data_is_inclusive_with_step(args, data):
    space = Int(*args)
    assert space.data == data
    assert set(draws(space, 500)) == set(data)


def test_int_step_keyword():
    assert Int(0, 100, step=25).data == [0, 25, 50, 75, 100]


@pytest.mark.parametrize("bounds", [(5, 1), (1, 5, None, 0)])
def test_int_rejects(bounds):
    with pytest.raises(ValueError):
        Int(*bounds)


@pytest.mark.parametrize("low, high, step, data", [
    (0.1, 0.5, 0.1, [0.1, 0.2, 0.3, 0.4, 0.5]),
    (0.0, 0.3, 0.1, [0.0, 0.1, 0.2, 0.3]),
    (0.7, 1.0, 0.1, [0.7, 0.8, 0.9, 1.0]),
    (0.0, 1.0, 0.3, [0.0, 0.3, 0.6, 0.9]),
    (1, 2, 0.25, [1.0, 1.25, 1.5, 1.75, 2.0]),
    (0.001, 0.005, 0.001, [0.001, 0.002, 0.003, 0.004, 0.005]),
])
def test_real_step_grid_has_no_float_noise(low, high, step, data):
    space = Real(low, high, step=step)
    assert space.data == data  # exact equality: 0.30000000000000004 would fail
    assert space.is_finite
    assert set(draws(space, 500)) == set(data)


def test_real_without_step_is_continuous():
    space = Real(-1, 1)
    assert not space.is_finite
    with pytest.raises(TypeError):
        space.data
    values = draws(space)
    assert all(-1 <= v <= 1 for v in values)
    assert len(set(values)) == len(values)
    assert abs(statistics.median(values)) < 0.1


def test_real_log_sampling_is_log_uniform():
    space = Real(1e-4, 1.0, log=True)
    values = draws(space, 4000)
    assert all(1e-4 <= v <= 1.0 for v in values)
    # log-uniform: the median is near the geometric mean 1e-2 (a uniform draw's would be near 0.5)
    assert -2.3 < math.log10(statistics.median(values)) < -1.7
    # and each decade gets about a quarter of the draws
    for decade in range(-4, 0):
        share = sum(10.0 ** decade <= v < 10.0 ** (decade + 1) for v in values) / len(values)
        assert 0.2 < share < 0.3, (decade, share)


@pytest.mark.parametrize("kwargs", [
    dict(lower=1, upper=1), dict(lower=2, upper=1), dict(lower=0, upper=1, log=True),
    dict(lower=0, upper=1, step=0), dict(lower=1, upper=2, step=0.1, log=True),
])
def test_real_rejects(kwargs):
    with pytest.raises(ValueError):
        Real(**kwargs)


def test_nested_keys_and_choices():
    space = Nested({"lr": 0.5, "batch-size": 512}, {"lr": 1, "wd": 0.1})
    assert space.keys == ["lr", "batch-size", "wd"]
    assert space.data == [{"lr": 0.5, "batch-size": 512}, {"lr": 1, "wd": 0.1}]
    with pytest.raises(ValueError):
        Nested({"a": 1}, 5)


# ---- containers ----------------------------------------------------------------------------------

def test_dict_kwspaces_flattens_file_children(tmp_path):
    space = manual_space(tmp_path)
    kw = space.kwspaces
    nested = [k for k in kw if k.startswith("config._nested")]
    assert list(kw) == ["batch-size", "log-interval", "config.epochs", *nested] and len(nested) == 1
    assert isinstance(space["config"], File)
    assert kw["config.epochs"].data == [3, 4, 5]
    assert isinstance(kw[nested[0]], Nested)


def test_kwspaces_of_nested_containers_skips_constants():
    space = Dict(a=Int(1, 3), b=Dict(c=Real(0, 1), d=List(Categorical(1, 2), 5)), e="constant")
    assert list(space.kwspaces) == ["a", "b.c", "b.d.0"]


def test_dict_sample_keeps_structure_and_constants():
    space = Dict(a=Int(1, 3), b=Dict(c=Categorical("x", "y")), e="constant", l=List(Int(0, 1), 7))
    config = space.sample(random.Random(1))
    assert set(config) == {"a", "b", "e", "l"}
    assert config["a"] in (1, 2, 3) and config["b"]["c"] in ("x", "y")
    assert config["e"] == "constant" and config["l"][1] == 7 and config["l"][0] in (0, 1)


def test_grid_size_of_manual_space(tmp_path):
    space = manual_space(tmp_path)
    assert grid_size(space) == 2 * 2 * 3 * 2
    assert len(grid(space)) == 24
    assert len({config_key(c) for c in grid(space)}) == 24


def test_grid_size_matches_grid_and_infinite_spaces():
    space = Dict(a=Int(1, 10, step=3), b=Real(0.1, 0.5, step=0.1), c=List(Categorical(1, 2), "k"), d=7)
    assert grid_size(space) == 4 * 5 * 2 == len(grid(space))
    assert grid_size(Dict(a=Int(1, 2), b=Real(0, 1))) == math.inf
    with pytest.raises(TypeError, match="step"):
        grid(Dict(b=Real(0, 1)))


def test_grid_first_key_varies_slowest():
    assert grid(Dict(a=Categorical(1, 2), b=Categorical("x", "y"))) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


def test_config_key_ignores_key_order():
    a = {"lr": 0.1, "config": {"epochs": 3, "_nested": {"x": 1, "y": 2}}}
    b = {"config": {"_nested": {"y": 2, "x": 1}, "epochs": 3}, "lr": 0.1}
    assert config_key(a) == config_key(b)
    assert config_key(a) != config_key({**a, "lr": 0.2})
    assert config_key({"a": 1}) != config_key({"a": "1"})


def test_sample_of_a_constant_is_the_constant():
    assert sample(5, random.Random(0)) == 5
    assert grid(5) == [5] and grid_size(5) == 1


@pytest.mark.parametrize("low, high, step", [(1e-8, 0.5, 0.1), (0.123456789, 0.5, 0.1)])
def test_real_step_grid_starts_at_low_and_stays_in_range(low, high, step):
    data = Real(low, high, step=step).data
    assert data[0] == low
    assert all(low <= v <= high for v in data)
