"""Several objectives: OptunaSearcher and RandomSearcher on ZDT1, ZDT2 and DTLZ2, next to raw Optuna.

    python benchmarks/multiobjective.py [--seeds 5] [--evals 200] [--engine/--no-engine]
                                        [--problems zdt1,zdt2,dtlz2]
                                        [--samplers nsga2,tpe,random,gml-random]

Problems (every objective minimised, x in [0, 1]^n, the standard definitions):
  * ZDT1, ZDT2: 2 objectives, 10-D; reference point (11, 11) (g <= 10, so every evaluated point
    counts); the optimal fronts' hypervolumes are 121 - 1/3 and 121 - 2/3.
  * DTLZ2: 3 objectives, 6-D (k = 4); reference point (1.1, 1.1, 1.1); the optimal front's
    hypervolume is 1.1^3 - pi/6.

Searchers, driven directly (no Ray) with one config outstanding (ask, evaluate, tell):
OptunaSearcher with ``sampler`` nsga2 (NSGAIISampler), tpe (MO-TPE) and random, each next to a raw
Optuna study (``optuna.create_study(directions=..., sampler=Cls(seed=s))``, ``study.ask`` with
OptunaSearcher's distributions in its order, told the same values), and gml-ray's RandomSearcher
(no raw peer). Ours and raw Optuna run step by step in one loop, so both see the same machine load
in the ask+tell times (MO-TPE's process-wide cache is emptied before each ask: see
clear_shared_cache). Every run checks that OptunaSearcher proposed exactly raw Optuna's configs
and got exactly its hypervolume ("identical"). OptunaSearcher runs no config twice: where Optuna
proposes an earlier trial's config again (NSGA-II does: a child that copies a parent), it tells
that trial the earlier result and asks again, where raw Optuna evaluates the config again. So each
run is also compared with raw Optuna's first ``evals`` distinct configs, in its order (raw Optuna
goes on, untimed, until it has them): the same configs and hypervolume expected. The hypervolume
is ``gml_ray.objectives``'s, cross-checked against ``optuna._hypervolume.compute_hypervolume``.

``--engine``: one real gml-ray task on ZDT1 (function trials, OptunaSearcher nsga2 seed 0,
``parallel_size: 1``, ``max_tries: evals``) on a local Ray with 2 CPUs, next to raw Optuna's
``study.optimize(objective, n_trials=evals)`` with the same sampler and seed: seconds per job, and
whether the engine's configs and front hypervolume (the jobs' ``rewards`` in the store) are raw
Optuna's (at ``evals`` trials, and its first ``evals`` distinct configs).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gml_ray.objectives import Objective, Outcome, OutcomeSpec  # noqa: E402
from gml_ray.space import Dict, Real  # noqa: E402
from gml_ray.vocab import JobStatus, OptimizeMode  # noqa: E402

# ---- problems --------------------------------------------------------------------------------------


def zdt1(x: Sequence[float]) -> tuple[float, float]:
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return f1, g * (1 - math.sqrt(f1 / g))


def zdt2(x: Sequence[float]) -> tuple[float, float]:
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return f1, g * (1 - (f1 / g) ** 2)


def dtlz2(x: Sequence[float], m: int = 3) -> tuple[float, ...]:
    g = sum((xi - 0.5) ** 2 for xi in x[m - 1:])
    f = []
    for i in range(m):
        v = 1 + g
        for xj in x[:m - 1 - i]:
            v *= math.cos(xj * math.pi / 2)
        if i > 0:
            v *= math.sin(x[m - 1 - i] * math.pi / 2)
        f.append(v)
    return tuple(f)


@dataclass(frozen=True)
class Problem:
    name: str
    fn: Callable[[Sequence[float]], tuple[float, ...]]
    dims: int
    n_obj: int
    reference: tuple[float, ...]
    optimum_hv: float

    @property
    def spec(self) -> OutcomeSpec:
        return OutcomeSpec(tuple(Objective(f"f{i + 1}", OptimizeMode.MINIMIZE) for i in range(self.n_obj)),
                           reference_point=self.reference)

    @property
    def space(self) -> Dict:
        return Dict(**{f"x{i}": Real(0, 1) for i in range(self.dims)})


PROBLEMS = {
    "zdt1": Problem("ZDT1", zdt1, 10, 2, (11.0, 11.0), 121 - 1 / 3),
    "zdt2": Problem("ZDT2", zdt2, 10, 2, (11.0, 11.0), 121 - 2 / 3),
    "dtlz2": Problem("DTLZ2", dtlz2, 6, 3, (1.1, 1.1, 1.1), 1.1 ** 3 - math.pi / 6),
}
SAMPLERS = {"nsga2": "NSGA-II", "tpe": "MO-TPE", "random": "Random (Optuna)"}


def hv(problem: Problem, values: Sequence[Sequence[float]]) -> float:
    """gml-ray's hypervolume of the evaluated points (minimised values) up to the reference."""
    return problem.spec.hypervolume(values, problem.reference)


