"""The 12 learning-curve models of Domhan et al. (IJCAI 2015) and their MCMC-weighted combination.

:func:`predict_final` is the whole predictor, a pure function of the observed values:

1. Fit every model with at least two degrees of freedom left (``n_params + 2 <= n``) by least
   squares, constrained to non-decreasing curves (the assessor is for rising metrics).
2. Drop fits worse than a flat line, then outlier models: predictions at the target further
   from their median than max(scaled MAD, noise level), i.e. about the outer half.
3. No prediction (None) when fewer than :data:`MIN_MODELS` models survive, or when the survivors
   still disagree by more than SPREAD x the curve's scale: too early to tell.
4. Sample the weights of the survivors' combination by Metropolis-Hastings; the prediction is
   the posterior mean of the combination at the target.
5. Abstain (None) when the prediction cannot be expected to beat the last observed value: when
   it asks the curve to rise, per remaining step, faster than :data:`MAX_RISE_RATE` x its mean
   rise per observed step so far. A learning curve's rise slows down; such a prediction is an
   over-extrapolation, and on held-out curves those were worse than the last value more often
   than not (benchmarks/ASSESSORS.md).

Steps are 1-based (``x = 1..n`` for ``n`` observed values). Every model is, for fixed values of
at most two "shape" parameters, linear in the others (``pow3 = c - a * x**-alpha`` is linear in
``c`` and ``a`` once ``alpha`` is fixed). So instead of a local optimiser from one starting point
(NNI's ``curve_fit``, which often stops in a poor local minimum or fails), each model is fitted
over a grid of shape parameters, solving the linear part in closed form for every grid point at
once (numpy), then zooming in around the best points: the global least-squares fit within the
grid's range, in well under a millisecond per model. Nothing is kept between calls: a fit that
fails leaves its model out of that prediction, never a stale one in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# ---- the 12 models: y(x) with x the 1-based step -------------------------------------------------


def vap(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Vapor pressure: ``exp(a + b/x + c*log(x))``."""
    return np.exp(a + b / x + c * np.log(x))


