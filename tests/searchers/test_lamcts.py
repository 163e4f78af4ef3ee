"""LamctsSearcher: the tree (splits, regions, UCB), its deliberate fixes of the published code's
pitfalls, the searcher's ask/tell contract, and search quality against random search."""
from __future__ import annotations

import math
import random
import textwrap
import warnings

import pytest
import torch

from gml_ray.config import load_config
from gml_ray.engine.components import build_components
from gml_ray.errors import ConfigError
from gml_ray.searchers import SEARCHERS, LamctsSearcher, RandomSearcher
from gml_ray.searchers.lamcts.searcher import default_ninits
from gml_ray.searchers.lamcts.tree import Tree, in_region
from gml_ray.space import Categorical, Dict, Int, Real


def two_basins(n: int = 120, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in [0,1]^d; values high near (0.2, ...) and low near (0.8, ...)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    v = -((x - 0.2) ** 2).sum(dim=1) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return x, v


def leaf_paths(tree: Tree):
    """(leaf, path) for every leaf."""
    out = []

    def walk(node, path):
        if node.is_leaf:
            out.append((node, list(path)))
            return
        for kid in node.kids:
            walk(kid, path + [(node, kid.label)])

    walk(tree.root, [])
    return out


# ---- the tree -------------------------------------------------------------------------------------

def test_split_gives_a_good_and_a_bad_child_each_holding_only_its_own_region():
    x, v = two_basins()
    tree = Tree(x, v, leaf_size=20, kernel="rbf", gamma="auto", Cp=0.1, seed=0)
    assert not tree.root.is_leaf
    good, bad = tree.root.kids
    assert good.mean > bad.mean
    assert good.n + bad.n == len(x)
    # The bags follow the SVM (LA-MCTS #14): every sample is inside the region of its own leaf.
    for leaf, path in leaf_paths(tree):
        assert bool(in_region(path, x[leaf.idx]).all())
    # ... and the leaves partition the samples.
    assert sorted(torch.cat([leaf.idx for leaf in tree.leaves]).tolist()) == list(range(len(x)))


def test_nodes_larger_than_leaf_size_are_split_until_they_cannot_be():
    x, v = two_basins(n=200)
    tree = Tree(x, v, leaf_size=25, kernel="rbf", gamma="scale", seed=1)
    assert len(tree.leaves) >= 8
    assert max(leaf.n for leaf in tree.leaves) <= 25  # continuous values always split further


def test_identical_samples_are_one_leaf_not_an_error():
    """2-means finds one cluster (LA-MCTS #12): the node stays a leaf."""
    x = torch.full((40, 3), 0.5, dtype=torch.float64)
    v = torch.ones(40, dtype=torch.float64)
    tree = Tree(x, v, leaf_size=5)
    assert tree.root.is_leaf
    leaf, path = tree.select()
    assert leaf is tree.root and path == []


def test_split_does_not_depend_on_the_rewards_units():
    """Unscaled 2-means on (x, return) splits by value alone when returns are large; here the
    value is standardised, so multiplying or shifting the rewards leaves the tree unchanged."""
    x, v = two_basins(n=150, d=6, seed=3)
    small = Tree(x, v, leaf_size=30, seed=0)
    large = Tree(x, 1000.0 * v + 300.0, leaf_size=30, seed=0)
    assert [sorted(leaf.idx.tolist()) for leaf in small.leaves] == \
        [sorted(leaf.idx.tolist()) for leaf in large.leaves]


def test_split_uses_location_not_only_the_value():
    """With the value weighted like all coordinates together, two far-apart basins of equal value
    are told apart by location."""
    g = torch.Generator().manual_seed(0)
    a = 0.1 + 0.05 * torch.rand(50, 5, generator=g, dtype=torch.float64)
    b = 0.85 + 0.05 * torch.rand(50, 5, generator=g, dtype=torch.float64)
    x = torch.cat([a, b])
    v = torch.cat([torch.full((50,), 1.0), torch.full((50,), 1.02)]).double() \
        + 0.2 * torch.randn(100, generator=g, dtype=torch.float64)
    tree = Tree(x, v, leaf_size=60, kernel="rbf", gamma="auto")
    kids = [set(k.idx.tolist()) for k in tree.root.kids]
    assert sorted(kids, key=min) == [set(range(50)), set(range(50, 100))]


def test_ucb_has_the_published_form_and_selection_follows_it():
    x, v = two_basins()
    tree = Tree(x, v, leaf_size=60, Cp=0.0, seed=0)
    good, bad = tree.root.kids
    assert tree.ucb(tree.root) == math.inf
    assert tree.ucb(good) == pytest.approx(good.mean)
    leaf, path = tree.select()  # Cp = 0: pure exploitation, always the good side
    assert path[0] == (tree.root, good.label)
    tree.Cp = 5.0
    n_parent = tree.root.n
    assert tree.ucb(bad) == pytest.approx(bad.mean + 2 * 5.0 * math.sqrt(2 * math.sqrt(n_parent) / bad.n))
    # A huge Cp favours the child with fewer samples.
    tree.Cp = 1e6
    small = min(tree.root.kids, key=lambda k: k.n)
    assert tree.select()[1][0] == (tree.root, small.label)


@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf"])
def test_every_kernel_builds_a_tree_whose_regions_cover_the_box(kernel):
    x, v = two_basins(n=100, d=3, seed=5)
    tree = Tree(x, v, leaf_size=30, kernel=kernel, gamma="scale")
    probe = torch.rand(500, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    # Every point of the box lies in exactly one leaf's region.
    counts = sum(in_region(path, probe).long() for _, path in leaf_paths(tree))
    assert bool((counts == 1).all())


@pytest.mark.parametrize("gamma", ["auto", "scale"])
def test_region_test_all_nodes_at_once_agrees_with_node_by_node(gamma, monkeypatch):
    """in_region tests small point sets at all of a path's nodes at once (their SVMs stacked)
    and large ones node by node: the same answers, and every sample inside its own leaf."""
    from gml_ray.searchers.lamcts import tree as tree_module

    x, v = two_basins(n=400, d=6, seed=2)
    tree = Tree(x, v, leaf_size=20, kernel="rbf", gamma=gamma, seed=0)
    probe = torch.rand(1500, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    paths = [(leaf, path) for leaf, path in leaf_paths(tree) if path]
    assert len(paths) >= 4
    stacked = [in_region(path, probe) for _, path in paths]
    monkeypatch.setattr(tree_module, "STACKED_POINTS", 0)
    by_node = [in_region(path, probe) for _, path in paths]
    for (leaf, path), a, b in zip(paths, stacked, by_node):
        assert torch.equal(a, b)
        assert bool(in_region(path, x[leaf.idx]).all())


# ---- the searcher --------------------------------------------------------------------------------

SPACE6 = Dict(**{f"x{i}": Real(-1.0, 1.0) for i in range(6)})


def drive(searcher, objective, n: int, parallel: int = 1) -> list[tuple[dict, float]]:
    """The scheduler's pattern: keep `parallel` configs outstanding, tell the oldest, ask again."""
    done, pending = [], []
    while len(done) < n:
        while len(pending) < parallel and len(done) + len(pending) < n:
            pending.append(searcher.get_config())
        config = pending.pop(0)
        value = objective(config)
        searcher.update(config, value)
        done.append((config, value))
    return done


def sphere6(c: dict) -> float:
    return -sum((c[f"x{i}"] - 0.3) ** 2 for i in range(6))


def test_first_ninits_configs_are_a_latin_hypercube():
    s = LamctsSearcher(SPACE6, ninits=10, seed=0, start_at_centre=False)
    configs = [s.get_config() for _ in range(10)]
    for i in range(6):
        strata = sorted(int((c[f"x{i}"] + 1) / 2 * 10) for c in configs)
        assert strata == list(range(10))  # one point per tenth of every axis


def test_the_design_starts_at_the_centre_of_the_box_by_default():
    """The centre (in log space for a log arg), then a Latin hypercube of the rest."""
    space = Dict(x0=Real(-1.0, 3.0), lr=Real(1e-4, 1e-2, log=True))
    s = LamctsSearcher(space, ninits=10, seed=0)
    first = s.get_config()
    assert first["x0"] == pytest.approx(1.0) and first["lr"] == pytest.approx(1e-3)
    rest = [s.get_config() for _ in range(9)]
    strata = sorted(int((c["x0"] + 1) / 4 * 9) for c in rest)
    assert strata == list(range(9))


@pytest.mark.parametrize("max_tries, parallel, expected", [
    (None, 1, 5), (25, 1, 5), (150, 1, 5), (3000, 1, 5), (20, 1, 4), (10, 1, 2), (3, 1, 2),
    (None, 8, 8), (10, 3, 3)])
def test_the_initial_design_is_sized_to_the_budget(max_tries, parallel, expected):
    assert default_ninits(max_tries, parallel) == expected
    s = LamctsSearcher(SPACE6, max_tries=max_tries, parallel_size=parallel, seed=0)
    assert (s.ninits, s.max_tries) == (expected, max_tries)
    # the design is that many configs, then the model (an iteration) proposes
    for _ in range(expected):
        config = s.get_config()
        s.update(config, sphere6(config))
    assert s.iterations == 0
    s.get_config()
    assert s.iterations == 1


def test_an_explicit_ninits_wins_over_the_budget():
    assert LamctsSearcher(SPACE6, ninits=30, max_tries=25).ninits == 30


def test_max_tries_from_the_searchers_settings_sizes_the_design(tmp_path):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {a0} {a1}"
          search_args:
            - {type: Real, name: a0, data: [-1, 1]}
            - {type: Real, name: a1, data: [-1, 1]}
        searcher: {type: LamctsSearcher, max_tries: 50}
        """))
    searcher = build_components(load_config(str(tmp_path / "search_config.yaml"))).searcher
    assert isinstance(searcher, LamctsSearcher)
    assert (searcher.max_tries, searcher.ninits) == (50, 5)
    small = LamctsSearcher(SPACE6, max_tries=10)
    assert small.ninits == 2


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["turbo", "bo"])
def test_same_seed_same_configs_and_the_search_improves(solver):
    a = drive(LamctsSearcher(SPACE6, ninits=8, leaf_size=8, solver=solver, seed=3, Cp=0.05), sphere6, 30)
    b = drive(LamctsSearcher(SPACE6, ninits=8, leaf_size=8, solver=solver, seed=3, Cp=0.05), sphere6, 30)
    assert [c for c, _ in a] == [c for c, _ in b]
    c = drive(LamctsSearcher(SPACE6, ninits=8, leaf_size=8, solver=solver, seed=4, Cp=0.05), sphere6, 30)
    assert [x for x, _ in a] != [x for x, _ in c]
    assert max(v for _, v in a[8:]) > max(v for _, v in a[:8])  # the model beats the initial design


def test_parallel_asks_get_a_batch_of_distinct_configs_in_one_iteration():
    s = LamctsSearcher(SPACE6, ninits=6, leaf_size=6, seed=0, parallel_size=4)
    done = drive(s, sphere6, 30, parallel=4)
    keys = [tuple(sorted(c.items())) for c, _ in done]
    assert len(set(keys)) == len(keys)
    # 24 model-based proposals in batches of 4: about 6 iterations (fewer tree builds than asks).
    assert 5 <= s.iterations <= 8
    assert s.samples == 30


def test_failed_jobs_are_not_samples_and_are_not_proposed_again():
    s = LamctsSearcher(SPACE6, ninits=4, seed=0)
    first = s.get_config()
    s.job_failed(first, "ERROR")
    rest = drive(s, sphere6, 12)
    assert s.samples == 12
    assert first not in [c for c, _ in rest]
    assert s.history[0] == (first, None)


def test_resume_continues_the_tree_instead_of_starting_over():
    """Told results it did not propose (a resumed task) count as samples and toward ninits."""
    earlier = drive(LamctsSearcher(SPACE6, ninits=10, leaf_size=8, seed=1), sphere6, 25)
    resumed = LamctsSearcher(SPACE6, ninits=10, leaf_size=8, seed=1)
    for config, value in earlier:
        resumed.update(config, value)
    assert resumed.history == earlier
    assert resumed.samples == 25
    nxt = resumed.get_config()
    assert resumed.iterations == 1  # the next config comes from a tree, not the initial design
    assert resumed.last_tree.root.n == 25
    assert nxt not in [c for c, _ in earlier]


def test_minimize_is_maximising_the_negated_reward():
    s = LamctsSearcher(SPACE6, optimize_mode="minimize", ninits=8, leaf_size=8, seed=2, Cp=0.05)
    done = drive(s, lambda c: -sphere6(c), 30)
    assert min(v for _, v in done[8:]) < min(v for _, v in done[:8])
    assert s.get_best_reward() == min(v for _, v in done)


def test_enable_cuda_on_a_cpu_machine_warns_and_runs():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.warns(RuntimeWarning, match="enable_cuda"):
        s = LamctsSearcher(SPACE6, ninits=4, seed=0, enable_cuda=True)
    assert s.device.type == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(drive(s, sphere6, 8)) == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"kernel_type": "sigmoid"}, "kernel_type must be one of linear, poly, rbf"),
    ({"gamma_type": "big"}, "gamma_type must be one of auto, scale"),
    ({"solver": "cmaes"}, "solver must be one of bo, turbo"),
    ({"leaf_size": 0}, "leaf_size must be an integer >= 1"),
    ({"Cp": -1}, "Cp must be a number >= 0"),
    ({"box_every": -1}, "box_every must be an integer >= 0"),
    ({"ei_share": 1.5}, r"ei_share must be a number in \[0, 1\]"),
    ({"noise_floor": 0}, r"noise_floor must be a number in \(0, 1\)"),
    ({"noise_floor": 1.0}, r"noise_floor must be a number in \(0, 1\)"),
    ({"gp_prior": "yes"}, "gp_prior must be true or false, got 'yes'"),
    ({"dims": 16}, "dims is 16 but the space has 6 searched args"),
    ({"max_tries": 0}, "max_tries must be an integer >= 1"),
    ({"ninits": 0}, "ninits must be an integer >= 1"),
])
def test_bad_settings_are_errors_that_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LamctsSearcher(SPACE6, **kwargs)


def test_a_bad_setting_in_the_config_names_its_key_and_file(tmp_path):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {a0}"
          search_args: [{type: Real, name: a0, data: [-1, 1]}]
        searcher: {type: LamctsSearcher, Cp: abc}
        """))
    with pytest.raises(ConfigError) as err:
        build_components(load_config(str(tmp_path / "search_config.yaml")))
    assert str(err.value).endswith(
        "search_config.yaml: searcher.Cp: LamctsSearcher: Cp must be a number >= 0, got 'abc'")


def test_non_real_args_are_a_config_error_naming_the_arg(tmp_path):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {lr} {bs}"
          search_args:
            - {type: Real, name: lr, data: [0.0001, 0.1], log: true}
            - {type: Categorical, name: bs, data: [32, 64]}
        searcher: {type: LamctsSearcher, dims: 2}
        """))
    with pytest.raises(ConfigError) as err:
        build_components(load_config(str(tmp_path / "search_config.yaml")))
    assert "'bs'" in str(err.value) and "Real" in str(err.value) and "searcher" in str(err.value)
    assert SEARCHERS.get("LamctsSearcher") is LamctsSearcher
    with pytest.raises(ValueError, match="'n'"):
        LamctsSearcher(Dict(n=Int(1, 5)))
    with pytest.raises(ValueError, match="'c'"):
        LamctsSearcher(Dict(c=Categorical("a", "b")))


def test_parallel_size_and_settings_reach_the_searcher_from_the_config(tmp_path):
    (tmp_path / "search_config.yaml").write_text(textwrap.dedent("""\
        task:
          template: "python train.py {a0} {a1}"
          search_args:
            - {type: Real, name: a0, data: [-1, 1]}
            - {type: Real, name: a1, data: [-1, 1]}
        searcher: {type: LamctsSearcher, dims: 2, Cp: 1, leaf_size: 20, kernel_type: rbf,
                   gamma_type: auto, ninits: 30, solver: bo, seed: 0, noise_floor: 0.05,
                   gp_prior: true}
        scheduler: {parallel_size: 3}
        """))
    searcher = build_components(load_config(str(tmp_path / "search_config.yaml"))).searcher
    assert isinstance(searcher, LamctsSearcher)
    assert searcher._sampler.noise_bounds == (0.05, 0.5)
    assert searcher._sampler.gp_prior is True
    assert (searcher.batch, searcher.ninits, searcher.solver, searcher.dims) == (3, 30, "bo", 2)


# ---- quality -------------------------------------------------------------------------------------

def ackley(c: dict, d: int = 20) -> float:
    x = [c[f"x{i}"] for i in range(d)]
    return (-20 * math.exp(-0.2 * math.sqrt(sum(t * t for t in x) / d))
            - math.exp(sum(math.cos(2 * math.pi * t) for t in x) / d) + 20 + math.e)


@pytest.mark.slow
def test_lamcts_beats_random_search_on_ackley_20():
    """Seeded, 200 evaluations (batches of 4), three seeds: LA-MCTS's best is lower every time."""
    space = Dict(**{f"x{i}": Real(-5.0, 10.0) for i in range(20)})
    for seed in range(3):
        lamcts = LamctsSearcher(space, optimize_mode="minimize", Cp=1.0, leaf_size=10, ninits=40,
                                kernel_type="rbf", gamma_type="auto", seed=seed, parallel_size=4)
        best_lamcts = min(v for _, v in drive(lamcts, ackley, 200, parallel=4))
        rnd = RandomSearcher(space, optimize_mode="minimize", seed=seed)
        best_random = min(v for _, v in drive(rnd, ackley, 200, parallel=4))
        assert best_lamcts < best_random, (seed, best_lamcts, best_random)


def test_the_bo_sampler_climbs_its_acquisition_without_leaving_the_region():
    """EI's best random candidates are refined by gradient: they end higher and inside the leaf."""
    from gml_ray.searchers.lamcts.samplers import climb

    x, v = two_basins(n=150, d=4, seed=3)
    tree = Tree(x, v, leaf_size=20, kernel="linear", gamma="auto", Cp=1.0, seed=0)
    leaf, path = next((leaf, path) for leaf, path in leaf_paths(tree) if path)
    start = x[leaf.idx][:6]
    target = torch.full((4,), 0.95, dtype=torch.float64)  # pulls the points out of their region

    def closeness(p: torch.Tensor) -> torch.Tensor:
        return -((p - target) ** 2).sum(dim=1)

    end = climb(start, closeness, path, steps=200, lr=0.02)
    assert bool(in_region(path, end).all()) and bool(((end >= 0) & (end <= 1)).all())
    assert bool((closeness(end) >= closeness(start) - 1e-12).all())
    assert float(closeness(end).mean()) > float(closeness(start).mean())
    free = climb(start, closeness, [], steps=200, lr=0.02)  # no region: it gets (near) there
    assert float(((free - target) ** 2).sum(dim=1).max()) < 0.05


@pytest.mark.parametrize("solver", ["bo", "turbo"])
def test_a_stalled_search_restarts_from_the_whole_box(solver):
    """stall_patience results without a new best: the next iteration ignores the leaf's region
    (a restart, counted); an improvement ends the stall; 0 never restarts."""
    rng = random.Random(0)
    configs = [{f"x{i}": rng.uniform(-1, 1) for i in range(6)} for _ in range(30)]
    s = LamctsSearcher(SPACE6, ninits=10, leaf_size=8, solver=solver, seed=0, stall_patience=8)
    never = LamctsSearcher(SPACE6, ninits=10, leaf_size=8, solver=solver, seed=0, stall_patience=0)
    asked = []
    for searcher in (s, never):
        for i, c in enumerate(configs):
            searcher.update(c, 1.0 if i == 0 else -float(i))  # the first result stays the best
        asked.append(searcher.get_config())
    assert s.restarts == 1 and never.restarts == 0
    s.update(asked[0], 5.0)  # a new best: no longer stalled
    for _ in range(3):
        s.update(s.get_config(), 0.0)
    assert s.restarts == 1


def test_box_every_alternates_the_selected_leaf_with_the_whole_box():
    """box_every 2: every second iteration proposes from the whole box (an empty path) while
    the others stay in the selected leaf (a path below the root once the tree has split)."""
    rng = random.Random(1)
    configs = [{f"x{i}": rng.uniform(-1, 1) for i in range(6)} for _ in range(40)]
    s = LamctsSearcher(SPACE6, ninits=10, leaf_size=10, kernel_type="rbf", gamma_type="scale",
                       solver="bo", seed=0, stall_patience=0, box_every=2)
    for c in configs:
        s.update(c, sphere6(c))
    depths = []
    for _ in range(4):
        config = s.get_config()  # parallel_size 1: one iteration per ask
        depths.append(s.last_path_depth)
        s.update(config, sphere6(config))
    assert depths[1] == depths[3] == 0
    assert depths[0] > 0 and depths[2] > 0


@pytest.mark.parametrize("share, batches, expected", [
    (0.5, [1, 1, 1, 1], [0, 1, 0, 1]),  # batches of 1: every other pick
    (0.5, [2, 2, 2], [1, 1, 1]),
    (0.5, [16], [8]),
    (0.25, [4, 4, 2, 2], [1, 1, 0, 1]),
    (0.0, [3, 3], [0, 0]),
    (1.0, [3, 1], [3, 1]),
])
def test_turbo_gives_ei_its_share_of_the_picks_even_in_batches_of_one(share, batches, expected):
    from gml_ray.searchers.lamcts.samplers import TurboSampler

    sampler = TurboSampler(dims=6, batch=max(batches), ei_share=share)
    assert [sampler._ei_picks(k) for k in batches] == expected


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_turbo_with_any_ei_share_proposes_distinct_points_and_improves(share):
    s = LamctsSearcher(SPACE6, ninits=8, leaf_size=8, solver="turbo", seed=5, Cp=0.05,
                       parallel_size=4, ei_share=share)
    done = drive(s, sphere6, 40, parallel=4)
    keys = [tuple(sorted(c.items())) for c, _ in done]
    assert len(set(keys)) == len(keys)
    assert max(v for _, v in done[8:]) > max(v for _, v in done[:8])


def noisy_outlier_data(d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A broad good basin around 0.3 (values about 10) and, around 0.8, one lucky sample (12)
    among neighbours that score about 0: noise a GP should not interpolate."""
    g = torch.Generator().manual_seed(seed)
    good = 0.3 + 0.1 * (torch.rand(40, d, generator=g, dtype=torch.float64) - 0.5)
    bad = 0.8 + 0.1 * (torch.rand(40, d, generator=g, dtype=torch.float64) - 0.5)
    x = torch.cat([good, bad, torch.full((1, d), 0.8, dtype=torch.float64)])
    v = torch.cat([10 + 0.3 * torch.randn(40, generator=g, dtype=torch.float64),
                   0.3 * torch.randn(40, generator=g, dtype=torch.float64),
                   torch.tensor([12.0], dtype=torch.float64)])
    return x, v


def test_noise_floor_bounds_the_gps_noise_and_raises_its_ceiling():
    from gml_ray.searchers.lamcts.gp import noise_bounds
    from gml_ray.searchers.lamcts.samplers import BOSampler, TurboSampler

    assert noise_bounds(5e-4) == (5e-4, 0.2)  # TuRBO's
    assert noise_bounds(0.05) == (0.05, 0.5)
    x, v = noisy_outlier_data()
    at_outlier = {}
    for floor in (5e-4, 0.05):
        for sampler in (TurboSampler(dims=4, batch=2, noise_floor=floor), BOSampler(noise_floor=floor)):
            sampler.propose(x, v, torch.arange(x.shape[0]), [], 2, x[:0], seed=0,
                            device=torch.device("cpu"))
            assert floor <= sampler._gp.noise <= noise_bounds(floor)[1]
            at_outlier[floor] = float(sampler._gp.posterior(x[-1:])[0])
    # the floor smooths the lucky 12 towards its neighbours' 0 instead of interpolating it
    assert at_outlier[0.05] < at_outlier[5e-4] - 1.0


def test_the_tasks_max_tries_sizes_the_design_through_the_engine(tmp_path):
    from gml_ray.config import parse_config
    from gml_ray.engine.components import build_components

    raw = {"task": {"function": "t:f", "search_args": [{"type": "Real", "name": f"x{i}", "data": [0, 1]}
                                                       for i in range(3)]},
           "searcher": {"type": "LamctsSearcher", "seed": 0},
           "scheduler": {"stop_criterion": {"max_tries": 10}}}
    assert build_components(parse_config(raw, "c.yaml", str(tmp_path))).searcher.ninits == 2
    raw["searcher"]["max_tries"] = 100  # the searcher's own setting wins
    assert build_components(parse_config(raw, "c.yaml", str(tmp_path))).searcher.ninits == 5
