"""Samplers: where in the selected leaf's region LA-MCTS proposes its next batch of points.

Both work in [0, 1]^d on values to maximise and return ``batch`` distinct points inside the
region when the region has room for them.

* :class:`BOSampler` (the paper's default): a GP on the samples, expected improvement over
  candidates drawn in growing cubes around the leaf's samples until the cubes leave the region;
  a batch is picked greedily, each pick added to the GP as a fantasy at its predicted mean.
* :class:`TurboSampler` (the paper's choice for MuJoCo): a TuRBO-1 trust region centred on the
  leaf's best sample, a local ARD GP, and Thompson sampling over candidates in the trust region
  that also lie in the leaf's region. The trust region's side grows after ``succtol``
  improving iterations and shrinks after ``failtol`` failing ones, and restarts at its initial
  side once it falls below ``length_min``, as in TuRBO-1. Unlike the published code, which ran
  one whole TuRBO life cycle (30 fresh random points, then hundreds of evaluations) per MCTS
  iteration, one iteration here is one batch, so the tree is rebuilt after every batch and the
  starting points are the samples the leaf already holds.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .classifiers import GaussianProcess
from .tree import Path, in_region

MAX_GP_POINTS = 500  # exact GP fits cost O(n^3): fit on the samples nearest the area of interest


def nearest(x: torch.Tensor, center: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` rows of ``x`` nearest ``center``."""
    if x.shape[0] <= k:
        return torch.arange(x.shape[0], device=x.device)
    return torch.topk(((x - center) ** 2).sum(dim=1), k, largest=False).indices


def sobol(n: int, d: int, seed: int, device: torch.device) -> torch.Tensor:
    engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed)
    return engine.draw(n, dtype=torch.float64).to(device)


def expected_improvement(mean: torch.Tensor, var: torch.Tensor, best: float, xi: float) -> torch.Tensor:
    std = var.clamp_min(1e-18).sqrt()
    z = (mean - best - xi) / std
    normal = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    return (mean - best - xi) * normal.cdf(z) + std * normal.log_prob(z).exp()


def climb(points: torch.Tensor, acquisition: Callable[[torch.Tensor], torch.Tensor], path: Path,
          steps: int = 30, lr: float = 0.01) -> torch.Tensor:
    """Projected gradient ascent (Adam) of ``acquisition`` from ``points`` (k, d): each point stays
    in [0, 1]^d and in the region (a step that would leave it is undone); returns the ends."""
    x = points.detach().clone().requires_grad_(True)
    last = points.detach().clone()
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-acquisition(x).sum()).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
            if path:
                out = ~in_region(path, x)
                x[out] = last[out]
            last = x.detach().clone()
    return last


