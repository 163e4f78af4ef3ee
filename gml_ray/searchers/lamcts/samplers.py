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
from abc import ABC, abstractmethod
from typing import Callable

import torch

from gml_ray.searchers.lamcts.gp import NOISE_FLOOR, GaussianProcess, noise_bounds
from gml_ray.searchers.lamcts.tree import Path, in_region

# exact GP fits cost O(n^3), and the posterior over the bo sampler's 10,000 candidates O(n^2) each:
# fit on the samples nearest the area of interest (the published code fits on all of them)
MAX_GP_POINTS = 300


def nearest(x: torch.Tensor, center: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` rows of ``x`` nearest ``center``."""
    if x.shape[0] <= k:
        return torch.arange(x.shape[0], device=x.device)
    return torch.topk(((x - center) ** 2).sum(dim=1), k, largest=False).indices


def sobol(n: int, d: int, seed: int, device: torch.device) -> torch.Tensor:
    engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed)
    return engine.draw(n, dtype=torch.float64).to(device)


SQRT2, INV_SQRT_2PI = math.sqrt(2.0), 1.0 / math.sqrt(2.0 * math.pi)


def expected_improvement(mean: torch.Tensor, var: torch.Tensor, best: float, xi: float) -> torch.Tensor:
    """EI of a maximisation over ``best + xi``, in closed form (no distribution object per call)."""
    std = var.clamp_min(1e-18).sqrt()
    gain = mean - best - xi
    z = gain / std
    cdf = 0.5 * (1.0 + torch.erf(z / SQRT2))
    pdf = torch.exp(-0.5 * z * z) * INV_SQRT_2PI
    return gain * cdf + std * pdf


def improvement_over(v: torch.Tensor, xi: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """EI as a score of (mean, var) over the best of ``v``, with a margin of ``xi`` times the
    spread of ``v`` (a scale-free margin: rewards come in any units)."""
    best = float(v.max())
    margin = xi * max(float(v.std()), 1e-9) if v.numel() > 1 else xi

    def score(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return expected_improvement(mean, var, best, margin)
    return score


def climb(points: torch.Tensor, acquisition: Callable[[torch.Tensor], torch.Tensor], path: Path,
          steps: int = 30, lr: float = 0.01) -> torch.Tensor:
    """Projected gradient ascent (Adam) of ``acquisition`` from ``points`` (k, d), all k at once:
    each point stays in [0, 1]^d and in the region (a step that would leave it is undone);
    returns the ends."""
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
                inside = in_region(path, x)
                x.copy_(torch.where(inside[:, None], x, last))
            last = x.detach().clone()
    return last


def kriging_believer(gp: GaussianProcess, cands: torch.Tensor, batch: int,
                     score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     factor: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
                     ) -> torch.Tensor:
    """Indices of ``batch`` distinct candidates picked greedily by ``score(mean, var)`` (original
    units), each pick added to the GP as a fantasy observed at its posterior mean. ``factor``:
    ``gp.factor(cands)`` when the caller has it already.

    The same picks as calling ``add_fantasy`` after each, without refactorising: a fantasy at
    the mean leaves the posterior mean unchanged and lowers the variance by ``c(x, p)^2 /
    (var(p) + noise)``, with c the posterior covariance, itself updated by the earlier picks'
    rank-one terms. Indices stay on the device (no host read per pick).
    """
    mean, var, v = gp.factor(cands) if factor is None else factor  # (gp.factor of cands)
    mean = mean * gp.y_std + gp.y_mean
    scale = gp.y_std ** 2
    m, picks = cands.shape[0], min(batch, cands.shape[0])
    taken = torch.zeros(m, dtype=torch.bool, device=cands.device)
    chosen: list[torch.Tensor] = []
    terms = torch.empty(picks, m, dtype=var.dtype, device=var.device)  # u_i: the rank-one updates
    for t in range(picks):
        j = torch.argmax(score(mean, var * scale).masked_fill(taken, -math.inf)).reshape(1)
        taken = taken.index_fill(0, j, True)
        chosen.append(j)
        # c(x, p) = k(x, p) - v_x . v_p - sum_i u_i(x) u_i(p); v (n, m) is read in place (a row
        # vector times v), not copied to (m, n)
        c = gp.kernel(cands, cands.index_select(0, j))[:, 0] - v.index_select(1, j)[:, 0] @ v
        if t:
            c = c - terms[:t].index_select(1, j)[:, 0] @ terms[:t]
        u = c / (var.index_select(0, j) + gp.noise).sqrt()
        var = (var - u * u).clamp_min(1e-12)
        terms[t] = u
    return torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long, device=cands.device)


class Sampler(ABC):
    """Where in the selected region the next batch goes. One instance lives as long as its
    searcher, so it may keep state across iterations (a warm GP, a trust region)."""

    @abstractmethod
    def propose(self, x: torch.Tensor, v: torch.Tensor, leaf_idx: torch.Tensor, path: Path,
                batch: int, pending: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
        """Called once an iteration, after the tree is built: ``x`` (n, d) and ``v`` (n,) are every
        sample (values to maximise), ``leaf_idx`` the samples of the selected leaf, ``path`` the
        splits from the root to it (empty: the whole box), ``pending`` the points proposed and not
        told yet (k, d). Returns up to ``batch`` points (m, d) in [0, 1]^d, inside the region when
        it has room for them, different from each other; the same arguments and ``seed`` give
        the same points."""

    def record(self, new_values: torch.Tensor, best_before: float) -> None:  # noqa: B027
        """Called at the start of an iteration with the values told since the previous one and
        the best value before them. Default: nothing (a sampler without a per-batch state)."""

    def restart(self) -> None:  # noqa: B027
        """Called before ``propose`` in every iteration while the search is stalled (see
        ``stall_patience``): drop what was learnt about the current basin. Default: nothing."""


class WarmGPSampler(Sampler):
    """A sampler that fits a GP each iteration, warm-started from the previous iteration's
    hyperparameters (``warm_steps`` Adam steps instead of 50 from scratch; ``_gp = None``
    forgets them). ``noise_floor`` and ``gp_prior`` go to :class:`GaussianProcess`."""

    def __init__(self, noise_floor: float, gp_prior: bool, warm_steps: int) -> None:
        self.noise_bounds = noise_bounds(noise_floor)
        self.gp_prior = gp_prior
        self.warm_steps = warm_steps
        self._gp: GaussianProcess | None = None

    def fit_gp(self, x: torch.Tensor, v: torch.Tensor, pending: torch.Tensor,
               device: torch.device) -> GaussianProcess:
        """The GP on ``x``, ``v``, kept for the next warm start, with the ``pending`` points
        added as fantasies at their posterior mean."""
        gp = GaussianProcess(device=device, noise_bounds=self.noise_bounds,
                             prior=self.gp_prior).fit(
            x, v, init=self._gp, steps=None if self._gp is None else self.warm_steps)
        self._gp = gp
        if pending.numel():
            gp.add_fantasy(pending, gp.posterior(pending)[0])
        return gp


class BOSampler(WarmGPSampler):
    """GP + EI inside the region (see the module docstring). The best ``n_climb`` x batch
    candidates are climbed by gradient, all at once (random candidates alone are thin in 16-D);
    the batch is then picked greedily among all candidates by kriging believer. The GP's
    hyperparameters start from the previous iteration's (``warm_steps`` Adam steps instead of
    50 from scratch)."""

    def __init__(self, n_anchors: int = 10, n_per_anchor: int = 1000, xi: float = 1e-3,
                 n_climb: int = 5, climb_steps: int = 30, warm_steps: int = 15,
                 n_probe: int = 200, kappa: float = 2.0,
                 noise_floor: float = NOISE_FLOOR, gp_prior: bool = False) -> None:
        super().__init__(noise_floor, gp_prior, warm_steps)
        self.n_anchors, self.n_per_anchor, self.xi = n_anchors, n_per_anchor, xi
        self.n_probe = n_probe
        self.n_climb, self.climb_steps = n_climb, climb_steps
        self._explore = False
        self.kappa = kappa

    def restart(self) -> None:
        """Forget the GP's hyperparameters and explore: the next proposal fits the GP from scratch
        and picks by the upper confidence bound ``mean + kappa sd`` instead of EI (GP-UCB; EI
        with a small xi keeps refining the basin it is stuck in)."""
        self._gp = None
        self._explore = True

    def candidates(self, anchors: torch.Tensor, path: Path, seed: int) -> torch.Tensor:
        """Points in the region: for each anchor, a cube that doubles until points leave it.

        All anchors' cubes are tested together, one region test per doubling, on the first
        ``n_probe`` of each cube's points; the full cube is drawn at the side where the probe
        first left the region (the published code tests every point of every cube), and its
        points outside the region are dropped."""
        k, d = anchors.shape
        n = self.n_per_anchor
        unit = sobol(k * n, d, seed, anchors.device).reshape(k, n, d) - 0.5
        probe = unit[:, : self.n_probe]
        final = torch.full((k,), 2.0 ** 10 * 1e-3, dtype=anchors.dtype, device=anchors.device)
        active = torch.arange(k, device=anchors.device)
        side = 1e-3
        while side <= 2.0 and path and active.numel():
            points = (anchors[active, None, :] + side * probe[active]).clamp(0.0, 1.0)
            inside = in_region(path, points.reshape(-1, d)).reshape(active.numel(), -1).all(dim=1)
            final[active[~inside]] = side
            active = active[inside]  # these stay in: double again
            side *= 2
        points = (anchors[:, None, :] + final[:, None, None] * unit).clamp(0.0, 1.0).reshape(-1, d)
        return points[in_region(path, points)] if path else points

    def propose(self, x: torch.Tensor, v: torch.Tensor, leaf_idx: torch.Tensor, path: Path,
                batch: int, pending: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(leaf_idx.numel(), generator=gen)[: self.n_anchors].to(leaf_idx.device)
        anchors = x[leaf_idx[order]]
        cands = self.candidates(anchors, path, seed)
        if cands.shape[0] > 10_000:
            cands = cands[torch.randint(cands.shape[0], (10_000,), generator=gen).to(cands.device)]
        fit = nearest(x, x[leaf_idx].mean(dim=0), MAX_GP_POINTS)
        gp = self.fit_gp(x[fit], v[fit], pending, device)
        improvement = improvement_over(v, self.xi)
        explore, self._explore = self._explore, False

        def ei(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
            if explore:
                return mean + self.kappa * var.clamp_min(0.0).sqrt()
            return improvement(mean, var)

        factor = gp.factor(cands)  # computed once: for the climb's starts and for the batch
        if self.n_climb and cands.shape[0]:
            score = ei(factor[0] * gp.y_std + gp.y_mean, factor[1] * gp.y_std ** 2)
            top = torch.topk(score, min(self.n_climb * batch, score.numel())).indices
            climbed = climb(cands[top], lambda p: ei(*gp.posterior(p, differentiable=True)), path,
                            steps=self.climb_steps)
            more = gp.factor(climbed)
            cands = torch.cat([cands, climbed])
            factor = (torch.cat([factor[0], more[0]]), torch.cat([factor[1], more[1]]),
                      torch.cat([factor[2], more[2]], dim=1))
        return cands[kriging_believer(gp, cands, batch, ei, factor)]


class TurboSampler(WarmGPSampler):
    """A TuRBO-1 trust region in the region (see the module docstring). Keeps state across
    iterations: call :meth:`record` with the values told since the last batch before proposing.

    ``ei_share`` of the picks (over the batches, in turn: every other pick at 0.5) go to the
    candidate of highest expected improvement, the others to Thompson sampling as in TuRBO. A
    departure from TuRBO: Thompson sampling alone explores the trust region widely and climbed
    reliably but slowly; EI alone climbed fast and stalled on more seeds; half of each
    (Swimmer, tuning seeds 200-259: benchmarks/README.md) did better than either.

    ``noise_floor``: the GP's smallest noise variance, in units of the values' variance. TuRBO's
    5e-4 lets the GP interpolate every value, noise included, with short lengthscales; on Swimmer
    (whose return over random resets is bimodal near good policies) it learnt 5e-4 to 0.02. With
    0.05, Swimmer reached 325 within 150 evaluations on 49 of 60 tuning seeds, against 44
    (benchmarks/README.md, "sixth pass").

    ``gp_prior``: fit the GP under weak priors on its hyperparameters (``GaussianProcess``'s
    ``prior``). The region's sides follow the lengthscales, and maximum likelihood on few points
    sends some to their upper bound; with the priors Swimmer's median fell by 6 to 10
    evaluations on each of three seed sets ("seventh pass").
    """

    def __init__(self, dims: int, batch: int, length_init: float = 0.8, length_min: float = 0.5 ** 7,
                 length_max: float = 1.6, succtol: int = 3, failtol: int | None = None,
                 n_candidates: int | None = None, max_local: int = 300,
                 warm_steps: int = 15, n_thompson: int = 512, ei_share: float = 0.5,
                 noise_floor: float = NOISE_FLOOR, gp_prior: bool = False) -> None:
        if not 0.0 <= ei_share <= 1.0:
            raise ValueError(f"ei_share must be in [0, 1], got {ei_share!r}")
        super().__init__(noise_floor, gp_prior, warm_steps)
        self.dims = dims
        self.ei_share = ei_share
        self._picks = 0  # picks made so far: which of the next ones go to EI
        self.length_init, self.length_min, self.length_max = length_init, length_min, length_max
        self.length = length_init
        self.succtol = succtol
        # TuRBO-1: ceil(max(4 / batch, d / batch)) failing batches before the region shrinks
        self.failtol = failtol or math.ceil(max(4.0 / batch, dims / batch))
        self.n_candidates = n_candidates or min(100 * dims, 2000)
        self.max_local = max_local
        self.n_thompson = max(n_thompson, batch)
        self.succ = self.fail = 0
        self.restarts = 0
        self._stalled = False  # restarted for the current stall already
        self._best: float | None = None

    def restart(self) -> None:
        """A fresh trust region (TuRBO's restart) and a GP fitted from scratch, once a stall:
        the calls that follow until a batch improves the best leave the region to shrink (a
        region reset every iteration never narrows, and stayed wide and stuck on some seeds)."""
        if self._stalled:
            return
        self._stalled = True
        self.length, self.succ, self.fail, self._gp = self.length_init, 0, 0, None

    def record(self, new_values: torch.Tensor, best_before: float | None) -> None:
        """Count the last batch as a success (it beat the best by 1e-3 of its size) or a failure."""
        if new_values.numel() == 0 or best_before is None:
            return
        if float(new_values.max()) > best_before + 1e-3 * abs(best_before):
            self.succ, self.fail, self._stalled = self.succ + 1, 0, False
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
        gp = self.fit_gp(x[local], v[local], pending, device)
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
        if cands.shape[0] > self.n_thompson:
            # A joint draw over m candidates costs an m x m Cholesky: draw over the n_thompson
            # with the highest upper bound (mean + 3 sd); a draw's maximum is all but never
            # outside them.
            mean, var = gp.posterior(cands)
            cands = cands[torch.topk(mean + 3.0 * var.sqrt(), self.n_thompson).indices]
        k = min(batch, cands.shape[0])
        n_ei = self._ei_picks(k)
        taken = torch.zeros(cands.shape[0], dtype=torch.bool, device=cands.device)
        chosen: list[torch.Tensor] = []
        if n_ei:
            picks = kriging_believer(gp, cands, n_ei, improvement_over(v, 1e-3))
            taken = taken.index_fill(0, picks, True)
            chosen.append(picks)
        if k > n_ei:
            draws = gp.sample(cands, k - n_ei, generator=gen)
            for draw in draws:  # each draw's best candidate not taken yet
                j = torch.argmax(draw.masked_fill(taken, -math.inf)).reshape(1)
                taken = taken.index_fill(0, j, True)
                chosen.append(j)
        return cands[torch.cat(chosen)]

    def _ei_picks(self, k: int) -> int:
        """How many of the next ``k`` picks go to EI: pick i (counted over all batches) does
        when floor((i + 1) share) > floor(i share), so the share holds even for batches of 1."""
        first, self._picks = self._picks, self._picks + k
        return math.floor(self._picks * self.ei_share) - math.floor(first * self.ei_share)
