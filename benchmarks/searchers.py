"""Searcher quality and ask latency: gml-ray's searchers next to raw scikit-optimize, Optuna TPE
and random search, on standard test functions.

    python benchmarks/searchers.py [--evals 100] [--seeds 10] [--gp-seeds 10] [--slow-gp-seeds 5]
                                   [--workers 2] [--latency-reps 7] [--functions branin,mixed]
                                   [--save results.json] [--load results.json]

Every method minimises each function for ``--evals`` evaluations, once per seed, one config at a
time (the searcher is told each result before the next ask), except "gml Skopt x4", which keeps
4 configs outstanding as the scheduler does with ``parallel_size: 4``. gml-ray's searchers are the
objects the scheduler uses (get_config / update), without Ray. Methods:

* gml Skopt: ``SkoptSearcher`` with its defaults (skopt's: GP, gp_hedge, 10 initial points).
* raw skopt: ``skopt.Optimizer`` with the same settings and seed, ask/tell.
* gml Evolution: ``EvolutionSearcher`` with the manual's settings (population 32, mutate 0.1),
  and with population 10, mutate 0.3 (more generations in 100 evaluations).
* gml Random: ``RandomSearcher`` (uniform; log-uniform for log Reals).
* Optuna TPE: ``TPESampler(seed)`` with its defaults, ask/tell; Optuna CMA-ES: ``CmaEsSampler(seed)``.
* gml LA-MCTS: ``LamctsSearcher`` with the manual's settings and ``solver: bo`` (Real args only:
  not on the mixed space).
* gml Optuna TPE / CMA-ES: ``OptunaSearcher`` (``sampler: tpe`` / ``cmaes``, same seed), checked
  config for config against the raw study; "gml Optuna TPE x4" keeps 4 configs outstanding (RUNNING
  trials, TPE's constant liar).

Printed: the median best value per function and the median latency of one tell + ask cycle (what
the scheduler waits for between a job ending and the next one starting) once 50 and 200 results
are known (``--latency-n``, for ``--latency-methods``), on ``--latency-function``; the simple regret (best value minus the known optimum) with
its quartiles; whether gml Skopt evaluated exactly raw skopt's configs; and each method's median
regret as a ratio of random search's.

GP refits dominate the run time (about 1 s per evaluation in 10-D at 100 results on this 2-core
machine), so the 10-D functions run the GP methods on fewer seeds (``--slow-gp-seeds``, and
``--x4-seeds`` / ``--slow-x4-seeds`` for the parallel row); each cell says its number of seeds.
BLAS is limited to one thread per process (as SkoptSearcher does for itself); ``--workers``
processes share the runs, and the latencies are measured afterwards, one at a time.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one BLAS thread per worker

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from gml_ray.space import Categorical, Dict, Int, Real  # noqa: E402

# ---- test functions (all minimised) ----------------------------------------------------------------


def branin(c: dict) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def _vector(c: dict, n: int) -> np.ndarray:
    return np.array([c[f"x{i}"] for i in range(n)], dtype=float)


def hartmann6(c: dict) -> float:
    x = _vector(c, 6)
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def ackley10(c: dict) -> float:
    x = _vector(c, 10)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.mean(x ** 2))) - np.exp(np.mean(np.cos(2 * np.pi * x)))
                 + 20 + math.e)


def ackley20(c: dict) -> float:
    """Ackley in 20-D on [-5, 10]^20 (the LA-MCTS paper's box); optimum 0 at 0."""
    x = _vector(c, 20)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.mean(x ** 2))) - np.exp(np.mean(np.cos(2 * np.pi * x)))
                 + 20 + math.e)


