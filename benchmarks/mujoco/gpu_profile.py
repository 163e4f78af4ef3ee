"""LA-MCTS without Ray: iteration latency and Swimmer evaluations to 325, on cpu or cuda.

    python benchmarks/mujoco/gpu_profile.py --device cuda            # both parts
    python benchmarks/mujoco/gpu_profile.py --device cpu --part latency --results 100,500,2000
    python benchmarks/mujoco/gpu_profile.py --device cuda --part swimmer --seeds 0,1,2

Self-contained: it imports ``gml_ray.searchers.lamcts`` and ``gml_ray.mujoco.objective`` directly
(run it from a checkout, or with gml_ray on ``PYTHONPATH``); Ray need not be installed.

``latency``: one LA-MCTS iteration (tree rebuild + leaf selection + a batch of ``--batch``
proposals, i.e. ``LamctsSearcher._iterate``) once ``n`` results are known (each timed
iteration's batch is then told, so the next one starts from a grown sample set), for n in
``--results``, 16-D and 33-D, solvers bo and turbo. The results are points of a shifted Ackley
function (values to maximise, in return-like units). Printed: the median and the best wall time
of ``--reps`` iterations after one warm-up, in ms (cuda: synchronised before reading the clock),
and the median CPU time of this process (the fairer number on a machine others load too).

``swimmer``: the shipped ``benchmarks/mujoco/swimmer.yaml`` searcher settings (``enable_cuda``
set by ``--device``), 2 configs in flight as with ``parallel_size: 2``, each evaluation 3 seeded
rollouts of gymnasium's Swimmer-v5, until the best reaches 325 or ``--budget`` evaluations.
Printed per seed: evaluations to 325, the best, the searcher's and the rollouts' seconds.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the checkout, ahead of any install

from gml_ray.searchers.lamcts.searcher import LamctsSearcher  # noqa: E402
from gml_ray.space import Dict, Real  # noqa: E402


def _space(d: int) -> Dict:
    return Dict(**{f"a{i}": Real(-1.0, 1.0) for i in range(d)})


def ackley_reward(x: list[float]) -> float:
    """A shifted Ackley in [-1, 1]^d, negated and scaled to look like returns (max 300 at 0.2)."""
    d = len(x)
    z = [5.0 * (t - 0.2) for t in x]
    a = -20.0 * math.exp(-0.2 * math.sqrt(sum(t * t for t in z) / d))
    b = -math.exp(sum(math.cos(2 * math.pi * t) for t in z) / d)
    return 300.0 - 10.0 * (a + b + 20.0 + math.e)


def _sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def latency(device: str, results: list[int], dims: list[int], solvers: list[str], batch: int,
            reps: int, searcher_args: dict | None = None) -> list[dict]:
    """Wall time of one iteration per (solver, dims, results); prints a table, returns its rows."""
    rows = []
    extra = dict(searcher_args or {})
    print(f"\nLA-MCTS iteration (tree + selection + batch of {batch}), device {device}, "
          f"Cp 1, leaf 20, rbf/auto, {extra or 'no other settings'}; median and best of {reps} "
          f"after a warm-up, ms")
    print(f"{'solver':6} {'dims':>4} {'results':>7} {'leaves':>6} {'median ms':>10} {'best ms':>8} "
          f"{'CPU ms':>7}")
    for solver in solvers:
        for d in dims:
            for n in results:
                rng = random.Random(1000 * d + n)
                # stall_patience 0: random results rarely improve the best, and every iteration
                # would be a restart (a GP fitted from scratch); this times the usual iteration
                kwargs = {"Cp": 1.0, "leaf_size": 20, "ninits": 30, "stall_patience": 0, **extra}
                s = LamctsSearcher(_space(d), reward_attribute="r", solver=solver, seed=0,
                                   parallel_size=batch, enable_cuda=device == "cuda", **kwargs)
                for _ in range(n):
                    c = {f"a{i}": rng.uniform(-1, 1) for i in range(d)}
                    s.update(c, ackley_reward([c[f"a{i}"] for i in range(d)]))
                times, cpu = [], []
                for rep in range(reps + 1):
                    _sync(device)
                    t0, c0 = time.perf_counter(), time.process_time()
                    points = s._iterate()
                    _sync(device)
                    if rep:
                        times.append(time.perf_counter() - t0)
                        cpu.append(time.process_time() - c0)
                    assert len(points) == batch, (solver, d, n, len(points))
                    for p in points:  # tell the batch, as a search would: the next tree differs
                        c = s._to_config(p)
                        s.update(c, ackley_reward([c[f"a{i}"] for i in range(d)]))
                row = {"solver": solver, "dims": d, "results": n,
                       "leaves": len(s.last_tree.leaves), "median_ms": 1000 * statistics.median(times),
                       "best_ms": 1000 * min(times), "cpu_ms": 1000 * statistics.median(cpu)}
                rows.append(row)
                print(f"{solver:6} {d:>4} {n:>7} {row['leaves']:>6} {row['median_ms']:>10.0f} "
                      f"{row['best_ms']:>8.0f} {row['cpu_ms']:>7.0f}", flush=True)
    return rows


def swimmer(device: str, seeds: list[int], budget: int, threshold: float | None = None,
            env: str = "swimmer", searcher_args: dict | None = None,
            rollouts: int = 3, checkpoints: tuple[int, ...] = ()) -> list[dict]:
    """Evaluations to ``threshold`` (default the config's max_reward) on ``env`` (swimmer or
    hopper, with its shipped yaml's searcher) per searcher seed, 2 configs in flight; also the
    searcher's and the rollouts' seconds; the best so far is also printed after each of
    ``checkpoints`` evaluations."""
    import yaml

    from gml_ray.mujoco.objective import Objective, job_seed

    with open(os.path.join(HERE, f"{env}.yaml")) as f:
        raw = yaml.safe_load(f)
        searcher_cfg = dict(raw["searcher"])
        if threshold is None:
            threshold = float(raw["scheduler"]["stop_criterion"]["max_reward"])
    searcher_cfg.pop("type", None)
    searcher_cfg.pop("reward_attribute", None)
    searcher_cfg["enable_cuda"] = device == "cuda"
    searcher_cfg.update(searcher_args or {})
    objective = Objective(env, rollouts)
    d = objective.dims
    print(f"\n{objective.spec.env_id} (threshold {threshold:g}), {env}.yaml's searcher "
          f"{searcher_cfg}, 2 in flight, budget {budget}, {rollouts} rollouts an evaluation")
    rows = []
    for seed in seeds:
        s = LamctsSearcher(_space(d), reward_attribute="default", seed=seed, parallel_size=2,
                           **searcher_cfg)
        pending: list[dict] = []
        best, reach, n, t_search, t_roll = -math.inf, None, 0, 0.0, 0.0
        while n < budget and reach is None:
            while len(pending) < 2:
                t0 = time.perf_counter()
                pending.append(s.get_config())
                t_search += time.perf_counter() - t0
            config = pending.pop(0)
            n += 1
            t0 = time.perf_counter()
            value = objective([config[f"a{i}"] for i in range(d)], job_seed(n))
            t_roll += time.perf_counter() - t0
            best = max(best, value)
            t0 = time.perf_counter()
            s.update(config, value)
            t_search += time.perf_counter() - t0
            if best >= threshold:
                reach = n
            if n in checkpoints:
                print(f"seed {seed}: best {best:.1f} after {n}, searcher {t_search:.1f} s, "
                      f"rollouts {t_roll:.1f} s", flush=True)
        rows.append({"seed": seed, "reach": reach, "best": best, "evals": n,
                     "searcher_s": t_search, "rollouts_s": t_roll})
        print(f"seed {seed}: reached at {reach if reach else 'never'} (best {best:.1f} after {n}), "
              f"searcher {t_search:.1f} s, rollouts {t_roll:.1f} s (searcher "
              f"{100 * t_search / max(t_search + t_roll, 1e-9):.0f}%)", flush=True)
    reached = sorted(r["reach"] for r in rows if r["reach"])
    if reached:
        print(f"reached on {len(reached)}/{len(rows)} seeds; median of all "
              f"(a miss counts as worst): "
              f"{sorted([r['reach'] or math.inf for r in rows])[(len(rows) - 1) // 2]}")
    return rows


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ``200-219`` (both ends included) as a list of seeds."""
    if "-" in text:
        first, last = (int(s) for s in text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--part", choices=["all", "latency", "swimmer"], default="all")
    ap.add_argument("--results", default="100,500,2000")
    ap.add_argument("--dims", default="16,33")
    ap.add_argument("--solvers", default="bo,turbo")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2", help="a list (0,1,2) or a range (200-219)")
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--env", choices=["swimmer", "hopper"], default="swimmer",
                    help="the swimmer part's environment (hopper: hopper.yaml's searcher)")
    ap.add_argument("--searcher-args", default="{}",
                    help="JSON: LamctsSearcher settings over the part's own (latency) or over the "
                         "yaml's (swimmer), e.g. '{\"gamma_type\": \"scale\", \"box_every\": 2}'")
    ap.add_argument("--rollouts", type=int, default=3,
                    help="episodes an evaluation in the swimmer part (3 as shipped; 1 is a "
                         "3x cheaper proxy for tuning)")
    ap.add_argument("--checkpoints", default="",
                    help="the swimmer part: also print the best after these evaluations (500,1500)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch's CPU threads (0: torch's default); under Ray the searcher's "
                         "actor gets OMP_NUM_THREADS=1")
    args = ap.parse_args(argv)
    extra = json.loads(args.searcher_args)
    seeds = parse_seeds(args.seeds)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device")
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    if args.part in ("all", "latency"):
        latency(args.device, [int(n) for n in args.results.split(",")],
                [int(d) for d in args.dims.split(",")], args.solvers.split(","), args.batch,
                args.reps, extra)
    if args.part in ("all", "swimmer"):
        swimmer(args.device, seeds, args.budget, env=args.env, searcher_args=extra,
                rollouts=args.rollouts,
                checkpoints=tuple(int(n) for n in args.checkpoints.split(",") if n))


if __name__ == "__main__":
    main()
