"""The SVM dual's machinery (:mod:`.svm` solves it): the feasible set {0 <= a <= C, s.a = 0} and
its projection, FISTA's momentum weights, libsvm's gap test and the polish on the active face."""
from __future__ import annotations

import functools
import math

import torch

from gml_ray.searchers.lamcts.tensors import CLS_DTYPE


class Box:
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

    def select(self, rows: torch.Tensor, width: int) -> "Box":
        return Box(self.s.index_select(0, rows)[:, :width], self.cv.index_select(0, rows)[:, :width])

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


def project_box_hyperplane(v: torch.Tensor, y: torch.Tensor, C: float) -> torch.Tensor:
    """Euclidean projection of v (n,) onto {a : 0 <= a <= C, y.a = 0} (y in {-1, +1}), exactly
    (see :meth:`Box.project`)."""
    y = y.to(v.dtype)
    return Box(y[None, :], torch.full_like(v, C)[None, :]).project(v[None, :])[0]


@functools.lru_cache(maxsize=8)
def momentum(steps: int) -> torch.Tensor:
    """FISTA's momentum weights beta_k = (t_k - 1) / t_{k+1} for k = 0..steps, where t_0 = 1 and
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2, k counting the steps since the last restart: a
    lookup, not per-step arithmetic."""
    t = [1.0]
    for _ in range(steps + 1):
        t.append(0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t[-1] ** 2)))
    return torch.tensor([(t[k] - 1.0) / t[k + 1] for k in range(steps + 1)], dtype=CLS_DTYPE)


def bmv(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched products q v of symmetric q (B, n, n) and v (B, n) -> (B, n), as v^T q: the
    row-vector form runs 2-3x faster than the column form on the CPU (q is read once, in order)."""
    return torch.matmul(v.unsqueeze(1), q).squeeze(1)


POWER_STEPS = 30  # power iterations for the step size
CHECK_EVERY = 10  # FISTA steps between gap tests (each reads the device)
POLISH_GAP = 50.0  # a row is polished once its gap is below this many times tol
FACE_EPS = 1e-3  # the polish holds entries within this fraction of C of a bound at the bound


def bound_face(a: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
    """Which bound each entry sits at (within FACE_EPS C): -1 at 0, +1 at C, 0 free (int8)."""
    low = a <= FACE_EPS * cv
    return (a >= (1.0 - FACE_EPS) * cv).to(torch.int8).masked_fill_(low, -1)


def polish_face(q: torch.Tensor, a: torch.Tensor, box: Box,
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
    face = bound_face(a, cv)
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
        rhs[:, :width] = ((1.0 - bmv(q, fixed)).gather(1, pos) * used).to(torch.float64)
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
    return a_star, bmv(q, a_star)


# An entry within this fraction of C of a bound counts as at the bound in the gap test and the
# intercept rule: libsvm's SMO puts entries exactly on a bound, a projection only to rounding (a
# batch's padding moves it by 1e-9, which would make libsvm's exact tests see a free vector).
BOUND_EPS = 1e-6


def at_bounds(a: torch.Tensor, cv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    eps = BOUND_EPS * cv
    return a <= eps, a >= cv - eps


def kkt_gaps(a: torch.Tensor, grad: torch.Tensor, box: Box) -> torch.Tensor:
    """libsvm's stopping quantity m(a) - M(a) of each row, the largest KKT violation over pairs
    (-inf when a side is empty: nothing to violate)."""
    s, cv = box.s, box.cv
    f = -s * grad
    pos, neg = s > 0, s < 0
    at_low, at_up = at_bounds(a, cv)
    up = (pos & ~at_up) | (neg & ~at_low)
    low = (pos & ~at_low) | (neg & ~at_up)
    return f.masked_fill(~up, -math.inf).amax(1) - f.masked_fill(~low, math.inf).amin(1)


def intercepts(a: torch.Tensor, grad: torch.Tensor, s: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
    """libsvm's offset of each row: the mean of s_i grad_i over free vectors, else the middle
    of its bounds."""
    sg = s * grad
    pos, neg = s > 0, s < 0
    at_low, at_up = at_bounds(a, cv)
    free = (pos | neg) & ~at_low & ~at_up
    n_free = free.sum(1)
    mean_free = (sg * free).sum(1) / n_free.clamp_min(1)
    upper = (pos & at_low) | (neg & at_up)
    lower = (pos & at_up) | (neg & at_low)
    ub = sg.masked_fill(~upper, math.inf).amin(1)
    lb = sg.masked_fill(~lower, -math.inf).amax(1)
    mid = torch.where(ub.isinf() | lb.isinf(), torch.where(ub.isinf(), lb, ub), 0.5 * (ub + lb))
    return torch.where(n_free > 0, mean_free, mid)
