"""Ask time of the GP searchers in 10-D: gml-ray's wrappers next to the raw libraries.

    python benchmarks/searcher_ask_time.py [--ns 25,50,100,150] [--reps 3]
                                           [--optuna-ns 50,100,150] [--no-optuna] [--no-skopt]

A 10-D space of Real args in [-5, 10] and a shifted sphere (cheap: the time is the searcher's).
For each n, every side is first told the same n random results (gml-ray's searchers as on
``--resume``, the raw libraries in one batch), then ``--reps`` cycles of one tell + ask are timed,
the sides alternating in one loop (the order rotates each rep) so that load from other work on the
machine hits them alike. Medians are printed.

* Skopt: ``SkoptSearcher`` with its defaults (skopt's: GP, gp_hedge, lbfgs) next to raw
  ``skopt.Optimizer`` with the same settings and seed, ask/tell, run twice: as the library
  comes ("raw skopt") and inside ``threadpoolctl``'s one-BLAS-thread limit that SkoptSearcher puts
  around its skopt calls ("raw, 1 BLAS"). "same" says whether SkoptSearcher proposed exactly
  the configs of raw, 1 BLAS in every cycle (the BLAS thread count changes rounding, so raw
  skopt with more threads may drift from both after ~100 results in 10-D). "wrapper": the
  median time of a gml Skopt cycle spent outside skopt's own ``tell`` and ``ask`` (what the
  wrapper adds: its bookkeeping, the BLAS limit, the warnings filter), which does not depend on
  how the load from other work hits the sides.
* Optuna: ``OptunaSearcher`` with ``sampler: gp`` next to a raw study with
  ``optuna.samplers.GPSampler(seed=...)`` (``study.ask(distributions)`` / ``study.tell``); the ask
  (where GPSampler fits its GP) and the tell are timed apart.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import warnings
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gml_ray.space import Dict, Real  # noqa: E402

DIM, LOW, HIGH = 10, -5.0, 10.0
SPACE = Dict(**{f"x{i}": Real(LOW, HIGH) for i in range(DIM)})
NAMES = list(SPACE)


def sphere(c: dict) -> float:
    """A shifted sphere: minimum 0 at x = 1.3 in every coordinate."""
    return sum((c[n] - 1.3) ** 2 for n in NAMES)


def results(n: int, seed: int) -> list[tuple[dict, float]]:
    rng = random.Random(seed + 1000)
    configs = [SPACE.sample(rng) for _ in range(n)]
    return [(c, sphere(c)) for c in configs]


# ---- sides: tell(value of the last proposal) + ask, each returning the new config ---------------

class GmlSkopt:
    """SkoptSearcher; ``inside`` adds up the seconds spent in its optimizer's own ``tell`` and
    ``ask`` (timed around the calls), so a cycle's time minus it is what the wrapper adds."""

    name = "gml Skopt"

    def __init__(self, pre: list, seed: int) -> None:
        from gml_ray.searchers import SkoptSearcher

        self.s = SkoptSearcher(SPACE, optimize_mode="minimize", random_state=seed)
        self.inside = 0.0
        opt = self.s._opt
        for method in ("tell", "ask"):
            setattr(opt, method, self._timed(getattr(opt, method)))
        for c, y in pre:
            self.s.update(c, y)
        self.config = self.s.get_config()  # pays for telling the n results (one fit)

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - t0
        return call

    def cycle(self) -> None:
        self.s.update(self.config, sphere(self.config))
        self.config = self.s.get_config()


