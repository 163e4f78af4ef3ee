"""Store scale: 10,000 jobs x 100 scalars through the real ingestion path, then `ctl show`.

    python benchmarks/store_scale.py [--jobs 10000] [--scalars 100] [--stream] [--parallel 2]

Function trials each report ``--scalars`` values (one tag, one step each). By default a short trial
returns its reports with its outcome (what gml-ray does for trials under 50 ms); ``--stream`` sets
GML_STREAM_INTERVAL_S=0.001 in the workers so reports travel through the Ray queue in batches as
they are made; ``--jobs 100 --scalars 10000 --stream`` makes jobs stream faster than the
scheduler takes them in, which measures the queue → scheduler → SQLite path itself.
Prints: scalars/s into SQLite, the time of `gml-ray ctl show --task T` and of `--scalar` (each a
fresh CLI process), the database size and the scheduler actor's peak RSS.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--scalars", type=int, default=100)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--parallel", type=int, default=2, help="scheduler.parallel_size (Ray has 2 CPUs)")
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import yaml

    from gml_ray.config import parse_config
    from gml_ray.schedulers import NaiveScheduler
    from gml_ray.store import Store

    env = {"GML_STREAM_INTERVAL_S": "0.001"} if args.stream else {}
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, runtime_env={"env_vars": env} if env else None)
    tmp = tempfile.mkdtemp(prefix="gml-scale-")
    code, wd = os.path.join(tmp, "code"), os.path.join(tmp, "wd")
    os.makedirs(code)
    with open(os.path.join(code, "objective.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import gml_ray
            def trial(config):
                for step in range({args.scalars}):
                    gml_ray.report(acc=config["x"] * 1e-6 + step * 1e-3)
        """))
    cfg = parse_config(yaml.safe_load(textwrap.dedent(f"""
        task:
          function: "objective:trial"
          search_args: [{{type: Int, name: x, data: [1, {args.jobs}]}}]
        searcher: {{reward_attribute: acc}}
        scheduler: {{parallel_size: {args.parallel}}}
        generate_log: false
    """)), "scale.yaml", code)
    scheduler = NaiveScheduler(wd, cfg, task="scale", snapshot=False)
    scheduler.prepare()
    t0 = time.perf_counter()
    summary = scheduler.run()
    wall = time.perf_counter() - t0
    ray.shutdown()

    store = Store(wd, create=False)
    n_scalars = store.count_scalars("scale")
    # From the first job's start to the task's end: the run without Ray's and the actors' start-up
    first = min(j["created"] for j in store.jobs("scale", columns=("created",)))
    run_wall = store.get_task("scale")["ended"] - first
    gml = os.path.join(os.path.dirname(sys.executable), "gml-ray")
    timings = {}
    for label, extra in (("ctl show --task T", []), ("ctl show --task T --scalar", ["--scalar"])):
        t = time.perf_counter()
        out = subprocess.run([gml, "ctl", "show", "--task", "scale", "--workdir", wd, *extra],
                             capture_output=True, text=True)
        timings[label] = time.perf_counter() - t
        assert out.returncode == 0, out.stderr
        timings[label + " (lines)"] = out.stdout.count("\n")
    t = time.perf_counter()
    subprocess.run([gml, "--help"], capture_output=True)
    cli_start = time.perf_counter() - t
    db = os.path.getsize(os.path.join(wd, "gml.db")) + sum(
        os.path.getsize(os.path.join(wd, f)) for f in os.listdir(wd) if f.startswith("gml.db-"))

    mode = "streamed through the Ray queue" if args.stream else "returned with each trial's outcome"
    print(f"\n{args.jobs} jobs x {args.scalars} scalars ({mode})")
    print(f"  jobs finished            {summary['counts']}")
    print(f"  scalars stored           {n_scalars}")
    print(f"  run wall time            {wall:.1f} s  ({wall / args.jobs * 1000:.2f} ms/job) with Ray's "
          f"start; {run_wall:.1f} s from the first job's start to the task's end")
    print(f"  ingestion                {n_scalars / run_wall:,.0f} scalars/s end to end from the first "
          f"job's start ({n_scalars / wall:,.0f}/s counting Ray's start); "
          f"the scheduler's own ingest {summary['scalars'] / max(summary['ingest_s'], 1e-9):,.0f} scalars/s "
          f"({summary['ingest_s']:.1f} s of the run)")
    for label in ("ctl show --task T", "ctl show --task T --scalar"):
        print(f"  {label:26s} {timings[label]:.2f} s ({timings[label + ' (lines)']} lines; "
              f"CLI start alone {cli_start:.2f} s)")
    print(f"  database size            {db / 2**20:.0f} MiB")
    print(f"  scheduler peak RSS       {summary['scheduler_peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
