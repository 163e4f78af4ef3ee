"""The GP regressor LA-MCTS's samplers fit in each leaf (torch, float64, warm-startable)."""
from __future__ import annotations

import math
from typing import Any

import torch

from gml_ray.searchers.lamcts.tensors import DTYPE, as_float, sq_dist

# ---- Gaussian process ----------------------------------------------------------------------------

NOISE_FLOOR = 5e-4  # TuRBO's lower bound on the noise variance (of the standardised targets)


def noise_bounds(floor: float = NOISE_FLOOR) -> tuple[float, float]:
    """The noise-variance bounds for a floor: TuRBO's (5e-4, 0.2) by default; a higher floor
    raises the ceiling with it (10x), so the fit can still explain more noise than the floor."""
    return floor, max(0.2, 10.0 * floor)


def cholesky(k: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of k, adding growing jitter to the diagonal until it succeeds."""
    chol, info = torch.linalg.cholesky_ex(k)
    if int(info) == 0:
        return chol
    scale = float(k.diagonal().abs().mean().clamp_min(1e-12))
    eye = torch.eye(k.shape[0], dtype=k.dtype, device=k.device)
    for jitter in (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
        chol, info = torch.linalg.cholesky_ex(k + jitter * scale * eye)
        if int(info) == 0:
            return chol
    raise RuntimeError("covariance matrix is not positive definite even with jitter")


SQRT5 = math.sqrt(5.0)


def _matern_values(a: torch.Tensor, b: torch.Tensor, outputscale: float) -> torch.Tensor:
    """Matern-5/2 k(a, b) (m, n) of inputs already divided by the lengthscales, no autograd:
    in place, one (m, n) buffer and one temporary, where the formula would make nine."""
    sr = sq_dist(a, b).clamp_min_(1e-30).sqrt_().mul_(SQRT5)
    e = sr.neg().exp_()
    # outputscale (1 + sr + sr^2 / 3) e^-sr
    return torch.addcmul(sr, sr, sr, value=1.0 / 3.0).add_(1.0).mul_(e).mul_(outputscale)


def _adam_step(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int,
               lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """One step of Adam on a flat parameter vector, in place, as torch.optim.Adam computes it
    (default betas and eps, no weight decay)."""
    b1, b2 = betas
    m.lerp_(g, 1.0 - b1)
    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
    bias1, bias2 = 1.0 - b1 ** step, 1.0 - b2 ** step
    denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / bias1)


class _Posterior(torch.autograd.Function):
    """The standardised posterior mean and variance (m,) at x (m, d), differentiable in x with
    a backward in closed form: dk/dx through dk/d(r^2) = -5/6 outputscale (1 + sr) e^-sr, and
    d var / dk = -2 K^-1 k (one more triangular solve). Autograd through the Matern formula and
    the solve computes the same in several times the operations."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, xs: torch.Tensor, ls: torch.Tensor,
                alpha: torch.Tensor, chol: torch.Tensor, outputscale: float,
                prior_mean: float) -> tuple[torch.Tensor, torch.Tensor]:
        u = x / ls
        sr = sq_dist(u, xs).clamp_min_(1e-30).sqrt_().mul_(SQRT5)  # (m, n)
        e = sr.neg().exp_()
        k = torch.addcmul(sr, sr, sr, value=1.0 / 3.0).add_(1.0).mul_(e).mul_(outputscale)
        mean = torch.addmv(torch.full_like(k[:, 0], prior_mean), k, alpha)
        v = torch.linalg.solve_triangular(chol, k.T, upper=False)  # (n, m)
        raw = outputscale - (v * v).sum(0)
        ctx.save_for_backward(u, xs, ls, alpha, chol, sr, e, v, raw)
        ctx.outputscale = outputscale
        return mean, raw.clamp_min(1e-12)

    @staticmethod
    def backward(ctx: Any, g_mean: torch.Tensor, g_var: torch.Tensor) -> tuple[Any, ...]:
        u, xs, ls, alpha, chol, sr, e, v, raw = ctx.saved_tensors
        g_var = torch.where(raw >= 1e-12, g_var, 0.0)  # the clamp passes no gradient
        w = torch.linalg.solve_triangular(chol.T, v, upper=True)  # K^-1 k(X, x) (n, m)
        dk = torch.outer(g_mean, alpha).sub_(w.T * (2.0 * g_var)[:, None])  # dL/dk (m, n)
        m = dk.mul_(sr.add(1.0).mul_(e)).mul_(-5.0 / 6.0 * ctx.outputscale)  # dL/d(r^2)
        grad_u = 2.0 * (u * m.sum(1, keepdim=True) - m @ xs)
        return grad_u / ls, None, None, None, None, None, None


