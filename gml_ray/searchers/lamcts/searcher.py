"""LamctsSearcher: Latent Action Monte Carlo Tree Search (Wang, Fonseca, Tian; NeurIPS 2020).

torch is imported when a LamctsSearcher is built, not when this module loads.
"""
from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

from gml_ray.optimize import sign
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.searchers.leaves import REAL, FlatSpace
from gml_ray.space import Dict, config_key
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.searchers.lamcts")

KERNELS = ("linear", "poly", "rbf")
GAMMAS = ("auto", "scale")
SOLVERS = ("bo", "turbo")


def _check_number(name: str, value: Any, low: float, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value >= low:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low:g}, got {value!r}")


def _check_share(name: str, value: Any, closed: bool) -> None:
    """A number in [0, 1] (``closed``) or in (0, 1)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        (0 <= value <= 1 if closed else 0 < value < 1)
    if not ok:
        raise ValueError(f"{name} must be a number in {'[0, 1]' if closed else '(0, 1)'}, "
                         f"got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def latin_hypercube(n: int, d: int, rng: random.Random) -> list[list[float]]:
    """``n`` points in [0, 1]^d, one per stratum in every dimension, jittered inside it."""
    columns = []
    for _ in range(d):
        strata = list(range(n))
        rng.shuffle(strata)
        columns.append([(s + rng.random()) / n for s in strata])
    return [list(p) for p in zip(*columns)]


def default_ninits(max_tries: int | None, parallel_size: int = 1) -> int:
    """The size of the initial design when ``ninits`` is not given: 5, or a fifth of a budget
    under 25 (at least 2), and never fewer than ``parallel_size`` (the first batch is proposed
    before any result is known). See ``LamctsSearcher``'s ``ninits``."""
    base = DESIGN_SIZE if max_tries is None else min(DESIGN_SIZE, max(2, max_tries // 5))
    return max(base, parallel_size)


DESIGN_SIZE = 5  # the default initial design at a budget of 25 or more (or an unknown one)


@SEARCHERS.register_module()
class LamctsSearcher(BaseSearcher):
    """Learns a partition of the space into good and bad regions and samples in the best one.

    Args:
        dims: the number of searched args (a check: it must match the space when given).
        Cp: UCB's exploration weight, in reward units (the paper advises about 0.1 x the best
            reward).
        leaf_size: a tree node with more samples than this is split.
        kernel_type: the SVM's kernel, ``linear``, ``poly`` or ``rbf``.
        gamma_type: the SVM's gamma, ``auto`` (1/d) or ``scale`` (1/(d Var x)).
        ninits: the initial design: configs proposed before the model is used (the box's
            centre with ``start_at_centre``, then a Latin hypercube). Default: 5, or a fifth of
            ``max_tries`` when that is under 25 (at least 2), and at least ``parallel_size``
            (``default_ninits``). A departure from the paper, whose design is 30-150 points
            whatever the budget or dimension: with 30, a search of 25-50 evaluations was
            almost all design (issue 36: second to last of 7 methods at 25). On the tuning split
            of ``benchmarks/searcher_ranks.py`` (6 functions x 3 instances, 10-D and 20-D) a
            design of 5 ranked as well as or better than 10, 15, 20 and 30 at every budget
            from 25 to 150, so the model starts at the sixth evaluation whatever the budget;
            the dimension did not change that between 10 and 20. The MuJoCo configs keep 30.
        max_tries: the task's budget (``scheduler.stop_criterion.max_tries``), only to size the
            default ``ninits``; None (not known): 5.
        start_at_centre: the first config is the box's centre (in log space for ``log: true``
            args). A departure from the paper: users centre their ranges on what they expect
            to work, so the centre is a better first guess than a random point (CMA-ES starts
            there too); with the design this small, the trust region grows from the best of 5
            points, and the centre was often that point. On the tuning split it lowered the
            mean rank at 25 evaluations from 2.3 to 1.6 of 6 methods (10-D). It costs one
            evaluation where the centre is poor.
        solver: ``turbo`` (a trust region with Thompson sampling; the paper's MuJoCo choice) or
            ``bo`` (a GP with expected improvement).
        ei_share: ``turbo`` only: the share of its picks that go to the candidate of highest
            expected improvement instead of a Thompson draw (0: TuRBO's Thompson sampling
            alone; see ``TurboSampler``).
        noise_floor: the GPs' smallest noise variance, as a share of the values' variance
            (TuRBO's 5e-4 by default, ``gp.NOISE_FLOOR``, written out here because this module
            loads without torch). Raise it (e.g. 0.05) when a config's reward varies from
            run to run, so the GP smooths the noise instead of chasing it (see ``TurboSampler``).
        gp_prior: fit the GPs' hyperparameters under weak priors (Optuna's GPSampler's: each
            lengthscale most likely at the box's width, see ``gp.GaussianProcess``) instead of
            by maximum likelihood alone, which on a few dozen points in 16-D sends some
            lengthscales to a bound and so stretches TuRBO's trust region (its sides follow the
            lengthscales) far along a few axes. On by default since issue 36: with a design of
            5 points the model is fitted on 5-20 points, where maximum likelihood is worst (on
            the tuning split, with a design of 5: mean rank 2.3 instead of 2.6 of 6 methods at 25
            evaluations, 1.7 instead of 2.0 at 50, 10-D).
        seed: the same seed and the same results give the same configs.
        enable_cuda: run 2-means, the SVMs and the GPs on the GPU when there is one (a warning
            and the CPU otherwise).
        parallel_size: filled in from ``scheduler.parallel_size``: each iteration proposes a
            batch of this many configs, so that many jobs can run at once.
        stall_patience: after this many results in a row that did not improve the best (by more
            than 1e-3 of it), iterations propose from the whole box instead of the selected
            leaf's region, with a GP fitted afresh (a restart), until the best improves again;
            0 never. Default ``max(20, 4 x parallel_size)``. A departure from the paper, whose
            tree only ever explores through UCB: with a Cp that is small against the rewards
            (the manual's Cp 1 for returns in the hundreds) the best leaf is chosen every time,
            and its region closes around a local optimum; the search then stalled for hundreds
            of evaluations on some seeds (Swimmer near 190-310, issue 18). The authors' TuRBO
            solver restarted a fresh trust region with new random points every iteration; this
            restarts only when the region has stopped paying off.
        box_every: every ``box_every``-th iteration proposes from the whole box (the root's
            region, EI over all samples) instead of the selected leaf; 0 never. A departure from
            the paper: with an SVM that splits the box finely (``gamma_type: scale``), proposals
            confined to a small leaf climb reliably but slowly, and whole-box proposals climb
            fast but stall in the first basin they find; alternating trades between the two
            (Swimmer, tuning seeds 200-219: benchmarks/README.md).
        cpu_threads: torch's CPU threads during an iteration (restored after it; 0 leaves
            torch's setting). An iteration is mostly small tensor operations, where threads cost
            more in synchronisation than they gain, badly so on a busy machine: a 30-evaluation
            search took 4 s with 1 thread and 31-102 s with 2 on this 2-core machine under load.

    Contract:

    * Every searched arg must be a Real without ``step`` (``log: true`` is searched in log
      space); anything else is a config error naming the arg.
    * Each iteration rebuilds the tree from every result told, selects a leaf by UCB and asks
      the solver for a batch of points in the leaf's region, avoiding configs still pending.
    * A job without a reward (``job_failed``) is not a sample (no value is known) and its config
      is not proposed again; ``history`` lists what was told, ``(config, reward)`` with reward
      None for those.
    * Results told for configs this searcher did not propose (a resumed task) are samples like
      any other and count toward ``ninits``, so a resumed search continues its tree.
    """

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE, dims: int | None = None, Cp: float = 1.0,
                 leaf_size: int = 20, kernel_type: str = "rbf", gamma_type: str = "auto",
                 ninits: int | None = None, solver: str = "turbo", seed: int | None = None,
                 enable_cuda: bool = False, parallel_size: int = 1,
                 stall_patience: int | None = None, cpu_threads: int = 1,
                 box_every: int = 0, ei_share: float = 0.5,
                 noise_floor: float = 5e-4, gp_prior: bool = True,
                 max_tries: int | None = None, start_at_centre: bool = True) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        _check_number("Cp", Cp, 0)
        _check_number("leaf_size", leaf_size, 1, integer=True)
        if max_tries is not None:
            _check_number("max_tries", max_tries, 1, integer=True)
        if ninits is not None:
            _check_number("ninits", ninits, 1, integer=True)
        _check_number("parallel_size", parallel_size, 1, integer=True)
        _check_choice("kernel_type", kernel_type, KERNELS)
        _check_choice("gamma_type", gamma_type, GAMMAS)
        _check_choice("solver", solver, SOLVERS)
        _check_share("ei_share", ei_share, closed=True)
        _check_share("noise_floor", noise_floor, closed=False)
        for flag, value in (("gp_prior", gp_prior), ("start_at_centre", start_at_centre)):
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be true or false, got {value!r}")
        if seed is not None:
            _check_number("seed", seed, 0, integer=True)
        self._flat = FlatSpace(search_space)
        for leaf in self._flat.leaves:
            if leaf.kind != REAL:
                raise ValueError(f"arg {leaf.name!r}: LamctsSearcher searches Real args without "
                                 f"step only, got {type(leaf.space).__name__}")
        if not self._flat.leaves:
            raise ValueError("LamctsSearcher needs at least one Real search arg")
        if dims is not None and dims != len(self._flat.leaves):
            raise ValueError(f"dims is {dims!r} but the space has {len(self._flat.leaves)} "
                             f"searched args")
        self.dims = len(self._flat.leaves)
        self.max_tries = max_tries
        if ninits is None:
            ninits = default_ninits(max_tries, parallel_size)
        self.Cp, self.leaf_size, self.ninits = float(Cp), leaf_size, ninits
        self.kernel_type, self.gamma_type, self.solver = kernel_type, gamma_type, solver
        self.seed = seed
        self.batch = parallel_size
        self.enable_cuda = bool(enable_cuda)
        _check_number("cpu_threads", cpu_threads, 0, integer=True)
        self.cpu_threads = cpu_threads
        if stall_patience is None:
            stall_patience = max(20, 4 * parallel_size)
        _check_number("stall_patience", stall_patience, 0, integer=True)
        self.stall_patience = stall_patience
        _check_number("box_every", box_every, 0, integer=True)
        self.box_every = box_every
        self._best: float | None = None
        self._since_best = 0  # results since the best last improved
        self.restarts = 0  # iterations that proposed from the whole box after a stall

        import torch

        from gml_ray.searchers.lamcts.samplers import BOSampler, Sampler, TurboSampler
        from gml_ray.searchers.lamcts.tensors import pick_device

        self._torch = torch
        self.device = pick_device(self.enable_cuda)
        self._rng = random.Random(seed)
        self._seed_base = self._rng.randrange(2**31)
        self.ei_share = float(ei_share)
        self.noise_floor = float(noise_floor)
        self.gp_prior = gp_prior
        self._sampler: Sampler = BOSampler(noise_floor=self.noise_floor, gp_prior=gp_prior) \
            if solver == "bo" else TurboSampler(self.dims, self.batch, ei_share=self.ei_share,
                                                noise_floor=self.noise_floor, gp_prior=gp_prior)
        self.start_at_centre = bool(start_at_centre)
        if start_at_centre:  # the box's centre first, then a Latin hypercube of the rest
            self._lhs = [[0.5] * self.dims] + latin_hypercube(ninits - 1, self.dims, self._rng)
        else:
            self._lhs = latin_hypercube(ninits, self.dims, self._rng)
        self._lhs_next = 0
        self._x: list[list[float]] = []  # unit-cube points with a result
        self._v: list[float] = []  # their values (the reward, negated when minimising)
        self._pending: dict[str, list[float]] = {}  # config_key -> unit point, proposed not told
        self._queue: list[list[float]] = []  # proposed by the last iteration, not yet handed out
        self._seen: set[str] = set()
        self._failed = 0
        self._told_since = 0  # results since the last iteration (TuRBO's success counter)
        self._best_at_iteration: float | None = None
        self.iterations = 0
        self.last_tree: Any = None
        self.last_path_depth = 0
        self.iteration_seconds: list[float] = []  # the time of each tree build + batch proposal

    # ---- coordinates -----------------------------------------------------------------------------

    def _to_config(self, unit: list[float]) -> dict:
        values = []
        for leaf, u in zip(self._flat.leaves, unit):
            space: Any = leaf.space
            u = min(max(float(u), 0.0), 1.0)
            if space.log:
                low, high = math.log(space.lower), math.log(space.upper)
                values.append(math.exp(low + u * (high - low)))
            else:
                values.append(space.lower + u * (space.upper - space.lower))
        return self._flat.decode(values)

    def _to_unit(self, config: dict) -> list[float] | None:
        coords = self._flat.encode(config)
        if coords is None:
            return None
        unit = []
        for leaf, value in zip(self._flat.leaves, coords):
            space: Any = leaf.space
            if space.log:
                low, high = math.log(space.lower), math.log(space.upper)
                value, span = math.log(value) - low, high - low
            else:
                value, span = value - space.lower, space.upper - space.lower
            unit.append(value / span if span > 0 else 0.5)
        return unit

    # ---- ask -------------------------------------------------------------------------------------

    def get_config(self) -> dict | None:
        while True:
            unit = self._next_point()
            config = self._to_config(unit)
            key = config_key(config)
            if key in self._seen:
                continue  # a repeat (the solver's candidates may hit a known point): try again
            self._seen.add(key)
            self._pending[key] = unit
            return self._proposed(config)

    def _next_point(self) -> list[float]:
        if self._queue:
            return self._queue.pop(0)
        known = len(self._x) + self._failed + len(self._pending)
        if self._lhs_next < len(self._lhs) and known < self.ninits:
            self._lhs_next += 1
            return self._lhs[self._lhs_next - 1]
        if len(self._x) < 2:  # every earlier config still pending: nothing to learn from yet
            return [self._rng.random() for _ in range(self.dims)]
        self._queue = self._iterate()
        if not self._queue:
            return [self._rng.random() for _ in range(self.dims)]
        return self._queue.pop(0)

    def _iterate(self) -> list[list[float]]:
        """Rebuild the tree, select a leaf and propose a batch in its region."""
        torch = self._torch
        threads = torch.get_num_threads()
        if self.cpu_threads and self.cpu_threads != threads:
            torch.set_num_threads(self.cpu_threads)
        try:
            return self._iterate_body()
        finally:
            if self.cpu_threads and self.cpu_threads != threads:
                torch.set_num_threads(threads)

    def _iterate_body(self) -> list[list[float]]:
        torch = self._torch
        from gml_ray.searchers.lamcts.tree import Tree

        started = time.perf_counter()
        x = torch.tensor(self._x, dtype=torch.float64, device=self.device)
        v = torch.tensor(self._v, dtype=torch.float64, device=self.device)
        seed = (self._seed_base + 7919 * self.iterations) % 2**31
        if self._told_since and self._best_at_iteration is not None:
            self._sampler.record(v[-self._told_since:], self._best_at_iteration)
        self._told_since = 0
        self._best_at_iteration = float(v.max())
        tree = Tree(x, v, leaf_size=self.leaf_size, kernel=self.kernel_type, gamma=self.gamma_type,
                    Cp=self.Cp, seed=seed, prev=self.last_tree)
        leaf, path = tree.select()
        idx = leaf.idx
        if self.box_every and self.iterations % self.box_every == self.box_every - 1:
            idx, path = tree.root.idx, []  # a whole-box iteration (see ``box_every``)
        if self.stall_patience and self._since_best >= self.stall_patience:
            self.restarts += 1
            self._sampler.restart()
            # propose from the whole box, every sample a candidate anchor, a fresh GP
            idx, path = tree.root.idx, []
        pending = torch.tensor(list(self._pending.values()), dtype=torch.float64,
                               device=self.device).reshape(-1, self.dims)
        points = self._sampler.propose(x, v, idx, path, self.batch, pending, seed, self.device)
        self.iterations += 1
        self.last_tree, self.last_path_depth = tree, len(path)
        self.iteration_seconds.append(time.perf_counter() - started)
        log.debug("iteration %d: %d samples, %d leaves, leaf of %d at depth %d, %.3f s",
                  self.iterations, len(self._x), len(tree.leaves), leaf.n, len(path),
                  self.iteration_seconds[-1])
        return points.cpu().tolist()

    # ---- tell ------------------------------------------------------------------------------------

    def _on_result(self, config: dict, reward: float, was_pending: bool) -> None:
        key = config_key(config)
        unit = self._pending.pop(key, None) or self._to_unit(config)
        self._seen.add(key)
        if unit is None:
            log.warning("a result for a config outside the search space was ignored: %s", config)
            return
        self._x.append(unit)
        value = sign(self.optimize_mode) * reward
        self._v.append(value)
        self._told_since += 1
        if self._best is None or value > self._best + 1e-3 * abs(self._best):
            self._best, self._since_best = value, 0
        else:
            self._best, self._since_best = max(self._best, value), self._since_best + 1

    def _on_failure(self, config: dict, status: str) -> None:
        key = config_key(config)
        self._pending.pop(key, None)
        self._seen.add(key)
        self._failed += 1

    @property
    def samples(self) -> int:
        """How many results the tree is built from."""
        return len(self._x)

    def __repr__(self) -> str:
        return (f"LamctsSearcher(dims={self.dims}, Cp={self.Cp}, leaf_size={self.leaf_size}, "
                f"kernel_type={self.kernel_type!r}, gamma_type={self.gamma_type!r}, "
                f"ninits={self.ninits}, solver={self.solver!r}, ei_share={self.ei_share:g}, "
                f"box_every={self.box_every}, noise_floor={self.noise_floor:g}, "
                f"gp_prior={self.gp_prior}, max_tries={self.max_tries}, device={self.device})")
