"""OptunaSearcher: Optuna's samplers behind gml-ray's ask/tell contract.

Optuna is an optional extra (``pip install 'gml-ray[optuna]'``); it is imported when an
OptunaSearcher is built, and its absence is then a one-line config error naming the extra.
"""
from __future__ import annotations

import importlib
import logging
import math
import random
import sys
from typing import Any

from gml_ray.objectives import OutcomeSpec
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.searchers.leaves import CATEGORICAL, ORDINAL, FlatSpace, Leaf
from gml_ray.space import Dict, Int, config_key
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.searchers.optuna")

SAMPLERS = {"tpe": "TPESampler", "cmaes": "CmaEsSampler", "gp": "GPSampler",
            "random": "RandomSampler", "qmc": "QMCSampler", "nsga2": "NSGAIISampler",
            "nsga3": "NSGAIIISampler"}
SINGLE_OBJECTIVE = ("cmaes",)  # samplers Optuna runs on one objective only
INSTALL_HINT = "pip install 'gml-ray[optuna]'"
_PLAIN = (type(None), bool, int, float, str)  # what Optuna's CategoricalDistribution takes


def import_optuna(sampler: str = "tpe") -> Any:
    """The optuna module, or ImportError with the one line that says how to install it.

    ``sampler: cmaes`` also needs the ``cmaes`` package (in the extra), which Optuna would only
    import at the first ask, in the middle of the run.
    """
    for name in ("optuna", "cmaes") if sampler == "cmaes" else ("optuna",):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{name} is not installed ({exc}); install the extra: "
                              f"{INSTALL_HINT}") from None
        if name == "optuna":
            optuna = module
    return optuna


