"""Assessors on the digits example (examples/digits): epochs spent and whether the best config survives.

    python benchmarks/assessors_digits.py [--seeds 5] [--configs 16] [--epochs 20]
                                          [--assessors none,MedianStop,CurveFitting,ASHA,Hyperband]

Per seed, a RandomSearcher (seed = the seed) proposes ``--configs`` configs of the example's
train.py (a torch MLP on scikit-learn's digits): batch size, hidden units, learning rate (log,
1e-4..0.3), optimizer; ``epochs`` is fixed (``--epochs``) so that curves are compared at equal
steps. Each config's run is deterministic (train.py seeds torch, one thread), and the seeded
searcher proposes the same configs whatever the rewards, so every assessor sees the same jobs; the
run without an assessor gives each config's final Test Acc, the "known final values". Real
command jobs (``gml-ray``'s NaiveScheduler, parallel_size 2, one local Ray with 2 CPUs).

Printed per run: epochs run (Test Acc values in the store), jobs EARLY_STOPPED, whether a config
with the best final Test Acc (ties are common: 359 test images) ran all epochs ("kept"), the best final Test Acc among the jobs that
ran all epochs, and wall time. Numbers never assert anything.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
from typing import Any

from gml_ray.space import config_key

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(os.path.dirname(HERE), "examples", "digits")


def assessors(epochs: int) -> dict[str, dict | None]:
    return {"none": None,
            "MedianStop": {"type": "MedianStopAssessor", "start_step": 5},
            "CurveFitting": {"type": "CurveFittingAssessor", "epoch_num": epochs, "start_step": 6},
            "ASHA": {"type": "AshaAssessor", "min_step": 1, "reduction_factor": 3, "max_step": epochs},
            "Hyperband": {"type": "HyperbandAssessor", "min_step": 1, "reduction_factor": 3,
                          "max_step": epochs}}


def config(seed: int, n_configs: int, epochs: int, assessor: dict | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "task": {"template": "python train.py --config {config} --batch-size {batch-size} "
                             "--hidden {hidden} --lr {lr}",
                 "search_args": [
                     {"type": "Categorical", "name": "batch-size", "data": [32, 64, 128, 256]},
                     {"type": "Int", "name": "hidden", "data": [16, 128], "step": 16},
                     {"type": "Real", "name": "lr", "data": [0.0001, 0.3], "log": True},
                     {"type": "File", "name": "config", "file": "train_config.yaml",
                      "search_args": [
                          {"type": "Categorical", "name": "epochs", "data": [epochs]},
                          {"type": "Nested", "data": [
                              {"optimizer.name": "sgd", "optimizer.momentum": 0.9},
                              {"optimizer.name": "sgd", "optimizer.momentum": 0.0},
                              {"optimizer.name": "adam", "optimizer.momentum": 0.9}]}]}]},
        "searcher": {"type": "RandomSearcher", "seed": seed, "reward_attribute": "Test Acc"},
        "scheduler": {"parallel_size": 2, "stop_criterion": {"max_tries": n_configs}},
        "generate_log": False,
    }
    if assessor is not None:
        cfg["scheduler"]["assessor"] = dict(assessor)
    return cfg


def run(work_dir: str, seed: int, name: str, assessor: dict | None, n_configs: int,
        epochs: int) -> dict:
    import yaml

    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    path = os.path.join(work_dir, f"s{seed}_{name}.yaml")
    shutil.copy(os.path.join(DIGITS, "train_config.yaml"), work_dir)
    shutil.copy(os.path.join(DIGITS, "train.py"), work_dir)
    with open(path, "w") as f:
        yaml.safe_dump(config(seed, n_configs, epochs, assessor), f, sort_keys=False)
    task = f"s{seed}_{name}"
    scheduler = NaiveScheduler(os.path.join(work_dir, "wd"), load_config(path), task=task,
                               code_dir=work_dir, snapshot=False)
    store = scheduler.prepare()
    t0 = time.perf_counter()
    scheduler.run()
    wall = time.perf_counter() - t0
    jobs = store.jobs(task)
    out = {"wall": wall, "jobs": {}}
    for j in jobs:
        values = [r["value"] for r in store.scalars(task, [j["job_id"]], ["Test Acc"])]
        out["jobs"][config_key(j["config"])] = (j["status"], values)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--assessors", default="none,MedianStop,CurveFitting,ASHA,Hyperband")
    args = parser.parse_args(argv)
    import ray

    from gml_ray.engine.runtime import init_ray

    signal.signal(signal.SIGINT, signal.default_int_handler)  # see assessors.py: ray.cancel needs it
    init_ray(None, 2)
    work_dir = tempfile.mkdtemp(prefix="gml_digits_bench_")
    table = assessors(args.epochs)
    names = args.assessors.split(",")
    if names[0] != "none":
        raise SystemExit("the first run must be none: it gives the final values")
    summary: dict[str, list[dict]] = {n: [] for n in names}
    t_all = time.perf_counter()
    try:
        print(f"digits: {args.configs} configs x {args.epochs} epochs, parallel_size 2")
        print(f"{'seed':>4} {'assessor':13} {'epochs':>6} {'share':>6} {'stopped':>7} {'kept':>5} "
              f"{'best final':>10} {'true best':>9} {'wall s':>7}")
        for seed in range(args.seeds):
            finals: dict[str, float] = {}
            for name in names:
                r = run(work_dir, seed, name, table[name], args.configs, args.epochs)
                if name == "none":
                    finals = {k: values[-1] for k, (status, values) in r["jobs"].items()
                              if status == "FINISHED" and len(values) == args.epochs}
                top = max(finals.values())
                best = [k for k, v in finals.items() if v == top]  # accuracies tie: any of them
                full = [finals[k] for k, (status, values) in r["jobs"].items()
                        if len(values) == args.epochs and k in finals]
                epochs = sum(len(values) for _, values in r["jobs"].values())
                row = {"epochs": epochs, "share": epochs / (args.configs * args.epochs),
                       "stopped": sum(s == "EARLY_STOPPED" for s, _ in r["jobs"].values()),
                       "kept": any(len(r["jobs"].get(k, ("", []))[1]) == args.epochs for k in best),
                       "best_final": max(full, default=float("nan")), "true_best": top,
                       "wall": r["wall"]}
                summary[name].append(row)
                print(f"{seed:4d} {name:13} {row['epochs']:6d} {row['share']:6.0%} {row['stopped']:7d} "
                      f"{str(row['kept']):>5} {row['best_final']:10.4f} {row['true_best']:9.4f} "
                      f"{row['wall']:7.1f}", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"\nSummary over {args.seeds} seeds ({time.perf_counter() - t_all:.0f} s):")
    for name, rows in summary.items():
        print(f"  {name:13} epochs {statistics.mean(r['epochs'] for r in rows):6.1f} "
              f"({statistics.mean(r['share'] for r in rows):4.0%} of the full search), "
              f"best config kept in {sum(r['kept'] for r in rows)}/{len(rows)} seeds, best final "
              f"{statistics.mean(r['best_final'] for r in rows):.4f} (true "
              f"{statistics.mean(r['true_best'] for r in rows):.4f}), wall "
              f"{statistics.mean(r['wall'] for r in rows):.1f} s")


if __name__ == "__main__":
    main()