class RawSkopt:
    def __init__(self, pre: list, seed: int, one_thread: bool) -> None:
        from skopt import Optimizer
        from skopt.space import Real as SR
        from threadpoolctl import ThreadpoolController

        self.name = "raw, 1 BLAS" if one_thread else "raw skopt"
        self.limit = ThreadpoolController().limit if one_thread else None
        self.opt = Optimizer([SR(LOW, HIGH, name=n) for n in NAMES], random_state=seed)
        self._call(lambda: self.opt.tell([[c[n] for n in NAMES] for c, _ in pre],
                                         [y for _, y in pre]))
        self.config = self._ask()

    def _call(self, fn: Callable[[], Any]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.limit is None:
                return fn()
            with self.limit(limits=1):
                return fn()

    def _ask(self) -> dict:
        return {n: float(v) for n, v in zip(NAMES, self._call(self.opt.ask))}

    def cycle(self) -> None:
        x = [self.config[n] for n in NAMES]
        self._call(lambda: self.opt.tell(x, sphere(self.config)))
        self.config = self._ask()


class GmlOptuna:
    name = "gml Optuna gp"

    def __init__(self, pre: list, seed: int) -> None:
        from gml_ray.searchers.optuna import OptunaSearcher

        self.s = OptunaSearcher(SPACE, optimize_mode="minimize", sampler="gp", seed=seed)
        for c, y in pre:
            self.s.update(c, y)
        self.config = self.s.get_config()

    def cycle(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        self.s.update(self.config, sphere(self.config))
        t1 = time.perf_counter()
        self.config = self.s.get_config()
        return time.perf_counter() - t1, t1 - t0


class RawOptuna:
    name = "raw GPSampler"

    def __init__(self, pre: list, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.dists = {n: optuna.distributions.FloatDistribution(LOW, HIGH) for n in NAMES}
        self.study = optuna.create_study(direction="minimize",
                                         sampler=optuna.samplers.GPSampler(seed=seed))
        for c, y in pre:
            self.study.add_trial(optuna.trial.create_trial(params=c, distributions=self.dists, value=y))
        self.trial = self.study.ask(self.dists)

    def cycle(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        self.study.tell(self.trial, sphere(self.trial.params))
        t1 = time.perf_counter()
        self.trial = self.study.ask(self.dists)
        return time.perf_counter() - t1, t1 - t0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def bench_skopt(ns: list[int], reps: int, seed: int) -> None:
    print(f"Skopt, {DIM}-D, one tell + ask cycle once n results are known (median of {reps})")
    print(f"{'n':>4}  {'gml Skopt':>11}  {'raw skopt':>11}  {'raw, 1 BLAS':>11}  "
          f"{'ours/raw':>8}  {'ours/raw1':>9}  {'wrapper':>11}  same")
    for n in ns:
        pre = results(n, seed)
        sides = [GmlSkopt(pre, seed), RawSkopt(pre, seed, False), RawSkopt(pre, seed, True)]
        ours, raw1 = sides[0], sides[2]
        same = ours.config == raw1.config
        times: dict[str, list[float]] = {s.name: [] for s in sides}
        outside: list[float] = []  # per cycle: gml Skopt's time outside skopt's tell and ask
        for r in range(reps):
            for side in sides[r % 3:] + sides[:r % 3]:
                inside = ours.inside
                t0 = time.perf_counter()
                side.cycle()
                times[side.name].append(time.perf_counter() - t0)
                if side is ours:
                    outside.append(times[side.name][-1] - (ours.inside - inside))
            same = same and ours.config == raw1.config
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{n:>4}  {_ms(med['gml Skopt'])}  {_ms(med['raw skopt'])}  {_ms(med['raw, 1 BLAS'])}  "
              f"{med['gml Skopt'] / med['raw skopt']:8.2f}  {med['gml Skopt'] / med['raw, 1 BLAS']:9.2f}  "
              f"{_ms(statistics.median(outside))}  {'yes' if same else 'NO'}", flush=True)


def bench_optuna(ns: list[int], reps: int, seed: int) -> None:
    print(f"\nOptuna GPSampler, {DIM}-D, once n trials are finished (median of {reps})")
    print(f"{'n':>4}  {'gml ask':>11}  {'raw ask':>11}  {'ours/raw':>8}  {'gml tell':>11}  {'raw tell':>11}")
    for n in ns:
        pre = results(n, seed)
        sides = [GmlOptuna(pre, seed), RawOptuna(pre, seed)]
        asks: dict[str, list[float]] = {s.name: [] for s in sides}
        tells: dict[str, list[float]] = {s.name: [] for s in sides}
        for r in range(reps):
            for side in sides[r % 2:] + sides[:r % 2]:
                ask, tell = side.cycle()
                asks[side.name].append(ask)
                tells[side.name].append(tell)
        a = {k: statistics.median(v) for k, v in asks.items()}
        t = {k: statistics.median(v) for k, v in tells.items()}
        print(f"{n:>4}  {_ms(a['gml Optuna gp'])}  {_ms(a['raw GPSampler'])}  "
              f"{a['gml Optuna gp'] / a['raw GPSampler']:8.2f}  {_ms(t['gml Optuna gp'])}  "
              f"{_ms(t['raw GPSampler'])}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ns", default="25,50,100,150", help="results known before the Skopt cycles")
    ap.add_argument("--reps", type=int, default=3, help="timed cycles per side and n")
    ap.add_argument("--optuna-ns", default="50,100,150", help="trials finished before the Optuna asks")
    ap.add_argument("--optuna-reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-skopt", action="store_true")
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    if not args.no_skopt:
        bench_skopt([int(n) for n in args.ns.split(",")], args.reps, args.seed)
    if not args.no_optuna:
        bench_optuna([int(n) for n in args.optuna_ns.split(",")], args.optuna_reps, args.seed)
    print(f"\n{time.perf_counter() - started:.0f} s on {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
