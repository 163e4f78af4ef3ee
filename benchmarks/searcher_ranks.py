"""Average rank of the searchers at the budgets users have (25-150 evaluations), in 10-D and 20-D.

    python benchmarks/searcher_ranks.py run [--split held-out] [--dims 10,20] [--workers 2]
                                            [--methods ...] [--results ranks.jsonl]
    python benchmarks/searcher_ranks.py report [--split held-out] [--results ranks.jsonl]
                                               [--rank-methods ...]

Each searcher object is driven directly (``get_config`` / ``update``, one config at a time, no
Ray) with its shipped defaults and a seed, and minimises a test function for 150 evaluations.
At 25, 50, 100 and 150 evaluations the methods are ranked on every instance by their best value
so far (1 = best, ties share the mean rank); the report gives each method's mean rank over the
instances with its spread.

The suite has two named, disjoint splits, each 6 functions of different kinds x 10-D and 20-D x 3
instances (an instance's seed shifts the function's optimum and seeds the searchers):

* ``tuning``: Ackley, Rosenbrock, Levy, a rotated ellipsoid, Powell, Schwefel; instance seeds
  0, 1, 2. LA-MCTS's small-budget settings were chosen on this split (and on Ackley, Levy,
  Rosenbrock and Swimmer before that).
* ``held-out``: Rastrigin, Griewank, Zakharov, Dixon-Price, Styblinski-Tang, Michalewicz;
  instance seeds 100, 101, 102. Never run while LA-MCTS's settings were chosen.

A function with its optimum at the centre of its box is shifted per instance by a random vector
(up to 20% of the box's width a coordinate, the optimum kept inside the box), so that a method
that starts at the centre (CMA-ES) or whose design covers it is not favoured by the suite's
choice. Schwefel, Styblinski-Tang and Michalewicz are not centred and are not shifted.

Methods (``--methods``), every one with its shipped defaults:

* ``LA-MCTS``: ``LamctsSearcher`` told the budget (``max_tries``), as a config that sets it
  does: one run per budget, except that budgets whose initial design is the same size share one
  run (``max_tries`` only sizes the design; at 25-150 it is 5 whatever the budget).
* ``LA-MCTS (no budget)``: ``LamctsSearcher`` without ``max_tries`` (its rule for an unknown
  budget): one run of 150, read at each budget.
* ``Optuna TPE`` / ``Optuna CMA-ES`` / ``Optuna GP``: ``OptunaSearcher`` with ``sampler: tpe`` /
  ``cmaes`` / ``gp`` (the same configs as raw Optuna's samplers with their defaults).
* ``Skopt``: ``SkoptSearcher`` (skopt's defaults: GP, gp_hedge, 10 random initial points).
* ``Evolution``: ``EvolutionSearcher`` (population 32, mutate 0.1).
* ``Random``: ``RandomSearcher``.
* ``LA-MCTS {json}``: LamctsSearcher with those settings over its defaults, not told the budget
  (one run of 150: ``--methods 'LA-MCTS {"ninits": 10}'``); ``LA-MCTS budget {json}``: the same,
  told the budget (one run per budget).

``--evals 50`` makes shorter runs (budgets 25 and 50 only), for a quick look. Results are
appended to ``--results`` (JSON lines, one run each) and runs already there are not
run again, so a report can be extended one method at a time. ``report`` ranks ``--rank-methods``
(default: every method of the main table present) against each other.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one BLAS thread per worker

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gml_ray.space import Dict, Real  # noqa: E402

BUDGETS = (25, 50, 100, 150)
SPLITS = {"tuning": (0, 1, 2), "held-out": (100, 101, 102)}

# ---- test functions: f(z) on [lo, hi]^d, minimised -------------------------------------------------


def ackley(z: np.ndarray) -> float:
    return float(-20 * np.exp(-0.2 * np.sqrt(np.mean(z ** 2))) - np.exp(np.mean(np.cos(2 * np.pi * z)))
                 + 20 + math.e)


def rosenbrock(z: np.ndarray) -> float:
    return float(np.sum(100 * (z[1:] - z[:-1] ** 2) ** 2 + (1 - z[:-1]) ** 2))


def levy(z: np.ndarray) -> float:
    w = 1 + (z - 1) / 4
    return float(np.sin(np.pi * w[0]) ** 2
                 + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
                 + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def _rotation(d: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(7 + d).standard_normal((d, d)))
    return q


def ellipsoid(z: np.ndarray) -> float:
    """A rotated ellipsoid, condition number 1e3 (a bowl, not separable)."""
    d = z.size
    y = _rotation(d) @ z
    return float(np.sum(10.0 ** (3 * np.arange(d) / max(d - 1, 1)) * y ** 2))


def powell(z: np.ndarray) -> float:
    d = z.size - z.size % 4
    a, b, c, e = z[0:d:4], z[1:d:4], z[2:d:4], z[3:d:4]
    return float(np.sum((a + 10 * b) ** 2 + 5 * (c - e) ** 2 + (b - 2 * c) ** 4 + 10 * (a - e) ** 4))


def schwefel(z: np.ndarray) -> float:
    return float(418.9829 * z.size - np.sum(z * np.sin(np.sqrt(np.abs(z)))))


def rastrigin(z: np.ndarray) -> float:
    return float(10 * z.size + np.sum(z ** 2 - 10 * np.cos(2 * np.pi * z)))


def griewank(z: np.ndarray) -> float:
    return float(np.sum(z ** 2) / 4000 - np.prod(np.cos(z / np.sqrt(np.arange(1, z.size + 1)))) + 1)


def zakharov(z: np.ndarray) -> float:
    s = np.sum(0.5 * np.arange(1, z.size + 1) * z)
    return float(np.sum(z ** 2) + s ** 2 + s ** 4)


def dixon_price(z: np.ndarray) -> float:
    i = np.arange(2, z.size + 1)
    return float((z[0] - 1) ** 2 + np.sum(i * (2 * z[1:] ** 2 - z[:-1]) ** 2))


def styblinski_tang(z: np.ndarray) -> float:
    return float(0.5 * np.sum(z ** 4 - 16 * z ** 2 + 5 * z))


def michalewicz(z: np.ndarray) -> float:
    i = np.arange(1, z.size + 1)
    return float(-np.sum(np.sin(z) * np.sin(i * z ** 2 / np.pi) ** 20))


@dataclass(frozen=True)
class Function:
    name: str
    f: Callable[[np.ndarray], float]
    lo: float
    hi: float
    shift: bool  # centred optimum: shifted per instance
    kind: str
    split: str


FUNCTIONS = {fn.name: fn for fn in [
    Function("ackley", ackley, -32.768, 32.768, True, "multimodal, a funnel", "tuning"),
    Function("rosenbrock", rosenbrock, -5.0, 10.0, True, "a curved valley", "tuning"),
    Function("levy", levy, -10.0, 10.0, True, "multimodal", "tuning"),
    Function("ellipsoid", ellipsoid, -5.0, 5.0, True, "a rotated ill-conditioned bowl", "tuning"),
    Function("powell", powell, -4.0, 5.0, True, "a flat-bottomed quartic valley", "tuning"),
    Function("schwefel", schwefel, -500.0, 500.0, False, "deceptive, optimum at a corner",
             "tuning"),
    Function("rastrigin", rastrigin, -5.12, 5.12, True, "multimodal, regular", "held-out"),
    Function("griewank", griewank, -600.0, 600.0, True, "a bowl with ripples", "held-out"),
    Function("zakharov", zakharov, -5.0, 10.0, True, "a plate", "held-out"),
    Function("dixon_price", dixon_price, -10.0, 10.0, True, "a valley", "held-out"),
    Function("styblinski_tang", styblinski_tang, -5.0, 5.0, False,
             "multimodal, separable, off-centre", "held-out"),
    Function("michalewicz", michalewicz, 0.0, math.pi, False, "steep ridges", "held-out"),
]}


@dataclass(frozen=True)
class Instance:
    fn: Function
    dim: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.fn.name}-{self.dim}d-{self.seed}"

    def space(self) -> Dict:
        return Dict(**{f"x{i}": Real(self.fn.lo, self.fn.hi) for i in range(self.dim)})

    def objective(self) -> Callable[[dict], float]:
        fn, d = self.fn, self.dim
        shift = np.zeros(d)
        if fn.shift:
            shift = np.random.default_rng(1000 * self.seed + d).uniform(-0.2, 0.2, d) * (fn.hi - fn.lo)
        names = [f"x{i}" for i in range(d)]

        def f(config: dict) -> float:
            return fn.f(np.array([config[n] for n in names], dtype=float) - shift)
        return f


def instances(split: str, dims: list[int], functions: list[str] | None = None) -> list[Instance]:
    fns = [fn for fn in FUNCTIONS.values() if fn.split == split
           and (functions is None or fn.name in functions)]
    return [Instance(fn, d, s) for fn in fns for d in dims for s in SPLITS[split]]


# ---- methods -------------------------------------------------------------------------------------------

MAIN = ["LA-MCTS", "Optuna TPE", "Optuna CMA-ES", "Optuna GP", "Skopt", "Evolution", "Random"]
OPTUNA = {"Optuna TPE": "tpe", "Optuna CMA-ES": "cmaes", "Optuna GP": "gp"}


def budget_aware(method: str) -> bool:
    """Whether the method is told the budget (one run per budget)."""
    return method == "LA-MCTS" or method.startswith("LA-MCTS budget {")


def run_budget(method: str, budget: int, budgets: list[int]) -> int:
    """The length of the run that gives ``method``'s result at ``budget``: ``budget`` itself
    for a method told the budget, unless a longer run of ``budgets`` is the same search.
    LamctsSearcher uses ``max_tries`` only to size its initial design (``default_ninits``),
    so budgets with the same design share the longest run's prefix."""
    if not budget_aware(method):
        return budget
    from gml_ray.searchers.lamcts.searcher import default_ninits

    settings = json.loads(method[method.index("{"):]) if "{" in method else {}
    if "ninits" in settings:
        return max(budgets)
    design = default_ninits(budget)
    return max(b for b in budgets if b >= budget and default_ninits(b) == design)


