"""2-means for LA-MCTS's splits, in torch: k-means++ starts, Lloyd steps, several problems in one
padded batch (see :mod:`.tensors` for the contracts the models share)."""
from __future__ import annotations

import math

import torch

from gml_ray.searchers.lamcts.tensors import CLS_DTYPE, as_float, pad_stack, sq_dist


def _kmeans_pp(x: torch.Tensor, valid: torch.Tensor, k: int, firsts: torch.Tensor,
               draws: torch.Tensor) -> torch.Tensor:
    """Greedy k-means++ seeding (as scikit-learn: 2 + log k candidates per centre, keep the best)
    of a batch of problems x (P, N, f) with real rows ``valid`` (P, N): ``firsts`` (P,) the first
    centre's row, ``draws`` (P, k - 1, trials) uniform draws in [0, 1). Returns (P, k, f)."""
    P, N, f = x.shape
    rows = torch.arange(P, device=x.device)
    n = valid.sum(1)
    centers = [x[rows, firsts]]
    closest = sq_dist(x, centers[0][:, None, :])[..., 0] * valid
    for c in range(1, k):
        total = closest.sum(1, keepdim=True)
        u = draws[:, c - 1]
        by_weight = torch.searchsorted(closest.cumsum(1), u * total)
        # every point sits on a centre already: any point will do
        cand = torch.where(total > 0, by_weight, (u * n[:, None]).long())
        cand = torch.minimum(cand, (n - 1)[:, None])
        d_cand = torch.minimum(closest[:, None, :],
                               sq_dist(x[rows[:, None], cand], x)) * valid[:, None, :]  # (P, t, N)
        best = d_cand.sum(2).argmin(1)
        centers.append(x[rows, cand[rows, best]])
        closest = d_cand[rows, best]
    return torch.stack(centers, 1)


def kmeans_many(xs: list[torch.Tensor], k: int = 2, n_init: int | list[int] = 5,
                max_iter: int = 100, seeds: list[int] | None = None,
                inits: list[torch.Tensor | None] | None = None) -> list[torch.Tensor]:
    """:func:`kmeans` of several point sets at once (all with the same number of features): every
    run of every set advances in the same tensor operations, so the Python and dispatch cost of
    an iteration is paid once for all. Each set's labels are those :func:`kmeans` gives it alone
    (same draws from its seed), up to floating-point rounding."""
    m = len(xs)
    if m == 0:
        return []
    seeds = [0] * m if seeds is None else seeds
    inits = [None] * m if inits is None else inits
    n_inits = [n_init] * m if isinstance(n_init, int) else n_init
    device = xs[0].device
    xs = [as_float(x, device, CLS_DTYPE) for x in xs]
    out: list[torch.Tensor | None] = [None] * m
    # one problem per (set, start); the random draws of each set in the order kmeans makes them
    owner: list[int] = []
    warm: list[torch.Tensor | None] = []
    firsts: list[torch.Tensor] = []
    draws: list[torch.Tensor] = []
    trials = 2 + int(math.log(k))
    for i, x in enumerate(xs):
        n = x.shape[0]
        if n == 0:
            out[i] = torch.zeros(0, dtype=torch.long, device=device)
            continue
        init = inits[i]
        starts: list[torch.Tensor | None] = []
        if init is not None and init.shape == (k, x.shape[1]):
            starts.append(as_float(init, device, CLS_DTYPE))
        starts += [None] * (max(1, n_inits[i]) if not starts else max(0, n_inits[i]))
        # a cpu generator: the same draws whatever the device; two draws per set, not per start
        gen = torch.Generator().manual_seed(seeds[i])
        fresh = sum(start is None for start in starts)
        first = (torch.rand(fresh, generator=gen, dtype=torch.float64) * n).long().clamp_max(n - 1)
        draw = torch.rand(fresh, k - 1, trials, generator=gen, dtype=CLS_DTYPE)
        drawn = 0
        for start in starts:
            owner.append(i)
            warm.append(start)
            if start is None:
                firsts.append(first[drawn])
                draws.append(draw[drawn])
                drawn += 1
            else:
                firsts.append(first.new_zeros(()))
                draws.append(draw.new_zeros(k - 1, trials))
    if not owner:
        return [o for o in out if o is not None]
    x, valid = pad_stack([xs[i] for i in owner])
    P, N, f = x.shape
    validf = valid.to(CLS_DTYPE)
    rows = validf.sum(1)
    # scikit-learn's tolerance: relative to the mean per-feature variance
    mu = (x * validf[..., None]).sum(1) / rows[:, None]
    var = (((x - mu[:, None, :]) ** 2) * validf[..., None]).sum(1) / rows[:, None]
    tol = torch.where(rows > 1, 1e-4 * var.mean(1), torch.zeros_like(rows))
    seeded = _kmeans_pp(x, valid, k, torch.stack(firsts).to(device), torch.stack(draws).to(device))
    centers = torch.stack([seeded[p] if w is None else w for p, w in enumerate(warm)])
    final = centers.clone()
    active = torch.arange(P, device=device)
    xa, va, ca, tola = x, validf, centers, tol
    for it in range(max_iter):
        labels = sq_dist(xa, ca).argmin(2)
        # one-hot products rather than index_add_, whose atomic adds are not deterministic on cuda
        onehot = torch.nn.functional.one_hot(labels, k).to(CLS_DTYPE) * va[..., None]
        counts = onehot.sum(1)
        sums = onehot.transpose(1, 2) @ xa
        new = torch.where(counts[..., None] > 0, sums / counts.clamp_min(1)[..., None], ca)
        shift = ((new - ca) ** 2).sum((1, 2))
        ca = new
        # the convergence test reads the device: every 4th iteration, not every one
        if it % 4 == 3:
            done = shift <= tola
            if bool(done.any()):
                final[active[done]] = ca[done]
                keep = ~done
                if not bool(keep.any()):
                    active = active[:0]
                    break
                active, xa, va, ca, tola = active[keep], xa[keep], va[keep], ca[keep], tola[keep]
    if active.numel():
        final[active] = ca
    d = sq_dist(x, final)
    labels = d.argmin(2)
    inertia = (d.gather(2, labels[..., None])[..., 0] * validf).sum(1).tolist()
    best: dict[int, int] = {}
    for p, i in enumerate(owner):  # the lowest inertia; the earlier start on a tie
        if i not in best or inertia[p] < inertia[best[i]]:
            best[i] = p
    for i, p in best.items():
        out[i] = labels[p, : xs[i].shape[0]]
    return [o if o is not None else torch.zeros(0, dtype=torch.long, device=device) for o in out]


def kmeans(x: torch.Tensor, k: int = 2, n_init: int = 5, max_iter: int = 100,
           seed: int = 0, init: torch.Tensor | None = None) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; the best of ``n_init`` runs by inertia.

    ``init`` (k, features) adds one run started from those centres (a warm start: the previous
    iteration's centres); with ``init``, ``n_init`` may be 0. Returns labels (n,) int64 on x's
    device. A cluster may come out empty (all points identical, say): the labels then hold fewer
    than k distinct values, which callers check; never raises for it. An empty cluster keeps its
    previous centre. Computes in float32; all runs advance together (:func:`kmeans_many`).
    """
    return kmeans_many([x], k, n_init, max_iter, [seed], [init])[0]
