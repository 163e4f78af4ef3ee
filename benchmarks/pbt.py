"""Population Based Training: gml-ray's ``scheduler.pbt`` next to random search and Ray Tune's PBT.

    python benchmarks/pbt.py [--problems toy,digits] [--starts free,together] [--seeds 5]
                             [--digits-seeds 2] [--methods random,pbt,pb2,tune] [--toy-steps 40]
                             [--toy-interval 4] [--toy-sleep 0.05] [--digits-epochs 12]
                             [--digits-interval 3] [--work-dir DIR]

The methods, per problem and seed, each with a population (or batch) of ``--population`` jobs
trained at once (``parallel_size`` = population, 0.5 CPU each, one local Ray with 2 CPUs):

random: gml-ray's RandomSearcher (seed = the seed) runs ``--population`` configs for the whole
    budget each: the same total training steps as the population, without exploit / explore.
pbt:    gml-ray's ``scheduler.pbt`` (population, ``perturbation_interval``, ``quantile_fraction``
    0.25, ``resample_probability`` 0.25, ``seed`` = the seed; mutable: the two args) with the
    same RandomSearcher and seed: its first population is the random run's configs.
pb2:    the same with ``explore: pb2`` (PB2's GP bandit picks a new member's args).
tune:   Ray Tune 2.60's ``PopulationBasedTraining`` (``time_attr`` = the steps done, the same
    interval, quantile and resample probability, Tune's perturbation factors 1.2 / 0.8,
    asynchronous) on the same trainable, started from the same configs
    (``BasicVariantGenerator(points_to_evaluate=...)``), Python's and numpy's global RNGs seeded
    with the seed. Tune's explore multiplies a value by 1.2 or 0.8 without keeping it in its
    domain; a ``custom_explore_fn`` clips it to the arg's bounds as gml-ray's explore does (else
    Tune's toy members could take h > 1 and win by leaving the search space). Tune runs after all
    gml-ray runs, in the same process, under a Ray of its own (``ray.init(num_cpus=2)``).

Problems:

toy:    the toy problem of the PBT paper (Jaderberg et al. 2017, Fig. 2): maximise
    Q(theta) = 1.2 - (theta0^2 + theta1^2); a member does gradient ascent on the surrogate
    Q^(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2), h = (h0, h1) its args (Real in [0, 1]),
    from theta = (0.9, 0.9), step size 0.01, ``--toy-steps`` steps; it reports Q(theta) and
    checkpoints theta (a small JSON file) every step. A function trial (no process start-up per
    job). Each step sleeps ``--toy-sleep`` seconds, standing in for a training step's compute,
    so that the population trains side by side and PBT decides while members train; with no
    sleep a member runs its 40 steps in milliseconds, before the others have started.
digits: the MLP of examples/pbt/train.py (64-32-10, SGD, batches of 64, torch seeded, one
    thread, the same 360 test images), with lr (log, 0.001..0.5) and momentum (0..0.95) as the
    args, ``--digits-epochs`` epochs, reporting Test Acc and checkpointing the model and
    optimizer every epoch; the same code runs as a gml-ray function trial and as the Tune
    trainable (a child applies its own lr and momentum after loading the optimizer's state).

Starts (``--starts``), each a table of its own: free: a member starts when its worker is up (the
4 workers of a run come up one after another, up to seconds apart); together: the members of the
first population wait at a file barrier until all of them have started, then train side by side
(a diagnostic that removes the start-up stagger; a child, which restores a checkpoint, never
waits). Random's final values do not depend on it.

Printed per problem, seed and method: the best final reward (the best FINISHED line's last Q, or
Test Acc at its last epoch), the steps actually trained (counted by the trials themselves in a
file: a child's inherited steps are not counted, an exploited member's steps after its decision
are), the exploits, and the wall time of the run (``scheduler.run()`` / ``tuner.fit()``); then mean and standard deviation over the seeds, and on how many seeds each
PBT's best final reward was >= (and >) random's. On the toy, every gml-ray run's stored Q values
are recomputed from the jobs' lineage (their h, parent and parent step): "lineage ok", or the
jobs whose values differ (a child that restored the wrong checkpoint). Numbers never assert
anything; measured results: benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import signal
import statistics
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
THETA0 = (0.9, 0.9)
ETA = 0.01
DIGITS_SPACE = {"lr": (0.001, 0.5), "momentum": (0.0, 0.95)}
TOY_SPACE = {"h0": (0.0, 1.0), "h1": (0.0, 1.0)}
POP_SETTINGS = {"quantile_fraction": 0.25, "resample_probability": 0.25}


# ---- what every trial does: count its steps, wait for its population ----------------------------------


def count_step(config: dict) -> None:
    """One trained step, appended to the run's count file (one byte; O_APPEND writes do not mix)."""
    with open(config["count"], "ab") as f:
        f.write(b".")


