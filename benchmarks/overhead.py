"""Per-trial overhead of gml-ray next to Ray Tune, in one process on one local Ray.

    python benchmarks/overhead.py [--function-trials 500] [--command-trials 200]
                                  [--tune-default-trials 40] [--skip-tune]

Prints a table (wall time, ms per trial, ratios) for:
  * function trials: trivial `task.function` trials (one report, return) through gml-ray, and the
    same trainable through Ray Tune with reuse_actors=True and with its default (False);
  * command trials: jobs whose template runs a tiny Python script that reports one scalar, the raw
    cost of running that command with 2 workers via subprocess (the floor), and Ray Tune running
    the command from a function trainable;
  * the scheduler's per-trial overhead and the peak RSS of the driver and the scheduler actor.
Needs the `bench` extra (ray[tune]) for the Tune rows.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

PARALLEL = 2
SCRIPT = "import sys\nfrom gml_ray import SummaryWriter\nSummaryWriter().add_scalar('score', float(sys.argv[1]), 0)\n"


def gml_ray_run(code_dir: str, work_dir: str, config: str, task: str) -> tuple[float, dict]:
    import yaml

    from gml_ray.config import parse_config
    from gml_ray.schedulers import NaiveScheduler

    cfg = parse_config(yaml.safe_load(config), "bench.yaml", code_dir)
    scheduler = NaiveScheduler(work_dir, cfg, task=task, snapshot=False)
    store = scheduler.prepare()
    t0, started = time.perf_counter(), time.time()
    summary = scheduler.run()
    wall = time.perf_counter() - t0
    jobs = store.jobs(task)
    # Before the first job: Ray checks and the scheduler actor's start (a fixed cost per run).
    summary["startup_s"] = min(j["created"] for j in jobs) - started
    assert summary["counts"].get("FINISHED") == sum(summary["counts"].values()), summary["counts"]
    return wall, summary


def tune_run(trainable, n: int, reuse: bool, storage: str) -> float:
    from tune_peer import tune_fit
    return tune_fit(trainable, list(range(n)), PARALLEL, reuse, storage, f"bench_{reuse}")[0]


def tune_function_trainable(config):
    from ray import tune
    tune.report({"score": config["x"]})


def make_tune_command_trainable(script: str):
    def trainable(config):
        from ray import tune
        env = dict(os.environ, GML_METRICS="none")
        subprocess.run([sys.executable, script, str(config["x"])], check=True, env=env)
        tune.report({"score": config["x"]})
    return trainable


def floor_run(script: str, n: int) -> float:
    env = dict(os.environ, GML_METRICS="none")

    def one(i: int) -> None:
        subprocess.run([sys.executable, script, str(i)], check=True, env=env)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--function-trials", type=int, default=500)
    ap.add_argument("--command-trials", type=int, default=200)
    ap.add_argument("--tune-default-trials", type=int, default=40,
                    help="Tune with reuse_actors=False costs ~1 s a trial here: fewer trials")
    ap.add_argument("--skip-tune", action="store_true")
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    ray.init(address="local", num_cpus=PARALLEL, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    tmp = tempfile.mkdtemp(prefix="gml-bench-")
    code = os.path.join(tmp, "code")
    os.makedirs(code)
    with open(os.path.join(code, "objective.py"), "w") as f:
        f.write("import gml_ray\n\ndef trial(config):\n    gml_ray.report(score=config['x'])\n")
    script = os.path.join(code, "tiny.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    rows: list[tuple[str, int, float]] = []
    nf, nc = args.function_trials, args.command_trials

    fn_cfg = textwrap.dedent(f"""
        task:
          function: "objective:trial"
          search_args: [{{type: Int, name: x, data: [1, {nf}]}}]
        searcher: {{reward_attribute: score}}
        scheduler: {{parallel_size: {PARALLEL}}}
    """)
    wall, summary = gml_ray_run(code, os.path.join(tmp, "wd"), fn_cfg, "function")
    rows.append(("gml-ray function trials", nf, wall))
    fn_rss, fn_startup = summary["scheduler_peak_rss_mb"], summary["startup_s"]

    cmd_cfg = textwrap.dedent(f"""
        task:
          template: "python tiny.py {{x}}"
          search_args: [{{type: Int, name: x, data: [1, {nc}]}}]
        searcher: {{reward_attribute: score}}
        scheduler: {{parallel_size: {PARALLEL}}}
    """)
    wall_cmd, summary = gml_ray_run(code, os.path.join(tmp, "wd"), cmd_cfg, "command")
    rows.append(("gml-ray command trials", nc, wall_cmd))
    cmd_rss = summary["scheduler_peak_rss_mb"]
    floor = floor_run(script, nc)
    rows.append(("subprocess floor (2 workers)", nc, floor))

    if not args.skip_tune:
        storage = os.path.join(tmp, "tune")
        rows.append(("Ray Tune function, reuse_actors=True", nf,
                     tune_run(tune_function_trainable, nf, True, storage)))
        rows.append(("Ray Tune function, reuse_actors=False", args.tune_default_trials,
                     tune_run(tune_function_trainable, args.tune_default_trials, False, storage)))
        rows.append(("Ray Tune command, reuse_actors=True", nc,
                     tune_run(make_tune_command_trainable(script), nc, True, storage)))
    ray.shutdown()

    per = {name: wall / n * 1000 for name, n, wall in rows}
    print(f"\n{'':40s} {'trials':>7s} {'wall s':>8s} {'ms/trial':>9s}")
    for name, n, wall in rows:
        print(f"{name:40s} {n:7d} {wall:8.2f} {per[name]:9.2f}")
    print()
    fn = per["gml-ray function trials"]
    if "Ray Tune function, reuse_actors=True" in per:
        print(f"function trials: gml-ray is {per['Ray Tune function, reuse_actors=True'] / fn:.1f}x "
              f"Ray Tune's throughput (reuse_actors=True), "
              f"{per['Ray Tune function, reuse_actors=False'] / fn:.0f}x Tune's default")
        print(f"command trials: gml-ray is {per['Ray Tune command, reuse_actors=True'] / per['gml-ray command trials']:.2f}x "
              f"Ray Tune's throughput (reuse_actors=True)")
    cmd = per["gml-ray command trials"]
    fl = per["subprocess floor (2 workers)"]
    print(f"command trials: {cmd / fl:.2f}x the raw subprocess floor; scheduler overhead "
          f"{cmd - fl:.2f} ms per trial (wall/trial minus the floor's)")
    print(f"function trials: scheduler overhead {fn:.2f} ms per trial (the trial itself does nothing); "
          f"{(rows[0][2] - fn_startup) / nf * 1000:.2f} ms once the first job started "
          f"({fn_startup:.2f} s before it: the scheduler actor's start)")
    print(f"peak RSS: driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"scheduler actor {max(fn_rss, cmd_rss):.0f} MB")


if __name__ == "__main__":
    main()