class BOSampler:
    """GP + EI inside the region (see the module docstring). The best ``n_climb`` candidates of
    each pick are climbed by gradient (random candidates alone are thin in 16-D)."""

    def __init__(self, n_anchors: int = 10, n_per_anchor: int = 2000, xi: float = 1e-3,
                 n_climb: int = 5) -> None:
        self.n_anchors, self.n_per_anchor, self.xi = n_anchors, n_per_anchor, xi
        self.n_climb = n_climb

    def candidates(self, anchors: torch.Tensor, path: Path, seed: int) -> torch.Tensor:
        """Points in the region: for each anchor, a cube that doubles until points leave it."""
        d = anchors.shape[1]
        found = []
        for i, anchor in enumerate(anchors):
            unit = sobol(self.n_per_anchor, d, seed + i, anchors.device) - 0.5
            side, inside = 1e-3, anchor[None, :]
            while side <= 2.0:
                points = (anchor + side * unit).clamp(0.0, 1.0)
                mask = in_region(path, points) if path else torch.ones(len(points), dtype=torch.bool)
                inside = points[mask]
                if not mask.all():
                    break
                side *= 2
            found.append(inside)
        return torch.cat(found)

    def propose(self, x: torch.Tensor, v: torch.Tensor, leaf_idx: torch.Tensor, path: Path,
                batch: int, pending: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(leaf_idx.numel(), generator=gen)[: self.n_anchors].to(leaf_idx.device)
        anchors = x[leaf_idx[order]]
        cands = self.candidates(anchors, path, seed)
        if cands.shape[0] > 10_000:
            cands = cands[torch.randint(cands.shape[0], (10_000,), generator=gen).to(cands.device)]
        fit = nearest(x, x[leaf_idx].mean(dim=0), MAX_GP_POINTS)
        gp = GaussianProcess(device=device).fit(x[fit], v[fit])
        if pending.numel():
            gp.add_fantasy(pending, gp.posterior(pending)[0])
        best = float(v.max())
        xi = self.xi * max(float(v.std()), 1e-9)

        def ei_at(points: torch.Tensor) -> torch.Tensor:
            return expected_improvement(*gp.posterior(points, differentiable=True), best, xi)

        chosen: list[torch.Tensor] = []
        for _ in range(min(batch, cands.shape[0])):
            mean, var = gp.posterior(cands)
            ei = expected_improvement(mean, var, best, xi)
            if self.n_climb and cands.shape[0]:
                top = torch.topk(ei, min(self.n_climb, ei.numel())).indices
                climbed = climb(cands[top], ei_at, path)
                cands = torch.cat([cands, climbed])
                ei = torch.cat([ei, expected_improvement(*gp.posterior(climbed), best, xi)])
            i = int(torch.argmax(ei))
            point = cands[i: i + 1]
            chosen.append(point)
            cands = torch.cat([cands[:i], cands[i + 1:]])
            gp.add_fantasy(point, gp.posterior(point)[0])  # kriging believer: the next pick moves on
        return torch.cat(chosen) if chosen else cands[:0]


class TurboSampler:
    """A TuRBO-1 trust region in the region (see the module docstring). Keeps state across
    iterations: call :meth:`record` with the values told since the last batch before proposing.
    """

    def __init__(self, dims: int, batch: int, length_init: float = 0.8, length_min: float = 0.5 ** 7,
                 length_max: float = 1.6, succtol: int = 3, failtol: int | None = None,
                 n_candidates: int | None = None, max_local: int = 300) -> None:
        self.dims = dims
        self.length_init, self.length_min, self.length_max = length_init, length_min, length_max
        self.length = length_init
        self.succtol = succtol
        # TuRBO-1: ceil(max(4 / batch, d / batch)) failing batches before the region shrinks
        self.failtol = failtol or math.ceil(max(4.0 / batch, dims / batch))
        self.n_candidates = n_candidates or min(100 * dims, 2000)
        self.max_local = max_local
        self.succ = self.fail = 0
        self.restarts = 0
        self._best: float | None = None

    def record(self, new_values: torch.Tensor, best_before: float | None) -> None:
        """Count the last batch as a success (it beat the best by 1e-3 of its size) or a failure."""
        if new_values.numel() == 0 or best_before is None:
            return
        if float(new_values.max()) > best_before + 1e-3 * abs(best_before):
            self.succ, self.fail = self.succ + 1, 0
        else:
            self.succ, self.fail = 0, self.fail + 1
        if self.succ >= self.succtol:
            self.length, self.succ = min(2.0 * self.length, self.length_max), 0
        elif self.fail >= self.failtol:
            self.length, self.fail = self.length / 2.0, 0
        if self.length < self.length_min:  # the trust region collapsed: start a fresh one
            self.length, self.restarts = self.length_init, self.restarts + 1

    def propose(self, x: torch.Tensor, v: torch.Tensor, leaf_idx: torch.Tensor, path: Path,
                batch: int, pending: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        center = x[leaf_idx[torch.argmax(v[leaf_idx])]]
        local = nearest(x, center, self.max_local)
        gp = GaussianProcess(device=device).fit(x[local], v[local])
        if pending.numel():
            gp.add_fantasy(pending, gp.posterior(pending)[0])
        # The box's sides follow the lengthscales (TuRBO): long where the function is flat.
        ls = gp.lengthscale.to(x)
        if ls.numel() == 1:
            ls = ls.expand(self.dims)
        weights = ls / ls.log().mean().exp()
        half = self.length * weights / 2.0
        low, high = (center - half).clamp(0.0, 1.0), (center + half).clamp(0.0, 1.0)
        d = self.dims
        cands = x[:0]
        for attempt in range(4):  # rejection by the region; a few rounds when it is thin here
            unit = sobol(self.n_candidates, d, seed * 7 + attempt, device)
            points = low + (high - low) * unit
            # Perturb only some coordinates of the centre (TuRBO's mask for high dimensions).
            perturb = torch.rand(self.n_candidates, d, generator=gen).to(device) <= min(20.0 / d, 1.0)
            none = ~perturb.any(dim=1)
            perturb[none, torch.randint(d, (int(none.sum()),), generator=gen).to(device)] = True
            points = torch.where(perturb, points, center.expand_as(points))
            if path:
                points = points[in_region(path, points)]
            cands = torch.cat([cands, points])
            if cands.shape[0] >= max(batch, 100):
                break
        if cands.shape[0] < batch:  # the region and the trust region barely meet: use the box
            cands = torch.cat([cands, low + (high - low) * sobol(self.n_candidates, d, seed + 1, device)])
        draws = gp.sample(cands, batch, generator=gen)
        chosen: list[int] = []
        for draw in draws:
            draw = draw.clone()
            draw[chosen] = -math.inf
            chosen.append(int(torch.argmax(draw)))
        return cands[chosen]