def wait_for_population(config: dict, restored: bool) -> None:
    """``--start together``: a member of the first population waits until all of it has started
    (a file each in the run's barrier directory), so that the members train side by side whatever
    their workers' start-up took. A job that restores a checkpoint (a PBT child) never waits."""
    barrier = config.get("barrier") or ""
    if not barrier or restored:
        return
    import uuid

    open(os.path.join(barrier, uuid.uuid4().hex), "w").close()
    deadline = time.time() + 300
    while len(os.listdir(barrier)) < int(config["population"]) and time.time() < deadline:
        time.sleep(0.005)


# ---- the toy problem --------------------------------------------------------------------------------


def toy_q(theta: list[float]) -> float:
    return 1.2 - (theta[0] ** 2 + theta[1] ** 2)


def toy_step(theta: list[float], h: tuple[float, float]) -> list[float]:
    """One step of gradient ascent on Q^(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2)."""
    return [t + ETA * (-2.0 * hi * t) for t, hi in zip(theta, h)]


def toy_trial(config: dict) -> None:
    """gml-ray function trial: one report (Q, checkpoint = theta) per step."""
    import gml_ray

    h, steps, sleep = (float(config["h0"]), float(config["h1"])), int(config["steps"]), float(config["sleep"])
    theta, start = list(THETA0), 0
    if gml_ray.get_checkpoint() is not None:
        with open(gml_ray.get_checkpoint()) as f:
            theta = json.load(f)["theta"]
        start = gml_ray.restored_step() + 1
    wait_for_population(config, start > 0)
    for step in range(start, steps):
        time.sleep(sleep)
        theta = toy_step(theta, h)
        count_step(config)
        path = os.path.join(gml_ray.checkpoint_dir(), "writing.json")
        with open(path, "w") as f:
            json.dump({"theta": theta}, f)
        gml_ray.report(step, Q=toy_q(theta), checkpoint=path)


def toy_tune_trainable(config: dict) -> None:
    """The same member for Ray Tune: ``step`` (steps done) is PBT's time attribute."""
    from ray import tune

    h, steps, sleep = (float(config["h0"]), float(config["h1"])), int(config["steps"]), float(config["sleep"])
    theta, start = list(THETA0), 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "theta.json")) as f:
            state = json.load(f)
        theta, start = state["theta"], state["step"] + 1
    wait_for_population(config, checkpoint is not None)
    for step in range(start, steps):
        time.sleep(sleep)
        theta = toy_step(theta, h)
        count_step(config)
        d = tempfile.mkdtemp(prefix="toy_ckpt_")
        with open(os.path.join(d, "theta.json"), "w") as f:
            json.dump({"theta": theta, "step": step}, f)
        tune.report({"Q": toy_q(theta), "step": step + 1}, checkpoint=tune.Checkpoint.from_directory(d))
        shutil.rmtree(d, ignore_errors=True)


# ---- digits (examples/pbt/train.py's MLP) -------------------------------------------------------------


