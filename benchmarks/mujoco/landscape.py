"""What Swimmer's return looks like to a searcher: the spread over resets, and ARS from zero.

    python benchmarks/mujoco/landscape.py resets            # per-reset spread of policies
    python benchmarks/mujoco/landscape.py ars --seeds 100-119 --rollouts 3
    python benchmarks/mujoco/landscape.py peers --methods tpe,cmaes,gp --seeds 100-119

``resets``: each policy is run on 10 seeded resets of gymnasium's ``Swimmer-v5`` (one rollout
each); printed are the returns, their mean and spread. The policies are 40 uniform ones in
[-1, 1]^16, two that ``ars`` found (small gains), the same two scaled up, and one the shipped
LA-MCTS searcher found (searcher seed 216 in the tuning harness, best 304 on its reset). Then
the return of that last one on a fixed reset, moved 0.01 to 0.3 in random directions.

``ars``: Mania et al.'s Augmented Random Search, version 1 (no state normalisation), from the
zero policy: each step runs the policy at ``M + nu d`` and ``M - nu d`` for a Gaussian ``d`` and
moves ``M`` by ``alpha (r+ - r-) / sigma_R d``, with one direction a step (sigma_R over its two
returns, so a step is ``2 alpha d`` up the sign of the difference). Printed per seed: the
evaluations until one reaches 325 (both of a step's evaluations count), capped at ``--budget``.
A peer for ``gpu_profile.py --part swimmer``: the same seeded resets (``job_seed`` of the
evaluation's number) and the same count.

``peers``: Optuna's TPE, CMA-ES and GP samplers (the ``bench`` extra) in the same loop as
``gpu_profile.py --part swimmer``: 2 configs in flight, the same resets, the same count.

Runs without Ray; gymnasium[mujoco] and numpy only (``peers``: optuna too).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the checkout, ahead of any install

from gml_ray.mujoco.objective import Objective, job_seed  # noqa: E402

sys.path.insert(0, HERE)
from gpu_profile import parse_seeds  # noqa: E402

# found by ``ars`` below (seeds 0 and 3, 3 rollouts an evaluation), each on reaching 325
ARS_POLICIES = {
    "ars seed 0": [0.03, -0.07, -0.27, 0.1, 0.11, -0.05, 0.15, -0.04, -0.1, 0.07, 0.12, 0.01,
                   0.33, -0.02, 0.38, 0.27],
    "ars seed 3": [0.01, -0.04, -0.04, 0.04, 0.2, 0.01, 0.3, -0.01, -0.17, 0.23, -0.23, 0.17,
                   0.09, -0.17, 0.22, 0.03],
}
# the best of searcher seed 216 after 150 evaluations in the tuning harness (1 rollout each)
LAMCTS_POLICY = [0.27, 0.3, -0.6, 0.06, 0.54, -0.59, 0.16, -0.73, 0.37, 0.91, -0.72, 0.44, 0.77,
                 -0.55, 0.93, -0.28]


def spread(obj: Objective, x: np.ndarray, resets: int = 10) -> np.ndarray:
    """One rollout's return on each of ``resets`` seeded resets."""
    return np.array([obj(np.clip(x, -1, 1).tolist(), seed) for seed in range(resets)])


def show(name: str, returns: np.ndarray) -> None:
    print(f"{name:<28} mean {returns.mean():7.1f}  sd {returns.std():6.1f}  "
          f"min {returns.min():7.1f}  max {returns.max():7.1f}  | {np.round(returns).astype(int).tolist()}")


def resets() -> None:
    obj = Objective("swimmer", 1)
    rng = np.random.default_rng(1)
    sds = [spread(obj, rng.uniform(-1, 1, 16), 5).std() for _ in range(40)]
    print(f"40 uniform policies, 5 resets each: median sd {np.median(sds):.1f}, "
          f"largest {max(sds):.1f}")
    for name, policy in ARS_POLICIES.items():
        x = np.array(policy)
        for k in (1.0, 2.0, 3.0):
            show(f"{name} x{k:g} (norm {np.linalg.norm(k * x):.2f})", spread(obj, k * x))
    x = np.array(LAMCTS_POLICY)
    show(f"lamcts seed 216 (norm {np.linalg.norm(x):.2f})", spread(obj, x))
    for radius in (0.01, 0.03, 0.1, 0.3):
        moved = []
        for _ in range(8):
            d = rng.normal(size=16)
            moved.append(obj(np.clip(x + radius * d / np.linalg.norm(d), -1, 1).tolist(), 0))
        show(f"  moved {radius:g}, reset 0", np.array(moved))