@SEARCHERS.register_module()
class OptunaSearcher(BaseSearcher):
    """Asks an in-memory Optuna study for configs and tells it every result.

    Settings: ``sampler`` (``tpe``, ``cmaes``, ``gp``, ``random``, ``qmc``, ``nsga2``,
    ``nsga3``; default ``tpe``),
    ``sampler_kwargs`` (passed to the sampler's constructor as they are, e.g.
    ``{n_startup_trials: 5, multivariate: true}``), ``seed`` (the sampler's seed), and
    ``max_duplicates`` (see below).

    Space (one Optuna parameter per searched value, named as in ``Dict.kwspaces``, e.g.
    ``lr``, ``config.epochs``, ``_nested0``): a Categorical is a ``CategoricalDistribution``
    over its values when they are all None/bool/int/float/str, else over their indices; a
    Nested arg is a categorical over the index of its dicts; Int is an ``IntDistribution``
    (with its ``step``); Real is a ``FloatDistribution`` (``log``, or ``step``: the value is then
    the grid point gml-ray's Real lists); the args of a File arg are searched the same way.

    Contract:

    * The study's direction is ``optimize_mode``; rewards are told as they are. With several
      objectives (``outcome_spec``) the study has one direction per objective and is told every
      objective's value; every sampler but ``cmaes`` takes several.
    * Constraints are set on each trial before it is told (``trial.set_constraint(text, value)``,
      named by the constraint's text; the value is its violation, <= 0 when it holds), which
      ``tpe``, ``gp``, ``nsga2`` and ``nsga3`` use; with ``cmaes`` an infeasible job's reward is
      learnt as a penalty (:class:`BaseSearcher`). A job that never reported a constrained
      scalar is told FAIL (it has no violation to tell).
    * Same seed, same results, same order: the same configs as a raw Optuna study with the same
      sampler that suggests the same distributions in the same order (``study.ask(dists)``)
      and is told the same values (``tests/searchers/test_searchers_optuna.py`` checks it).
    * Several configs may be outstanding (``parallel_size`` > 1): each is a RUNNING Optuna trial
      until its job ends, as with Optuna's own ask/tell; the sampler sees them as it would
      (TPE's ``constant_liar``, CMA-ES's generations...).
    * A job that ends without a reward (``job_failed``: ERROR, KILLED without a scalar,
      FILTERED) is told as a FAIL trial; samplers ignore those. An EARLY_STOPPED job's best
      value so far is told as its value (the scheduler tells it as a result).
    * No config is proposed twice. A trial whose config was already proposed (a discrete space,
      NSGA-II's children that copy a parent) is told what that config's job got, as raw Optuna
      running it again on a deterministic objective would be (so a study stays what raw Optuna's
      is; Optuna's own advice for repeated params), or FAIL when that job failed or still runs;
      Optuna is then asked again, up to ``max_duplicates`` times; then an unseen
      config drawn at random is proposed as a fixed trial (counted in ``random_fallbacks``); a
      finite space ends with None once every config was proposed.
    * On ``--resume`` the scheduler tells every earlier result before the first ask: each
      becomes a finished trial (``study.add_trial``), COMPLETE with its reward or FAIL, so the
      study continues where it was. The sampler is new, with the same seed, so it draws again
      what it drew before while its draws do not depend on the results (random, QMC, TPE's
      startup trials): those repeats are told FAIL and skipped (not counted against
      ``max_duplicates``), and the resumed search goes on with the configs the uninterrupted one
      would have proposed next. (Raw Optuna, reloading a study with a seeded sampler, would run
      the repeats again.)
    """

    multi_objective = True

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE, sampler: str = "tpe",
                 sampler_kwargs: dict | None = None, seed: int | None = None,
                 max_duplicates: int = 20, outcome_spec: OutcomeSpec | None = None) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        self.outcome_spec = outcome_spec
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if isinstance(max_duplicates, bool) or not isinstance(max_duplicates, int) or max_duplicates < 0:
            raise ValueError(f"max_duplicates must be an integer >= 0, got {max_duplicates!r}")
        if sampler_kwargs is None:
            sampler_kwargs = {}
        if not isinstance(sampler_kwargs, dict):
            raise ValueError(f"sampler_kwargs must be a mapping, got {sampler_kwargs!r}")
        if "seed" in sampler_kwargs:
            raise ValueError("sampler_kwargs: give the seed as the searcher's `seed`, not here")
        optuna = import_optuna(sampler)
        self._optuna = optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no INFO line per told trial
        self.sampler_name = sampler
        self.seed = seed
        self.max_duplicates = max_duplicates
        self._flat = FlatSpace(search_space)
        self.distributions = {leaf.name: _distribution(optuna, leaf) for leaf in self._flat.leaves}
        spec = outcome_spec
        if spec is not None and spec.multi and sampler in SINGLE_OBJECTIVE:
            raise ValueError(f"sampler {sampler} optimises one objective; with several use "
                             f"{', '.join(s for s in SAMPLERS if s not in SINGLE_OBJECTIVE)}")
        cls = getattr(optuna.samplers, SAMPLERS[sampler])
        self.handles_constraints = sampler != "cmaes"  # random and QMC learn nothing to mislead
        try:
            self.sampler = cls(seed=seed, **sampler_kwargs)
        except TypeError as exc:
            raise ValueError(f"sampler_kwargs: {SAMPLERS[sampler]} rejected them: {exc}") from None
        if spec is not None and spec.multi:
            self.study = optuna.create_study(directions=[m.value for m in spec.modes], sampler=self.sampler)
        else:
            direction = OptimizeMode.parse(optimize_mode).value
            self.study = optuna.create_study(direction=direction, sampler=self.sampler)
        self._rng = random.Random(seed)  # fallback draws only
        self._trials: dict[str, Any] = {}  # config key -> its RUNNING trial
        self.duplicates = 0  # Optuna trials told FAIL because their config was proposed before
        self.random_fallbacks = 0
        self._replays = 0  # results told from an earlier run: duplicates those may replay are free
        # config key -> (value(s), [(constraint, violation)]) its trial was told COMPLETE with
        self._told: dict[str, tuple[Any, list[tuple[str, float]]]] = {}

    # ---- ask -------------------------------------------------------------------------------------

    def get_config(self) -> dict | None:
        if len(self.seen) >= self._flat.size:
            return None
        budget = self.max_duplicates
        while budget >= 0:
            trial = self.study.ask(self.distributions)
            config = self._decode(trial.params)
            key = config_key(config)
            if key not in self.seen:
                return self._propose(config, key, trial)
            self.duplicates += 1
            if self._replays:  # a rebuilt seeded sampler replaying an earlier run's draws
                self._replays -= 1
                self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            else:
                budget -= 1
                self._tell_again(trial, key)
        # Optuna keeps picking proposed configs: draw an unseen one and give it to the study as a
        # fixed trial, so its result is told like any other.
        self.random_fallbacks += 1
        for _ in range(1000):
            config = self.space.sample(self._rng)
            key = config_key(config)
            if key not in self.seen:
                self.study.enqueue_trial(self._params(config), skip_if_exists=False)
                trial = self.study.ask(self.distributions)
                config = self._decode(trial.params)  # the enqueued params: the drawn config
                return self._propose(config, config_key(config), trial)
        log.info("no unseen config in 1000 random draws: the search ends")
        return None

    def _propose(self, config: dict, key: str, trial: Any) -> dict:
        self._trials[key] = trial
        return self._proposed(config)

    def _tell_again(self, trial: Any, key: str) -> None:
        """Tell a repeated config's trial what its first trial was told (FAIL if nothing yet)."""
        told = self._told.get(key)
        if told is None:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            return
        value, constraints = told
        for text, violation in constraints:
            trial.set_constraint(text, violation)
        self.study.tell(trial, value)

    def _decode(self, params: dict[str, Any]) -> dict:
        coords = []
        for leaf in self._flat.leaves:
            value = params[leaf.name]
            if leaf.kind == CATEGORICAL:
                coords.append(leaf.coord(value) if _plain_choices(leaf) else int(value))
            elif leaf.kind == ORDINAL:
                coords.append(_grid_index(leaf, value))
            else:
                coords.append(float(value))
        return self._flat.decode(coords)

    def _params(self, config: dict) -> dict[str, Any] | None:
        """The Optuna params of a config, or None when it is not in the space."""
        coords = self._flat.encode(config)
        if coords is None:
            return None
        params = {}
        for leaf, coord in zip(self._flat.leaves, coords):
            if leaf.kind == CATEGORICAL:
                params[leaf.name] = leaf.space.data[coord] if _plain_choices(leaf) else coord  # type: ignore[attr-defined]
            elif leaf.kind == ORDINAL:
                params[leaf.name] = leaf.value(coord)
            else:
                params[leaf.name] = coord
        return params

    # ---- tell ------------------------------------------------------------------------------------

    def _on_result(self, config: dict, reward: float, was_pending: bool) -> None:
        """Tell the config's trial its reward (COMPLETE), or every objective's value."""
        outcome = self.outcomes.get(self.key(config))
        if outcome is None:
            self._finish(config, reward)
        elif any(math.isinf(v) for v in outcome.violations):  # a constrained scalar never reported
            self._finish(config, None)
        else:
            values = list(outcome.values) if self.outcome_spec is not None and self.outcome_spec.multi else reward
            self._finish(config, values, list(outcome.violations))  # type: ignore[arg-type]


    def _on_failure(self, config: dict, status: str) -> None:
        """Tell the config's trial it failed; its config is never proposed again."""
        self._finish(config, None)

    def _finish(self, config: dict, value: float | list[float] | None,
                violations: list[float] | None = None) -> None:
        key = self.key(config)
        state = self._optuna.trial.TrialState
        trial = self._trials.pop(key, None)
        constraints = self.outcome_spec.constraints if self.outcome_spec is not None and value is not None \
            and violations is not None and self.handles_constraints else ()
        told = [(c.text, v) for c, v in zip(constraints, violations or ())]
        if value is not None:
            self._told[key] = (value, told)
        if trial is not None:
            if value is None:
                self.study.tell(trial, state=state.FAIL)
            else:
                for text, violation in told:
                    trial.set_constraint(text, violation)
                self.study.tell(trial, value)
            return
        # Told without being proposed here: a result from an earlier run (--resume).
        params = self._params(config)
        if params is None:
            log.warning("a result for a config outside the search space is not told to Optuna: %s",
                        config)
            return
        self._replays += 1
        dists = {name: self.distributions[name] for name in params}
        kwargs: dict[str, Any] = {"state": state.FAIL} if value is None else \
            {"values": value} if isinstance(value, list) else {"value": value}
        frozen = self._optuna.trial.create_trial(params=params, distributions=dists, **kwargs)
        for text, violation in told:
            frozen.set_constraint(text, violation)
        self.study.add_trial(frozen)

    def warm_started(self, told: int) -> None:
        # Other tasks' results: this sampler never drew them, so a proposal of one of their
        # configs is a repeat told its known value (and counted), not a free replay.
        self._replays = max(0, self._replays - told)

    def __len__(self) -> int:
        size = self._flat.size
        return sys.maxsize if math.isinf(size) else int(size) - len(self.seen)

    def __repr__(self) -> str:
        return f"OptunaSearcher(sampler={self.sampler_name!r}, seed={self.seed!r}, " \
               f"optimize_mode={self.optimize_mode!r}, told={len(self.history)})"