def bounded(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(raw)


def _unbounded(value: float, lo: float, hi: float) -> float:
    p = min(max((value - lo) / (hi - lo), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class GaussianProcess:
    """Exact GP regression: Matern-5/2 kernel (ARD when ``ard``), constant mean, outputscale, noise.

    Targets are standardised; hyperparameters (kept within the bounds by a sigmoid
    reparametrisation, starting from TuRBO's lengthscale 0.5, outputscale 1, noise 0.005) are fit
    by ``steps`` Adam steps of rate ``lr`` on the exact negative log marginal likelihood, or with
    ``prior`` on the negative log posterior under weak priors (those of Optuna's GPSampler):
    ``-(0.1 l^2 + 0.1 / l^2)`` on each lengthscale l (most likely at 1, the box's width),
    Gamma(2, 1) on the outputscale and Gamma(1.1, 30) on the noise variance (mean 0.037).
    Without it, a few dozen points in 16-D often fit lengthscales at a bound.
    ``posterior`` and ``sample`` describe the latent function (no observation noise), in the
    original units of y. Inputs are expected in [0, 1]^d.
    """

    def __init__(self, device: torch.device | None = None, ard: bool = True,
                 lengthscale_bounds: tuple[float, float] = (0.005, 2.0),
                 outputscale_bounds: tuple[float, float] = (0.05, 20.0),
                 noise_bounds: tuple[float, float] = noise_bounds(), steps: int = 50,
                 lr: float = 0.1, prior: bool = False) -> None:
        self.device = device
        self.prior = prior
        self.ard = ard
        self.lengthscale_bounds = lengthscale_bounds
        self.outputscale_bounds = outputscale_bounds
        self.noise_bounds = noise_bounds
        self.steps, self.lr = steps, lr
        self.lengthscale = torch.empty(0, dtype=DTYPE)
        self.outputscale = 1.0
        self.noise = 0.0
        self.mean = 0.0
        self.y_mean, self.y_std = 0.0, 1.0
        self._x: torch.Tensor | None = None
        self._z: torch.Tensor | None = None  # standardised targets
        self._chol: torch.Tensor | None = None
        self._alpha: torch.Tensor | None = None

    def _matern(self, a: torch.Tensor, b: torch.Tensor, ls: torch.Tensor,
                outputscale: torch.Tensor | float) -> torch.Tensor:
        if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad
                                             or ls.requires_grad)):
            return _matern_values(a / ls, b / ls, float(outputscale))
        # clamp before sqrt: the gradient of sqrt at 0 (the diagonal) would be inf
        r = sq_dist(a / ls, b / ls).clamp_min(1e-30).sqrt()
        sr = math.sqrt(5.0) * r
        return outputscale * (1.0 + sr + sr * sr / 3.0) * torch.exp(-sr)

    def fit(self, x: torch.Tensor, y: torch.Tensor, init: "GaussianProcess | None" = None,
            steps: int | None = None) -> "GaussianProcess":
        """Fit hyperparameters to x (n, d) in [0, 1]^d and y (n,), then condition on them.

        ``init``: a fitted GP of the same dimension whose hyperparameters start the optimisation
        (a warm start; ``steps`` then says how many Adam steps, default ``self.steps``)."""
        device = self.device if self.device is not None else x.device
        x = as_float(x, device)
        y = as_float(y, device).reshape(-1)
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"GaussianProcess.fit needs matching, non-empty x and y "
                             f"(got {x.shape[0]} and {y.shape[0]} rows)")
        n, d = x.shape
        self.y_mean = float(y.mean())
        std = float(y.std(unbiased=False)) if n > 1 else 0.0
        self.y_std = std if std >= 1e-6 else 1.0
        z = (y - self.y_mean) / self.y_std

        lsb, osb, nb = self.lengthscale_bounds, self.outputscale_bounds, self.noise_bounds
        n_ls = d if self.ard else 1
        warm = init is not None and init._chol is not None and init.lengthscale.numel() == n_ls
        if warm:
            assert init is not None
            p = ((init.lengthscale.to(device=device, dtype=DTYPE) - lsb[0]) / (lsb[1] - lsb[0]))
            p = p.clamp(1e-6, 1 - 1e-6)
            raw_ls = (p / (1 - p)).log()
            start_os, start_noise, start_mean = init.outputscale, init.noise, init.mean
        else:
            raw_ls = torch.full((n_ls,), _unbounded(0.5, *lsb), dtype=DTYPE, device=device)
            start_os, start_noise, start_mean = 1.0, 0.005, 0.0
        # the parameters as one flat vector: [raw lengthscales, raw outputscale, raw noise, mean]
        params = torch.cat([raw_ls.detach(), torch.tensor(
            [_unbounded(start_os, *osb), _unbounded(start_noise, *nb), start_mean], dtype=DTYPE,
            device=device)])
        m1, m2 = torch.zeros_like(params), torch.zeros_like(params)
        for step in range(1, (self.steps if steps is None else steps) + 1):
            _adam_step(params, self._nll_grad(x, z, params, n_ls), m1, m2, step, self.lr)
        with torch.no_grad():
            self.lengthscale = bounded(params[:n_ls], *lsb).clone()
            self.outputscale, self.noise, self.mean = (
                float(bounded(params[n_ls], *osb)), float(bounded(params[n_ls + 1], *nb)),
                float(params[n_ls + 2]))
        self._x, self._z = x, z
        self._condition()
        return self

    def _nll_grad(self, x: torch.Tensor, z: torch.Tensor, params: torch.Tensor,
                  n_ls: int) -> torch.Tensor:
        """The gradient in ``params`` (see :meth:`fit`) of the negative log marginal likelihood
        over n, in closed form: with W = K^-1 - alpha alpha^T (alpha = K^-1 (z - mean)), the
        derivative in a hyperparameter theta is tr(W dK/dtheta) / 2. Autograd computes the same
        through the Cholesky factor, at several times the cost."""
        lsb, osb, nb = self.lengthscale_bounds, self.outputscale_bounds, self.noise_bounds
        n = x.shape[0]
        with torch.no_grad():
            raw_ls, raw_os, raw_noise, mean = (params[:n_ls], params[n_ls], params[n_ls + 1],
                                               params[n_ls + 2])
            sig_ls, sig_os, sig_noise = (torch.sigmoid(raw_ls), torch.sigmoid(raw_os),
                                         torch.sigmoid(raw_noise))
            ls = lsb[0] + (lsb[1] - lsb[0]) * sig_ls
            outputscale = osb[0] + (osb[1] - osb[0]) * sig_os
            noise = nb[0] + (nb[1] - nb[0]) * sig_noise
            u = x / ls  # (n, d)
            sr = sq_dist(u, u).clamp_min_(1e-30).sqrt_().mul_(SQRT5)
            e = torch.exp(sr.neg())
            k0 = torch.addcmul(sr, sr, sr, value=1.0 / 3.0).add_(1.0).mul_(e).mul_(outputscale)
            chol = cholesky(k0 + noise * torch.eye(n, dtype=DTYPE, device=x.device))
            alpha = torch.cholesky_solve((z - mean)[:, None], chol)  # (n, 1)
            w = torch.cholesky_inverse(chol).sub_(alpha * alpha.T)  # W (n, n)
            # dk/d(r^2) for the scaled squared distance r^2: -5/6 outputscale (1 + sr) e^-sr
            mw = sr.add_(1.0).mul_(e).mul_(w).mul_(-5.0 / 6.0 * outputscale)  # W o dk/dr^2
            # sum_ab M_ab (u_aj - u_bj)^2 = 2 (u^2)^T M 1 - 2 sum_a u_aj (M u)_aj (M symmetric)
            quad = 2.0 * ((u * u).T @ mw.sum(1) - (u * (mw @ u)).sum(0))  # (d,)
            g_ls = -quad / ls  # d r^2 / d ls_j = -2 (u_aj - u_bj)^2 / ls_j, the 2 in quad
            if n_ls == 1 and g_ls.numel() > 1:
                g_ls = g_ls.sum().reshape(1)
            g_os = 0.5 * (w * k0).sum() / outputscale
            g_noise = 0.5 * w.diagonal().sum()
            g_mean = -alpha.sum()
            if self.prior:  # the gradients of the priors' negative logs (see the class docstring)
                g_ls = g_ls + 0.2 * ls - 0.2 * ls.pow(-3)
                g_os = g_os + 1.0 - 1.0 / outputscale
                g_noise = g_noise + 30.0 - 0.1 / noise
            scale = torch.cat([(lsb[1] - lsb[0]) * sig_ls * (1 - sig_ls),
                               ((osb[1] - osb[0]) * sig_os * (1 - sig_os)).reshape(1),
                               ((nb[1] - nb[0]) * sig_noise * (1 - sig_noise)).reshape(1),
                               torch.ones(1, dtype=DTYPE, device=x.device)])
            return torch.cat([g_ls, torch.stack([g_os, g_noise, g_mean])]) * scale / n

    def _condition(self) -> None:
        assert self._x is not None and self._z is not None
        with torch.no_grad():
            n = self._x.shape[0]
            k = self._matern(self._x, self._x, self.lengthscale, self.outputscale)
            k = k + self.noise * torch.eye(n, dtype=DTYPE, device=k.device)
            self._chol = cholesky(k)
            self._alpha = torch.cholesky_solve((self._z - self.mean)[:, None], self._chol)[:, 0]

    def _check(self) -> None:
        if self._chol is None:
            raise RuntimeError("GaussianProcess is not fitted")

    def _latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised posterior mean (m,) and L^-1 k(X, x) (n, m), differentiable in x."""
        assert self._x is not None and self._chol is not None and self._alpha is not None
        ks = self._matern(self._x, x, self.lengthscale, self.outputscale)
        mean = self.mean + ks.T @ self._alpha
        v = torch.linalg.solve_triangular(self._chol, ks, upper=False)
        return mean, v

    # on the CPU, columns of k(X, x) computed at a time: the (n, chunk) blocks of the kernel and
    # of the solve stay in cache, where whole (n, m) matrices would stream through memory (the
    # posterior at 10,000 points: 48 ms in blocks of 256, 88 ms at once); a GPU takes them whole
    chunk = 256

    def _predict(self, x: torch.Tensor, keep_v: bool) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor | None]:
        """Standardised posterior mean (m,) and variance (m,) at x (m, d), and v = L^-1 k(X, x)
        (n, m) when ``keep_v``; no autograd, by blocks of :attr:`chunk` points."""
        assert self._x is not None and self._chol is not None and self._alpha is not None
        with torch.no_grad():
            ls = self.lengthscale
            xs, xq = self._x / ls, x / ls
            n, m = xs.shape[0], xq.shape[0]
            mean = torch.empty(m, dtype=DTYPE, device=x.device)
            var = torch.empty(m, dtype=DTYPE, device=x.device)
            v = torch.empty(n, m, dtype=DTYPE, device=x.device) if keep_v else None
            step = self.chunk if x.device.type == "cpu" else max(m, 1)
            for i in range(0, m, step):
                ks = _matern_values(xs, xq[i:i + step], self.outputscale)  # (n, c)
                torch.mv(ks.T, self._alpha, out=mean[i:i + step])
                # L^-1 ks as (ks^T L^-T)^T: ks^T is already in the column-major layout LAPACK
                # solves in, so nothing is copied
                vc = torch.linalg.solve_triangular(self._chol.T, ks.T, upper=True, left=False).T
                torch.linalg.vecdot(vc, vc, dim=0, out=var[i:i + step])
                if v is not None:
                    v[:, i:i + step] = vc
            mean.add_(self.mean)
            var = var.neg_().add_(self.outputscale).clamp_min_(1e-12)
        return mean, var, v

    def factor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, var, v) at x (m, d) in standardised units, with v = L^-1 k(X, x) (n, m): the
        posterior covariance of x_i and x_j is ``k(x_i, x_j) - v_i . v_j`` (see :meth:`cross`)."""
        self._check()
        assert self._x is not None
        mean, var, v = self._predict(as_float(x, self._x.device), keep_v=True)
        assert v is not None
        return mean, var, v

    def kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The prior covariance k(a, b) (m, k) in standardised units."""
        with torch.no_grad():
            return self._matern(as_float(a, a.device), as_float(b, b.device), self.lengthscale,
                                self.outputscale)

    def posterior(self, x: torch.Tensor, differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean (m,) and variance (m,) of the latent function at x (m, d), original units.

        ``differentiable`` keeps the autograd graph to x (a float64 tensor on the GP's device), so
        that an acquisition function of them can be climbed by gradient."""
        self._check()
        assert self._x is not None
        if not differentiable:
            mean, var, _ = self._predict(as_float(x, self._x.device), keep_v=False)
        else:
            assert self._chol is not None and self._alpha is not None
            with torch.enable_grad():
                mean, var = _Posterior.apply(x, self._x / self.lengthscale, self.lengthscale,
                                             self._alpha, self._chol, self.outputscale,
                                             self.mean)
        return mean * self.y_std + self.y_mean, var * self.y_std ** 2

    def sample(self, x: torch.Tensor, n_samples: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Joint posterior draws (n_samples, m) of the latent function at x (m, d), original units.

        Normal draws come from ``generator`` (on its own device, then moved), so a seeded
        generator gives the same draws.
        """
        self._check()
        assert self._x is not None
        x = as_float(x, self._x.device)
        m = x.shape[0]
        mean, _, v = self._predict(x, keep_v=True)
        assert v is not None
        with torch.no_grad():
            cov = torch.addmm(self._matern(x, x, self.lengthscale, self.outputscale), v.T, v,
                              alpha=-1.0)
            cov = 0.5 * (cov + cov.T)
            cov.diagonal().add_(1e-8 * self.outputscale)
            chol = cholesky(cov)
            gen_device = generator.device if generator is not None else torch.device("cpu")
            eps = torch.randn(m, n_samples, generator=generator, dtype=DTYPE,
                              device=gen_device).to(x.device)
            draws = mean[:, None] + chol @ eps
        return (draws.T * self.y_std + self.y_mean).contiguous()

    def add_fantasy(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Condition on extra points x (k, d), y (k,) without refitting hyperparameters.

        For batches by kriging believer: pass the posterior mean as y.
        """
        self._check()
        assert self._x is not None and self._z is not None
        x = as_float(x, self._x.device).reshape(-1, self._x.shape[1])
        y = as_float(y, self._x.device).reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"add_fantasy got {x.shape[0]} points but {y.shape[0]} values")
        self._x = torch.cat([self._x, x])
        self._z = torch.cat([self._z, (y - self.y_mean) / self.y_std])
        self._condition()
