"""The kernel SVM that learns each LA-MCTS split's boundary, in torch: the dual solved by FISTA on
the box-and-hyperplane set, several SVMs in one padded batch (see :mod:`.tensors` for the
contracts the models share)."""
from __future__ import annotations

import torch

from gml_ray.searchers.lamcts.svm_dual import (
    CHECK_EVERY,
    POLISH_GAP,
    POWER_STEPS,
    Box,
    bmv,
    bound_face,
    intercepts,
    kkt_gaps,
    momentum,
    polish_face,
)
from gml_ray.searchers.lamcts.tensors import CLS_DTYPE, as_float, pad_stack, sq_dist


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
    on that face (a small linear solve, :func:`polish_face`) and stops there if it passes the same
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
        w = tangent(bmv(q, v))
        lip = w.norm(dim=1, keepdim=True)
        v = w / lip.clamp_min(1e-30)
    lip = (lip * 1.2).clamp_min(1e-12)  # power iteration under-estimates

    box = Box(s, C * vf)  # the upper bounds: C, 0 on the padding
    warm = [a0 is not None and a0.numel() == xs[i].shape[0] for i, a0 in enumerate(alpha0s)]
    a = torch.zeros_like(s)
    if any(warm):
        a0, _ = pad_stack([as_float(a0, device, CLS_DTYPE).reshape(-1) if a0 is not None and ok
                           else torch.zeros(xs[i].shape[0], dtype=CLS_DTYPE, device=device)
                           for i, (a0, ok) in enumerate(zip(alpha0s, warm))])
        a = torch.where(torch.tensor(warm, device=device)[:, None], box.project(a0), a)
    qa = bmv(q, a)
    final = a.clone()
    n_iter = [ref.max_iter] * B
    ns = [x_.shape[0] for x_ in xs]
    active = list(range(B))  # the problems still being solved, in the order of the batch rows
    inv_lip = 1.0 / lip
    betas = momentum(ref.max_iter).to(device)
    k = torch.zeros(B, 1, dtype=torch.long, device=device)
    # q, 1/L, a, Qa, z, Qz, k, and the face of a at the last gap test (-1 at 0, +1 at C, 0 free)
    state = [q, inv_lip, a, qa, a, qa, k, bound_face(a, box.cv)]

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
        """The gap test, and for the rows that fail it, a polish (:func:`polish_face`)."""
        q, a, qa = state[0], state[2], state[3]
        gaps = kkt_gaps(a, qa - 1.0, box)
        done = gaps <= tol
        # polish the rows near a solution whose face held since the last test (otherwise the
        # face is seldom the solution's yet); a warm start's at once
        face = bound_face(a, box.cv)
        near = ~done & (gaps <= POLISH_GAP * tol)
        if it:
            near &= (face == state[7]).all(1)
        state[7] = face
        rows = near.nonzero()[:, 0] if polish else near[:0]
        if rows.numel():
            sub = box if rows.numel() == a.shape[0] else box.select(rows, a.shape[1])
            q_sub = q if rows.numel() == a.shape[0] else q.index_select(0, rows)
            a_star, qa_star = polish_face(q_sub, a.index_select(0, rows), sub)
            better = kkt_gaps(a_star, qa_star - 1.0, sub) <= tol
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
        qa_new = bmv(q, a_new)
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
    rho = intercepts(a, bmv(q_all, a) - 1.0, s, C * vf).tolist()
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