def _plain_choices(leaf: Leaf) -> bool:
    """Whether a categorical leaf's choices go to Optuna as they are (else: their indices)."""
    data = leaf.space.data  # type: ignore[attr-defined]
    if not all(type(c) in _PLAIN for c in data):
        return False
    # Optuna finds a choice with ==: 1, 1.0 and True would be one choice to it.
    return len(set(data)) == len(data)


def _distribution(optuna: Any, leaf: Leaf) -> Any:
    dist = optuna.distributions
    space: Any = leaf.space
    if leaf.kind == CATEGORICAL:
        choices = list(space.data) if _plain_choices(leaf) else list(range(leaf.size))
        return dist.CategoricalDistribution(choices)
    if leaf.kind == ORDINAL:
        if isinstance(space, Int):
            return dist.IntDistribution(space.lower, space.lower + (leaf.size - 1) * space.step,
                                        step=space.step)
        grid = space.data
        return dist.FloatDistribution(space.lower, space.lower + (len(grid) - 1) * space.step,
                                      step=space.step)
    return dist.FloatDistribution(space.lower, space.upper, log=space.log)


def _grid_index(leaf: Leaf, value: Any) -> int:
    """The grid index of an Int or stepped-Real value from Optuna (the nearest grid point)."""
    space: Any = leaf.space
    i = int(round((float(value) - space.lower) / space.step))
    return min(max(i, 0), leaf.size - 1)
