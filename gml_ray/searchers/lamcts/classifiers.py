"""The three models LA-MCTS needs, in torch: 2-means, a kernel SVM and a GP regressor.

Contracts shared by all three:

* the GP runs in float64 (its Cholesky factors need it); 2-means and the SVM, which only
  classify, run in float32 (:data:`CLS_DTYPE`), half the memory traffic and twice the matrix
  throughput, on the CPU as on a GPU; everything runs on the device of the inputs (or the device
  given to the :class:`GaussianProcess`); inputs of other dtypes are converted;
* 2-means, the SVM and the GP can be warm-started from an earlier solution (``init``,
  ``alpha0``, ``init``): LA-MCTS rebuilds its tree and refits its GP every iteration on a sample
  set that grew by one batch, and a warm start converges in a fraction of the steps;
* results are deterministic given the seed (random draws come from explicitly seeded
  generators, never from the global RNG);
* several 2-means problems (:func:`kmeans_many`) and several SVMs (:func:`fit_svms`) solve in
  one batch, padded to the largest: the tree fits all the nodes of a level at once, so each
  step's few small tensor operations run once a level, not once a node (on the CPU their
  dispatch, not their arithmetic, was the cost); each problem's iterates are those it has
  alone, up to floating-point rounding;
* this module imports torch at top level, so the searcher imports it lazily.
"""
from __future__ import annotations

import functools
import math

import torch

from .gp import GaussianProcess  # noqa: F401 - re-exported: the three models in one place
from .tensors import CLS_DTYPE, DTYPE, as_float, pad_stack, pick_device, sq_dist  # noqa: F401

__all__ = ["pick_device", "kmeans", "kmeans_many", "KernelSVM", "fit_svms", "GaussianProcess"]

# ---- k-means -------------------------------------------------------------------------------------

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


# ---- kernel SVM ----------------------------------------------------------------------------------

class _Box:
    """The feasible set {a : 0 <= a <= C, s.a = 0} of a batch of SVM duals (rows), and what its
    projection needs that does not change from step to step."""

    def __init__(self, s: torch.Tensor, cv: torch.Tensor) -> None:
        n = s.shape[-1]
        self.s, self.cv = s, cv  # signs (+-1; 0 on padding), upper bounds (C; 0 on padding)
        pos = s > 0
        c_pos = cv * pos
        self.neg_c_pos = -c_pos  # a positive entry's interval begins at v - C
        self.h_top = c_pos.sum(-1, keepdim=True)  # h(-inf)
        self.zero = torch.zeros_like(cv)
        self.zero_col = torch.zeros_like(self.h_top)
        # -slope of h after a breakpoint: +1 for each interval begun, -1 for each ended
        self.turn = torch.cat([s.new_ones(n), s.new_full((n,), -1.0)])

    def select(self, rows: torch.Tensor, width: int) -> "_Box":
        return _Box(self.s.index_select(0, rows)[:, :width], self.cv.index_select(0, rows)[:, :width])

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """The Euclidean projection of each row of v, exactly: clip(v - mu s, 0, C) for the
        scalar mu at which h(mu) = s.clip(v - mu s, 0, C) = 0. h is piecewise linear and
        non-increasing: sort its breakpoints and interpolate, no bisection, and no host read
        (the solver's loop stays free of device syncs)."""
        n = v.shape[-1]
        # term i has slope -1 in mu on [start_i, start_i + C_i] and is constant outside:
        # start = v - C for s = +1, -v for s = -1 (0 for the padding, whose interval is empty)
        start = torch.addcmul(self.neg_c_pos, self.s, v)
        pts, order = torch.cat([start, start + self.cv], -1).sort(-1)
        nslope = self.turn.expand(order.shape[0], -1).gather(1, order).cumsum(-1)
        # g = -h at the breakpoints (non-decreasing), from g = -h(-inf) at the first
        g = torch.cat([self.zero_col, (nslope[..., :-1] * pts.diff(dim=-1)).cumsum(-1)], -1)
        g.sub_(self.h_top)
        # g[j-1] <= 0 <= g[j]
        j = torch.searchsorted(g, self.zero_col).clamp_(1, 2 * n - 1)
        before = j - 1
        g0, g1 = g.gather(-1, before), g.gather(-1, j)
        p0, p1 = pts.gather(-1, before), pts.gather(-1, j)
        rise = g1 - g0
        # interpolate, or p0 where h is flat there
        mu = torch.where(rise > 0, p0 - (p1 - p0) * g0 / rise.clamp_min(1e-30), p0)
        return torch.clamp(torch.addcmul(v, mu, self.s, value=-1.0), self.zero, self.cv)