def levy20(c: dict) -> float:
    """Levy in 20-D on [-10, 10]^20 (the LA-MCTS paper's box); optimum 0 at 1."""
    w = 1 + (_vector(c, 20) - 1) / 4
    return float(np.sin(np.pi * w[0]) ** 2
                 + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
                 + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def rosenbrock10(c: dict) -> float:
    x = _vector(c, 10)
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


_ACT = {"relu": 0.0, "tanh": 0.5, "sigmoid": 2.0}


def mixed(c: dict) -> float:
    """A Categorical, an Int, a log Real and a Real: optimum 0 at relu, 7 layers, lr 1e-2, x 0.3."""
    return (_ACT[c["act"]] + (c["layers"] - 7) ** 2 / 10 + math.log10(c["lr"] / 1e-2) ** 2
            + 4 * (c["x"] - 0.3) ** 2)


@dataclass
class Problem:
    name: str
    space: Callable[[], Dict]
    f: Callable[[dict], float]
    optimum: float
    slow: bool  # 10-D: GP methods run on fewer seeds


def _reals(n: int, low: float, high: float) -> Callable[[], Dict]:
    return lambda: Dict(**{f"x{i}": Real(low, high) for i in range(n)})


PROBLEMS = {p.name: p for p in [
    Problem("branin", lambda: Dict(x1=Real(-5.0, 10.0), x2=Real(0.0, 15.0)), branin, 0.397887, False),
    Problem("hartmann6", _reals(6, 0.0, 1.0), hartmann6, -3.32237, False),
    Problem("ackley10", _reals(10, -32.768, 32.768), ackley10, 0.0, True),
    Problem("rosenbrock10", _reals(10, -5.0, 10.0), rosenbrock10, 0.0, True),
    Problem("ackley20", _reals(20, -5.0, 10.0), ackley20, 0.0, True),
    Problem("levy20", _reals(20, -10.0, 10.0), levy20, 0.0, True),
    Problem("mixed", lambda: Dict(act=Categorical("relu", "tanh", "sigmoid"), layers=Int(1, 16),
                                  lr=Real(1e-5, 1.0, log=True), x=Real(0.0, 1.0)), mixed, 0.0, False),
]}


# ---- the methods: each is an ask/tell pair over configs ------------------------------------------------

class Method:
    """``ask() -> config`` and ``tell(config, value)`` on one problem, for one seed."""

    gp = False

    def ask(self) -> dict:
        raise NotImplementedError

    def tell(self, config: dict, value: float) -> None:
        raise NotImplementedError


class GmlMethod(Method):
    def __init__(self, searcher: Any) -> None:
        self.searcher = searcher

    def ask(self) -> dict:
        config = self.searcher.get_config()
        assert config is not None, f"{type(self.searcher).__name__} ran out of configs"
        return config

    def tell(self, config: dict, value: float) -> None:
        self.searcher.update(config, value)


def _skopt_dims(space: Dict) -> list:
    from skopt.space import Categorical as SC
    from skopt.space import Integer
    from skopt.space import Real as SR

    dims = []
    for name, s in space.items():
        if isinstance(s, Categorical):
            dims.append(SC(list(s.data), name=name))
        elif isinstance(s, Int):
            dims.append(Integer(s.lower, s.upper, name=name))
        else:
            dims.append(SR(s.lower, s.upper, prior="log-uniform" if s.log else "uniform", name=name))
    return dims


class RawSkopt(Method):
    gp = True

    def __init__(self, space: Dict, seed: int) -> None:
        from skopt import Optimizer

        self.names = list(space)
        self.opt = Optimizer(_skopt_dims(space), random_state=seed)

    def ask(self) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = self.opt.ask()
        return {n: v.item() if hasattr(v, "item") else v for n, v in zip(self.names, x)}

    def tell(self, config: dict, value: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt.tell([config[n] for n in self.names], value)


class OptunaTPE(Method):
    """Raw Optuna, ask/tell, suggesting the space's args in order (TPE, or CMA-ES with ``cmaes``)."""

    def __init__(self, space: Dict, seed: int, cmaes: bool = False) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        sampler = optuna.samplers.CmaEsSampler(seed=seed, **CMAES_KWARGS) if cmaes \
            else optuna.samplers.TPESampler(seed=seed)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.trials: dict[str, Any] = {}

    def ask(self) -> dict:
        trial = self.study.ask()
        config = {}
        for name, s in self.space.items():
            if isinstance(s, Categorical):
                config[name] = trial.suggest_categorical(name, list(s.data))
            elif isinstance(s, Int):
                config[name] = trial.suggest_int(name, s.lower, s.upper)
            else:
                config[name] = trial.suggest_float(name, s.lower, s.upper, log=s.log)
        self.trials[repr(sorted(config.items()))] = trial
        return config

    def tell(self, config: dict, value: float) -> None:
        self.study.tell(self.trials.pop(repr(sorted(config.items()))), value)


# CMA-ES samples a Categorical independently (at random); its warning for that would repeat per ask.
CMAES_KWARGS = {"warn_independent_sampling": False}


def make_method(name: str, space: Dict, seed: int) -> Method:
    from gml_ray.searchers import EvolutionSearcher, OptunaSearcher, RandomSearcher, SkoptSearcher

    if name in ("gml Skopt", "gml Skopt x4"):
        method = GmlMethod(SkoptSearcher(space, optimize_mode="minimize", random_state=seed))
        method.gp = True
        return method
    if name == "raw skopt":
        return RawSkopt(space, seed)
    if name == "gml Evolution 32/0.1":
        return GmlMethod(EvolutionSearcher(space, optimize_mode="minimize", population_size=32,
                                           mutate_prob=0.1, seed=seed))
    if name == "gml Evolution 10/0.3":
        return GmlMethod(EvolutionSearcher(space, optimize_mode="minimize", population_size=10,
                                           mutate_prob=0.3, seed=seed))
    if name == "gml Random":
        return GmlMethod(RandomSearcher(space, optimize_mode="minimize", seed=seed))
    if name == "Optuna TPE":
        return OptunaTPE(space, seed)
    if name == "Optuna CMA-ES":
        return OptunaTPE(space, seed, cmaes=True)
    if name in ("gml Optuna TPE", "gml Optuna TPE x4"):
        return GmlMethod(OptunaSearcher(space, optimize_mode="minimize", sampler="tpe", seed=seed))
    if name == "gml Optuna CMA-ES":
        return GmlMethod(OptunaSearcher(space, optimize_mode="minimize", sampler="cmaes", seed=seed,
                                        sampler_kwargs=CMAES_KWARGS))
    if name == "gml LA-MCTS manual":  # the manual's settings (Cp 1, leaf 20, rbf, 30 initial), bo
        from gml_ray.searchers import LamctsSearcher
        return GmlMethod(LamctsSearcher(space, optimize_mode="minimize", solver="bo", seed=seed,
                                        **LAMCTS_BEFORE_36))
    if name == "gml LA-MCTS":
        from gml_ray.searchers import LamctsSearcher

        # the LA-MCTS authors' per-function settings (Ackley: Cp 1, leaf 10, rbf/auto, 40 initial;
        # Levy: Cp 10, leaf 8, poly/auto, 40 initial), the bo solver, one config at a time
        ackley = "x19" in space.keys() and space["x0"].lower == -5.0
        settings = dict(Cp=1.0, leaf_size=10, kernel_type="rbf", gamma_type="auto") if ackley \
            else dict(Cp=10.0, leaf_size=8, kernel_type="poly", gamma_type="auto")
        return GmlMethod(LamctsSearcher(space, optimize_mode="minimize", solver="bo", seed=seed,
                                        **{**LAMCTS_BEFORE_36, "ninits": 40, **settings}))
    raise ValueError(name)


# LamctsSearcher's defaults before issue 36 (the results in benchmarks/README.md were measured with
# them; benchmarks/searcher_ranks.py measures the current defaults)
LAMCTS_BEFORE_36 = {"ninits": 30, "gp_prior": False, "start_at_centre": False}

METHODS = ["gml Skopt", "raw skopt", "gml Skopt x4", "gml Evolution 32/0.1", "gml Evolution 10/0.3",
           "gml Random", "Optuna TPE", "gml Optuna TPE", "gml Optuna TPE x4", "Optuna CMA-ES",
           "gml Optuna CMA-ES", "gml LA-MCTS"]
# gml-ray's wrapper -> the raw peer it must match config for config (same seed, same results)
SAME_AS = {"gml Skopt": "raw skopt", "gml Optuna TPE": "Optuna TPE", "gml Optuna CMA-ES": "Optuna CMA-ES"}
GP_METHODS = {"gml Skopt", "raw skopt", "gml Skopt x4"}


# ---- one run ---------------------------------------------------------------------------------------------

def one_run(job: tuple[str, str, int, int]) -> dict:
    """Minimise one problem with one method and seed; the values in evaluation order."""
    method_name, problem_name, seed, evals = job
    problem = PROBLEMS[problem_name]
    method = make_method(method_name, problem.space(), seed)
    outstanding = 4 if method_name.endswith("x4") else 1
    t0 = time.perf_counter()
    values, pending = [], []
    while len(values) < evals:
        while len(pending) < outstanding and len(values) + len(pending) < evals:
            pending.append(method.ask())
        config = pending.pop(0)
        value = problem.f(config)
        values.append(value)
        method.tell(config, value)
    return {"method": method_name, "problem": problem_name, "seed": seed, "values": values,
            "seconds": time.perf_counter() - t0}


def one_latency(job: tuple[str, str, int, int]) -> dict:
    """Median seconds of one tell + ask cycle once ``n_obs`` random results are known."""
    method_name, problem_name, n_obs, reps = job
    problem = PROBLEMS[problem_name]
    space = problem.space()
    method = make_method(method_name, space, 0)
    rng = random.Random(1)
    if isinstance(method, RawSkopt):  # raw skopt: one batch tell, like SkoptSearcher's buffer
        configs = [space.sample(rng) for _ in range(n_obs)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            method.opt.tell([[c[n] for n in method.names] for c in configs], [problem.f(c) for c in configs])
    elif isinstance(method, OptunaTPE):  # raw Optuna: the results as finished trials
        import optuna

        dists = {}
        for name, s in space.items():
            if isinstance(s, Categorical):
                dists[name] = optuna.distributions.CategoricalDistribution(list(s.data))
            elif isinstance(s, Int):
                dists[name] = optuna.distributions.IntDistribution(s.lower, s.upper)
            else:
                dists[name] = optuna.distributions.FloatDistribution(s.lower, s.upper, log=s.log)
        for _ in range(n_obs):
            c = space.sample(rng)
            trial = optuna.trial.create_trial(params=c, distributions=dists, value=problem.f(c))
            method.study.add_trial(trial)
    else:  # gml-ray searchers: told as on resume, results they did not propose
        for _ in range(n_obs):
            c = space.sample(rng)
            method.tell(c, problem.f(c))
    # the first ask pays for telling the n_obs results; x4 keeps 3 more outstanding
    pending = [method.ask() for _ in range(4 if method_name.endswith("x4") else 1)]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        config = pending.pop(0)
        method.tell(config, problem.f(config))
        pending.append(method.ask())
        times.append(time.perf_counter() - t0)
    return {"method": method_name, "n_obs": n_obs, "seconds": statistics.median(times)}


# ---- the report --------------------------------------------------------------------------------------

def _num(x: float, digits: int = 3) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ("1.00" if a == b else "inf")


def regrets(runs: list[dict], optimum: float) -> list[float]:
    return sorted(min(r["values"]) - optimum for r in runs)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def report(data: dict) -> None:
    args = data["args"]
    problems = [PROBLEMS[p] for p in args["functions"].split(",")]
    methods = args["methods"].split(",")
    by: dict[tuple[str, str], list[dict]] = {}
    for r in data["runs"]:
        by.setdefault((r["method"], r["problem"]), []).append(r)
    lat = {(r["method"], r["n_obs"]): r["seconds"] for r in data["latencies"]}
    lat_ns = sorted({n for _, n in lat}) or [50, 200]

    print(f"Median best value over n seeds ({args['evals']} evaluations each, minimised; x4: 4 configs "
          f"outstanding) and the median tell+ask latency\non {args['latency_function']} once "
          f"{' / '.join(map(str, lat_ns))} results are known ({args['latency_reps']} cycles, measured one "
          f"method at a time)\n")
    rows = []
    for method in methods:
        row = [method]
        for p in problems:
            runs = by.get((method, p.name), [])
            best = statistics.median(min(r["values"]) for r in runs) if runs else None
            row.append("-" if best is None else f"{_num(best, 5)} n={len(runs)}")
        for n in lat_ns:
            row.append(f"{lat[(method, n)] * 1000:.1f} ms" if (method, n) in lat else "-")
        rows.append(row)
    print_table(["method"] + [f"{p.name} (opt {_num(p.optimum, 6)})" for p in problems]
                + [f"lat@{n}" for n in lat_ns], rows)

    print("\nSimple regret (best - optimum): median [25%, 75%]; run s: median seconds of one run\n")
    rows = []
    for method in methods:
        row = [method]
        for p in problems:
            reg = regrets(by.get((method, p.name), []), p.optimum)
            q = np.percentile(reg, [25, 50, 75]) if reg else None
            row.append("-" if q is None else f"{_num(q[1])} [{_num(q[0])}, {_num(q[2])}]")
        secs = [r["seconds"] for p in problems for r in by.get((method, p.name), [])]
        row.append(f"{statistics.median(secs):.2f}" if secs else "-")
        rows.append(row)
    print_table(["method"] + [p.name for p in problems] + ["run s"], rows)

    print("\nChecks (ratios of median regret; < 1 is better):")
    for p in problems:
        for ours, peer in SAME_AS.items():
            gml = {r["seed"]: r["values"] for r in by.get((ours, p.name), [])}
            raw = {r["seed"]: r["values"] for r in by.get((peer, p.name), [])}
            if gml and raw:
                same = sum(1 for s in gml if s in raw and gml[s] == raw[s])
                g = statistics.median(regrets(by[(ours, p.name)], p.optimum))
                w = statistics.median(regrets(by[(peer, p.name)], p.optimum))
                print(f"  {p.name}: {ours} evaluated exactly {peer}'s configs on {same}/{len(gml)} "
                      f"seeds; gml/raw {_ratio(g, w)}")
        rnd = regrets(by.get(("gml Random", p.name), []), p.optimum)
        if not rnd:
            continue
        rnd_m = statistics.median(rnd)
        verdicts = []
        for m in methods:
            if m in ("gml Random", *SAME_AS.values()) or not by.get((m, p.name)):
                continue
            mr = statistics.median(regrets(by[(m, p.name)], p.optimum))
            verdicts.append(f"{m} {_ratio(mr, rnd_m)}{'' if mr < rnd_m else ' (NOT better)'}")
        print(f"  {p.name}: vs random: " + ", ".join(verdicts))
    print(f"\nRuns took {data['run_seconds']:.0f} s with {args['workers']} workers, latencies "
          f"{data['latency_seconds']:.0f} s, on {data['cpus']} CPUs.")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--evals", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10, help="seeds for the fast methods")
    ap.add_argument("--gp-seeds", type=int, default=10, help="seeds for GP methods on 2-D/6-D/mixed")
    ap.add_argument("--slow-gp-seeds", type=int, default=5, help="seeds for GP methods on the 10-D functions")
    ap.add_argument("--x4-seeds", type=int, default=5, help="seeds for gml Skopt x4 on 2-D/6-D/mixed")
    ap.add_argument("--slow-x4-seeds", type=int, default=3, help="seeds for gml Skopt x4 in 10-D")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--functions", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--latency-function", default="hartmann6")
    ap.add_argument("--latency-reps", type=int, default=7)
    ap.add_argument("--latency-n", default="50,200", help="results known before the timed cycles")
    ap.add_argument("--latency-methods", default=None, help="default: --methods")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--save", help="write the raw results to this JSON file")
    ap.add_argument("--load", help="print the report of a saved JSON file instead of running")
    args = ap.parse_args(argv)
    if args.load:
        with open(args.load) as f:
            report(json.load(f))
        return
    problems = [PROBLEMS[p] for p in args.functions.split(",")]
    methods = args.methods.split(",")

    jobs = []
    for problem in problems:
        for method in methods:
            n = args.seeds
            if method == "gml Skopt x4":
                n = args.slow_x4_seeds if problem.slow else args.x4_seeds
            elif method in GP_METHODS:
                n = args.slow_gp_seeds if problem.slow else args.gp_seeds
            jobs += [(method, problem.name, seed, args.evals) for seed in range(n)]
    # the slowest first, so the workers finish together
    jobs.sort(key=lambda j: (j[0] not in GP_METHODS, not PROBLEMS[j[1]].slow))
    started = time.perf_counter()
    runs = []
    with multiprocessing.get_context("fork").Pool(args.workers, maxtasksperchild=20) as pool:
        for result in pool.imap_unordered(one_run, jobs):
            runs.append(result)
            print(f"\r{len(runs)}/{len(jobs)} runs, {time.perf_counter() - started:.0f} s", end="",
                  file=sys.stderr, flush=True)
    print(file=sys.stderr)
    run_seconds = time.perf_counter() - started
    # One at a time in this process: a latency must not share the cores with another measurement.
    started = time.perf_counter()
    latency_methods = (args.latency_methods or args.methods).split(",")
    latency_ns = [int(n) for n in args.latency_n.split(",")]
    latencies = [] if args.no_latency else [
        one_latency((m, args.latency_function, n, args.latency_reps)) for m in latency_methods
        for n in latency_ns]
    data = {"args": vars(args), "runs": runs, "latencies": latencies, "run_seconds": run_seconds,
            "latency_seconds": time.perf_counter() - started, "cpus": os.cpu_count()}
    if args.save:
        with open(args.save, "w") as f:
            json.dump(data, f)
    report(data)


if __name__ == "__main__":
    main()