def optuna_hv(problem: Problem, values: Sequence[Sequence[float]]) -> float:
    """Optuna's (losses, points beyond the reference dropped first as it wants them dominating it)."""
    from optuna._hypervolume import compute_hypervolume
    ref = np.array(problem.reference)
    pts = np.array([v for v in values if all(a < r for a, r in zip(v, ref))], dtype=float)
    if len(pts) == 0:
        return 0.0
    return float(compute_hypervolume(pts, ref))


# ---- one seed of one sampler, ours and raw Optuna in one loop ---------------------------------------


@dataclass
class Run:
    hv: float
    ask_tell_s: list[float] = field(default_factory=list)  # per evaluation
    values: list[tuple[float, ...]] = field(default_factory=list)
    configs: list[tuple[float, ...]] = field(default_factory=list)
    repeats: int = 0  # raw: trials that evaluated an earlier trial's config again; ours: the
    #                   Optuna trials OptunaSearcher told an earlier result instead of proposing
    distinct: list[tuple[float, ...]] = field(default_factory=list)  # raw: its first `evals` distinct configs
    distinct_hv: float = 0.0  # raw: the hypervolume of those


def first_difference(a: Sequence, b: Sequence) -> int | None:
    return next((i for i, (u, v) in enumerate(zip(a, b)) if u != v), None)


def clear_shared_cache() -> None:
    """Empty MO-TPE's process-wide cache of its last hypervolume subset selection (Optuna's
    ``_solve_hssp_with_cache``, an ``lru_cache(maxsize=1)`` keyed by the trials' values). Two
    identical studies stepped in one loop would otherwise let the second one find the first one's
    answer there (measured: the second side's ask about a third cheaper, whichever it was); emptied
    before every ask, each side pays what a study running alone pays."""
    try:
        from optuna.samplers._tpe.sampler import _solve_hssp_with_cache
    except ImportError:
        return
    _solve_hssp_with_cache.cache_clear()


