"""SkoptSearcher: Bayesian optimisation with scikit-optimize's ``skopt.Optimizer`` (manual 2.3.4).

scikit-optimize is imported when a SkoptSearcher is built, not when this module loads: it takes
over a second to import, and most tasks never use it.
"""
from __future__ import annotations

import logging
import math
import random
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from gml_ray.optimize import sign
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.searchers.leaves import CATEGORICAL, ORDINAL, FlatSpace
from gml_ray.space import Dict
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.searchers.skopt")

_ESTIMATORS = ("GP", "RF", "ET", "GBRT", "DUMMY")
# EIps/PIps also model each job's run time, which the scheduler does not pass to searchers.
_ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI", "MES", "PVRS")
_ACQ_OPTIMIZERS = ("auto", "lbfgs", "sampling")
_ACQ_FUNC_KWARGS = ("xi", "kappa", "eta")
_ACQ_OPTIMIZER_KWARGS = ("n_points", "n_restarts_optimizer", "n_jobs")
_STRATEGIES = ("cl_min", "cl_mean", "cl_max")
_SEED_MAX = 2**31 - 1


@SEARCHERS.register_module()
class SkoptSearcher(BaseSearcher):
    """Asks ``skopt.Optimizer`` for configs and tells it every reward.

    The keyword arguments are ``skopt.Optimizer``'s (see its documentation): ``base_estimator``
    (GP, RF, ET, GBRT, DUMMY or a scikit-learn regressor), ``n_initial_points`` (random configs
    before the model is used; ``n_random_starts`` is its old name and wins when given),
    ``acq_func``, ``acq_optimizer``, ``random_state`` (the seed: the same seed and the same
    results give the same configs), ``model_queue_size``, ``acq_func_kwargs``,
    ``acq_optimizer_kwargs``, ``initial_point_generator`` and ``n_jobs``.

    Space: Categorical and Nested args are skopt Categoricals (over the choices' positions), Int
    and Real with ``step`` are Integers over their grid, Real is a Real (``log: true`` → a
    log-uniform prior); args inside File args are searched the same way.

    Contract:

    * ``maximize`` is handled by telling skopt the negated reward.
    * Several configs may be outstanding (``parallel_size`` > 1): each ask while others are
      pending is answered by a copy of the optimizer told the pending configs with a constant lie
      (``parallel_strategy``: cl_min, the best result so far, by default), so the model moves
      away from them. No config is proposed twice; when the model picks one already proposed,
      an unseen random config is proposed instead (counted in ``random_fallbacks``), and a
      finite space ends with None.
    * A job that ends without a reward (``job_failed``: ERROR, KILLED without a scalar,
      FILTERED) is not told to the model, since no value is known; its config is never proposed
      again. ``history`` lists what was told, ``(config, reward)``, with reward None for those.
    * Rewards are buffered and told to skopt in one batch at the next ``get_config``, so a
      resumed task (every earlier result told at once) costs one model fit, not one per job.
    """

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE, base_estimator: Any = "GP",
                 n_random_starts: int | None = None, n_initial_points: int = 10,
                 acq_func: str = "gp_hedge", acq_optimizer: str = "auto",
                 random_state: int | None = None, model_queue_size: int | None = None,
                 acq_func_kwargs: dict | None = None, acq_optimizer_kwargs: dict | None = None,
                 initial_point_generator: str = "random", n_jobs: int = 1,
                 parallel_strategy: str = "cl_min", max_draws: int = 1000) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        if n_random_starts is not None:
            n_initial_points = n_random_starts
        _check_int("n_initial_points" if n_random_starts is None else "n_random_starts",
                   n_initial_points, 1)
        if random_state is not None:
            _check_int("random_state", random_state, 0)
        if model_queue_size is not None:
            _check_int("model_queue_size", model_queue_size, 1)
        _check_int("n_jobs", n_jobs, -1)
        _check_int("max_draws", max_draws, 1)
        _check_choice("acq_func", acq_func, _ACQ_FUNCS)
        _check_choice("acq_optimizer", acq_optimizer, _ACQ_OPTIMIZERS)
        _check_choice("parallel_strategy", parallel_strategy, _STRATEGIES)
        acq_func_kwargs = _check_kwargs("acq_func_kwargs", acq_func_kwargs, _ACQ_FUNC_KWARGS)
        acq_optimizer_kwargs = _check_kwargs("acq_optimizer_kwargs", acq_optimizer_kwargs,
                                             _ACQ_OPTIMIZER_KWARGS)
        self.random_state = random_state
        self.parallel_strategy = parallel_strategy
        self.max_draws = max_draws
        self._flat = FlatSpace(search_space)
        # Leaves with a single value are constants: skopt gets only the searched dimensions.
        self._dims = [i for i, leaf in enumerate(self._flat.leaves)
                      if leaf.kind not in (CATEGORICAL, ORDINAL) or leaf.size > 1]
        self._rng = random.Random(random_state)  # copies for parallel asks, fallback draws
        self._points: dict[str, list] = {}  # config key -> skopt point, proposed and not told
        self._untold: list[tuple[list, float]] = []  # results not yet told to skopt
        self._stale = False  # results were told without a model fit
        self.random_fallbacks = 0  # proposals drawn at random because the model's pick was seen
        self._opt = self._make_optimizer(base_estimator, n_initial_points, acq_func, acq_optimizer,
                                         model_queue_size, acq_func_kwargs, acq_optimizer_kwargs,
                                         initial_point_generator, n_jobs) if self._dims else None

    # ---- building the optimizer ----------------------------------------------------------------

    def _make_optimizer(self, base_estimator: Any, n_initial_points: int, acq_func: str,
                        acq_optimizer: str, model_queue_size: int | None, acq_func_kwargs: dict,
                        acq_optimizer_kwargs: dict, initial_point_generator: str, n_jobs: int) -> Any:
        from skopt import Optimizer
        from skopt.space import Categorical, Integer, Real

        dimensions = []
        for i in self._dims:
            leaf = self._flat.leaves[i]
            if leaf.kind == CATEGORICAL:
                dimensions.append(Categorical(list(range(leaf.size)), name=leaf.name))
            elif leaf.kind == ORDINAL:
                dimensions.append(Integer(0, leaf.size - 1, name=leaf.name))
            else:
                space: Any = leaf.space  # a gml_ray Real without step
                prior = "log-uniform" if space.log else "uniform"
                dimensions.append(Real(space.lower, space.upper, prior=prior, name=leaf.name))
        if isinstance(base_estimator, str):
            name = base_estimator.upper()
            _check_choice("base_estimator", name, _ESTIMATORS)
            if name == "GBRT":
                base_estimator = _gbrt(self._rng.randrange(_SEED_MAX), n_jobs)
            elif name == "DUMMY":
                # skopt's own DUMMY (no model) trips over newer scikit-learn; a model that is
                # never fitted, because the random phase never ends, is the same search.
                base_estimator, n_initial_points, initial_point_generator = "GP", _SEED_MAX, "random"
            else:
                base_estimator = name
        from threadpoolctl import ThreadpoolController
        self._threads = ThreadpoolController()  # after skopt's imports, so it sees their BLAS
        try:
            with self._quiet():
                return Optimizer(dimensions, base_estimator=base_estimator,
                                 n_initial_points=n_initial_points, acq_func=acq_func,
                                 acq_optimizer=acq_optimizer, random_state=self.random_state,
                                 model_queue_size=model_queue_size, acq_func_kwargs=acq_func_kwargs,
                                 acq_optimizer_kwargs=acq_optimizer_kwargs,
                                 initial_point_generator=initial_point_generator, n_jobs=n_jobs)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"scikit-optimize rejected the settings: {exc}") from None

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Around skopt calls: one BLAS thread, and skopt's warnings silenced.

        The model's matrices are small (one row per job), so BLAS threads gain nothing and
        contend with the jobs running on the same cores: on 2 busy cores, 40 GP rounds took
        5x longer with them. skopt warns when its pick was evaluated before and it draws a
        random point instead; that is expected and handled.
        """
        with warnings.catch_warnings(), self._threads.limit(limits=1):
            warnings.simplefilter("ignore")
            yield

    @property
    def optimizer(self) -> Any:
        """The ``skopt.Optimizer``, told every result so far (None when nothing is searched)."""
        self._flush()
        return self._opt

    # ---- ask -------------------------------------------------------------------------------------

    def get_config(self) -> dict | None:
        if len(self.seen) >= self._flat.size:
            return None
        if self._opt is None:  # every arg has a single value: the one config
            return self._propose(self._flat.decode([0] * len(self._flat)), [])
        x = self._ask()
        config = self._decode(x)
        if self.key(config) in self.seen:
            # The model's pick is pending, failed, or (in a discrete space) already run.
            self.random_fallbacks += 1
            for _ in range(self.max_draws):
                x = self._opt.space.rvs(random_state=self._rng.randrange(_SEED_MAX))[0]
                config = self._decode(x)
                if self.key(config) not in self.seen:
                    break
            else:
                log.info("no unseen config in %d random draws: the search ends", self.max_draws)
                return None
        return self._propose(config, [_plain(v) for v in x])

    def _ask(self) -> list:
        """skopt's next point; while others are pending, from a copy told a lie for each."""
        assert self._opt is not None  # built in __init__; None only for an exhausted space
        if not self._points:
            self._flush(fit=True)
            with self._quiet():
                return self._opt.ask()
        # The copy's model is the one asked, so the optimizer itself need not refit now.
        self._flush(fit=False)
        base = self._opt
        xi, yi = base.Xi, base.yi
        if not yi:
            lie = 0.0
        elif self.parallel_strategy == "cl_min":
            lie = min(yi)
        elif self.parallel_strategy == "cl_max":
            lie = max(yi)
        else:
            lie = sum(yi) / len(yi)
        pending = list(self._points.values())
        with self._quiet():
            # skopt's copy() refits on the results and telling the lies refits again: copy an
            # optimizer emptied for a moment, then fit once on results and lies together.
            base.Xi, base.yi = [], []
            try:
                opt = base.copy(random_state=self._rng.randrange(_SEED_MAX))
            finally:
                base.Xi, base.yi = xi, yi
            opt.tell(xi + pending, yi + [lie] * len(pending))
            return opt.ask()

    def _propose(self, config: dict, x: list) -> dict:
        self._points[self.key(config)] = x
        return self._proposed(config)

    def _decode(self, x: list) -> dict:
        coords = [0] * len(self._flat)
        for i, value in zip(self._dims, x):
            coords[i] = value
        return self._flat.decode(coords)

    # ---- tell ------------------------------------------------------------------------------------

    def _on_result(self, config: dict, reward: float, was_pending: bool) -> None:
        """A job's reward reaches the model at the next ``get_config``."""
        x = self._points.pop(self.key(config), None)
        if self._opt is None:
            return
        if x is None:  # told without being proposed here: a result from an earlier run
            coords = self._flat.encode(config)
            if coords is None:
                log.warning("a result for a config outside the search space is not told to skopt: %s",
                            config)
                return
            x = [coords[i] for i in self._dims]
        y = -sign(self.optimize_mode) * float(reward)  # skopt minimises
        self._untold.append((x, y))

    def _on_failure(self, config: dict, status: str) -> None:
        """A job without a reward: not told to the model; its config is never proposed again."""
        self._points.pop(self.key(config), None)

    def _flush(self, fit: bool = True) -> None:
        """Tell skopt the buffered results; with ``fit``, make sure its model has seen them all."""
        if self._opt is None:
            return
        if self._untold:
            xs = [x for x, _ in self._untold]
            ys = [y for _, y in self._untold]
            self._untold = []
            with self._quiet():
                self._opt.tell(xs, ys, fit=fit)
            self._stale = not fit
        elif fit and self._stale:
            with self._quiet():
                self._opt.tell([], [])  # refit on every result told without a fit
            self._stale = False

    def __len__(self) -> int:
        size = self._flat.size
        return sys.maxsize if math.isinf(size) else int(size) - len(self.seen)

    def __repr__(self) -> str:
        return f"SkoptSearcher(random_state={self.random_state!r}, " \
               f"optimize_mode={self.optimize_mode!r}, told={len(self.history)})"