def _digits_setup(lr: float, momentum: float) -> tuple[Any, ...]:
    import torch
    from sklearn.datasets import load_digits  # bundled with scikit-learn: nothing is downloaded
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = perm[:360], perm[360:]
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return torch, x, y, test, train, model, optimizer


def _digits_load(state_path: str, model: Any, optimizer: Any, lr: float, momentum: float) -> None:
    import torch

    state = torch.load(state_path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    for group in optimizer.param_groups:  # this member's hyperparameters, not the loaded ones
        group["lr"], group["momentum"] = lr, momentum


def _digits_epoch(torch: Any, x: Any, y: Any, test: Any, train: Any, model: Any, optimizer: Any) -> float:
    """One epoch of examples/pbt/train.py: batches of 64, then the test accuracy."""
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    order = train[torch.randperm(len(train))]
    for i in range(0, len(order), 64):
        idx = order[i:i + 64]
        optimizer.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(x[test]).argmax(dim=1) == y[test]).float().mean().item()


def digits_trial(config: dict) -> None:
    """gml-ray function trial: examples/pbt/train.py's loop, ``epochs`` from the config."""
    import gml_ray

    lr, momentum, epochs = float(config["lr"]), float(config["momentum"]), int(config["epochs"])
    torch, x, y, test, train, model, optimizer = _digits_setup(lr, momentum)
    first = 0
    if gml_ray.get_checkpoint() is not None:
        _digits_load(os.path.join(gml_ray.get_checkpoint(), "state.pt"), model, optimizer, lr, momentum)
        first = gml_ray.restored_step() + 1
    wait_for_population(config, first > 0)
    for epoch in range(first, epochs):
        acc = _digits_epoch(torch, x, y, test, train, model, optimizer)
        count_step(config)
        tmp = os.path.join(gml_ray.checkpoint_dir(), "writing")
        os.makedirs(tmp, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                   os.path.join(tmp, "state.pt"))
        gml_ray.report(epoch, **{"Test Acc": acc}, checkpoint=tmp)


def digits_tune_trainable(config: dict) -> None:
    from ray import tune

    lr, momentum, epochs = float(config["lr"]), float(config["momentum"]), int(config["epochs"])
    torch, x, y, test, train, model, optimizer = _digits_setup(lr, momentum)
    first = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            _digits_load(os.path.join(d, "state.pt"), model, optimizer, lr, momentum)
            with open(os.path.join(d, "step.json")) as f:
                first = json.load(f)["step"] + 1
    wait_for_population(config, checkpoint is not None)
    for epoch in range(first, epochs):
        acc = _digits_epoch(torch, x, y, test, train, model, optimizer)
        count_step(config)
        d = tempfile.mkdtemp(prefix="digits_ckpt_")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                   os.path.join(d, "state.pt"))
        with open(os.path.join(d, "step.json"), "w") as f:
            json.dump({"step": epoch}, f)
        tune.report({"Test Acc": acc, "step": epoch + 1}, checkpoint=tune.Checkpoint.from_directory(d))
        shutil.rmtree(d, ignore_errors=True)


# ---- the problems as the methods see them --------------------------------------------------------------


