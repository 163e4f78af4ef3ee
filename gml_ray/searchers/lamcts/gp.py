"""The GP regressor LA-MCTS's samplers fit in each leaf (torch, float64, warm-startable)."""
from __future__ import annotations

import math

import torch

from .tensors import DTYPE, as_float, sq_dist

# ---- Gaussian process ----------------------------------------------------------------------------

def _cholesky(k: torch.Tensor) -> torch.Tensor:
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


def _bounded(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(raw)


def _unbounded(value: float, lo: float, hi: float) -> float:
    p = min(max((value - lo) / (hi - lo), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class GaussianProcess:
    """Exact GP regression: Matern-5/2 kernel (ARD when ``ard``), constant mean, outputscale, noise.

    Targets are standardised; hyperparameters (kept within the bounds by a sigmoid
    reparametrisation, starting from TuRBO's lengthscale 0.5, outputscale 1, noise 0.005) are fit
    by ``steps`` Adam steps of rate ``lr`` on the exact negative log marginal likelihood.
    ``posterior`` and ``sample`` describe the latent function (no observation noise), in the
    original units of y. Inputs are expected in [0, 1]^d.
    """

    def __init__(self, device: torch.device | None = None, ard: bool = True,
                 lengthscale_bounds: tuple[float, float] = (0.005, 2.0),
                 outputscale_bounds: tuple[float, float] = (0.05, 20.0),
                 noise_bounds: tuple[float, float] = (5e-4, 0.2), steps: int = 50,
                 lr: float = 0.1) -> None:
        self.device = device
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
            raw_ls = (p / (1 - p)).log().detach().requires_grad_(True)
            start_os, start_noise, start_mean = init.outputscale, init.noise, init.mean
        else:
            raw_ls = torch.full((n_ls,), _unbounded(0.5, *lsb), dtype=DTYPE, device=device,
                                requires_grad=True)
            start_os, start_noise, start_mean = 1.0, 0.005, 0.0
        raw_os = torch.tensor(_unbounded(start_os, *osb), dtype=DTYPE, device=device,
                              requires_grad=True)
        raw_noise = torch.tensor(_unbounded(start_noise, *nb), dtype=DTYPE, device=device,
                                 requires_grad=True)
        mean = torch.tensor(start_mean, dtype=DTYPE, device=device, requires_grad=True)
        opt = torch.optim.Adam([raw_ls, raw_os, raw_noise, mean], lr=self.lr)
        eye = torch.eye(n, dtype=DTYPE, device=device)
        for _ in range(self.steps if steps is None else steps):
            opt.zero_grad()
            k = self._matern(x, x, _bounded(raw_ls, *lsb), _bounded(raw_os, *osb))
            chol = _cholesky(k + _bounded(raw_noise, *nb) * eye)
            r = (z - mean)[:, None]
            w = torch.linalg.solve_triangular(chol, r, upper=False)
            nll = 0.5 * (w * w).sum() + chol.diagonal().log().sum() + 0.5 * n * math.log(2 * math.pi)
            (nll / n).backward()
            opt.step()
        with torch.no_grad():
            self.lengthscale = _bounded(raw_ls, *lsb).detach().clone()
            self.outputscale = float(_bounded(raw_os, *osb))
            self.noise = float(_bounded(raw_noise, *nb))
            self.mean = float(mean)
        self._x, self._z = x, z
        self._condition()
        return self

    def _condition(self) -> None:
        assert self._x is not None and self._z is not None
        with torch.no_grad():
            n = self._x.shape[0]
            k = self._matern(self._x, self._x, self.lengthscale, self.outputscale)
            k = k + self.noise * torch.eye(n, dtype=DTYPE, device=k.device)
            self._chol = _cholesky(k)
            self._alpha = torch.cholesky_solve((self._z - self.mean)[:, None], self._chol)[:, 0]

    def _check(self) -> None:
        if self._chol is None:
            raise RuntimeError("GaussianProcess is not fitted")

    def _latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised posterior mean (m,) and L^-1 k(X, x) (n, m)."""
        assert self._x is not None and self._chol is not None and self._alpha is not None
        ks = self._matern(self._x, x, self.lengthscale, self.outputscale)
        mean = self.mean + ks.T @ self._alpha
        v = torch.linalg.solve_triangular(self._chol, ks, upper=False)
        return mean, v

    def factor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, var, v) at x (m, d) in standardised units, with v = L^-1 k(X, x) (n, m): the
        posterior covariance of x_i and x_j is ``k(x_i, x_j) - v_i . v_j`` (see :meth:`cross`)."""
        self._check()
        assert self._x is not None
        x = as_float(x, self._x.device)
        with torch.no_grad():
            mean, v = self._latent(x)
            var = (self.outputscale - (v * v).sum(0)).clamp_min(1e-12)
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
            x = as_float(x, self._x.device)
        with torch.set_grad_enabled(differentiable):
            mean, v = self._latent(x)
            var = (self.outputscale - (v * v).sum(0)).clamp_min(1e-12)
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
        with torch.no_grad():
            mean, v = self._latent(x)
            cov = self._matern(x, x, self.lengthscale, self.outputscale) - v.T @ v
            cov = 0.5 * (cov + cov.T)
            cov.diagonal().add_(1e-8 * self.outputscale)
            chol = _cholesky(cov)
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
