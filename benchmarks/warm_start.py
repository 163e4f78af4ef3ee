"""Warm start: how many evaluations a new task needs to reach an earlier task's best, with and
without the earlier results (issue 35).

    python benchmarks/warm_start.py [--seeds 5] [--old 30] [--budget 60] [--skopt-old 20]
                                    [--skopt-budget 30] [--searchers Skopt,Optuna TPE,...]

``gml-ray run CONFIG --task NEW --warm-start-from OLD`` tells the new task's searcher every
earlier result (``searcher.tell(config, reward, "FINISHED")``) before its first proposal
(``gml_ray/engine/warm_start.py``). This script makes exactly those calls on the searcher objects
the scheduler uses, without Ray, so it measures how each searcher uses the results it is told.

For each searcher and seed s:

* OLD: a fresh searcher (seed s + 100) minimises Branin for ``--old`` evaluations; B is its best.
* NEW, cold: a fresh searcher with seed s minimises the NEW objective, one config at a time.
* NEW, warm: a fresh searcher with seed s is told OLD's results first, then does the same.

Measured on NEW's own evaluations (the told results are not counted): the number of evaluations
until one is <= B (">N" when none within ``--budget``), and the best value after 10 and 30. A NEW
run stops once it has reached B and done 30 evaluations (what is measured is then known), else at
``--budget``. Two variants of the NEW objective:

* same: Branin again (a task repeated, e.g. after a crash or with a larger budget);
* shifted: Branin shifted by +0.5 in x1, ``branin(x1 - 0.5, x2)`` (a related but different task:
  the same shape, the minima moved by 5% of x1's range; the minimum stays 0.3979 inside the box).

Skopt runs a smaller search by default (``--skopt-old 20 --skopt-budget 30``): its GP refit and
L-BFGS acquisition take 0.3-0.9 s of CPU per ask at 20-90 results in 2-D, and the 30/60 setting
(OLD 30, NEW runs up to 90 results when warm) took about 2 min of CPU per seed, 4-5 min of wall
time per seed on this shared 2-core machine; ``--skopt-old 30 --skopt-budget 60`` runs it like the
others. Each table row says its OLD / NEW sizes. The whole default run takes about 4 min of CPU
(Skopt nearly all of it; ``--searchers "Optuna TPE,LA-MCTS,Evolution"``: under 1 min).

Searchers, with their defaults except the seed: SkoptSearcher (GP, gp_hedge, 10 initial points),
OptunaSearcher (TPE), LamctsSearcher (turbo; told the task's budget as ``max_tries`` as the engine
does: 30 for OLD, ``--budget`` for NEW), EvolutionSearcher (population 32, mutate 0.1). Time per
ask+tell: the median over NEW's evaluations of one ``get_config`` + ``tell``; "tell OLD" is the
time to tell the OLD results (for Skopt they reach the model at the first ask, which is in the
per-evaluation times). Both are CPU time (``time.process_time``), as wall time on a shared machine
follows its load; BLAS and torch use one thread, so CPU time is the time on an idle core.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any, Callable  # noqa: E402

from gml_ray.space import Dict, Real  # noqa: E402

SPACE = Dict(x1=Real(-5, 10), x2=Real(0, 15))
SEARCHERS = ["Skopt", "Optuna TPE", "LA-MCTS", "Evolution"]
VARIANTS = ["same", "shifted"]
BRANIN_MIN = 0.397887


def branin(c: dict) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def shifted(c: dict) -> float:
    return branin({"x1": c["x1"] - 0.5, "x2": c["x2"]})


OBJECTIVES: dict[str, Callable[[dict], float]] = {"same": branin, "shifted": shifted}


def make(name: str, seed: int, budget: int) -> Any:
    from gml_ray.searchers import EvolutionSearcher, LamctsSearcher, OptunaSearcher, SkoptSearcher

    if name == "Skopt":
        return SkoptSearcher(SPACE, optimize_mode="minimize", random_state=seed)
    if name == "Optuna TPE":
        return OptunaSearcher(SPACE, optimize_mode="minimize", sampler="tpe", seed=seed)
    if name == "LA-MCTS":
        return LamctsSearcher(SPACE, optimize_mode="minimize", seed=seed, max_tries=budget)
    if name == "Evolution":
        return EvolutionSearcher(SPACE, optimize_mode="minimize", seed=seed)
    raise ValueError(name)


def search(searcher: Any, f: Callable[[dict], float], budget: int,
           target: float | None = None, min_evals: int = 0) -> tuple[list[tuple[dict, float]], list[float]]:
    """Ask/tell one config at a time: ((config, value) per evaluation, seconds per ask+tell).
    Stops after ``budget``, or once a value <= ``target`` is seen and ``min_evals`` are done."""
    results: list[tuple[dict, float]] = []
    times: list[float] = []
    reached = False
    while len(results) < budget:
        t0 = time.process_time()
        config = searcher.get_config()
        t1 = time.process_time()
        if config is None:
            break
        value = f(config)
        t2 = time.process_time()
        searcher.tell(config, value, "FINISHED")
        times.append(t1 - t0 + time.process_time() - t2)
        results.append((config, value))
        reached = reached or (target is not None and value <= target)
        if reached and len(results) >= min_evals:
            break
    return results, times


def measure(values: list[float], target: float) -> dict:
    reach = next((i + 1 for i, v in enumerate(values) if v <= target), None)
    return {"reach": reach, "best10": min(values[:10]), "best30": min(values[:30])}


def fmt_ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def reach_cell(rows: list[dict], budget: int) -> str:
    """median [min–max] of evaluations to reach B, not reached counted as budget+1 (">budget")."""
    n = [r["reach"] if r["reach"] is not None else budget + 1 for r in rows]
    show = lambda x: f">{budget}" if x > budget else f"{x:g}"  # noqa: E731
    miss = sum(r["reach"] is None for r in rows)
    text = f"{show(statistics.median(n))} [{show(min(n))}–{show(max(n))}]"
    return text + (f", {miss}/{len(rows)} not" if miss else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--old", type=int, default=30, help="OLD's evaluations")
    ap.add_argument("--budget", type=int, default=60, help="NEW's budget")
    ap.add_argument("--skopt-old", type=int, default=20, help="Skopt's OLD evaluations")
    ap.add_argument("--skopt-budget", type=int, default=30, help="Skopt's NEW budget")
    ap.add_argument("--searchers", default=",".join(SEARCHERS))
    args = ap.parse_args()
    names = [s.strip() for s in args.searchers.split(",") if s.strip()]

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    try:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass

    start, start_cpu = time.perf_counter(), time.process_time()
    # (variant, searcher) -> mode -> list of per-seed measurements; times -> list of seconds
    out: dict[tuple[str, str], dict[str, list]] = {}
    old_best: dict[str, list[float]] = {}
    tell_old: dict[str, list[float]] = {}
    per_searcher_s: dict[str, float] = {}
    sizes = {name: (args.skopt_old, args.skopt_budget) if name == "Skopt" else (args.old, args.budget)
             for name in names}
    for name in names:
        n_old, budget = sizes[name]
        t_name = time.perf_counter()
        for seed in range(args.seeds):
            old, _ = search(make(name, seed + 100, n_old), branin, n_old)
            b = min(v for _, v in old)
            old_best.setdefault(name, []).append(b)
            for variant in VARIANTS:
                f = OBJECTIVES[variant]
                cell = out.setdefault((variant, name), {"cold": [], "warm": [], "t_cold": [], "t_warm": []})
                cold = make(name, seed, budget)
                res, times = search(cold, f, budget, b, 30)
                cell["cold"].append(measure([v for _, v in res], b))
                cell["t_cold"] += times
                warm = make(name, seed, budget)
                t0 = time.process_time()
                for config, value in old:
                    warm.tell(config, value, "FINISHED")
                tell_old.setdefault(name, []).append(time.process_time() - t0)
                res, times = search(warm, f, budget, b, 30)
                cell["warm"].append(measure([v for _, v in res], b))
                cell["t_warm"] += times
        per_searcher_s[name] = time.perf_counter() - t_name
        print(f"# {name}: {per_searcher_s[name]:.0f} s wall", flush=True)

    print()
    print(f"Branin (min {BRANIN_MIN}), seeds 0..{args.seeds - 1} (OLD: seed s+100); OLD evaluations / NEW "
          "budget: " + ", ".join(f"{n} {o}/{b}" for n, (o, b) in sizes.items()))
    print("OLD's best B per searcher (median [min–max]): " + "; ".join(
        f"{n} {statistics.median(old_best[n]):.5f} [{min(old_best[n]):.5f}–{max(old_best[n]):.5f}]"
        for n in names))
    for variant in VARIANTS:
        title = "NEW = Branin (same task)" if variant == "same" else \
            "NEW = Branin shifted +0.5 in x1 (related task)"
        print()
        print(f"## {title}: NEW evaluations to reach OLD's best B, median [min–max] over {args.seeds} "
              f"seeds (>N: not reached within NEW's budget N); best value after 10 / 30 NEW evaluations, "
              f"median")
        header = ["searcher", "OLD/NEW", "evals to B: cold", "warm", "best@10 cold", "warm", "best@30 cold", "warm",
                  "ask+tell cold", "warm", "tell OLD"]
        rows = []
        for name in names:
            c = out[(variant, name)]
            med = lambda mode, k, c=c: statistics.median(r[k] for r in c[mode])  # noqa: E731
            n_old, budget = sizes[name]
            rows.append([name, f"{n_old}/{budget}",
                         reach_cell(c["cold"], budget), reach_cell(c["warm"], budget),
                         f"{med('cold', 'best10'):.5f}", f"{med('warm', 'best10'):.5f}",
                         f"{med('cold', 'best30'):.5f}", f"{med('warm', 'best30'):.5f}",
                         fmt_ms(statistics.median(c["t_cold"])), fmt_ms(statistics.median(c["t_warm"])),
                         fmt_ms(statistics.median(tell_old[name]))])
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
        for r in rows:
            print("| " + " | ".join(x.ljust(w) if i == 0 else x.rjust(w)
                                    for i, (x, w) in enumerate(zip(r, widths))) + " |")
        print()
        print("per seed, evals to B cold → warm:")
        for name in names:
            c = out[(variant, name)]
            top = sizes[name][1]
            pairs = ", ".join(f"{r0['reach'] or '>' + str(top)}→{r1['reach'] or '>' + str(top)}"
                              for r0, r1 in zip(c["cold"], c["warm"]))
            print(f"  {name}: {pairs}")
    print()
    print(f"total {time.perf_counter() - start:.0f} s wall, {time.process_time() - start_cpu:.0f} s CPU (wall: " +
          ", ".join(f"{n} {s:.0f} s" for n, s in per_searcher_s.items()) + ")")


if __name__ == "__main__":
    main()
