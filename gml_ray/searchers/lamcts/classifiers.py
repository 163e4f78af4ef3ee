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
* this module imports torch at top level, so the searcher imports it lazily.
"""
from __future__ import annotations

import math

import torch

from .gp import GaussianProcess  # noqa: F401 - re-exported: the three models in one place
from .tensors import CLS_DTYPE, DTYPE, as_float, pick_device, sq_dist  # noqa: F401 - pick_device re-exported

__all__ = ["pick_device", "kmeans", "KernelSVM", "GaussianProcess"]

# ---- k-means -------------------------------------------------------------------------------------

def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (as scikit-learn: 2 + log k candidates per centre, keep the best)."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [x[first]]
    closest = sq_dist(x, x[first:first + 1])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        u = torch.rand(trials, generator=gen, dtype=x.dtype).to(x.device)
        if total <= 0:  # every point sits on a centre already: any point will do
            cand = (u * n).long().clamp_max(n - 1)
        else:
            cand = torch.searchsorted(closest.cumsum(0), u * total).clamp_max(n - 1)
        d_cand = torch.minimum(closest[None, :], sq_dist(x[cand], x))  # (trials, n)
        best = int(d_cand.sum(1).argmin())
        centers.append(x[cand[best]])
        closest = d_cand[best]
    return torch.stack(centers)


def kmeans(x: torch.Tensor, k: int = 2, n_init: int = 5, max_iter: int = 100,
           seed: int = 0, init: torch.Tensor | None = None) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; the best of ``n_init`` runs by inertia.

    ``init`` (k, features) adds one run started from those centres (a warm start: the previous
    iteration's centres); with ``init``, ``n_init`` may be 0. Returns labels (n,) int64 on x's
    device. A cluster may come out empty (all points identical, say): the labels then hold fewer
    than k distinct values, which callers check; never raises for it. An empty cluster keeps its
    previous centre. Computes in float32.
    """
    x = as_float(x, x.device, CLS_DTYPE)
    n = x.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    gen = torch.Generator().manual_seed(seed)  # cpu generator: same draws whatever the device
    # scikit-learn's tolerance: relative to the mean per-feature variance
    tol = 1e-4 * float(x.var(0, unbiased=False).mean()) if n > 1 else 0.0
    starts: list[torch.Tensor | None] = []
    if init is not None and init.shape == (k, x.shape[1]):
        starts.append(as_float(init, x.device, CLS_DTYPE))
    starts += [None] * (max(1, n_init) if not starts else max(0, n_init))
    best_labels, best_inertia = None, math.inf
    for start in starts:
        centers = _kmeans_pp(x, k, gen) if start is None else start
        labels = torch.zeros(n, dtype=torch.long, device=x.device)
        for it in range(max_iter):
            labels = sq_dist(x, centers).argmin(1)
            # one-hot products rather than index_add_, whose atomic adds are not deterministic on cuda
            onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
            counts = onehot.sum(0)
            sums = onehot.T @ x
            new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
            shift = ((new - centers) ** 2).sum()
            centers = new
            # the convergence test reads the device: every 4th iteration, not every one
            if it % 4 == 3 and float(shift) <= tol:
                break
        d = sq_dist(x, centers)
        labels = d.argmin(1)
        inertia = float(d.gather(1, labels[:, None]).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    assert best_labels is not None
    return best_labels


# ---- kernel SVM ----------------------------------------------------------------------------------

def _project_box_hyperplane(v: torch.Tensor, y: torch.Tensor, C: float) -> torch.Tensor:
    """Euclidean projection of v onto {a : 0 <= a <= C, y.a = 0} (y in {-1, +1}), exactly.

    The solution is clip(v - mu y, 0, C) for the scalar mu at which h(mu) = y.clip(...) = 0; h is
    piecewise linear and non-increasing, so sort its breakpoints and interpolate, no bisection.
    """
    pos = y > 0
    # term i has slope -1 in mu on [start_i, start_i + C], and is constant outside
    start = torch.where(pos, v - C, -v)
    pts = torch.cat([start, start + C])
    pts, order = pts.sort()
    delta = torch.where(order >= v.numel(), 1.0, -1.0).to(v.dtype)  # +1: an end, -1: a start
    slope = delta.cumsum(0)  # slope of h right after each breakpoint
    h = C * pos.sum().to(v.dtype) + torch.cat([pts.new_zeros(1), (slope[:-1] * pts.diff()).cumsum(0)])
    # h[j-1] >= 0 >= h[j]; indices stay on the device (no host sync inside the solver's loop)
    j = torch.searchsorted(-h, pts.new_zeros(1)).clamp(1, h.numel() - 1)
    h0, h1, p0, p1 = h[j - 1], h[j], pts[j - 1], pts[j]
    flat = h0 == h1
    mu = torch.where(flat, p0, p0 + (p1 - p0) * h0 / torch.where(flat, torch.ones_like(h0), h0 - h1))
    return (v - mu * y).clamp(0.0, C)


class KernelSVM:
    """A binary C-SVM, its dual solved on the inputs' device by FISTA with an exact projection.

    Kernels as scikit-learn's SVC defines them: linear <x,x'>; poly (gamma <x,x'> + coef0)^degree;
    rbf exp(-gamma ||x-x'||^2). gamma 'auto' is 1/d, 'scale' 1/(d x.var()) (1/d when the
    variance is 0), or a float. The bias is exact: each projection keeps y.alpha = 0, and the
    intercept follows libsvm's rule. Iterates until libsvm's maximal-violating-pair gap is below
    ``tol`` or ``max_iter`` steps. Labels are 0/1; ``decision_function > 0`` means class 1.
    """

    def __init__(self, kernel: str = "rbf", gamma: str | float = "auto", C: float = 1.0,
                 degree: int = 3, coef0: float = 0.0, max_iter: int = 2000,
                 tol: float = 1e-3) -> None:
        if kernel not in ("linear", "poly", "rbf"):
            raise ValueError(f"kernel must be linear, poly or rbf, not {kernel!r}")
        if isinstance(gamma, str) and gamma not in ("auto", "scale"):
            raise ValueError(f"gamma must be 'auto', 'scale' or a float, not {gamma!r}")
        self.kernel, self.gamma, self.C = kernel, gamma, float(C)
        self.degree, self.coef0 = degree, float(coef0)
        self.max_iter, self.tol = max_iter, tol
        self.gamma_: float | None = None
        self.support_: torch.Tensor | None = None   # support vectors (s, d)
        self.dual_coef_: torch.Tensor | None = None  # alpha_i y_i of the support vectors (s,)
        self.intercept_: float = 0.0
        self.n_iter_: int = 0
        self.alpha_: torch.Tensor | None = None  # the dual variables of every training point (n,)

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.kernel == "linear":
            return a @ b.T
        assert self.gamma_ is not None
        if self.kernel == "poly":
            return (self.gamma_ * (a @ b.T) + self.coef0) ** self.degree
        return torch.exp(-self.gamma_ * sq_dist(a, b))

    def fit(self, x: torch.Tensor, y: torch.Tensor,
            alpha0: torch.Tensor | None = None) -> "KernelSVM":
        """Fit on x (n, d) and labels y (n,) in {0, 1} (int or bool); both classes must be present.

        ``alpha0`` (n,): a warm start for the dual variables (e.g. the previous fit's
        :attr:`alpha_` for the samples it shared, 0 for new ones); it is projected onto the
        feasible set first, so any values will do. The solution is the same to ``tol``.
        """
        x = as_float(x, x.device, CLS_DTYPE)
        lab = torch.as_tensor(y).to(x.device).reshape(-1).long()
        if lab.numel() != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {lab.numel()} labels")
        if not bool(((lab == 0) | (lab == 1)).all()):
            raise ValueError("KernelSVM labels must be 0 or 1")
        if not (bool((lab == 1).any()) and bool((lab == 0).any())):
            raise ValueError("KernelSVM.fit needs both classes (0 and 1) present in y")
        n, d = x.shape
        if isinstance(self.gamma, str):
            var = float(x.var(unbiased=False)) if self.gamma == "scale" else 1.0
            self.gamma_ = 1.0 / (d * (var if var > 0 else 1.0))
        else:
            self.gamma_ = float(self.gamma)
        s = (2 * lab - 1).to(CLS_DTYPE)  # +-1 signs
        q = s[:, None] * self._kernel(x, x) * s[None, :]
        q = 0.5 * (q + q.T)  # exactly symmetric
        C = self.C
        one = torch.ones_like(s)

        # Step 1/L with L the curvature within the hyperplane s.alpha = 0, where every iterate lies;
        # Q's top eigenvector lies near s, so this L is far smaller than Q's.
        def tangent(v: torch.Tensor) -> torch.Tensor:
            return v - s * (s @ v) / n
        v = tangent(torch.linspace(1.0, 2.0, n, dtype=CLS_DTYPE, device=x.device))
        lip = 0.0
        for _ in range(30):
            w = tangent(q @ v)
            lip = float(w.norm())
            if lip <= 0:
                break
            v = w / lip
        lip = max(lip * 1.2, 1e-12)  # power iteration under-estimates

        if alpha0 is not None and alpha0.numel() == n:
            a = _project_box_hyperplane(as_float(alpha0, x.device, CLS_DTYPE).reshape(-1), s, C)
            qa = q @ a
        else:
            a = torch.zeros_like(s)
            qa = torch.zeros_like(s)
        z, qz = a, qa
        t = torch.ones((), dtype=CLS_DTYPE, device=x.device)
        up_pos, low_pos = s > 0, s < 0
        it = 0
        done = alpha0 is not None and self._gap(a, qa - one, s, C, up_pos, low_pos) <= self.tol
        # FISTA; nothing in an iteration reads the device back except the gap test every 10th
        for it in range(1, (0 if done else self.max_iter) + 1):
            a_new = _project_box_hyperplane(z - (qz - one) / lip, s, C)
            qa_new = q @ a_new
            # adaptive restart (O'Donoghue & Candes): drop momentum once it points uphill
            t = torch.where((z - a_new) @ (a_new - a) > 0, torch.ones_like(t), t)
            t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
            z = a_new + beta * (a_new - a)
            qz = qa_new + beta * (qa_new - qa)
            a, qa, t = a_new, qa_new, t_new
            if it % 10 == 0 and self._gap(a, qa - one, s, C, up_pos, low_pos) <= self.tol:
                break
        self.n_iter_ = it
        grad = q @ a - one
        self.intercept_ = -self._rho(a, grad, s, C)
        self.alpha_ = a
        sv = a > 0
        self.support_ = x[sv]
        self.dual_coef_ = (a * s)[sv]
        return self

    @staticmethod
    def _gap(a: torch.Tensor, grad: torch.Tensor, s: torch.Tensor, C: float,
             pos: torch.Tensor, neg: torch.Tensor) -> float:
        """libsvm's stopping quantity m(a) - M(a), the largest KKT violation over pairs."""
        f = -s * grad
        up = (pos & (a < C)) | (neg & (a > 0))
        low = (pos & (a > 0)) | (neg & (a < C))
        if not bool(up.any()) or not bool(low.any()):
            return 0.0
        return float(f[up].max() - f[low].min())

    @staticmethod
    def _rho(a: torch.Tensor, grad: torch.Tensor, s: torch.Tensor, C: float) -> float:
        """libsvm's offset: the mean of s_i grad_i over free vectors, else the middle of its bounds."""
        sg = s * grad
        free = (a > 0) & (a < C)
        if bool(free.any()):
            return float(sg[free].mean())
        pos = s > 0
        upper = (pos & (a == 0)) | (~pos & (a == C))
        lower = (pos & (a == C)) | (~pos & (a == 0))
        ub = float(sg[upper].min()) if bool(upper.any()) else math.inf
        lb = float(sg[lower].max()) if bool(lower.any()) else -math.inf
        if math.isinf(ub) or math.isinf(lb):
            return lb if math.isinf(ub) else ub
        return 0.5 * (ub + lb)

    def decision_function(self, x: torch.Tensor) -> torch.Tensor:
        """Signed score (m,) of x (m, d); > 0 means class 1."""
        if self.support_ is None or self.dual_coef_ is None:
            raise RuntimeError("KernelSVM is not fitted")
        x = as_float(x, self.support_.device, CLS_DTYPE)
        if self.support_.shape[0] == 0:
            return torch.full((x.shape[0],), self.intercept_, dtype=CLS_DTYPE, device=x.device)
        out = torch.empty(x.shape[0], dtype=CLS_DTYPE, device=x.device)
        for i in range(0, x.shape[0], 4096):  # bounded memory for large candidate sets
            out[i:i + 4096] = self._kernel(x[i:i + 4096], self.support_) @ self.dual_coef_
        return out + self.intercept_

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels (m,) int64 in {0, 1}."""
        return (self.decision_function(x) > 0).long()