def _project_box_hyperplane(v: torch.Tensor, y: torch.Tensor, C: float) -> torch.Tensor:
    """Euclidean projection of v (n,) onto {a : 0 <= a <= C, y.a = 0} (y in {-1, +1}), exactly
    (see :meth:`_Box.project`)."""
    y = y.to(v.dtype)
    return _Box(y[None, :], torch.full_like(v, C)[None, :]).project(v[None, :])[0]


@functools.lru_cache(maxsize=8)
def _momentum(steps: int) -> torch.Tensor:
    """FISTA's momentum weights beta_k = (t_k - 1) / t_{k+1} for k = 0..steps, where t_0 = 1 and
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2, k counting the steps since the last restart: a
    lookup, not per-step arithmetic."""
    t = [1.0]
    for _ in range(steps + 1):
        t.append(0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t[-1] ** 2)))
    return torch.tensor([(t[k] - 1.0) / t[k + 1] for k in range(steps + 1)], dtype=CLS_DTYPE)


def _bmv(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched products q v of symmetric q (B, n, n) and v (B, n) -> (B, n), as v^T q: the
    row-vector form runs 2-3x faster than the column form on the CPU (q is read once, in order)."""
    return torch.matmul(v.unsqueeze(1), q).squeeze(1)


def _kernel(kernel: str, a: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor | float,
            degree: int, coef0: float) -> torch.Tensor:
    """The kernel matrix of a (..., m, d) and b (..., n, d); a batch's gamma is (B, 1, 1)."""
    if kernel == "linear":
        return a @ b.transpose(-1, -2)
    if kernel == "poly":
        return (gamma * (a @ b.transpose(-1, -2)) + coef0) ** degree
    return torch.exp(sq_dist(a, b).mul_(-gamma) if isinstance(gamma, float)
                     else sq_dist(a, b) * -gamma)


class KernelSVM:
    """A binary C-SVM, its dual solved on the inputs' device by FISTA with an exact projection.

    Kernels as scikit-learn's SVC defines them: linear <x,x'>; poly (gamma <x,x'> + coef0)^degree;
    rbf exp(-gamma ||x-x'||^2). gamma 'auto' is 1/d, 'scale' 1/(d x.var()) (1/d when the
    variance is 0), or a float. The bias is exact: each projection keeps y.alpha = 0, and the
    intercept follows libsvm's rule. Stops early, once converged: when libsvm's stopping
    quantity, the maximal-violating-pair gap ``max_{i in up} -y_i grad_i - min_{j in low}
    -y_j grad_j``, is at most ``tol`` (1e-3, libsvm's and scikit-learn's default; an entry
    within 1e-6 C of a bound counts as on it), tested every 10th step; else after ``max_iter``
    steps. With ``polish`` (the default), a test that finds the gap within 50 tol, on a face (the
    entries at 0, at C, free) unchanged since the previous test, also tries the exact minimiser
    on that face (a small linear solve, :func:`_polish`) and stops there if it passes the same
    test: the same solution to ``tol``, in fewer steps. Labels are 0/1; ``decision_function >
    0`` means class 1. Several SVMs fit at once with :func:`fit_svms`.
    """

    def __init__(self, kernel: str = "rbf", gamma: str | float = "auto", C: float = 1.0,
                 degree: int = 3, coef0: float = 0.0, max_iter: int = 2000,
                 tol: float = 1e-3, polish: bool = True) -> None:
        if kernel not in ("linear", "poly", "rbf"):
            raise ValueError(f"kernel must be linear, poly or rbf, not {kernel!r}")
        if isinstance(gamma, str) and gamma not in ("auto", "scale"):
            raise ValueError(f"gamma must be 'auto', 'scale' or a float, not {gamma!r}")
        self.kernel, self.gamma, self.C = kernel, gamma, float(C)
        self.degree, self.coef0 = degree, float(coef0)
        self.max_iter, self.tol, self.polish = max_iter, tol, polish
        self.gamma_: float | None = None
        self.support_: torch.Tensor | None = None   # support vectors (s, d)
        self.dual_coef_: torch.Tensor | None = None  # alpha_i y_i of the support vectors (s,)
        self.intercept_: float = 0.0
        self.n_iter_: int = 0
        self.alpha_: torch.Tensor | None = None  # the dual variables of every training point (n,)
        self._support_sq: torch.Tensor | None = None  # ||support vector||^2 (s,), for rbf

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert self.kernel == "linear" or self.gamma_ is not None
        return _kernel(self.kernel, a, b, float(self.gamma_ or 0.0), self.degree, self.coef0)

    def fit(self, x: torch.Tensor, y: torch.Tensor,
            alpha0: torch.Tensor | None = None) -> "KernelSVM":
        """Fit on x (n, d) and labels y (n,) in {0, 1} (int or bool); both classes must be present.

        ``alpha0`` (n,): a warm start for the dual variables (e.g. the previous fit's
        :attr:`alpha_` for the samples it shared, 0 for new ones); it is projected onto the
        feasible set first, so any values will do. The solution is the same to ``tol``.
        """
        fit_svms([self], [x], [y], [alpha0])
        return self

    def _set_gamma(self, d: int, var: float) -> None:
        if isinstance(self.gamma, str):
            var = var if self.gamma == "scale" else 1.0
            self.gamma_ = 1.0 / (d * (var if var > 0 else 1.0))
        else:
            self.gamma_ = float(self.gamma)

    def decision_function(self, x: torch.Tensor) -> torch.Tensor:
        """Signed score (m,) of x (m, d); > 0 means class 1."""
        if self.support_ is None or self.dual_coef_ is None:
            raise RuntimeError("KernelSVM is not fitted")
        x = as_float(x, self.support_.device, CLS_DTYPE)
        if self.support_.shape[0] == 0:
            return torch.full((x.shape[0],), self.intercept_, dtype=CLS_DTYPE, device=x.device)
        if x.shape[0] <= 4096:
            return self._decision(x)
        out = torch.empty(x.shape[0], dtype=CLS_DTYPE, device=x.device)
        for i in range(0, x.shape[0], 4096):  # bounded memory for large candidate sets
            out[i:i + 4096] = self._decision(x[i:i + 4096])
        return out

    def _decision(self, x: torch.Tensor) -> torch.Tensor:
        assert self.support_ is not None and self.dual_coef_ is not None
        if self.kernel == "rbf" and self._support_sq is not None:
            assert self.gamma_ is not None
            # exp(-gamma (|x|^2 + |sv|^2 - 2 x.sv)), in place: no (m, s) temporaries
            k = torch.addmm(self._support_sq, x, self.support_.T, alpha=-2.0)
            k.add_((x * x).sum(1, keepdim=True)).clamp_min_(0.0).mul_(-self.gamma_).exp_()
        else:
            k = self._kernel(x, self.support_)
        return torch.addmv(torch.full_like(k[:, 0], self.intercept_), k, self.dual_coef_)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels (m,) int64 in {0, 1}."""
        return (self.decision_function(x) > 0).long()



def fit_svms(svms: list[KernelSVM], xs: list[torch.Tensor], ys: list[torch.Tensor],
             alpha0s: list[torch.Tensor | None] | None = None) -> None:
    """Fit ``svms[i]`` on ``xs[i]`` (n_i, d), ``ys[i]`` (n_i,) (warm start ``alpha0s[i]``), as
    :meth:`KernelSVM.fit` does, all at once: the duals are padded to the largest n_i (the
    padding pinned at 0) and every FISTA step advances all of them in the same tensor
    operations; a solve that has converged leaves the batch at the next gap test. Each solve's
    iterates are those it would have alone (its own step size, momentum and restarts), up to
    floating-point rounding. The SVMs must share kernel, C, degree, coef0, tol and max_iter."""
    m = len(svms)
    if m == 0:
        return
    ref = svms[0]
    for svm in svms[1:]:
        if (svm.kernel, svm.C, svm.degree, svm.coef0, svm.tol, svm.max_iter, svm.polish) != \
                (ref.kernel, ref.C, ref.degree, ref.coef0, ref.tol, ref.max_iter, ref.polish):
            raise ValueError("fit_svms needs SVMs of the same kernel, C, degree, coef0, tol, "
                             "max_iter and polish")
    alpha0s = [None] * m if alpha0s is None else alpha0s
    device = xs[0].device
    xs = [as_float(x, device, CLS_DTYPE) for x in xs]
    labs = []
    for x, y in zip(xs, ys):
        lab = torch.as_tensor(y).to(x.device).reshape(-1).long()
        if lab.numel() != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {lab.numel()} labels")
        bad, ones, zeros = torch.stack([((lab != 0) & (lab != 1)).any(), (lab == 1).any(),
                                        (lab == 0).any()]).tolist()
        if bad:
            raise ValueError("KernelSVM labels must be 0 or 1")
        if not (ones and zeros):
            raise ValueError("KernelSVM.fit needs both classes (0 and 1) present in y")
        labs.append(lab)
    C, kernel, tol, polish = ref.C, ref.kernel, ref.tol, ref.polish
    x, valid = pad_stack(xs)
    lab, _ = pad_stack(labs)
    B, N, d = x.shape
    vf = valid.to(CLS_DTYPE)
    nv = vf.sum(1, keepdim=True)
    s = (2 * lab - 1).to(CLS_DTYPE) * vf  # +-1 signs, 0 on the padding
    if any(svm.gamma == "scale" for svm in svms):
        count = nv * d
        mean = x.sum((1, 2), keepdim=True) / count[..., None]
        var = ((((x - mean) * vf[..., None]) ** 2).sum((1, 2)) / count[:, 0]).tolist()
    else:
        var = [1.0] * B
    for svm, v in zip(svms, var):
        svm._set_gamma(d, v)
    gamma = torch.tensor([svm.gamma_ for svm in svms], dtype=CLS_DTYPE,
                         device=device)[:, None, None]
    q = _kernel(kernel, x, x, gamma, ref.degree, ref.coef0)
    q = s[:, :, None] * q * s[:, None, :]
    q = 0.5 * (q + q.transpose(1, 2))  # exactly symmetric
    q_all, s_all = q, s

    # Step 1/L with L the curvature within the hyperplane s.alpha = 0, where every iterate lies;
    # Q's top eigenvector lies near s, so this L is far smaller than Q's. 30 power iterations,
    # every problem at once, no host read.
    s_n = s / nv

    def tangent(v: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(v, s, torch.linalg.vecdot(s_n, v).unsqueeze(1), value=-1.0)
    steps = torch.arange(N, dtype=CLS_DTYPE, device=device)[None, :]
    v = tangent((1.0 + steps / (nv - 1.0).clamp_min(1.0)) * vf)
    lip = torch.zeros_like(nv)
    for _ in range(POWER_STEPS):
        w = tangent(_bmv(q, v))
        lip = w.norm(dim=1, keepdim=True)
        v = w / lip.clamp_min(1e-30)
    lip = (lip * 1.2).clamp_min(1e-12)  # power iteration under-estimates

    box = _Box(s, C * vf)  # the upper bounds: C, 0 on the padding
    warm = [a0 is not None and a0.numel() == xs[i].shape[0] for i, a0 in enumerate(alpha0s)]
    a = torch.zeros_like(s)
    if any(warm):
        a0, _ = pad_stack([as_float(a0, device, CLS_DTYPE).reshape(-1) if a0 is not None and ok
                           else torch.zeros(xs[i].shape[0], dtype=CLS_DTYPE, device=device)
                           for i, (a0, ok) in enumerate(zip(alpha0s, warm))])
        a = torch.where(torch.tensor(warm, device=device)[:, None], box.project(a0), a)
    qa = _bmv(q, a)
    final = a.clone()
    n_iter = [ref.max_iter] * B
    ns = [x_.shape[0] for x_ in xs]
    active = list(range(B))  # the problems still being solved, in the order of the batch rows
    inv_lip = 1.0 / lip
    betas = _momentum(ref.max_iter).to(device)
    k = torch.zeros(B, 1, dtype=torch.long, device=device)
    # q, 1/L, a, Qa, z, Qz, k, and the face of a at the last gap test (-1 at 0, +1 at C, 0 free)
    state = [q, inv_lip, a, qa, a, qa, k, _face(a, box.cv)]

    def retire(done: torch.Tensor, it: int) -> None:
        """Store the finished rows' solutions; drop them from the batch, and the padding no
        remaining problem needs."""
        nonlocal active, state, box
        flags = done.tolist()
        keep_rows = [r for r, f in enumerate(flags) if not f]
        for r, f in enumerate(flags):
            if f:
                final[active[r], : ns[active[r]]] = state[2][r, : ns[active[r]]]
                n_iter[active[r]] = it
        active = [active[r] for r in keep_rows]
        if not active:
            return
        width = max(ns[i] for i in active)
        keep = torch.tensor(keep_rows, device=device)
        box = box.select(keep, width)
        state = ([state[0].index_select(0, keep)[:, :width, :width].contiguous()]
                 + [v_.index_select(0, keep)[:, :width] for v_ in state[1:]])

    def check(it: int) -> None:
        """The gap test, and for the rows that fail it, a polish (:func:`_polish`)."""
        q, a, qa = state[0], state[2], state[3]
        gaps = _gaps(a, qa - 1.0, box)
        done = gaps <= tol
        # polish the rows near a solution whose face held since the last test (otherwise the
        # face is seldom the solution's yet); a warm start's at once
        face = _face(a, box.cv)
        near = ~done & (gaps <= POLISH_GAP * tol)
        if it:
            near &= (face == state[7]).all(1)
        state[7] = face
        rows = near.nonzero()[:, 0] if polish else near[:0]
        if rows.numel():
            sub = box if rows.numel() == a.shape[0] else box.select(rows, a.shape[1])
            q_sub = q if rows.numel() == a.shape[0] else q.index_select(0, rows)
            a_star, qa_star = _polish(q_sub, a.index_select(0, rows), sub)
            better = _gaps(a_star, qa_star - 1.0, sub) <= tol
            state[2] = a.index_copy(0, rows, torch.where(better[:, None], a_star,
                                                         a.index_select(0, rows)))
            done = done.index_copy(0, rows, better)
        if bool(done.any()):
            retire(done, it)

    if any(warm):  # a warm start may be a solution already, or a polish away from one
        check(0)
    # FISTA; nothing in an iteration reads the device back except the gap test every 10th
    for it in range(1, ref.max_iter + 1 if active else 0):
        q, inv_lip, a, qa, z, qz, k = state[:7]
        # a gradient step from z (the gradient is Qz - 1), then the projection
        a_new = box.project(torch.addcmul(z + inv_lip, qz, inv_lip, value=-1.0))
        qa_new = _bmv(q, a_new)
        step = a_new - a
        # adaptive restart (O'Donoghue & Candes): drop momentum once it points uphill
        k = torch.where(torch.linalg.vecdot(z - a_new, step).unsqueeze(1) > 0, 0, k)
        beta = torch.take(betas, k)
        state[2:7] = [a_new, qa_new, torch.addcmul(a_new, beta, step),
                      torch.addcmul(qa_new, beta, qa_new - qa), k + 1]
        if it % CHECK_EVERY == 0:
            check(it)
            if not active:
                break
    if active:
        retire(torch.ones(len(active), dtype=torch.bool, device=device), ref.max_iter)
    a, s = final, s_all
    rho = _rho(a, _bmv(q_all, a) - 1.0, s, C * vf).tolist()
    coef = a * s
    for i, svm in enumerate(svms):
        n = xs[i].shape[0]
        ai = a[i, :n]
        sv = ai > 0
        svm.n_iter_ = n_iter[i]
        svm.intercept_ = -rho[i]
        svm.alpha_ = ai
        svm.support_ = xs[i][sv]
        svm.dual_coef_ = coef[i, :n][sv]
        svm._support_sq = (svm.support_ * svm.support_).sum(1)


POWER_STEPS = 30  # power iterations for the step size
CHECK_EVERY = 10  # FISTA steps between gap tests (each reads the device)
POLISH_GAP = 50.0  # a row is polished once its gap is below this many times tol
FACE_EPS = 1e-3  # the polish holds entries within this fraction of C of a bound at the bound


def _face(a: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
    """Which bound each entry sits at (within FACE_EPS C): -1 at 0, +1 at C, 0 free (int8)."""
    low = a <= FACE_EPS * cv
    return (a >= (1.0 - FACE_EPS) * cv).to(torch.int8).masked_fill_(low, -1)


def _polish(q: torch.Tensor, a: torch.Tensor, box: _Box,
            rounds: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact minimiser of each row's dual on the face FISTA's iterate ``a`` points to, and
    its product with q. The entries within 1e-3 C of a bound are held there, and the free rest
    (with the bias, the equality's multiplier) solve the KKT system
    ``[Q_FF s_F; s_F^T 0] [a_F; b] = [1 - Q_FU a_U; -s_U^T a_U]`` (in float64); a free entry
    that comes out beyond a bound is held at it and the system solved again (``rounds`` in all),
    and the result is projected onto the feasible set. When the face is the solution's, this is
    the solution (up to rounding), which FISTA alone approaches only linearly; the caller keeps
    it only if it passes the gap test."""
    s, cv = box.s, box.cv
    B, N = a.shape
    face = _face(a, cv)
    at_low, at_up = face < 0, face > 0
    free = face == 0
    for _ in range(rounds):
        fixed = cv * at_up
        counts = free.sum(1)
        width = int(counts.max())
        if not width:
            break
        # the free entries' positions first (stable), padded with other positions
        pos = torch.argsort((~free).to(torch.uint8), dim=1, stable=True)[:, :width]
        used = torch.arange(width, device=a.device)[None, :] < counts[:, None]
        flat = (torch.arange(B, device=a.device)[:, None, None] * (N * N) + pos[:, :, None] * N
                + pos[:, None, :])
        q_ff = torch.take(q, flat)  # q[b, pos_i, pos_j]
        pair = used[:, :, None] & used[:, None, :]
        eye = torch.eye(width, dtype=q.dtype, device=a.device)[None]
        kkt = torch.zeros(B, width + 1, width + 1, dtype=torch.float64, device=a.device)
        kkt[:, :width, :width] = torch.where(pair, q_ff, eye)
        s_f = (s.gather(1, pos) * used).to(torch.float64)
        kkt[:, :width, width] = s_f
        kkt[:, width, :width] = s_f
        # a row with no free entry: a regular system all the same, its answer unused
        kkt[:, width, width] = (counts == 0).to(torch.float64)
        rhs = torch.empty(B, width + 1, dtype=torch.float64, device=a.device)
        rhs[:, :width] = ((1.0 - _bmv(q, fixed)).gather(1, pos) * used).to(torch.float64)
        rhs[:, width] = -torch.linalg.vecdot(s, fixed).to(torch.float64)
        sol, info = torch.linalg.solve_ex(kkt, rhs)
        a_f = torch.where((info == 0)[:, None], sol[:, :width], 0.0).to(a.dtype)
        c_f = cv.gather(1, pos)
        low, up = used & (a_f < 0), used & (a_f > c_f)
        fixed = fixed.scatter(1, pos, torch.where(used, a_f, fixed.gather(1, pos)))
        if not bool((low | up).any()):
            break
        # hold the entries that left the box at the bound they crossed, and solve again
        at_low = at_low.scatter(1, pos, at_low.gather(1, pos) | low)
        at_up = at_up.scatter(1, pos, at_up.gather(1, pos) | up)
        free = ~(at_low | at_up)
    a_star = box.project(fixed)
    return a_star, _bmv(q, a_star)


# An entry within this fraction of C of a bound counts as at the bound in the gap test and the
# intercept rule: libsvm's SMO puts entries exactly on a bound, a projection only to rounding (a
# batch's padding moves it by 1e-9, which would make libsvm's exact tests see a free vector).
BOUND_EPS = 1e-6


def _at_bounds(a: torch.Tensor, cv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    eps = BOUND_EPS * cv
    return a <= eps, a >= cv - eps


def _gaps(a: torch.Tensor, grad: torch.Tensor, box: _Box) -> torch.Tensor:
    """libsvm's stopping quantity m(a) - M(a) of each row, the largest KKT violation over pairs
    (-inf when a side is empty: nothing to violate)."""
    s, cv = box.s, box.cv
    f = -s * grad
    pos, neg = s > 0, s < 0
    at_low, at_up = _at_bounds(a, cv)
    up = (pos & ~at_up) | (neg & ~at_low)
    low = (pos & ~at_low) | (neg & ~at_up)
    return f.masked_fill(~up, -math.inf).amax(1) - f.masked_fill(~low, math.inf).amin(1)


def _rho(a: torch.Tensor, grad: torch.Tensor, s: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
    """libsvm's offset of each row: the mean of s_i grad_i over free vectors, else the middle
    of its bounds."""
    sg = s * grad
    pos, neg = s > 0, s < 0
    at_low, at_up = _at_bounds(a, cv)
    free = (pos | neg) & ~at_low & ~at_up
    n_free = free.sum(1)
    mean_free = (sg * free).sum(1) / n_free.clamp_min(1)
    upper = (pos & at_low) | (neg & at_up)
    lower = (pos & at_up) | (neg & at_low)
    ub = sg.masked_fill(~upper, math.inf).amin(1)
    lb = sg.masked_fill(~lower, -math.inf).amax(1)
    mid = torch.where(ub.isinf() | lb.isinf(), torch.where(ub.isinf(), lb, ub), 0.5 * (ub + lb))
    return torch.where(n_free > 0, mean_free, mid)
