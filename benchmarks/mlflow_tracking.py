"""What MLflow tracking (``tracking.mlflow``) costs a run, on one local Ray.

    python benchmarks/mlflow_tracking.py [--jobs 200] [--rounds 2] [--parallel 2]

A function-trial task of ``--jobs`` jobs, each reporting 10 scalars (2 tags x 5 steps), runs
``--rounds`` times without and with ``tracking: {mlflow: {}}`` (the default store:
``sqlite:///<work dir>/mlflow.db``), alternating, each in a fresh work dir. Prints per run: wall
time and jobs/s, the scheduler's loop time and CPU, and for the tracked runs the background
logger's time (seconds per job, connecting included and not), its MLflow requests per job and how
long the run's end waited for it. Then ``ctl export-mlflow``'s cost per job for the same task (the
same mapping and requests, in the foreground). Needs the ``mlflow`` extra.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import textwrap
import time

TRIAL = """
import gml_ray

def trial(config):
    for step in range(5):
        gml_ray.report(loss=1.0 / (step + 1) + config["x"] * 1e-3, acc=config["x"] * 1e-3 * step, step=step)
"""


def config(jobs: int, parallel: int, tracking: bool) -> str:
    text = textwrap.dedent(f"""
        task:
          function: "trial:trial"
          search_args: [{{type: Int, name: x, data: [1, {jobs}]}}]
        searcher: {{type: GridSearcher, reward_attribute: acc}}
        scheduler: {{parallel_size: {parallel}}}
    """)
    return text + ("tracking:\n  mlflow: {}\n" if tracking else "")


def run(code: str, work_dir: str, text: str, task: str) -> tuple[float, dict]:
    import yaml

    from gml_ray.config import parse_config
    from gml_ray.schedulers import NaiveScheduler

    cfg = parse_config(yaml.safe_load(text), "bench.yaml", code)
    scheduler = NaiveScheduler(work_dir, cfg, task=task, snapshot=False)
    scheduler.prepare()
    t0 = time.perf_counter()
    summary = scheduler.run()
    wall = time.perf_counter() - t0
    assert summary["counts"].get("FINISHED") == sum(summary["counts"].values()), summary["counts"]
    return wall, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import ray
    ray.init(address="local", num_cpus=args.parallel, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    tmp = tempfile.mkdtemp(prefix="gml-bench-mlflow-")
    code = os.path.join(tmp, "code")
    os.makedirs(code)
    with open(os.path.join(code, "trial.py"), "w") as f:
        f.write(TRIAL)

    print(f"{args.jobs} function-trial jobs x 10 scalars, parallel {args.parallel}; "
          f"load average before: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    print(f"{'run':<12}{'wall s':>8}{'jobs/s':>8}{'search jobs/s':>15}{'loop s':>8}{'cpu s':>7}{'logged':>8}{'logger s/job':>14}"
          f"{'w/o connect':>13}{'cpu s/job':>11}{'connect s':>11}{'connect cpu':>13}{'req/job':>9}{'end wait s':>12}")
    rates: dict[bool, list[float]] = {False: [], True: []}  # jobs/s until the last job ended
    totals: dict[bool, list[float]] = {False: [], True: []}  # jobs/s with the run's end (its wait)
    per_job: list[float] = []  # the logger's seconds per job after connecting: wall, and its thread's CPU
    cpu: list[float] = []
    last_plain = ""
    for r in range(args.rounds):
        for tracking in (False, True):
            name = f"{'mlflow' if tracking else 'plain'}_{r}"
            work = os.path.join(tmp, f"wd_{name}")
            wall, s = run(code, work, config(args.jobs, args.parallel, tracking), "t")
            wait = s["mlflow"]["close_s"] if tracking else 0.0  # the run's end waiting for the logger
            rates[tracking].append(args.jobs / (wall - wait))
            totals[tracking].append(args.jobs / wall)
            line = (f"{name:<12}{wall:>8.1f}{args.jobs / wall:>8.1f}{args.jobs / (wall - wait):>15.1f}"
                    f"{s['busy_s']:>8.2f}{s['cpu_s']:>7.1f}")
            if tracking:  # a logger that falls behind leaves the rest to the export (the end waits 30 s)
                m = s["mlflow"]
                n = max(1, m["logged"])
                per_job.append((m["busy_s"] - m["connect_s"]) / n)
                cpu.append((m["cpu_s"] - m["connect_cpu_s"]) / n)
                line += (f"{m['logged']:>8}{m['busy_s'] / n:>14.4f}{(m['busy_s'] - m['connect_s']) / n:>13.4f}"
                         f"{(m['cpu_s'] - m['connect_cpu_s']) / n:>11.4f}{m['connect_s']:>11.1f}"
                         f"{m['connect_cpu_s']:>13.1f}{m['calls'] / n:>9.1f}{m['close_s']:>12.2f}")
            else:
                last_plain = work
            print(line, flush=True)
    plain, tracked = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"median search throughput: {plain:.1f} jobs/s without, {tracked:.1f} with tracking "
          f"({(tracked / plain - 1) * 100:+.1f}%); with the run's end: {statistics.median(totals[False]):.1f} "
          f"and {statistics.median(totals[True]):.1f} jobs/s; background logger {statistics.median(per_job) * 1000:.1f} ms/job "
          f"({statistics.median(cpu) * 1000:.1f} ms of CPU) after connecting; load average now {os.getloadavg()[0]:.1f}")

    # The export of a finished task: the same mapping and requests, in the foreground.
    from gml_ray.store import Store
    from gml_ray.views.mlflow_export import default_tracking_uri, export_task, resolve_target

    store = Store(last_plain, create=False)
    target = resolve_target(last_plain, "t")
    assert target.tracking_uri == default_tracking_uri(last_plain)
    for label in ("first (new store)", "again (nothing new)"):
        result = export_task(store, "t", target)
        print(f"ctl export-mlflow {label}: {result.logged} jobs logged, {result.current} current, "
              f"{result.seconds:.2f}s ({result.seconds / args.jobs * 1000:.1f} ms/job)")
    ray.shutdown()


if __name__ == "__main__":
    main()