def ars(seeds: list[int], budget: int, rollouts: int, threshold: float, alpha: float,
        nu: float) -> None:
    obj = Objective("swimmer", rollouts)
    reached = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        m, n, best, reach = np.zeros(obj.dims), 0, -np.inf, None
        while n + 2 <= budget and reach is None:
            d = rng.normal(size=obj.dims)
            r_plus = obj(np.clip(m + nu * d, -1, 1).tolist(), job_seed(n + 1))
            r_minus = obj(np.clip(m - nu * d, -1, 1).tolist(), job_seed(n + 2))
            n += 2
            best = max(best, r_plus, r_minus)
            if best >= threshold:
                reach = n
                break
            sigma = np.std([r_plus, r_minus]) or 1.0
            m = np.clip(m + alpha / sigma * (r_plus - r_minus) * d, -1, 1)
        reached.append(reach)
        print(f"seed {seed}: reached at {reach if reach else 'never'} (best {best:.1f} after {n}, "
              f"policy norm {np.linalg.norm(m):.2f})", flush=True)
    summarise("ARS", reached, budget)


def summarise(name: str, reached: list[int | None], budget: int) -> None:
    """One line: seeds within ``budget``, the median with a miss counted as worst, the hits' median."""
    hits = sorted(r for r in reached if r)
    ordered = sorted(r or np.inf for r in reached)
    median = ordered[(len(ordered) - 1) // 2]
    print(f"{name}: {len(hits)}/{len(reached)} within {budget}; median (a miss counts as worst) "
          f"{'a miss' if np.isinf(median) else median}; the hits' median "
          f"{hits[(len(hits) - 1) // 2] if hits else '-'}", flush=True)


def optuna_sampler(method: str, seed: int):  # -> optuna.samplers.BaseSampler
    """Optuna's sampler for ``method``: tpe (multivariate, a constant liar for the one in flight),
    cmaes (its defaults: the box's centre, sigma a sixth of its width) or gp (Optuna's GP-BO)."""
    import optuna

    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if method == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown peer {method!r}: tpe, cmaes or gp")


def peers(methods: list[str], seeds: list[int], budget: int, rollouts: int,
          threshold: float) -> None:
    """Optuna's samplers on Swimmer, driven as ``gpu_profile.py --part swimmer`` drives LA-MCTS:
    2 configs in flight, results told in the order asked, evaluation n on the resets of
    ``job_seed(n)``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    obj = Objective("swimmer", rollouts)
    space = {f"a{i}": optuna.distributions.FloatDistribution(-1.0, 1.0) for i in range(obj.dims)}
    for method in methods:
        reached: list[int | None] = []
        for seed in seeds:
            study = optuna.create_study(direction="maximize", sampler=optuna_sampler(method, seed))
            pending: list[optuna.trial.Trial] = []
            n, best, reach, t0 = 0, -np.inf, None, time.perf_counter()
            while n < budget and reach is None:
                while len(pending) < 2:
                    pending.append(study.ask(space))
                trial = pending.pop(0)
                n += 1
                value = obj([trial.params[f"a{i}"] for i in range(obj.dims)], job_seed(n))
                study.tell(trial, value)
                best = max(best, value)
                if best >= threshold:
                    reach = n
            reached.append(reach)
            print(f"{method} seed {seed}: reached at {reach if reach else 'never'} (best {best:.1f} "
                  f"after {n}, {time.perf_counter() - t0:.0f} s)", flush=True)
        summarise(method, reached, budget)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=["resets", "ars", "peers"])
    ap.add_argument("--seeds", default="100-119",
                    help="ars, peers: a list (0,1,2) or a range (100-119)")
    ap.add_argument("--methods", default="tpe,cmaes,gp", help="peers: Optuna's tpe, cmaes, gp")
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--rollouts", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=325.0)
    ap.add_argument("--alpha", type=float, default=0.02, help="ars: step size (ARS's Swimmer value)")
    ap.add_argument("--nu", type=float, default=0.01, help="ars: exploration noise (ditto)")
    args = ap.parse_args(argv)
    if args.part == "resets":
        resets()
        return
    if args.part == "peers":
        peers(args.methods.split(","), parse_seeds(args.seeds), args.budget, args.rollouts,
              args.threshold)
        return
    ars(parse_seeds(args.seeds), args.budget, args.rollouts, args.threshold, args.alpha, args.nu)


if __name__ == "__main__":
    main()
