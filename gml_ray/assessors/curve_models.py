"""The 12 learning-curve models of Domhan et al. (IJCAI 2015) and their MCMC-weighted combination.

:func:`predict_final` is the whole predictor, a pure function of the observed values:

1. Fit every model with at least two degrees of freedom left (``n_params + 2 <= n``) by least
   squares, constrained to non-decreasing curves (the assessor is for rising metrics).
2. Drop fits worse than a flat line, then outlier models: predictions at the target further
   from their median than max(scaled MAD, noise level), i.e. about the outer half.
3. No prediction (None) when fewer than :data:`MIN_MODELS` models survive: too early to tell.
4. Sample the weights of the survivors' combination by Metropolis-Hastings; the prediction is
   the posterior mean of the combination at the target, and the posterior mean of its values at
   the observed steps is "the fitted curve".
5. Abstain (None) when the survivors disagree by more than SPREAD x the range of the predicted
   curve (what it rose so far plus the rise predicted), or when the prediction breaks the
   learning-curve prior (:func:`rise_bound`): a learning curve slows down, and by the time it
   is watched it has come some way. Measured on the fitted curve, so that noise neither
   triggers nor hides it, the rise still to come may exceed neither the rise per observed step
   times the remaining steps (the curve may not speed up) nor MAX_RISE_MULTIPLE x the rise so
   far, beyond the noise of the values. Such predictions were worse than the last value more
   often than not (benchmarks/ASSESSORS.md); an abstention lets the job run on.

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
SPREAD = 1.5  # no prediction when the kept models disagree by more than this x the predicted range
SPREAD_LEVEL = 0.05  # the scale of a nearly flat curve: this share of its level
MCMC_CHAINS, MCMC_STEPS, MCMC_STEP = 32, 30, 1.0
PRIOR_SD = 3.0  # weights w = softmax(z), z ~ N(0, PRIOR_SD^2 I): equal weights a priori
# abstain when the rise still to come exceeds this multiple of the rise so far (see rise_bound).
# Chosen on the tune set of benchmarks/assessors.py (--split tune; 1.5 abstained on half the
# late-rising curves at k = 10, 3 let k = 5 overshoot); the rule before it, 0.4 x the rise per
# observed step, is the same at k = 5 of 30 steps (0.4 x 25 / 5 = 2) but tightens with k.
MAX_RISE_MULTIPLE = 2.0


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
    """The posterior mean, at the target, of the weighted sum of the ``fits``' curves
    (:func:`combine_curve` gives its values at the observed steps too).

    The weights are sampled by Metropolis-Hastings, ``chains`` random-walk chains at once on
    z (w = softmax(z)), the first half of the ``steps`` discarded as burn-in. The likelihood is
    Gaussian with the noise variance integrated out (Jeffreys prior): SSE(w)^(-n/2). As in
    Domhan et al., a combination that ends lower than it starts has zero prior.
    """
    return combine_curve(fits, values, seed, chains, steps)[0]


def combine_curve(fits: list[Fit], values: Sequence[float] | np.ndarray, seed: int = 0,
                  chains: int | None = None, steps: int | None = None) -> tuple[float, np.ndarray]:
    """:func:`combine`'s prediction and the posterior mean of the combination at the observed
    steps (the fitted curve), from the same samples."""
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
    weights = np.zeros(m)  # the sum of the sampled weights, for the fitted curve
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
            e = np.exp(z)
            weights += (e / e.sum(axis=1, keepdims=True)).sum(axis=0)
    return total / count, (weights / count) @ curves


def rise_bound(fitted: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
               target: int) -> float:
    """The most a prediction may rise above the fitted curve's last value, ``fitted[-1]``.

    With d the fitted curve's rise over the n observed steps (``fitted[-1] - fitted[0]``) and
    r = target - n the steps left, the bound is ``min(r / (n - 1), MAX_RISE_MULTIPLE) * d +
    noise``:

    * ``r / (n - 1) * d``: the rise per remaining step may not exceed the mean rise per observed
      step. A learning curve slows down; a prediction that has it speed up extrapolates a bend
      the values do not show (a curve still steeply rising with no sign of levelling off).
    * ``MAX_RISE_MULTIPLE * d``: the curve may not rise more than twice as much again as it rose
      so far, i.e. it is at least a third of the way up. Binding early (n <= 10 of 30 here),
      where a few points that look straight cannot tell a slow curve from one about to level
      off, and extrapolating them overshot more often than not.
    * ``noise``: the RMS residual of ``values`` about the fitted curve. A rise within the noise
      of one value is no rise: a flat, noisy curve may predict its level.

    Both rises are measured on the fitted curve, not on the raw values: a low last value or one
    outlier neither triggers the bound nor hides an over-extrapolation, whatever the noise. As
    for the spread, d is at least SPREAD_LEVEL x the curve's level: a nearly flat curve may
    predict a rise of a few percent of its level.
    """
    f = np.asarray(fitted, dtype=float)
    y = np.asarray(values, dtype=float)
    n = len(f)
    noise = float(np.sqrt(np.mean((f - y) ** 2)))
    multiple = min((target - n) / max(n - 1, 1), MAX_RISE_MULTIPLE)  # 0 or less: no steps left
    rise = max(float(f[-1] - f[0]), SPREAD_LEVEL * float(np.max(np.abs(f))))
    return max(multiple, 0.0) * rise + noise


@dataclass
class Prediction:
    """What :func:`predict_detail` found: ``value`` is :func:`predict_final`'s answer (None: it
    abstains), ``reason`` why not ("" when it answers; "points": fewer than 3 finite values,
    "models": fewer than MIN_MODELS survivors of the filter, "spread": they disagree, "rise":
    the prediction rises above :func:`rise_bound`); ``kept`` the survivors, ``combined`` their
    combination's prediction and ``fitted`` its values at the observed steps (None when it was
    not made), ``scale`` the curve's scale."""

    value: float | None
    reason: str
    combined: float | None = None
    fitted: np.ndarray | None = None
    kept: list[Fit] | None = None
    scale: float = float("nan")


