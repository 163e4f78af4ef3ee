"""Assessors: epochs saved on real gml-ray jobs, and the curve model alone as a predictor.

    python benchmarks/assessors.py [predictor] [jobs] [--seeds 5] [--sleep 0.05] [--nni DIR]
                                   [--curve-seeds 0] [--repeats 3] [--configs 40]

predictor: 60 synthetic accuracy-like curves of 30 epochs (seed 0; ``--curve-seeds 0,7,8`` pools
    60 curves per seed): a third each exponential, power-law and logistic; asymptote 0.3-0.95;
    start 20-60% of it; noise sd 0.005-0.02. Given the first k = 5, 10, 15 values, the curve model
    (``gml_ray.assessors.curve_models``) predicts the value at epoch 30. Printed per k: the mean
    absolute error against the noise-free value (a call with no prediction counts as "the last
    observed value", which is what the assessor does: it lets the job run on), the same over
    predicted calls only, the share of calls with no prediction, and ms per call: wall time of
    the call, the best of ``--repeats`` timed runs (least disturbed by other processes), and CPU
    time. "last value" is the baseline that predicts the last observed value. With ``--nni DIR``
    (NNI 3.0's ``nni/algorithms/hpo/curvefitting_assessor`` directory, e.g. from
    ``pip download nni==3.0 --no-deps`` and unzip; its two model files are loaded by path, NNI
    itself is not imported) NNI's ``CurveModel`` runs on the same curves.

jobs: 40 configs whose accuracy curves come from the same family (seeded per seed and config),
    30 epochs each, ``--sleep`` s per epoch, run as real gml-ray function-trial jobs
    (``NaiveScheduler``, GridSearcher, parallel_size 2, one local Ray with 2 CPUs) with no
    assessor, MedianStopAssessor (start_step 5) and CurveFittingAssessor (epoch_num 30,
    start_step 6, threshold 0.95; see the options), for each seed; with ``--assessors`` also
    AshaAssessor (min_step 1, "ASHA", or 3, "ASHA-m3"; reduction_factor 3, max_step 30),
    HyperbandAssessor (min_step 1, reduction_factor 3, max_step 30: 4 brackets) and Ray Tune's
    ASHAScheduler ("TuneASHA": grace_period 1, reduction_factor 3, max_t 30) on the same curves
    as a Tune function trainable (2 trials at a time, reuse_actors) in the same Ray; and the
    promotion variants "ASHA-promo" and "Hyperband-promo" (``promotion: true``: jobs checkpoint
    every epoch, pause at rungs, the best continue). Printed per run: epochs run
    (the reward scalars in the store), wall time, jobs EARLY_STOPPED, whether the config with the
    best noise-free final value FINISHED ("kept"), the best noise-free final value among FINISHED
    jobs, and how fast Bad took effect (seconds from the verdict, as logged in scheduler.log, to
    the job's end; epochs the job still reported after it). About 320 s for 5 seeds.

Numbers never assert anything; see benchmarks/ASSESSORS.md for measured results.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import types
from typing import Any, Callable

import numpy as np

from gml_ray.vocab import JobStatus

EPOCHS = 30
SHAPES = ("exponential", "power", "logistic")
# NNI 3.0's CurveModel on curves of this kind on this machine (given in the issue), for reference.
NNI_QUOTED = {5: (0.140, 0.62, 40.0), 10: (0.047, 0.33, 147.0), 15: (0.030, 0.05, 509.0)}


# ---- the curve family ----------------------------------------------------------------------------


def curve(rng: np.random.Generator, shape: str, epochs: int = EPOCHS) -> tuple[np.ndarray, np.ndarray]:
    """One accuracy-like curve (noise-free, noisy) at epochs 1..``epochs``, drawn with ``rng``."""
    t = np.arange(1.0, epochs + 1.0)
    top = rng.uniform(0.3, 0.95)
    sd = rng.uniform(0.005, 0.02)
    start = top * rng.uniform(0.2, 0.6)
    if shape == "exponential":
        clean = top - (top - start) * np.exp(-(t - 1) / rng.uniform(2.0, 12.0))
    elif shape == "power":
        clean = top - (top - start) * t ** -rng.uniform(0.3, 1.0)
    else:
        clean = start + (top - start) / (1 + np.exp(-(t - rng.uniform(2.0, 8.0)) / rng.uniform(0.7, 2.5)))
    return clean, clean + rng.normal(0.0, sd, epochs)


def curves(seed: int = 0, n: int = 60) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shape = SHAPES[i % 3]
        out.append((shape, *curve(rng, shape)))
    return out


def job_curve(seed: int, cfg: int) -> tuple[np.ndarray, np.ndarray]:
    """The curve of config ``cfg`` in the jobs workload of ``seed``."""
    rng = np.random.default_rng([seed, cfg])
    return curve(rng, SHAPES[int(rng.integers(3))])


def train(config: dict) -> None:
    """The function trial: report the config's noisy curve, one epoch per ``sleep`` seconds; with
    ``checkpoint`` in the config, a checkpoint after each epoch, and restarts from it (promotion)."""
    import gml_ray

    _, noisy = job_curve(int(config["seed"]), int(config["cfg"]))
    start = 0 if gml_ray.get_checkpoint() is None else gml_ray.restored_step() + 1
    for epoch in range(start, len(noisy)):
        time.sleep(float(config["sleep"]))
        if config.get("checkpoint"):
            with open("state.txt", "w") as f:
                f.write(str(epoch))
            gml_ray.report(epoch, acc=float(noisy[epoch]), checkpoint="state.txt")
        else:
            gml_ray.report(epoch, acc=float(noisy[epoch]))


# ---- predictor ------------------------------------------------------------------------------------


def load_nni(directory: str) -> Callable[[list[float], int], float | None]:
    """NNI's CurveModel(target).predict from its curvefitting_assessor directory, loaded by path."""
    package = types.ModuleType("nni_curvefitting")
    package.__path__ = [directory]  # type: ignore[attr-defined]
    sys.modules["nni_curvefitting"] = package
    for name in ("curvefunctions", "model_factory"):
        spec = importlib.util.spec_from_file_location(f"nni_curvefitting.{name}",
                                                      os.path.join(directory, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[spec.name] = module  # type: ignore[union-attr]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    factory = sys.modules["nni_curvefitting.model_factory"]
    import logging
    logging.getLogger("curvefitting_Assessor").setLevel(logging.CRITICAL)
    np.random.seed(0)  # NNI samples with the global numpy RNG
    return lambda values, target: factory.CurveModel(target).predict(list(values))


def run_predictor(predict: Callable, data: list, ks: tuple[int, ...], repeats: int) -> dict[int, dict]:
    """Errors and timings of ``predict`` on ``data``; each call's time is also taken as the best of
    ``repeats`` runs, which other processes on the machine disturb least."""
    import warnings

    results = {}
    for k in ks:
        errors, predicted, last, wall, best, cpu, none = [], [], [], [], [], [], 0
        for _, clean, noisy in data:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w0, c0 = time.perf_counter(), time.process_time()
                p = predict(list(noisy[:k]), EPOCHS)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
                times = [wall[-1]]
                for _ in range(repeats - 1):
                    w0 = time.perf_counter()
                    predict(list(noisy[:k]), EPOCHS)
                    times.append(time.perf_counter() - w0)
                best.append(min(times))
            truth, seen = clean[-1], noisy[k - 1]
            last.append(abs(seen - truth))
            if p is None or not np.isfinite(p):
                none += 1
                errors.append(abs(seen - truth))
            else:
                errors.append(abs(p - truth))
                predicted.append(abs(p - truth))
        results[k] = {"mae": float(np.mean(errors)),
                      "mae_predicted": float(np.mean(predicted)) if predicted else float("nan"),
                      "none": none / len(data), "last": float(np.mean(last)),
                      "wall_ms": 1e3 * float(np.mean(wall)), "cpu_ms": 1e3 * float(np.mean(cpu)),
                      "best_ms": 1e3 * float(np.mean(best))}
    return results


def predictor_benchmark(nni_dir: str | None, seeds: list[int], repeats: int = 3) -> None:
    from gml_ray.assessors import curve_models

    data = [c for seed in seeds for c in curves(seed)]
    ks = (5, 10, 15)
    rows = [("gml-ray", run_predictor(curve_models.predict_final, data, ks, repeats))]
    if nni_dir:
        rows.append(("NNI 3.0 (here)", run_predictor(load_nni(nni_dir), data, ks, repeats)))
    print(f"\nPredictor: {len(data)} curves (seeds {','.join(map(str, seeds))}), value at epoch "
          f"{EPOCHS} from the first k")
    print(f"{'':16} {'k':>3} {'MAE':>7} {'MAE pred.':>9} {'no pred.':>8} {'ms wall':>8} "
          f"{'ms best':>8} {'ms CPU':>7}")
    for k in ks:
        for name, res in rows:
            r = res[k]
            print(f"{name:16} {k:3d} {r['mae']:7.4f} {r['mae_predicted']:9.4f} {r['none']:8.0%} "
                  f"{r['wall_ms']:8.1f} {r['best_ms']:8.1f} {r['cpu_ms']:7.1f}")
        mae, none, ms = NNI_QUOTED[k]
        print(f"{'NNI 3.0 (issue)':16} {k:3d} {mae:7.3f} {'':9} {none:8.0%} {ms:8.0f}")
        print(f"{'last value':16} {k:3d} {rows[0][1][k]['last']:7.4f}")
    ours = rows[0][1]
    print("\nRatios (gml-ray / other):")
    for k in ks:
        parts = [f"k={k}: MAE / last value {ours[k]['mae'] / ours[k]['last']:.2f}",
                 f"MAE / NNI(issue) {ours[k]['mae'] / NNI_QUOTED[k][0]:.2f}",
                 f"speed-up vs NNI(issue) {NNI_QUOTED[k][2] / ours[k]['wall_ms']:.0f}x "
                 f"({NNI_QUOTED[k][2] / ours[k]['best_ms']:.0f}x on best-of-{repeats} times)"]
        if len(rows) > 1:
            nni = rows[1][1][k]
            parts += [f"MAE / NNI(here) {ours[k]['mae'] / nni['mae']:.2f}",
                      f"speed-up vs NNI(here) {nni['wall_ms'] / ours[k]['wall_ms']:.0f}x wall, "
                      f"{nni['best_ms'] / ours[k]['best_ms']:.0f}x best-of-{repeats}, "
                      f"{nni['cpu_ms'] / ours[k]['cpu_ms']:.0f}x CPU"]
        print("  " + "; ".join(parts))


# ---- real jobs ------------------------------------------------------------------------------------

TUNE_ASHA = "TuneASHA"  # not a gml-ray assessor: Ray Tune's ASHAScheduler on the same trainable


def assessor_configs(median_start: int = 5, curve_start: int = 6,
                     threshold: float = 0.95) -> dict[str, dict | None]:
    return {"none": None,
            "MedianStop": {"type": "MedianStopAssessor", "start_step": median_start},
            "CurveFitting": {"type": "CurveFittingAssessor", "epoch_num": EPOCHS,
                             "start_step": curve_start, "threshold": threshold},
            "ASHA": {"type": "AshaAssessor", "min_step": 1, "reduction_factor": 3, "max_step": EPOCHS},
            "ASHA-m3": {"type": "AshaAssessor", "min_step": 3, "reduction_factor": 3, "max_step": EPOCHS},
            "Hyperband": {"type": "HyperbandAssessor", "min_step": 1, "reduction_factor": 3,
                          "max_step": EPOCHS},
            "ASHA-promo": {"type": "AshaAssessor", "min_step": 1, "reduction_factor": 3, "max_step": EPOCHS,
                           "promotion": True},
            "Hyperband-promo": {"type": "HyperbandAssessor", "min_step": 1, "reduction_factor": 3,
                                "max_step": EPOCHS, "promotion": True},
            TUNE_ASHA: {"grace_period": 1, "reduction_factor": 3, "max_t": EPOCHS}}


def tune_train(config: dict) -> None:
    """The same trial as :func:`train`, for Ray Tune: one ``tune.report`` per epoch."""
    from ray import tune

    _, noisy = job_curve(int(config["seed"]), int(config["cfg"]))
    for value in noisy:
        time.sleep(float(config["sleep"]))
        tune.report({"acc": float(value)})


def run_tune(work_dir: str, seed: int, settings: dict, sleep: float, n_configs: int) -> dict:
    """Ray Tune's ASHAScheduler on the same 40 configs (grid order, 2 at a time, 1 CPU each)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    tuner = tune.Tuner(
        tune.with_resources(tune_train, {"cpu": 1}),
        param_space={"cfg": tune.grid_search(list(range(n_configs))), "seed": seed, "sleep": sleep},
        tune_config=tune.TuneConfig(scheduler=ASHAScheduler(time_attr="training_iteration", **settings),
                                    metric="acc", mode="max", max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=os.path.join(work_dir, "tune"), verbose=0,
                                  name=f"s{seed}_{time.time_ns()}"))
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    iters = {}
    for result in results:
        frame = result.metrics_dataframe
        iters[int(result.config["cfg"])] = int(frame["training_iteration"].max()) if frame is not None else 0
    finals = {c: job_curve(seed, c)[0][-1] for c in iters}
    best_cfg = max(finals, key=finals.get)
    full = [finals[c] for c, n in iters.items() if n >= EPOCHS]
    return {"epochs": sum(iters.values()), "wall": wall,
            "stopped": sum(n < EPOCHS for n in iters.values()), "latency": [], "late_epochs": 0,
            "kept": iters[best_cfg] >= EPOCHS, "best_final": max(full, default=float("nan")),
            "true_best": finals[best_cfg], "status": "FINISHED" if results.num_errors == 0 else "ERROR"}


def run_jobs(work_dir: str, seed: int, assessor: dict | None, sleep: float, n_configs: int,
             label: str | None = None) -> dict:
    from gml_ray.schedulers import NaiveScheduler
    pass

    here = os.path.dirname(os.path.abspath(__file__))
    config: dict[str, Any] = {
        "task": {"function": "assessors:train",
                 "search_args": [{"type": "Categorical", "name": "cfg", "data": list(range(n_configs))},
                                 {"type": "Categorical", "name": "seed", "data": [seed]},
                                 {"type": "Categorical", "name": "sleep", "data": [sleep]}]},
        "searcher": {"type": "GridSearcher", "reward_attribute": "acc"},
        "scheduler": {"parallel_size": 2, "stop_criterion": {"max_tries": n_configs}},
        "generate_log": False,
    }
    if assessor is not None:
        config["scheduler"]["assessor"] = dict(assessor)
    if assessor is not None and assessor.get("promotion"):  # jobs checkpoint: paused jobs resume
        config["task"]["search_args"].append({"type": "Categorical", "name": "checkpoint", "data": [True]})
    task = f"s{seed}_{label or (assessor or {}).get('type', 'none')}"
    scheduler = NaiveScheduler(work_dir, config, task=task, code_dir=here, snapshot=False)
    store = scheduler.prepare()
    t0 = time.perf_counter()
    summary = scheduler.run()
    wall = time.perf_counter() - t0
    jobs = store.jobs(task)
    scalars = store.scalars(task, None, ["acc"])
    epochs = len(scalars)
    # How fast Bad takes effect: the assessor logs each Bad verdict to the task's scheduler.log;
    # the time to the job's end, and the epochs the job still reported after the verdict.
    verdicts = _verdict_times(os.path.join(scheduler.task_dir, "scheduler.log"))
    latencies, late_epochs = [], 0
    for j in jobs:
        if j["status"] == JobStatus.EARLY_STOPPED and j["name"] in verdicts:
            latencies.append(j["ended"] - verdicts[j["name"]])
            late_epochs += sum(1 for r in scalars if r["job_id"] == j["job_id"]
                               and r["created"] / 1000 > verdicts[j["name"]])
    finals = {int(j["arg_dict"]["cfg"]): job_curve(seed, int(j["arg_dict"]["cfg"]))[0][-1] for j in jobs}
    best_cfg = max(finals, key=finals.get)
    status = {int(j["arg_dict"]["cfg"]): j["status"] for j in jobs}
    finished_finals = [finals[c] for c, s in status.items() if s == JobStatus.FINISHED]
    return {"epochs": epochs, "wall": wall, "stopped": sum(s == JobStatus.EARLY_STOPPED for s in status.values()),
            "latency": latencies, "late_epochs": late_epochs,
            "kept": status[best_cfg] == JobStatus.FINISHED, "best_final": max(finished_finals, default=float("nan")),
            "true_best": finals[best_cfg], "status": summary["status"]}


def _verdict_times(log_path: str) -> dict[str, float]:
    """job name -> time of the assessor's first Bad verdict, from "... INFO job_0003 at step 6: ..."."""
    out: dict[str, float] = {}
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and parts[2] == "INFO" and parts[4] == "at" and parts[5] == "step":
                stamp, ms = f"{parts[0]} {parts[1]}".split(",")
                when = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
                out.setdefault(parts[3], when)
    return out


def jobs_benchmark(seeds: int, sleep: float, n_configs: int, assessors: dict[str, dict | None],
                   keep: str | None = None) -> None:
    import ray

    from gml_ray.engine.runtime import init_ray

    # Started in the background by a shell (`cmd &`, nohup), this process ignores SIGINT, and so
    # would the Ray workers it starts: ray.cancel() could then not stop a function trial (it
    # interrupts the worker as SIGINT does) and no job would be stopped early. A handler set
    # here becomes the default disposition in the processes Ray starts.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    init_ray(None, 2)
    work_dir = keep or tempfile.mkdtemp(prefix="gml_assessors_bench_")
    results: dict[str, list[dict]] = {name: [] for name in assessors}
    t_all = time.perf_counter()
    try:
        print(f"\nJobs: {n_configs} configs x {EPOCHS} epochs, {sleep} s/epoch, parallel_size 2")
        print(f"{'seed':>4} {'assessor':13} {'epochs':>6} {'saved':>6} {'wall s':>7} {'stopped':>7} "
              f"{'kept':>5} {'best final':>10} {'true best':>9} {'stop s (med/max)':>16} {'late ep.':>8}")
        for seed in range(seeds):
            for name, assessor in assessors.items():
                if name == TUNE_ASHA:
                    r = run_tune(work_dir, seed, assessor or {}, sleep, n_configs)
                else:
                    r = run_jobs(work_dir, seed, assessor, sleep, n_configs, name)
                results[name].append(r)
                saved = 1 - r["epochs"] / (n_configs * EPOCHS)
                print(f"{seed:4d} {name:13} {r['epochs']:6d} {saved:6.0%} {r['wall']:7.1f} "
                      f"{r['stopped']:7d} {str(r['kept']):>5} {r['best_final']:10.4f} "
                      f"{r['true_best']:9.4f} {_latency(r['latency']):>16} {r['late_epochs']:8d}",
                      flush=True)
    finally:
        ray.shutdown()
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(f"\nSummary over {seeds} seeds (total {time.perf_counter() - t_all:.0f} s):")
    print(f"  (saved: share of the {n_configs} x {EPOCHS} epochs not run; stop s: seconds from the Bad "
          f"verdict to the job's end; late ep.: epochs reported after the verdict)")
    base = statistics.mean(r["wall"] for r in results["none"]) if results.get("none") else None
    for name, rs in results.items():
        epochs = statistics.mean(r["epochs"] for r in rs)
        wall = statistics.mean(r["wall"] for r in rs)
        ratio = f" ({wall / base:.2f}x no assessor)" if base else ""
        print(f"  {name:13} epochs {epochs:7.1f} ({1 - epochs / (n_configs * EPOCHS):4.0%} saved), "
              f"wall {wall:6.1f} s{ratio}, "
              f"best config kept in {sum(r['kept'] for r in rs)}/{len(rs)} seeds, "
              f"best final reached {statistics.mean(r['best_final'] for r in rs):.4f} "
              f"(true best {statistics.mean(r['true_best'] for r in rs):.4f}), "
              f"stop s {_latency([x for r in rs for x in r['latency']])}")


def _latency(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}/{max(values):.2f}" if values else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", help="predictor and/or jobs (default: both)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--configs", type=int, default=40)
    parser.add_argument("--curve-seeds", default="0",
                        help="predictor: comma-separated seeds, 60 curves each, pooled")
    parser.add_argument("--repeats", type=int, default=3,
                        help="predictor: time each call this many times too (best-of column)")
    parser.add_argument("--nni", default=None, help="NNI's curvefitting_assessor directory")
    parser.add_argument("--assessors", default="none,MedianStop,CurveFitting",
                        help="jobs: which runs, of none, MedianStop, CurveFitting, ASHA (min_step 1), "
                             "ASHA-m3 (min_step 3), Hyperband, ASHA-promo and Hyperband-promo (with "
                             "promotions: jobs checkpoint each epoch), TuneASHA (Ray Tune's "
                             "ASHAScheduler, grace_period 1; needs the bench extra)")
    parser.add_argument("--median-start-step", type=int, default=5)
    parser.add_argument("--curve-start-step", type=int, default=6)
    parser.add_argument("--threshold", type=float, default=0.95, help="CurveFitting's")
    parser.add_argument("--work-dir", default=None,
                        help="jobs: keep the runs (store, scheduler.log) in this new directory")
    args = parser.parse_args(argv)
    args.parts = args.parts or ["predictor", "jobs"]
    if set(args.parts) - {"predictor", "jobs"}:
        parser.error(f"unknown part(s) {sorted(set(args.parts) - {'predictor', 'jobs'})}: "
                     f"choose predictor, jobs")
    t0 = time.perf_counter()
    if "predictor" in args.parts:
        predictor_benchmark(args.nni, [int(x) for x in args.curve_seeds.split(',')], args.repeats)
    if "jobs" in args.parts:
        configs = assessor_configs(args.median_start_step, args.curve_start_step, args.threshold)
        jobs_benchmark(args.seeds, args.sleep, args.configs,
                       {name: configs[name] for name in args.assessors.split(",")}, args.work_dir)
    print(f"\nbenchmark time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