def problem(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "toy":
        return {"name": "toy", "metric": "Q", "steps": args.toy_steps, "interval": args.toy_interval,
                "function": "pbt:toy_trial", "tune": toy_tune_trainable, "space": TOY_SPACE, "log": set(),
                "fixed": {"steps": args.toy_steps, "sleep": args.toy_sleep}}
    return {"name": "digits", "metric": "Test Acc", "steps": args.digits_epochs, "interval": args.digits_interval,
            "function": "pbt:digits_trial", "tune": digits_tune_trainable, "space": DIGITS_SPACE, "log": {"lr"},
            "fixed": {"epochs": args.digits_epochs}}


def run_files(root: str, population: int, start: str) -> dict[str, Any]:
    """A run's own count file and (``--start together``) barrier directory, as fixed config values."""
    os.makedirs(root)
    barrier = ""
    if start == "together":
        barrier = os.path.join(root, "barrier")
        os.makedirs(barrier)
    return {"count": os.path.join(root, "steps"), "barrier": barrier, "population": population}


def counted(files: dict) -> int:
    return os.path.getsize(files["count"]) if os.path.exists(files["count"]) else 0


def gml_config(prob: dict, seed: int, population: int, pbt: bool, fixed: dict,
               explore: str = "perturb") -> dict[str, Any]:
    search_args: list[dict[str, Any]] = [
        {"type": "Real", "name": k, "data": list(bounds), **({"log": True} if k in prob["log"] else {})}
        for k, bounds in prob["space"].items()]
    search_args += [{"type": "Categorical", "name": k, "data": [v]} for k, v in fixed.items()]
    scheduler: dict[str, Any] = {"parallel_size": population}
    if pbt:
        scheduler["pbt"] = {"population_size": population, "perturbation_interval": prob["interval"],
                            **POP_SETTINGS, "mutable": list(prob["space"]), "seed": seed, "explore": explore}
    else:
        scheduler["stop_criterion"] = {"max_tries": population}
    return {"task": {"function": prob["function"], "resources": {"num_cpus": 2 / population},
                     "search_args": search_args},
            "searcher": {"type": "RandomSearcher", "seed": seed, "reward_attribute": prob["metric"]},
            "scheduler": scheduler, "generate_log": False}


def run_gml(work_dir: str, prob: dict, seed: int, population: int, method: str, start: str) -> dict[str, Any]:
    from gml_ray.config import parse_config
    from gml_ray.schedulers import NaiveScheduler

    task = f"{prob['name']}_{start}_s{seed}_{method}"
    files = run_files(os.path.join(work_dir, "files", task), population, start)
    cfg = parse_config(gml_config(prob, seed, population, method in ("pbt", "pb2"), {**prob["fixed"], **files},
                                  "pb2" if method == "pb2" else "perturb"), "pbt_bench.yaml", HERE)
    scheduler = NaiveScheduler(os.path.join(work_dir, "gml"), cfg, task=task, code_dir=HERE, snapshot=False)
    store = scheduler.prepare()
    t0 = time.perf_counter()
    summary = scheduler.run()
    wall = time.perf_counter() - t0
    jobs = store.jobs(task)
    last, finals = prob["steps"] - 1, []
    for j in jobs:
        rows = store.scalars(task, [j["job_id"]], [prob["metric"]])
        at_end = [r["value"] for r in rows if r["step"] == last]
        if j["status"] == "FINISHED" and at_end:
            finals.append(at_end[0])
    first = [{k: j["config"][k] for k in prob["space"]} for j in jobs if j["parent_id"] is None]
    wrong = check_toy_lineage(store, task, jobs) if prob["name"] == "toy" else None
    return {"best": max(finals, default=float("nan")), "wall": wall, "trained": counted(files),
            "exploits": sum(j["parent_id"] is not None for j in jobs),
            "lines": len(finals), "status": summary["status"], "first": first, "wrong": wrong}


def check_toy_lineage(store: Any, task: str, jobs: list[dict]) -> list[str]:
    """The toy's Q is a function of a line's h per step: recompute each job's own Q values from its
    lineage (theta at its parent's checkpoint step, then its own h) and its carried-over ones from
    its parent's; the jobs whose stored values differ (restored the wrong checkpoint, wrong step)."""
    steps = max((r["step"] for r in store.scalars(task, None, ["Q"])), default=-1) + 1
    thetas: dict[int, list[list[float]]] = {}  # job id -> theta after each step of its line
    for j in sorted(jobs, key=lambda j: j["job_id"]):  # a parent's id is below its children's
        own = -1 if j["parent_id"] is None else j["parent_step"]
        line = [] if own < 0 else thetas[j["parent_id"]][:own + 1]
        h = (float(j["config"]["h0"]), float(j["config"]["h1"]))
        for _ in range(own + 1, steps):
            line.append(toy_step(line[-1] if line else list(THETA0), h))
        thetas[j["job_id"]] = line

    wrong = []
    for j in jobs:
        for r in store.scalars(task, [j["job_id"]], ["Q"]):
            if abs(r["value"] - toy_q(thetas[j["job_id"]][r["step"]])) > 1e-9:
                wrong.append(f"{j['name']}@{r['step']}")
                break
    return wrong


def run_tune(work_dir: str, prob: dict, seed: int, population: int, first: list[dict],
             start: str) -> dict[str, Any]:
    import numpy as np
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    space = prob["space"]
    name = f"{prob['name']}_{start}_s{seed}_tune"
    files = run_files(os.path.join(work_dir, "files", name), population, start)

    def domain(k: str) -> Any:
        lo, hi = space[k]
        return tune.loguniform(lo, hi) if k in prob["log"] else tune.uniform(lo, hi)

    def clip(config: dict) -> dict:  # keep explored values in their bounds, as gml-ray's explore does
        for k, (lo, hi) in space.items():
            config[k] = min(hi, max(lo, config[k]))
        return config

    random.seed(seed)  # Tune's PBT draws donors and perturbations from these global RNGs
    np.random.seed(seed)
    scheduler = PopulationBasedTraining(
        time_attr="step", perturbation_interval=prob["interval"], custom_explore_fn=clip,
        hyperparam_mutations={k: domain(k) for k in space}, **POP_SETTINGS)
    tuner = tune.Tuner(
        tune.with_resources(prob["tune"], {"cpu": 2 / population}),
        param_space={**{k: domain(k) for k in space}, **prob["fixed"], **files},
        tune_config=tune.TuneConfig(metric=prob["metric"], mode="max", scheduler=scheduler,
                                    num_samples=population, reuse_actors=True,
                                    search_alg=BasicVariantGenerator(points_to_evaluate=first)),
        run_config=tune.RunConfig(storage_path=os.path.join(work_dir, "tune"), verbose=0,
                                  name=f"{name}_{time.time_ns()}"))
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    assert results.num_errors == 0 and len(results) == population, (results.num_errors, len(results))
    finals = []
    for result in results:
        if result.metrics.get("step") == prob["steps"]:
            finals.append(float(result.metrics[prob["metric"]]))
    return {"best": max(finals, default=float("nan")), "wall": wall, "trained": counted(files),
            "exploits": scheduler._num_perturbations, "lines": len(finals), "status": "FINISHED"}


# ---- the run -----------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values), fmt)} ± {format(sd, fmt)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default="toy,digits")
    parser.add_argument("--methods", default="random,pbt,tune")
    parser.add_argument("--starts", default="free,together",
                        help="free: members start when their workers are up; together: the first "
                             "population waits for all of its members before its first step")
    parser.add_argument("--seeds", type=int, default=5, help="toy seeds (0..n-1)")
    parser.add_argument("--digits-seeds", type=int, default=2, help="digits seeds (0..n-1)")
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--toy-steps", type=int, default=40)
    parser.add_argument("--toy-interval", type=int, default=4)
    parser.add_argument("--toy-sleep", type=float, default=0.05, help="seconds a toy step takes")
    parser.add_argument("--digits-epochs", type=int, default=12)
    parser.add_argument("--digits-interval", type=int, default=3)
    parser.add_argument("--work-dir", default=None, help="keep the runs (stores, Tune's results) in this new directory")
    args = parser.parse_args(argv)
    # random always runs (its configs start every method) and is every table's reference
    methods = [m for m in ("random", "pbt", "pb2", "tune") if m in args.methods.split(",") or m == "random"]
    starts = args.starts.split(",")
    probs = [problem(p, args) for p in args.problems.split(",")]
    seeds = {p["name"]: range(args.seeds if p["name"] == "toy" else args.digits_seeds) for p in probs}
    runs = [(prob, start, seed) for prob in probs for start in starts for seed in seeds[prob["name"]]]

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # ray.cancel() stops an exploited function trial as SIGINT does: a process started in the
    # background ignores SIGINT, and so would its Ray workers (see assessors.py)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.getLogger("ray.tune.logger").setLevel(logging.ERROR)  # "Remote file not found" after a restore
    import ray

    from gml_ray.engine.runtime import init_ray

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="gml_pbt_bench_")
    os.makedirs(work_dir, exist_ok=args.work_dir is None)  # a --work-dir must be new
    results: dict[tuple[str, str, int, str], dict] = {}
    t_all = time.perf_counter()

    def show(prob: dict, start: str, seed: int, method: str, r: dict) -> None:
        wrong = r.get("wrong")
        check = "" if wrong is None else " lineage ok" if not wrong else f" LINEAGE WRONG: {', '.join(wrong)}"
        print(f"{prob['name']:6} {start:8} seed {seed} {method:6} best {r['best']:.4f} trained {r['trained']:4d} "
              f"exploits {r['exploits']:2d} wall {r['wall']:5.1f} s {r['status']}{check}", flush=True)

    try:
        # phase 1: gml-ray, one Ray for its runs: random (its configs start every method), PBT
        init_ray(None, 2)
        try:
            for prob, start, seed in runs:
                for method in ("random", "pbt", "pb2"):
                    if method in methods or method == "random":
                        r = run_gml(work_dir, prob, seed, args.population, method, start)
                        results[(prob["name"], start, seed, method)] = r
                        show(prob, start, seed, method, r)
                if "pbt" in methods and results[(prob["name"], start, seed, "pbt")]["first"] != \
                        results[(prob["name"], start, seed, "random")]["first"]:
                    print("  note: PBT's first population is not random's configs", flush=True)
        finally:
            ray.shutdown()
        # phase 2: Ray Tune, under a Ray of its own
        if "tune" in methods:
            ray.init(address="local", num_cpus=2, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
            try:
                for prob, start, seed in runs:
                    first = results[(prob["name"], start, seed, "random")]["first"]
                    r = run_tune(work_dir, prob, seed, args.population, first, start)
                    results[(prob["name"], start, seed, "tune")] = r
                    show(prob, start, seed, "tune", r)
            finally:
                ray.shutdown()
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    names = {"random": "gml-ray RandomSearcher", "pbt": "gml-ray scheduler.pbt",
             "pb2": "gml-ray scheduler.pbt, explore: pb2", "tune": "Ray Tune PBT"}
    for prob in probs:
        for start in starts:
            p, ss = prob["name"], list(seeds[prob["name"]])
            got = {(s, m): results[(p, start, s, m)] for s in ss for m in methods}
            print(f"\n{p}, start {start}: population {args.population}, {prob['steps']} steps, interval "
                  f"{prob['interval']}, budget {args.population * prob['steps']} steps. Best final "
                  f"{prob['metric']} / wall s / steps trained / exploits:\n")
            print("| seed | " + " | ".join(names[m] for m in methods) + " |")
            print("|---:|" + "---:|" * len(methods))
            for s in ss:
                print(f"| {s} | " + " | ".join(
                    f"{got[(s, m)]['best']:.4f} / {got[(s, m)]['wall']:.1f} / {got[(s, m)]['trained']} / "
                    f"{got[(s, m)]['exploits']}" for m in methods) + " |")
            print("| mean ± sd | " + " | ".join(
                f"{spread([got[(s, m)]['best'] for s in ss], '.4f')} / {spread([got[(s, m)]['wall'] for s in ss], '.1f')}"
                f" / {statistics.mean(got[(s, m)]['trained'] for s in ss):.0f} / "
                f"{statistics.mean(got[(s, m)]['exploits'] for s in ss):.1f}" for m in methods) + " |")
            for m in methods:
                if m != "random":
                    ge = sum(got[(s, m)]["best"] >= got[(s, "random")]["best"] for s in ss)
                    gt = sum(got[(s, m)]["best"] > got[(s, "random")]["best"] for s in ss)
                    print(f"{names[m]} >= random on {ge}/{len(ss)} seeds (> on {gt})")
    print(f"\nbenchmark time: {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