def pow3(x: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * x ** (-alpha)


def linear(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * x + b


def logx_linear(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * np.log(x) + b


def dr_hill_zero_background(x: np.ndarray, theta: float, eta: float, kappa: float) -> np.ndarray:
    return theta * x ** eta / (kappa ** eta + x ** eta)


def log_power(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a / (1.0 + (x / np.exp(b)) ** c)


def pow4(x: np.ndarray, alpha: float, a: float, b: float, c: float) -> np.ndarray:
    return c - (a * x + b) ** (-alpha)


def mmf(x: np.ndarray, alpha: float, beta: float, kappa: float, delta: float) -> np.ndarray:
    """Morgan-Mercer-Flodin."""
    return alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta)


def exp4(x: np.ndarray, c: float, a: float, b: float, alpha: float) -> np.ndarray:
    return c - np.exp(-a * x ** alpha + b)


def ilog2(x: np.ndarray, c: float, a: float) -> np.ndarray:
    # log(x + 1) as in Domhan et al.: NNI's log(x) divides by zero at the first step.
    return c - a / np.log(x + 1.0)


def weibull(x: np.ndarray, alpha: float, beta: float, kappa: float, delta: float) -> np.ndarray:
    return alpha - (alpha - beta) * np.exp(-(kappa * x) ** delta)


def janoschek(x: np.ndarray, a: float, beta: float, k: float, delta: float) -> np.ndarray:
    return a - (a - beta) * np.exp(-k * x ** delta)


MODELS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "vap": (vap, 3), "pow3": (pow3, 3), "linear": (linear, 2), "logx_linear": (logx_linear, 2),
    "dr_hill_zero_background": (dr_hill_zero_background, 3), "log_power": (log_power, 3),
    "pow4": (pow4, 4), "mmf": (mmf, 4), "exp4": (exp4, 4), "ilog2": (ilog2, 2),
    "weibull": (weibull, 4), "janoschek": (janoschek, 4),
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
MIN_MODELS = 4  # fewer surviving models than this: the curve is too ambiguous to predict
MIN_DOF = 2
TOL_MADS = 1.0


@dataclass
class Fit:
    """One model fitted to a curve: its parameters (in the model function's order), its values at
    the observed steps, its value at the target step, and its sum of squared residuals."""

    name: str
    params: tuple[float, ...]
    curve: np.ndarray
    at_target: float
    sse: float


# ---- grid least squares ----------------------------------------------------------------------------

# A shape family is y = c + s*g(x; u) ("affine") or y = s*g(x; u) ("scaled") with s >= 0, g oriented
# so that s >= 0 gives a non-decreasing curve, and u at most two shape coordinates searched on a
# grid. Several of the 12 models are re-parametrisations of one family (exp4 = weibull = janoschek,
# dr_hill_zero_background = log_power): a family is fitted once per curve and shared.
Basis = Callable[..., np.ndarray]
Axis = tuple[float, float, int]  # (low, high, points) of one shape coordinate's coarse grid
COARSE_1D, COARSE_2D = 40, 20
ZOOM_POINTS, ZOOM_ROUNDS, ZOOM_KEEP = 7, 3, 3  # refinement: see _grid_fit
_L = np.log


@dataclass(frozen=True)
class _Family:
    basis: Basis
    axes: tuple[Axis, ...]
    affine: bool
    n_params: int  # of the models in this family (the noise needs degrees of freedom beyond them)
    rising: bool = True  # g is non-decreasing at every grid point (else points are checked)


_FAMILIES: dict[str, _Family] = {
    "linear": _Family(lambda x: x, (), True, 2),
    "logx_linear": _Family(lambda x: np.log(x), (), True, 2),
    "ilog2": _Family(lambda x: -1.0 / np.log(x + 1.0), (), True, 2),
    # -x^-alpha; u = log alpha
    "pow3": _Family(lambda x, la: -x ** -np.exp(la), ((_L(1e-2), _L(5.0), COARSE_1D),), True, 3),
    # -(1 + (x - 1)/R)^-alpha, i.e. -(x + R - 1)^-alpha up to scale; u = (log alpha, log R).
    # Large alpha and R reach the exponential limit exp(-(x - 1) alpha/R).
    "pow4": _Family(lambda x, la, lr: -(1.0 + (x - 1.0) * np.exp(-lr)) ** -np.exp(la),
                    ((_L(1e-2), _L(1e4), COARSE_2D), (_L(1e-2), _L(1e6), COARSE_2D)), True, 4),
    # -exp(-a x^alpha); u = (log a, log alpha)
    "exp": _Family(lambda x, la, lal: -np.exp(-np.exp(la) * x ** np.exp(lal)),
                   ((_L(1e-4), _L(10.0), COARSE_2D), (_L(0.1), _L(5.0), COARSE_2D)), True, 4),
    # -1/(1 + (kappa x)^delta); u = (log kappa, log delta)
    "mmf": _Family(lambda x, lk, ld: -1.0 / (1.0 + (np.exp(lk) * x) ** np.exp(ld)),
                   ((_L(1e-3), _L(10.0), COARSE_2D), (_L(0.1), _L(10.0), COARSE_2D)), True, 4),
    # 1/(1 + (x/e^b)^-eta); u = (b, log eta)
    "hill": _Family(lambda x, b, le: 1.0 / (1.0 + (x / np.exp(b)) ** -np.exp(le)),
                    ((_L(1e-2), _L(1e3), COARSE_2D), (_L(0.1), _L(10.0), COARSE_2D)), False, 3),
    # exp(b/x) x^c; u = (b, c); grid points where it falls are left out by _evaluate
    "vap": _Family(lambda x, b, c: np.exp(b / x + c * np.log(x)),
                   ((-8.0, 0.5, COARSE_2D), (-0.5, 1.0, COARSE_2D)), False, 3, rising=False),
}
_FAMILY_OF = {"vap": "vap", "pow3": "pow3", "linear": "linear", "logx_linear": "logx_linear",
              "dr_hill_zero_background": "hill", "log_power": "hill", "pow4": "pow4", "mmf": "mmf",
              "exp4": "exp", "ilog2": "ilog2", "weibull": "exp", "janoschek": "exp"}


def _solve(G: np.ndarray, y: np.ndarray, affine: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row g of ``G`` (K, n): least-squares c and s >= 0 of y ~ c + s*g (c = 0 when not
    ``affine``), and the sum of squared residuals, in closed form."""
    if affine:
        gm = G.mean(axis=1)
        gc = G - gm[:, None]
        yc = y - y.mean()
        sgg = np.einsum("kn,kn->k", gc, gc)
        sgy = np.maximum(gc @ yc, 0.0)  # s < 0 would make the curve fall: clamp to flat
        s = np.divide(sgy, sgg, out=np.zeros_like(sgy), where=sgg > 0)
        return y.mean() - s * gm, s, float(yc @ yc) - s * sgy
    sgg = np.einsum("kn,kn->k", G, G)
    sgy = np.maximum(G @ y, 0.0)
    s = np.divide(sgy, sgg, out=np.zeros_like(sgy), where=sgg > 0)
    return np.zeros_like(s), s, float(y @ y) - s * sgy


def _evaluate(family: _Family, points: np.ndarray, xs: np.ndarray,
              y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit the linear part at every shape point (K, d): (c, s, sse, curves at ``xs``).

    Each basis row is scaled to a maximum of 1 first (s absorbs the scale), so shapes whose raw
    values are tiny or huge are fitted as accurately as any other; a point whose basis is not
    finite, or (for a family not rising by construction) falls somewhere on ``xs``, which ends
    with the target step, scores inf.
    """
    n = len(y)
    G = np.atleast_2d(family.basis(xs[None, :], *[points[:, j:j + 1] for j in range(points.shape[1])]))
    G = np.broadcast_to(G, (len(points), len(xs)))
    scale = np.max(np.abs(G[:, :n]), axis=1)
    ok = np.isfinite(G).all(axis=1) & np.isfinite(scale) & (scale > 0)
    G = np.divide(G, scale[:, None], out=np.zeros_like(G), where=ok[:, None])
    if not family.rising:
        ok &= np.all(np.diff(G, axis=1) >= -1e-12, axis=1)
    c, s, sse = _solve(G[:, :n], y, family.affine)
    sse = np.where(ok & np.isfinite(sse), np.maximum(sse, 0.0), np.inf)
    return c, np.divide(s, scale, out=np.zeros_like(s), where=ok), sse, c[:, None] + s[:, None] * G


def _grid_fit(family: _Family, xs: np.ndarray,
              y: np.ndarray) -> tuple[tuple[float, ...], float, float, np.ndarray] | None:
    """The best (u, c, s, curve at ``xs``) over the family's shape grid; None when no grid point
    gives a finite, non-decreasing curve.

    The coarse grid's ZOOM_KEEP best points are each refined ZOOM_ROUNDS times on a finer grid
    spanning one step either side (several, because narrow curved valleys, such as the hill
    family's, put the global minimum next to a coarse point that is not the coarse best).
    """
    d = len(family.axes)
    lows = np.array([lo for lo, _, _ in family.axes])
    highs = np.array([hi for _, hi, _ in family.axes])
    steps = (highs - lows) / np.array([num - 1 for _, _, num in family.axes])
    points = np.stack([m.ravel() for m in np.meshgrid(
        *[np.linspace(lo, hi, num) for lo, hi, num in family.axes], indexing="ij")], axis=1) \
        if d else np.zeros((1, 0))
    offsets = np.stack([m.ravel() for m in np.meshgrid(
        *[np.linspace(-1.0, 1.0, ZOOM_POINTS)] * d, indexing="ij")], axis=1) if d else None
    best = None
    for round_ in range(ZOOM_ROUNDS + 1 if d else 1):
        c, s, sse, curves = _evaluate(family, points, xs, y)
        order = np.argsort(sse)[:ZOOM_KEEP]
        order = order[np.isfinite(sse[order])]
        if not len(order):
            break
        i = int(order[0])
        if best is None or sse[i] <= best[0]:
            best = (float(sse[i]), tuple(float(v) for v in points[i]), float(c[i]), float(s[i]),
                    curves[i])
        if round_ < ZOOM_ROUNDS and d:
            # around each kept point, a finer grid spanning one current step either side
            assert offsets is not None
            points = np.clip(points[order][:, None, :] + offsets[None, :, :] * steps,
                             lows, highs).reshape(-1, d)
            steps = steps * 2.0 / (ZOOM_POINTS - 1)
    return best[1:] if best is not None else None


def _params(name: str, u: tuple[float, ...], c: float, s: float) -> tuple[float, ...]:
    """A family's fit (u, c, s) as the parameters of the model function ``name``, in its order."""
    e = np.exp
    if name in ("linear", "logx_linear"):
        return (s, c)
    if name == "ilog2":
        return (c, s)
    if name == "pow3":
        return (c, s, float(e(u[0])))
    if name == "pow4":  # s (1 + (x-1)/R)^-alpha = (a x + b)^-alpha, a = s^(-1/alpha)/R, b = a(R-1)
        alpha, big_r = float(e(u[0])), float(e(u[1]))
        a = float(s ** (-1.0 / alpha)) / big_r if s > 0 else float("inf")
        return (alpha, a, a * (big_r - 1.0), c)
    if name in ("exp4", "weibull", "janoschek"):
        a, alpha = float(e(u[0])), float(e(u[1]))
        if name == "exp4":
            return (c, a, float(np.log(s)) if s > 0 else float("-inf"), alpha)
        if name == "weibull":
            return (c, c - s, float(a ** (1.0 / alpha)), alpha)
        return (c, c - s, a, alpha)
    if name == "mmf":
        return (c, c - s, float(e(u[0])), float(e(u[1])))
    if name == "log_power":
        return (s, u[0], -float(e(u[1])))
    if name == "dr_hill_zero_background":
        return (s, float(e(u[1])), float(e(u[0])))
    if name == "vap":
        return (float(np.log(s)) if s > 0 else float("-inf"), u[0], u[1])
    raise KeyError(name)


def fit_models(values: Sequence[float] | np.ndarray, target: int, min_dof: int = 2) -> list[Fit]:
    """Least-squares fits of every model that leaves at least ``min_dof`` degrees of freedom
    (``n_params + min_dof <= len(values)``), each constrained to a non-decreasing curve.

    A model whose fit fails (no finite curve anywhere on its grid) is left out.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    xs = np.append(np.arange(1.0, n + 1.0), float(target))
    fits: list[Fit] = []
    done: dict[str, tuple | None] = {}
    with np.errstate(all="ignore"):  # overflowing grid corners are expected; they score inf
        for name in MODEL_NAMES:
            family = _FAMILIES[_FAMILY_OF[name]]
            if family.n_params + min_dof > n:
                continue
            if _FAMILY_OF[name] not in done:
                done[_FAMILY_OF[name]] = _grid_fit(family, xs, y)
            result = done[_FAMILY_OF[name]]
            if result is None or not np.all(np.isfinite(result[3])):
                continue
            u, c, s, at = result
            fits.append(Fit(name, _params(name, u, c, s), at[:n], float(at[n]),
                            float(np.sum((at[:n] - y) ** 2))))
    return fits


# ---- filter and combination ------------------------------------------------------------------------

OUTLIER_MADS = 1.0  # keep predictions within this many scaled MADs (or noise levels) of the median
SPREAD = 1.5  # no prediction when the kept models disagree by more than this x the curve's scale
SPREAD_LEVEL = 0.05  # the scale of a nearly flat curve: this share of its level
MCMC_CHAINS, MCMC_STEPS, MCMC_STEP = 32, 30, 1.0
PRIOR_SD = 3.0  # weights w = softmax(z), z ~ N(0, PRIOR_SD^2 I): equal weights a priori
# abstain when the predicted rise per remaining step exceeds this share of the observed mean rise
# per step (the curve's scale / its points); chosen on curve seeds 20-39 (benchmarks/assessors.py)
MAX_RISE_RATE = 0.4


def filter_fits(fits: list[Fit], values: Sequence[float] | np.ndarray) -> list[Fit]:
    """Drop fits worse than a flat line, then the outliers among the predictions at the target.

    A prediction is an outlier when it lies further from the median prediction than
    OUTLIER_MADS x max(scaled MAD of the predictions, the best fit's RMS residual); with the
    default 1.0 that keeps about the central half of the models.
    """
    y = np.asarray(values, dtype=float)
    flat = float(np.sum((y - y.mean()) ** 2))
    kept = [f for f in fits if f.sse <= flat * (1 + 1e-9)]
    if not kept:
        return kept
    preds = np.array([f.at_target for f in kept])
    med = float(np.median(preds))
    mad = 1.4826 * float(np.median(np.abs(preds - med)))
    noise = float(np.sqrt(min(f.sse for f in kept) / len(y)))
    tol = OUTLIER_MADS * max(mad, noise, 1e-12 * max(1.0, abs(med)))
    return [f for f in kept if abs(f.at_target - med) <= tol]


def combine(fits: list[Fit], values: Sequence[float] | np.ndarray, seed: int = 0,
            chains: int | None = None, steps: int | None = None) -> float:
    """The posterior mean, at the target, of the weighted sum of the ``fits``' curves.

    The weights are sampled by Metropolis-Hastings, ``chains`` random-walk chains at once on
    z (w = softmax(z)), the first half of the ``steps`` discarded as burn-in. The likelihood is
    Gaussian with the noise variance integrated out (Jeffreys prior): SSE(w)^(-n/2). As in
    Domhan et al., a combination that ends lower than it starts has zero prior.
    """
    chains = chains or MCMC_CHAINS
    steps = steps or MCMC_STEPS
    y = np.asarray(values, dtype=float)
    n, m = len(y), len(fits)
    curves = np.array([f.curve for f in fits])             # (m, n)
    target = np.array([f.at_target for f in fits])         # (m,)
    yy = float(y @ y)
    # One product gives, for unnormalised weights e (w = e / S), every term the step needs:
    # SSE(w) = e.G.e/S^2 - 2 e.(curves y)/S + y.y, the rise e.(target - first)/S, the prediction.
    A = np.column_stack([curves @ curves.T, curves @ y, target - curves[:, 0], target])
    floor = 1e-12 * max(yy, 1e-300)  # a noise-free curve must not give log(0)
    half_n, half_prec = 0.5 * n, 0.5 / PRIOR_SD ** 2
    rng = np.random.default_rng(seed)
    moves = MCMC_STEP * rng.standard_normal((steps, chains, m))
    log_u = np.log(rng.random((steps, chains)))

    def log_post(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(z)  # |z| stays far below overflow: the prior holds it near 0
        inv = 1.0 / e.sum(axis=1)
        eA = e @ A
        sse = (np.einsum("cm,cm->c", eA[:, :m], e) * inv - 2.0 * eA[:, m]) * inv + yy
        lp = -half_n * np.log(np.maximum(sse, floor)) - half_prec * np.einsum("cm,cm->c", z, z)
        # every model is non-decreasing, so only rounding can make the rise negative
        lp[eA[:, m + 1] * inv < -1e-9 * (abs(yy) + 1.0)] = -np.inf
        return lp, eA[:, m + 2] * inv

    z = np.zeros((chains, m))
    lp, pred = log_post(z)
    total, count = 0.0, 0
    for step in range(steps):
        proposal = z + moves[step]
        lp_new, pred_new = log_post(proposal)
        accept = log_u[step] < lp_new - lp  # nan (-inf minus -inf) counts as a rejection
        z[accept] = proposal[accept]
        lp[accept] = lp_new[accept]
        pred[accept] = pred_new[accept]
        if step >= steps // 2:
            total += float(pred.sum())
            count += chains
    return total / count


def predict_final(values: Sequence[float], target: int, seed: int = 0) -> float | None:
    """Predict a rising curve's value at step ``target`` (1-based) from its first values.

    ``None`` means "too early to tell": fewer than :data:`MIN_MODELS` models fit and survive the
    filter (fewer than 5 points always give None), or the survivors' predictions at the target
    spread wider than SPREAD x the curve's scale (the range it covered so far, at least
    SPREAD_LEVEL x its level), or the prediction rises per remaining step faster than
    MAX_RISE_RATE x the scale per observed step (it would likely do worse than the last value).
    Deterministic for a given ``seed``.
    """
    y = np.asarray(values, dtype=float)
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return None
    kept = filter_fits(fit_models(y, target), y)
    if len(kept) < MIN_MODELS:
        return None
    preds = [f.at_target for f in kept]
    # the scale of the curve: the range it covered, or for a nearly flat curve a share of its level
    scale = max(float(np.ptp(y)), SPREAD_LEVEL * float(np.max(np.abs(y))), 1e-12)
    if max(preds) - min(preds) > SPREAD * scale:
        return None
    with np.errstate(all="ignore"):
        predicted = combine(kept, y, seed)
    remaining = target - len(y)
    if remaining > 0 and (predicted - y[-1]) / remaining > MAX_RISE_RATE * scale / len(y):
        return None
    return predicted