def run_pair(problem: Problem, sampler: str, seed: int, evals: int) -> tuple[Run, Run | None]:
    """OptunaSearcher(sampler) and, in the same loop, raw Optuna with the same sampler and seed
    (``evals`` trials each, timed); raw Optuna then goes on, untimed, until it has evaluated
    ``evals`` distinct configs. Or RandomSearcher alone (sampler 'gml-random')."""
    from gml_ray.searchers.optuna import SAMPLERS as CLASSES
    from gml_ray.searchers.optuna import OptunaSearcher
    from gml_ray.searchers.random import RandomSearcher

    spec, space = problem.spec, problem.space
    names = [f"x{i}" for i in range(problem.dims)]
    if sampler == "gml-random":
        ours = RandomSearcher(space, reward_attribute="f1", optimize_mode="minimize", seed=seed)
        ours.outcome_spec = spec
        raw = None
    else:
        import optuna
        ours = OptunaSearcher(space, reward_attribute="f1", optimize_mode="minimize", sampler=sampler,
                              seed=seed, outcome_spec=spec)
        assert list(ours.distributions) == names, list(ours.distributions)
        dists = dict(ours.distributions)
        raw = optuna.create_study(directions=["minimize"] * problem.n_obj,
                                  sampler=getattr(optuna.samplers, CLASSES[sampler])(seed=seed))
    mine, theirs = Run(0.0), Run(0.0)
    clock = time.perf_counter

    def step_ours() -> None:
        clear_shared_cache()
        t0 = clock()
        config = ours.get_config()
        t1 = clock()
        x = tuple(config[n] for n in names)
        values = tuple(problem.fn(x))
        t2 = clock()
        ours.tell(config, values[0], JobStatus.FINISHED, Outcome(values))
        mine.ask_tell_s.append(clock() - t2 + t1 - t0)
        mine.configs.append(x)
        mine.values.append(values)

    def step_raw(times: list[float] | None) -> tuple[float, ...]:
        clear_shared_cache()
        t0 = clock()
        trial = raw.ask(dists)
        t1 = clock()
        x = tuple(trial.params[n] for n in names)
        values = tuple(problem.fn(x))
        t2 = clock()
        raw.tell(trial, list(values))
        if times is not None:
            times.append(clock() - t2 + t1 - t0)
        return x, values

    for i in range(evals):  # which side goes first alternates
        if raw is None:
            step_ours()
            continue
        if i % 2:
            x, values = step_raw(theirs.ask_tell_s)
            step_ours()
        else:
            step_ours()
            x, values = step_raw(theirs.ask_tell_s)
        theirs.configs.append(x)
        theirs.values.append(values)
    mine.hv = hv(problem, mine.values)
    mine.repeats = getattr(ours, "duplicates", 0)
    if raw is None:
        return mine, None
    theirs.hv = hv(problem, theirs.values)
    theirs.repeats = len(theirs.configs) - len(set(theirs.configs))
    all_x, all_v = list(theirs.configs), list(theirs.values)
    while len(set(all_x)) < evals:  # raw Optuna on to `evals` distinct configs (repeats run again)
        x, values = step_raw(None)
        all_x.append(x)
        all_v.append(values)
    firsts: dict[tuple[float, ...], tuple[float, ...]] = {}
    for x, values in zip(all_x, all_v):
        firsts.setdefault(x, values)
    theirs.distinct = list(firsts)[:evals]
    theirs.distinct_hv = hv(problem, [firsts[x] for x in theirs.distinct])
    return mine, theirs


# ---- the engine ------------------------------------------------------------------------------------

TRIAL = """
import math
import gml_ray

def trial(config):
    x = [config[f"x{i}"] for i in range(10)]
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / 9
    gml_ray.report(f1=f1, f2=g * (1 - math.sqrt(f1 / g)))
"""


def engine_run(evals: int, seed: int = 0) -> dict:
    import optuna
    import ray

    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    problem = PROBLEMS["zdt1"]
    names = [f"x{i}" for i in range(problem.dims)]
    tmp = tempfile.mkdtemp(prefix="gml-mo-bench-")
    code = os.path.join(tmp, "code")
    os.makedirs(code)
    with open(os.path.join(code, "objective.py"), "w") as f:
        f.write(textwrap.dedent(TRIAL))
    args = "\n".join(f"    - {{type: Real, name: {n}, data: [0, 1]}}" for n in names)
    with open(os.path.join(code, "search_config.yaml"), "w") as f:
        f.write(f"""task:
  function: "objective:trial"
  search_args:
{args}
searcher: {{type: OptunaSearcher, sampler: nsga2, seed: {seed}, reward_attribute: [f1, f2], optimize_mode: [minimize, minimize]}}
scheduler: {{parallel_size: 1, stop_criterion: {{max_tries: {evals}}}}}
""")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        cfg = load_config(os.path.join(code, "search_config.yaml"))
        scheduler = NaiveScheduler(os.path.join(tmp, "wd"), cfg, task="zdt1")
        store = scheduler.prepare()
        t0, started = time.perf_counter(), time.time()
        summary = scheduler.run()
        wall = time.perf_counter() - t0
        jobs = sorted(store.jobs("zdt1"), key=lambda j: j["job_id"])
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    counts = summary.get("counts", {})
    first = min(j["created"] for j in jobs) - started  # Ray checks, the scheduler actor's start
    engine_values = [tuple(j["rewards"]) for j in jobs if j["status"] == JobStatus.FINISHED]
    engine_configs = [tuple(j["config"][n] for n in names) for j in jobs]

    # raw Optuna, study.optimize with the same sampler and seed, define-by-run in the same order
    def objective(trial):
        x = [trial.suggest_float(n, 0, 1) for n in names]
        return list(problem.fn(x))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=evals)
    raw_wall = time.perf_counter() - t0
    raw_values = [tuple(t.values) for t in study.trials]
    raw_configs = [tuple(t.params[n] for n in names) for t in study.trials]
    while len(set(tuple(t.params[n] for n in names) for t in study.trials)) < evals:
        study.optimize(objective, n_trials=1)  # on to `evals` distinct configs, untimed
    firsts: dict[tuple[float, ...], tuple[float, ...]] = {}
    for t in study.trials:
        firsts.setdefault(tuple(t.params[n] for n in names), tuple(t.values))
    distinct = list(firsts)[:evals]
    return dict(wall=wall, first_job_s=first, jobs=len(jobs), counts=counts, raw_wall=raw_wall,
                engine_hv=hv(problem, engine_values), raw_hv=hv(problem, raw_values),
                distinct_hv=hv(problem, [firsts[x] for x in distinct]),
                same_configs=sum(a == b for a, b in zip(engine_configs, raw_configs)),
                first_diff=first_difference(engine_configs, raw_configs),
                raw_repeats=len(raw_configs) - len(set(raw_configs)),
                same_as_distinct=engine_configs == distinct
                and engine_values == [firsts[x] for x in distinct],
                distinct_diff=first_difference(engine_configs, distinct),
                raw_trials=len(study.trials))