def make_searcher(method: str, space: Dict, seed: int, budget: int) -> Any:
    from gml_ray.searchers import EvolutionSearcher, LamctsSearcher, RandomSearcher, SkoptSearcher

    if method.startswith("LA-MCTS"):
        settings: dict[str, Any] = {}
        if "{" in method:
            settings = json.loads(method[method.index("{"):])
        if budget_aware(method):
            settings.setdefault("max_tries", budget)
        return LamctsSearcher(space, optimize_mode="minimize", seed=seed, **settings)
    if method in OPTUNA:
        from gml_ray.searchers.optuna import OptunaSearcher
        return OptunaSearcher(space, optimize_mode="minimize", sampler=OPTUNA[method], seed=seed)
    if method == "Skopt":
        return SkoptSearcher(space, optimize_mode="minimize", random_state=seed)
    if method == "Evolution":
        return EvolutionSearcher(space, optimize_mode="minimize", seed=seed)
    if method == "Random":
        return RandomSearcher(space, optimize_mode="minimize", seed=seed)
    raise ValueError(f"unknown method {method!r}")


# ---- runs ----------------------------------------------------------------------------------------------

def run_key(method: str, inst_name: str, budget: int) -> str:
    return f"{method}|{inst_name}|{budget}"


def one_run(job: tuple[str, str, int, int, int]) -> dict:
    """Minimise one instance with one method for ``budget`` evaluations; values in order."""
    method, fn_name, dim, seed, budget = job
    inst = Instance(FUNCTIONS[fn_name], dim, seed)
    f = inst.objective()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        started = time.perf_counter()
        searcher = make_searcher(method, inst.space(), seed, budget)
        values = []
        for _ in range(budget):
            config = searcher.get_config()
            value = f(config)
            values.append(value)
            searcher.update(config, value)
    return {"method": method, "instance": inst.name, "budget": budget, "values": values,
            "seconds": time.perf_counter() - started}