def predict_detail(values: Sequence[float], target: int, seed: int = 0) -> Prediction:
    """:func:`predict_final` with its reasons (benchmarks/assessors.py reports them)."""
    y = np.asarray(values, dtype=float)
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return Prediction(None, "points")
    kept = filter_fits(fit_models(y, target), y)
    # the scale of the curve: the range it covered, or for a nearly flat curve a share of its level
    scale = max(float(np.ptp(y)), SPREAD_LEVEL * float(np.max(np.abs(y))), 1e-12)
    if len(kept) < MIN_MODELS:
        return Prediction(None, "models", kept=kept, scale=scale)
    preds = [f.at_target for f in kept]
    with np.errstate(all="ignore"):
        predicted, fitted = combine_curve(kept, y, seed)
    detail = Prediction(predicted, "", predicted, fitted, kept, scale)
    if max(preds) - min(preds) > SPREAD * (scale + max(predicted - float(y[-1]), 0.0)):
        detail.value, detail.reason = None, "spread"
    elif predicted - float(fitted[-1]) > rise_bound(fitted, y, target):
        detail.value, detail.reason = None, "rise"
    return detail


def predict_final(values: Sequence[float], target: int, seed: int = 0) -> float | None:
    """Predict a rising curve's value at step ``target`` (1-based) from its first values.

    ``None`` means "too early to tell", or "the last value will likely do better": fewer than
    :data:`MIN_MODELS` models fit and survive the filter (fewer than 5 points always give None);
    or their predictions at the target spread wider than SPREAD x the range of the predicted
    curve (the range the values covered, at least SPREAD_LEVEL x their level, plus the predicted
    rise above the last value); or the prediction rises above the fitted curve's last value by
    more than :func:`rise_bound` allows (faster per step than the curve rose so far, or more than
    MAX_RISE_MULTIPLE x as much again, beyond the noise). Deterministic for a given ``seed``.
    """
    return predict_detail(values, target, seed).value
