"""The MuJoCo benchmark's objective as plain Python (no Ray): a linear policy's mean return.

Follows LA-MCTS's ``functions/mujoco_functions.py`` on gymnasium's v5 environments:

* the policy is ``a = M @ ((s - mu) / sigma)`` with ``M = x.reshape(n_act, n_obs)``: no bias and no
  clipping by us (MuJoCo clamps the control; the control cost sees the raw action);
* Swimmer (2x8 = 16 dims) uses ``mu = 0, sigma = 1``; Hopper (3x11 = 33 dims) uses the fixed
  observation statistics of ARS's released Hopper-v1 policy;
* one evaluation is ``rollouts`` (default 3) episodes, each run until ``terminated or truncated``;
  its value is the mean return (LA-MCTS minimises ``-mean``; gml-ray maximises the mean).

Unlike LA-MCTS, resets are seeded: an evaluation given the same seed returns the same value, so a
result does not depend on which process ran it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_ROLLOUTS = 3


@dataclass(frozen=True)
class FuncSpec:
    """One benchmark function: its gymnasium env and the linear policy's shape and normalisation."""

    name: str
    env_id: str
    n_obs: int
    n_act: int
    mu: tuple[float, ...] = field(default=())  # empty: 0
    sigma: tuple[float, ...] = field(default=())  # empty: 1
    target: float | None = None  # the reward the manual's stop criterion uses (max_reward)

    @property
    def dims(self) -> int:
        return self.n_obs * self.n_act


HOPPER_MU = (1.41599384, -0.05478602, -0.25522216, -0.25404721, 0.27525085, 2.60889529, -0.0085352,
             0.0068375, -0.07123674, -0.05044839, -0.45569644)
HOPPER_SIGMA = (0.19805723, 0.07824488, 0.17120271, 0.32000514, 0.62401884, 0.82814161, 1.51915814,
                1.17378372, 1.87761249, 3.63482761, 5.7164752)

FUNC_TYPES: dict[str, FuncSpec] = {
    "swimmer": FuncSpec("swimmer", "Swimmer-v5", n_obs=8, n_act=2, target=325.0),
    "hopper": FuncSpec("hopper", "Hopper-v5", n_obs=11, n_act=3, mu=HOPPER_MU, sigma=HOPPER_SIGMA,
                       target=3120.0),
}


def func_spec(func_type: str) -> FuncSpec:
    try:
        return FUNC_TYPES[func_type]
    except KeyError:
        raise ValueError(f"unknown func_type {func_type!r} (one of {', '.join(FUNC_TYPES)})") from None


def policy_size(func_type: str) -> int:
    """How many numbers the search vector of ``func_type`` holds (16 for swimmer, 33 for hopper)."""
    return func_spec(func_type).dims


def rollout_seeds(seed: int, rollouts: int = DEFAULT_ROLLOUTS) -> list[int]:
    """The reset seeds of one evaluation's rollouts, derived from the evaluation's seed."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(rollouts)]


def job_seed(job_id: int, attempt: int = 1) -> int:
    """An evaluation's seed from its job id and attempt: any process running it gets the same."""
    return int(np.random.SeedSequence([int(job_id), int(attempt)]).generate_state(1)[0])


class Cancelled(Exception):
    """Raised inside :meth:`Objective.evaluate` when its ``should_stop`` callback says so."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Objective:
    """One benchmark function with its env, created once and reused by every evaluation.

    ``Objective("swimmer")(x, seed)`` returns the mean return of ``rollouts`` episodes;
    :meth:`evaluate` also returns each rollout's return and the env steps taken.
    """

    def __init__(self, func_type: str, rollouts: int = DEFAULT_ROLLOUTS) -> None:
        if not isinstance(rollouts, int) or rollouts < 1:
            raise ValueError(f"rollouts must be a positive integer, got {rollouts!r}")
        self.spec = func_spec(func_type)
        self.func_type, self.rollouts = func_type, rollouts
        import gymnasium as gym  # imported here: config validation must not need MuJoCo

        self.env = gym.make(self.spec.env_id, disable_env_checker=True)
        obs, act = self.env.observation_space.shape, self.env.action_space.shape
        if obs != (self.spec.n_obs,) or act != (self.spec.n_act,):  # a gymnasium that changed the env
            raise RuntimeError(f"{self.spec.env_id} has observations {obs} and actions {act}, "
                               f"expected ({self.spec.n_obs},) and ({self.spec.n_act},)")
        self.mu = np.asarray(self.spec.mu or np.zeros(self.spec.n_obs), dtype=np.float64)
        self.sigma = np.asarray(self.spec.sigma or np.ones(self.spec.n_obs), dtype=np.float64)

    @property
    def dims(self) -> int:
        return self.spec.dims

    def policy(self, x: Sequence[float]) -> np.ndarray:
        """The policy matrix ``M`` (n_act x n_obs) of a search vector ``x``."""
        vec = np.asarray(x, dtype=np.float64)
        if vec.shape != (self.dims,):
            raise ValueError(f"{self.func_type} needs a vector of {self.dims} numbers, got shape {vec.shape}")
        return vec.reshape(self.spec.n_act, self.spec.n_obs)

    def rollout(self, M: np.ndarray, seed: int | None,
                should_stop: Callable[[], str | None] | None = None) -> tuple[float, int]:
        """One episode with the policy ``M``; returns (its return, its steps)."""
        env, mu, sigma = self.env, self.mu, self.sigma
        s, _ = env.reset(seed=seed)
        total, steps = 0.0, 0
        while True:
            a = M @ ((s - mu) / sigma)
            s, r, terminated, truncated, _ = env.step(a)
            total += float(r)
            steps += 1
            if terminated or truncated:
                return total, steps
            if should_stop is not None and steps % 50 == 0:
                reason = should_stop()
                if reason:
                    raise Cancelled(reason)

    def evaluate(self, x: Sequence[float], seed: int | None = 0,
                 should_stop: Callable[[], str | None] | None = None) -> dict[str, Any]:
        """``{"value": mean return, "returns": [...], "steps": env steps, "seconds": ...}``.

        ``seed`` seeds the rollouts' resets (None: unseeded, as LA-MCTS did); ``should_stop`` is
        asked every 50 steps and a non-empty answer ends the evaluation with :class:`Cancelled`.
        """
        t0 = time.perf_counter()
        M = self.policy(x)
        seeds: list[int | None] = list(rollout_seeds(seed, self.rollouts)) if seed is not None \
            else [None] * self.rollouts
        returns, steps = [], 0
        for s in seeds:
            ret, n = self.rollout(M, s, should_stop)
            returns.append(ret)
            steps += n
        return {"value": float(np.mean(returns)), "returns": returns, "steps": steps,
                "seconds": time.perf_counter() - t0}

    def __call__(self, x: Sequence[float], seed: int | None = 0) -> float:
        return self.evaluate(x, seed)["value"]

    def close(self) -> None:
        self.env.close()


def evaluate(func_type: str, x: Sequence[float], seed: int | None = 0,
             rollouts: int = DEFAULT_ROLLOUTS) -> dict[str, Any]:
    """One evaluation with a fresh env (see :meth:`Objective.evaluate`)."""
    obj = Objective(func_type, rollouts)
    try:
        return obj.evaluate(x, seed)
    finally:
        obj.close()