def load(path: str) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    runs[run_key(r["method"], r["instance"], r["budget"])] = r
    return runs


def run(args: argparse.Namespace) -> None:
    done = load(args.results)
    jobs = []
    for inst in instances(args.split, args.dims, args.functions):
        for method in args.methods:
            budgets = [b for b in BUDGETS if b <= args.evals]
            for budget in (sorted({run_budget(method, b, budgets) for b in budgets})
                           if budget_aware(method) else (args.evals,)):
                if run_key(method, inst.name, budget) not in done:
                    jobs.append((method, inst.fn.name, inst.dim, inst.seed, budget))
    # the slowest first (Skopt and GP refit per evaluation; 20-D), so the workers end together
    jobs.sort(key=lambda j: (j[0] not in ("Skopt", "Optuna GP"), -j[2], -j[4]))
    print(f"{len(jobs)} runs to do ({len(done)} in {args.results})", file=sys.stderr)
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.workers, maxtasksperchild=10) as pool, \
            open(args.results, "a") as out:
        for i, result in enumerate(pool.imap_unordered(one_run, jobs), 1):
            out.write(json.dumps(result) + "\n")
            out.flush()
            print(f"\r{i}/{len(jobs)} runs, {time.perf_counter() - started:.0f} s", end="",
                  file=sys.stderr, flush=True)
    print(file=sys.stderr)