# ---- main ------------------------------------------------------------------------------------------


def spread(xs: Sequence[float], fmt: str) -> str:
    return f"{statistics.median(xs):{fmt}} [{min(xs):{fmt}}–{max(xs):{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=200)
    ap.add_argument("--engine", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--samplers", default=",".join([*SAMPLERS, "gml-random"]),
                    help="of nsga2, tpe, random (OptunaSearcher) and gml-random (RandomSearcher)")
    args = ap.parse_args()
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    t_start = time.perf_counter()
    problems = [PROBLEMS[p] for p in args.problems.split(",")]
    samplers = args.samplers.split(",")
    rows = []
    hv_diff = 0.0
    for problem in problems:
        for sampler in samplers:
            ours, raws, identical, distinct = [], [], [], []
            t_cell = time.perf_counter()
            for seed in range(args.seeds):
                mine, theirs = run_pair(problem, sampler, seed, args.evals)
                ours.append(mine)
                hv_diff = max(hv_diff, abs(mine.hv - optuna_hv(problem, mine.values)))
                if theirs is not None:
                    raws.append(theirs)
                    hv_diff = max(hv_diff, abs(theirs.hv - optuna_hv(problem, theirs.values)))
                    same = mine.configs == theirs.configs and mine.hv == theirs.hv
                    same_distinct = mine.configs == theirs.distinct and mine.hv == theirs.distinct_hv
                    identical.append(same)
                    distinct.append(same_distinct)
                    i = first_difference(mine.configs, theirs.configs)
                    where = "" if i is None else (
                        f"; first difference at evaluation {i}, where raw Optuna "
                        + (f"evaluates trial {theirs.configs.index(theirs.configs[i])}'s config again"
                           if theirs.configs[i] in theirs.configs[:i] else "proposes a new config"))
                    print(f"  {problem.name} {sampler} seed {seed}: hv {mine.hv:.6g} (raw {theirs.hv:.6g}, "
                          f"raw's first {args.evals} distinct configs {theirs.distinct_hv:.6g}); identical: "
                          f"{'yes' if same else 'no'}, to raw's distinct configs: "
                          f"{'yes' if same_distinct else 'no'}; raw repeats {theirs.repeats}, "
                          f"OptunaSearcher's {mine.repeats}{where}", flush=True)
                else:
                    print(f"  {problem.name} {sampler} seed {seed}: hv {mine.hv:.6g}", flush=True)
            rows.append((problem, sampler, ours, raws, identical, distinct, time.perf_counter() - t_cell))

    print(f"\nhypervolume after {args.evals} evaluations, median [min–max] over seeds 0–{args.seeds - 1}; "
          f"ask+tell ms per evaluation (mean over the run, median over seeds)")
    print("reference points: ZDT (11, 11), DTLZ2 (1.1, 1.1, 1.1)\n")
    print("| problem (optimal hv) | sampler | gml-ray hv | raw Optuna hv | identical | repeats | "
          "gml-ray ms/eval | raw ms/eval | cell s |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    for problem, sampler, ours, raws, identical, distinct, cell_s in rows:
        fmt = ".4f"
        ms = [1000 * statistics.fmean(r.ask_tell_s) for r in ours]
        name = "RandomSearcher (gml-ray)" if sampler == "gml-random" else SAMPLERS[sampler]
        raw_hv = spread([r.hv for r in raws], fmt) if raws else "–"
        raw_ms = f"{statistics.median([1000 * statistics.fmean(r.ask_tell_s) for r in raws]):.2f}" if raws else "–"
        ident = (f"{'yes' if all(identical) else 'no'} ({sum(identical)}/{len(identical)})"
                 if identical else "–")
        if distinct and not all(identical):
            ident += f"; = raw's distinct configs {sum(distinct)}/{len(distinct)}"
        repeats = f"{sum(r.repeats for r in raws)}" if raws else "–"
        print(f"| {problem.name} ({problem.optimum_hv:.4f}) | {name} | {spread([r.hv for r in ours], fmt)} | "
              f"{raw_hv} | {ident} | {repeats} | {statistics.median(ms):.2f} | {raw_ms} | {cell_s:.1f} |")
    print(f"\ngml_ray.objectives.hypervolume vs optuna._hypervolume.compute_hypervolume: "
          f"max abs difference {hv_diff:.3g} over every run's {args.evals} points")
    runs = [x for row in rows for x in row[4]]
    dist = [x for row in rows for x in row[5]]
    print(f"OptunaSearcher identical to raw Optuna (configs and hypervolume, {args.evals} evaluations): "
          f"{sum(runs)} of {len(runs)} runs; its configs and hypervolume those of raw Optuna's first "
          f"{args.evals} distinct configs: {sum(dist)} of {len(dist)} runs")
    print("repeats: trials in which raw Optuna evaluated an earlier trial's config again, summed over "
          "the seeds. OptunaSearcher runs no config twice: it tells such a trial the result the "
          "config's job got and asks Optuna again, so its study stays raw Optuna's trial for trial, "
          "and its evaluations are raw Optuna's distinct configs, in raw Optuna's order")
    print(f"searcher part: {time.perf_counter() - t_start:.0f} s", flush=True)

    if args.engine:
        t0 = time.perf_counter()
        e = engine_run(args.evals)
        n = args.evals
        print(f"\nengine: ZDT1, OptunaSearcher nsga2 seed 0, function trials, parallel_size 1, "
              f"{e['jobs']} jobs {dict(e['counts'])}")
        print("| | wall s | s per job |\n|---|---:|---:|")
        print(f"| gml-ray engine, scheduler.run() | {e['wall']:.2f} | {e['wall'] / n:.4f} |")
        print(f"| gml-ray engine, from the first job's start | {e['wall'] - e['first_job_s']:.2f} | "
              f"{(e['wall'] - e['first_job_s']) / n:.4f} |")
        print(f"| raw Optuna study.optimize | {e['raw_wall']:.2f} | {e['raw_wall'] / n:.4f} |")
        print(f"engine start before the first job: {e['first_job_s']:.2f} s")
        print(f"front hypervolume: engine {e['engine_hv']!r}, raw Optuna {e['raw_hv']!r}: "
              f"{'equal' if e['engine_hv'] == e['raw_hv'] else 'DIFFERENT'}; the same config in "
              f"{e['same_configs']}/{n} jobs"
              + (f", first difference at job {e['first_diff']}" if e["first_diff"] is not None else "")
              + f"; raw Optuna evaluated {e['raw_repeats']} configs again in its {n} trials")
        print(f"raw Optuna's first {n} distinct configs ({e['raw_trials']} trials): hv {e['distinct_hv']!r}; "
              f"the engine's configs and values: {'identical' if e['same_as_distinct'] else 'DIFFERENT'}"
              + (f", first difference at job {e['distinct_diff']}" if e["distinct_diff"] is not None else ""))
        print(f"engine part: {time.perf_counter() - t0:.0f} s")
    print(f"total: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