def _plain(value: Any) -> Any:
    """A numpy scalar from skopt as the Python number skopt accepts back."""
    return value.item() if hasattr(value, "item") else value


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_kwargs(name: str, value: Any, known: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping, got {value!r}")
    for key in value:
        if key not in known:
            raise ValueError(f"{name} has no key {key!r} (known: {', '.join(known)})")
    return dict(value)


_QuantileGBRT: Any = None


def _gbrt(seed: int, n_jobs: int) -> Any:
    """skopt's GBRT surrogate, patched for the scikit-learn and numpy this project runs on.

    skopt 0.10.2's GradientBoostingQuantileRegressor lists ``BaseEstimator`` before
    ``RegressorMixin``, so newer scikit-learn does not see a regressor ("has to be a regressor"),
    and its ``predict(return_std=True)`` calls ``np.in1d``, gone from numpy 2.4.
    """
    global _QuantileGBRT
    from sklearn.ensemble import GradientBoostingRegressor
    from skopt.learning import GradientBoostingQuantileRegressor

    if _QuantileGBRT is None:
        class QuantileGBRT(GradientBoostingQuantileRegressor):
            def __sklearn_tags__(self) -> Any:  # noqa: D105
                tags = super().__sklearn_tags__()
                tags.estimator_type = "regressor"
                return tags

            def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:  # noqa: D102, N803
                if return_std and not return_quantiles:
                    by_q = dict(zip(self.quantiles, self.regressors_))
                    if not all(q in by_q for q in (0.16, 0.5, 0.84)):
                        raise ValueError("return_std needs the quantiles 0.16, 0.5 and 0.84")
                    mean, low, high = (by_q[q].predict(X) for q in (0.5, 0.16, 0.84))
                    return mean, (high - low) / 2.0
                return super().predict(X, return_std, return_quantiles)

        # defined here so that importing this module does not import skopt; named so pickle finds it
        QuantileGBRT.__qualname__ = QuantileGBRT.__name__ = "_QuantileGBRT"
        QuantileGBRT.__module__ = __name__
        _QuantileGBRT = QuantileGBRT
    return _QuantileGBRT(base_estimator=GradientBoostingRegressor(n_estimators=30, loss="quantile"),
                         random_state=seed, n_jobs=n_jobs)