# ---- the report ----------------------------------------------------------------------------------------

def best_at(runs: dict[str, dict], method: str, inst: str, budget: int) -> float | None:
    """The best value of ``method``'s run on ``inst`` after ``budget`` evaluations: of its run
    told that budget, or (a method not told it) of its shortest run at least that long."""
    if budget_aware(method):
        r = runs.get(run_key(method, inst, budget))
        if r is None:
            r = runs.get(run_key(method, inst, run_budget(method, budget, list(BUDGETS))))
    else:
        r = next((runs[k] for k in (run_key(method, inst, b) for b in sorted(_lengths(runs)))
                  if k in runs and len(runs[k]["values"]) >= budget), None)
    if r is None or len(r["values"]) < budget:
        return None
    return min(r["values"][:budget])


def _lengths(runs: dict[str, dict]) -> set[int]:
    return {r["budget"] for r in runs.values()}


def ranks_of(values: list[float]) -> list[float]:
    """1 = the lowest; ties share their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def rank_table(runs: dict[str, dict], insts: list[Instance], methods: list[str],
               budget: int) -> tuple[dict[str, list[float]], list[str]]:
    """Each method's rank on every instance at ``budget``; the instances used. A method without
    a run reaching ``budget`` on every instance (Skopt, run to 50 only) is left out of that
    budget's ranking (an empty list); an instance some other method lacks is left out."""
    have = [m for m in methods
            if all(best_at(runs, m, i.name, budget) is not None for i in insts)]
    if not have:  # no method complete: rank the instances every method has
        have = methods
    per: dict[str, list[float]] = {m: [] for m in methods}
    used = []
    for inst in insts:
        vals = [best_at(runs, m, inst.name, budget) for m in have]
        if any(v is None for v in vals):
            continue
        used.append(inst.name)
        for m, r in zip(have, ranks_of([v for v in vals if v is not None])):
            per[m].append(r)
    return per, used


