"""PB2's explore step (Parker-Holder et al. 2020, "Provably Efficient Online Hyperparameter
Optimization with Population-Based Bandits"): instead of multiplying a donor's args by 0.8 or
1.2, a new member's Real and Int args are the maximum of a GP-UCB acquisition fitted on how much
each member's reward improved over an interval, given the args it trained with and when.

Data: every PBT decision of a member adds one point: (the decision's step, the member's args in
unit coordinates, log scale for ``log: true``) -> the change of its reward value since its
previous decision, in the task's optimize mode. The GP (scikit-learn's, a Matern 5/2 kernel with
one lengthscale per input plus white noise) takes the step as an input, so the fit weighs recent
intervals by how alike they are in time. The paper's time-varying kernel (a learned forgetting
factor on older points) is left out, the step input standing in for it, and so is its batch
diversity term (exploits come one at a time here, each with the newest data). Only the newest
:data:`WINDOW` points are kept.

Proposal: the UCB ``mean + kappa * std`` at the current step, over :data:`CANDIDATES` uniform
random points of the box and the donor's args, with ``kappa`` from GP-UCB's schedule
(``sqrt(2 log(n^(d/2+2) pi^2 / 0.3))``, Srinivas et al., as the paper uses it). Categorical args are
not modelled: they are explored as PBT does (a neighbouring choice, or resampled). Until
:data:`MIN_POINTS` points are known nothing is proposed and PBT's perturbation explores (a GP
on two or three points would send the donor's args anywhere in the box).
"""
from __future__ import annotations

import importlib
import math
import warnings
from typing import Any

import numpy as np

from gml_ray.space import Dict, Int, Real

MIN_POINTS = 4  # points before the GP is used (earlier: uniform draws)
WINDOW = 200  # the newest points the GP is fitted on
CANDIDATES = 1000  # random points of the box where the acquisition is evaluated


class Pb2Explorer:
    """Learns reward changes from PBT's decisions and proposes the Real and Int args of new members.

    ``names`` are the args it models (the mutable Real and Int ones of ``space``)."""

    def __init__(self, space: Dict, names: list[str], seed: int = 0) -> None:
        self.space, self.names = space, [n for n in names if isinstance(space[n], (Real, Int))]
        self.rng = np.random.default_rng(seed)
        self.points: list[tuple[float, list[float], float]] = []  # (step, unit args, reward change)
        if self.names:  # scikit-learn's import (about 1.5 s) now, not in the loop at the first exploit
            importlib.import_module("sklearn.gaussian_process")

    def observe(self, step: int, config: dict, change: float) -> None:
        """A member trained with ``config`` until ``step`` and its reward changed by ``change``
        (larger is better) since its previous decision."""
        if not self.names or not math.isfinite(change):
            return
        self.points.append((float(step), [self._to_unit(n, config[n]) for n in self.names], float(change)))
        del self.points[:-WINDOW]

    def propose(self, step: int, donor: dict) -> dict[str, Any]:
        """The modelled args for a new member continuing ``donor`` after ``step`` (the GP-UCB
        maximum); empty while fewer than :data:`MIN_POINTS` points are known."""
        if not self.names or len(self.points) < MIN_POINTS:
            return {}
        unit = self._ucb_argmax(float(step), np.array([self._to_unit(n, donor[n]) for n in self.names]))
        return {n: self._from_unit(n, float(u)) for n, u in zip(self.names, unit)}

    def _ucb_argmax(self, step: float, donor_unit: np.ndarray) -> np.ndarray:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        steps = np.array([p[0] for p in self.points])
        span = max(float(steps.max() - steps.min()), 1.0)
        t = (steps - steps.min()) / span
        x = np.column_stack([t, np.array([p[1] for p in self.points])])
        y = np.array([p[2] for p in self.points])
        d = x.shape[1]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.ones(d), (1e-2, 1e2), nu=2.5) \
            + WhiteKernel(1e-2, (1e-6, 1.0))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=int(self.rng.integers(2**31)))
        with warnings.catch_warnings():  # a lengthscale at its bound is no news for the user
            warnings.simplefilter("ignore")
            gp.fit(x, y)
        candidates = np.vstack([self.rng.random((CANDIDATES, d - 1)), donor_unit[None, :]])
        now = (step - steps.min()) / span
        mean, std = gp.predict(np.column_stack([np.full(len(candidates), now), candidates]), return_std=True)
        n = len(self.points)
        kappa = math.sqrt(2 * math.log(n ** (d / 2 + 2) * math.pi ** 2 / 0.3))
        best: np.ndarray = candidates[int(np.argmax(mean + kappa * std))]
        return best

    def _to_unit(self, name: str, value: Any) -> float:
        space = self.space[name]
        lo, hi, v = float(space.lower), float(space.upper), float(value)
        if isinstance(space, Real) and space.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, space.lower))
        return 0.5 if hi == lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))

    def _from_unit(self, name: str, u: float) -> float | int:
        space = self.space[name]
        lo, hi = float(space.lower), float(space.upper)
        if isinstance(space, Real) and space.log:
            return space.nearest(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return space.nearest(lo + u * (hi - lo))

