"""EvolutionSearcher: a genetic search, crossover and mutation of good configs (manual 2.3.5)."""
from __future__ import annotations

import logging
import math
import random
import sys
from typing import Any, Callable, cast

from gml_ray.optimize import sign
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.searchers.leaves import CATEGORICAL, ORDINAL, FlatSpace, Leaf
from gml_ray.space import Dict, Real, config_key
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.searchers.evolution")

STEP_SCALE = 0.1  # a mutation step moves a value by about this share of its range


@SEARCHERS.register_module(aliases=["EvolutionSearhcer"])  # the manual's spelling works too
class EvolutionSearcher(BaseSearcher):
    """A steady-state genetic algorithm over the search space; every individual is proposed once.

    Args:
        population_size: how many random individuals start the search, and how many of the best
            individuals with a reward form the population that parents are chosen from.
        mutate_prob: the chance that each value of a child is mutated.
        gen_trial_limit: how many attempts ``get_config`` makes to produce an individual not
            proposed before; when all fail the search is exhausted (None from then on).
        seed: seeds ``random.Random``; the same seed and the same results give the same configs.

    Contract:

    * The first ``population_size`` configs are random (the initial population). After that each
      config is a child: two parents, each the better of two random members of the population
      (the ``population_size`` best individuals so far), are crossed by copying one parent and
      swapping in a random segment of the other's values, then each value is mutated with
      probability ``mutate_prob``: resampled, or stepped to a neighbouring value (a larger
      learning rate, a smaller batch size); Categorical and Nested values are resampled.
    * While fewer than two individuals have a reward (many configs pending at once), more random
      individuals are proposed instead of children.
    * A job that ends without a reward (``job_failed``: ERROR, KILLED without a scalar, FILTERED)
      never becomes a parent and its config is never proposed again. ``history`` lists what was
      told, ``(config, reward)``, with reward None for those.
    * Results told for configs this searcher did not propose (a resumed task) join the
      population and count toward the initial population.
    """

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE, population_size: int = 32,
                 mutate_prob: float = 0.1, gen_trial_limit: int = 100,
                 seed: int | None = None) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        for name, value in (("population_size", population_size), ("gen_trial_limit", gen_trial_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(mutate_prob, bool) or not isinstance(mutate_prob, (int, float)) \
                or not 0 <= mutate_prob <= 1:
            raise ValueError(f"mutate_prob must be a number in [0, 1], got {mutate_prob!r}")
        self.population_size = population_size
        self.mutate_prob = float(mutate_prob)
        self.gen_trial_limit = gen_trial_limit
        self.seed = seed
        self._flat = FlatSpace(search_space)
        self._rng = random.Random(seed)
        self._genes: dict[str, list] = {}  # config_key -> coordinates, every individual known
        self._rewards: dict[str, float] = {}  # config_key -> reward, individuals with one
        self._exhausted = False

    # ---- ask -------------------------------------------------------------------------------------

    def get_config(self) -> dict | None:
        if self._exhausted:
            return None
        if len(self._genes) >= self._flat.size:
            self._exhausted = True
            return None
        # The initial population; also while fewer than two individuals have a reward to breed from.
        if len(self._genes) < self.population_size or len(self._rewards) < min(2, self.population_size):
            coords = self._try(self._random)
            if coords is not None:
                return self._propose(coords)
            if not self._rewards:  # no parent to breed from, and no unseen random individual
                self._exhausted = True
                log.info("no unseen individual in %d draws: the search ends", self.gen_trial_limit)
                return None
        coords = self._try(self._breed)
        if coords is None:
            self._exhausted = True
            log.info("%d attempts bred no unseen individual: the search ends", self.gen_trial_limit)
            return None
        return self._propose(coords)

    def _try(self, make: Callable[[], list]) -> list | None:
        """Up to ``gen_trial_limit`` individuals from ``make``; the first unseen one, or None."""
        for _ in range(self.gen_trial_limit):
            coords = make()
            if config_key(self._flat.decode(coords)) not in self._genes:
                return coords
        return None

    def _propose(self, coords: list) -> dict:
        config = self._flat.decode(coords)
        self._genes[self.key(config)] = coords
        return self._proposed(config)

    def _random(self) -> list:
        return [_sample(leaf, self._rng) for leaf in self._flat.leaves]

    def _breed(self) -> list:
        """One child: crossover of two tournament-selected parents, then mutation."""
        s = sign(self.optimize_mode)
        ranked = sorted(self._rewards, key=lambda k: -s * self._rewards[k])  # best first
        population = ranked[:self.population_size]
        first, second = self._select(population), self._select(population)
        child = self._crossover(self._genes[first], self._genes[second])
        for i, leaf in enumerate(self._flat.leaves):
            if self._rng.random() < self.mutate_prob:
                child[i] = _mutate(leaf, child[i], self._rng)
        return child

    def _select(self, population: list[str]) -> str:
        """Binary tournament: the better of two random members (ranked best first)."""
        a, b = self._rng.randrange(len(population)), self._rng.randrange(len(population))
        return population[min(a, b)]

    def _crossover(self, first: list, second: list) -> list:
        """``first`` with a random segment ``[i, j)`` of ``second`` swapped in."""
        n = len(first)
        if n < 2:
            return list(first if self._rng.random() < 0.5 else second)
        i, j = sorted(self._rng.sample(range(n + 1), 2))
        return list(first[:i]) + list(second[i:j]) + list(first[j:])

    # ---- tell ------------------------------------------------------------------------------------

    def _on_result(self, config: dict, reward: float, was_pending: bool) -> None:
        """A job's reward: its config may now be chosen as a parent."""
        key = self.key(config)
        if key not in self._genes:  # told without being proposed here: a result from an earlier run
            coords = self._flat.encode(config)
            if coords is None:
                log.warning("a result for a config outside the search space is ignored: %s", config)
                return
            self._genes[key] = coords
        self._rewards[key] = reward

    def _on_failure(self, config: dict, status: str) -> None:
        """A job without a reward: never a parent, and its config is never proposed again."""
        key = self.key(config)
        if key not in self._genes:
            self._genes[key] = self._flat.encode(config) or []
        self._rewards.pop(key, None)

    def __len__(self) -> int:
        if self._exhausted:
            return 0
        size = self._flat.size
        return sys.maxsize if math.isinf(size) else int(size) - len(self._genes)

    def __repr__(self) -> str:
        return f"EvolutionSearcher(population_size={self.population_size}, " \
               f"mutate_prob={self.mutate_prob}, seed={self.seed!r}, told={len(self.history)})"


def _sample(leaf: Leaf, rng: random.Random) -> Any:
    if leaf.kind in (CATEGORICAL, ORDINAL):
        return rng.randrange(leaf.size)
    space = cast(Real, leaf.space)  # the only space of a real leaf
    if space.log:
        return math.exp(rng.uniform(math.log(space.lower), math.log(space.upper)))
    return rng.uniform(space.lower, space.upper)


def _mutate(leaf: Leaf, coord: Any, rng: random.Random) -> Any:
    """A different value: resampled, or (ordered values only) a step up or down from ``coord``."""
    if leaf.kind in (CATEGORICAL, ORDINAL):
        if leaf.size < 2:
            return coord
        if leaf.kind == CATEGORICAL or rng.random() < 0.5:
            other = rng.randrange(leaf.size - 1)
            return other + (other >= coord)  # any index but coord
        size = max(1, round(abs(rng.gauss(0.0, STEP_SCALE * (leaf.size - 1)))))
        up = rng.random() < 0.5
        if (up and coord == leaf.size - 1) or (not up and coord == 0):
            up = not up  # at an end of the range only one direction moves
        return min(max(coord + (size if up else -size), 0), leaf.size - 1)
    if rng.random() < 0.5:
        return _sample(leaf, rng)
    space = cast(Real, leaf.space)  # the only space of a real leaf
    if space.log:
        low, high, value = math.log(space.lower), math.log(space.upper), math.log(coord)
        value = min(max(value + rng.gauss(0.0, STEP_SCALE * (high - low)), low), high)
        return math.exp(value)
    low, high = space.lower, space.upper
    return min(max(coord + rng.gauss(0.0, STEP_SCALE * (high - low)), low), high)