def bootstrap_gap(a: list[float], b: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(a) - mean(b) over instances resampled together (paired)."""
    rng = np.random.default_rng(seed)
    d = np.array(a) - np.array(b)
    means = sorted(float(d[rng.integers(0, d.size, d.size)].mean()) for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps)]


def report(args: argparse.Namespace) -> None:
    runs = load(args.results)
    present = {r["method"] for r in runs.values()}
    methods = args.rank_methods or [m for m in MAIN if m in present]
    lamcts = next((m for m in methods if m.startswith("LA-MCTS")), None)
    for dims in ([args.dims] if len(args.dims) == 1 else [args.dims] + [[d] for d in args.dims]):
        insts = instances(args.split, dims, args.functions)
        print(f"\n## {args.split} split, {'/'.join(map(str, dims))}-D: mean rank of {len(methods)} "
              f"(1 = best) ± standard error over the instances\n")
        header = ["method"] + [f"@{b}" for b in BUDGETS]
        rows = []
        tables = {b: rank_table(runs, insts, methods, b) for b in BUDGETS}
        for m in methods:
            row = [m]
            for b in BUDGETS:
                r = tables[b][0][m]
                if not r:
                    row.append("-")
                    continue
                se = statistics.stdev(r) / math.sqrt(len(r)) if len(r) > 1 else 0.0
                row.append(f"{statistics.mean(r):.2f} ± {se:.2f}")
            rows.append(row)
        rows.append(["instances"] + [str(len(tables[b][1])) for b in BUDGETS])
        rows.append(["methods ranked"] + [str(sum(1 for m in methods if tables[b][0][m]))
                                          for b in BUDGETS])
        _print_table(header, rows)
        if lamcts is not None:
            gaps = []
            for b in BUDGETS:
                per = tables[b][0]
                if not per[lamcts]:
                    continue
                others = [m for m in methods if m != lamcts and per[m]]
                best = min(others, key=lambda m: statistics.mean(per[m]))
                lo, hi = bootstrap_gap(per[lamcts], per[best])
                gaps.append(f"@{b}: {lamcts} - {best} = "
                            f"{statistics.mean(per[lamcts]) - statistics.mean(per[best]):+.2f} "
                            f"[{lo:+.2f}, {hi:+.2f}]")
            if gaps:
                print(f"\n{lamcts}'s mean rank minus the best other method's, with a 95% paired "
                      f"bootstrap interval over the instances (negative: {lamcts} ahead):")
                for g in gaps:
                    print(f"  {g}")
    if args.per_function:
        print(f"\n## {args.split}: mean rank per function at each budget "
              f"({'/'.join(map(str, args.dims))}-D together)\n")
        for fn in sorted({i.fn.name for i in instances(args.split, args.dims, args.functions)}):
            insts = instances(args.split, args.dims, [fn])
            rows = []
            for m in methods:
                row = [m]
                for b in BUDGETS:
                    r = rank_table(runs, insts, methods, b)[0][m]
                    row.append(f"{statistics.mean(r):.1f}" if r else "-")
                rows.append(row)
            print(f"{fn} ({FUNCTIONS[fn].kind})")
            _print_table(["method"] + [f"@{b}" for b in BUDGETS], rows)
            print()
    secs: dict[tuple[str, int], list[float]] = {}
    for r in runs.values():
        inst = r["instance"]
        if any(inst == i.name for i in instances(args.split, args.dims, args.functions)) \
                and r["method"] in methods and r["budget"] == max(BUDGETS):
            secs.setdefault((r["method"], int(inst.split("-")[-2][:-1])), []).append(r["seconds"])
    if secs:
        print(f"\nSeconds per run of {max(BUDGETS)} evaluations (median, this machine, "
              f"2 runs at a time):")
        for m in methods:
            parts = [f"{d}-D {statistics.median(secs[(m, d)]):.1f}" for d in args.dims
                     if (m, d) in secs]
            print(f"  {m}: {', '.join(parts)}")


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["run", "report"])
    ap.add_argument("--split", choices=list(SPLITS), default="held-out")
    ap.add_argument("--dims", default="10,20", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--functions", default=None, type=lambda s: s.split(","))
    ap.add_argument("--methods", default=MAIN, type=lambda s: s.split(";"),
                    help="';'-separated (a settings JSON may hold commas)")
    ap.add_argument("--rank-methods", default=None, type=lambda s: s.split(";"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--evals", type=int, default=max(BUDGETS),
                    help="run length (budgets above it are not reported for the runs it makes)")
    ap.add_argument("--results", default="searcher_ranks.jsonl")
    ap.add_argument("--per-function", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "run":
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
