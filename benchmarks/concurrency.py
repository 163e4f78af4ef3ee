"""Many jobs at once: gml-ray next to Ray Tune at parallel_size 16, 64, 128 on one local Ray.

    python benchmarks/concurrency.py [--parallel 16 64 128] [--rounds 3] [--kinds command function]
                                     [--skip-tune]

Ray is given ``N`` logical CPUs (``ray.init(num_cpus=N)``) and every job sleeps 1.0-2.0 s while it
reports 10 scalars, so that the machine's real cores are not what limits the run. For each
concurrency ``N`` and job kind (a command job running ``bash job.sh``, a function trial) the search
runs ``rounds * N`` jobs. The ideal wall time is what ``N`` slots filled greedily in launch order
would take with no overhead at all; the share of ideal is ideal / measured, both from the first
job's start to the last job's end (Ray's and the actors' start-up is printed apart). Also printed:
the scheduler's loop rounds and their mean time outside ``ray.wait``, its process's CPU per job, and
the peak RSS of the driver and the scheduler actor. Ray Tune runs the same jobs at the same
concurrency (``max_concurrent_trials=N``, ``reuse_actors=True``). Needs the ``bench`` extra for Tune.
"""
from __future__ import annotations

import argparse
import heapq
import logging
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

# The job: two halves of 0.5-1.0 s, five scalars after each. Its duration is decided by x alone, so that
# gml-ray and Tune run exactly the same set of jobs.
JOB_SH = textwrap.dedent("""\
    x=$1
    half=$(( 5 * (100 + (x % 11) * 10) ))
    fd=${GML_SCALAR_FD:-1}
    # two sleeps, five reports after each: the job itself forks little (printf is a builtin)
    for part in 0 5; do
      printf -v frac '%03d' $(( half % 1000 ))
      sleep "$(( half / 1000 )).$frac"
      for i in 0 1 2 3 4; do
        printf '{"t": "score", "v": %d, "s": %d}\\n' "$((x + part + i))" "$((part + i))" >&"$fd"
      done
    done
""")
TRIAL_PY = textwrap.dedent("""\
    import time

    import gml_ray


    def trial(config):
        x = config["x"]
        for part in (0, 5):
            time.sleep(5 * (100 + (x % 11) * 10) / 1000)
            for i in range(5):
                gml_ray.report(score=x + part + i)
""")
SCALARS_PER_JOB = 10


def duration(x: int) -> float:
    return 10 * (100 + (x % 11) * 10) / 1000


def ideal_wall(n_jobs: int, slots: int) -> float:
    """Makespan of jobs x=1..n_jobs (launch order) on ``slots`` slots with no overhead."""
    free = [0.0] * slots
    end = 0.0
    for x in range(1, n_jobs + 1):
        t = heapq.heappop(free) + duration(x)
        end = max(end, t)
        heapq.heappush(free, t)
    return end


def gml_ray_run(code_dir: str, work_dir: str, kind: str, n_jobs: int, parallel: int) -> dict:
    import yaml

    from gml_ray.config import parse_config
    from gml_ray.schedulers import NaiveScheduler

    job = 'template: "bash job.sh {x}"' if kind == "command" else 'function: "objective:trial"'
    cfg = parse_config(yaml.safe_load(textwrap.dedent(f"""
        task:
          {job}
          search_args: [{{type: Int, name: x, data: [1, {n_jobs}]}}]
        searcher: {{type: GridSearcher, reward_attribute: score}}
        scheduler: {{parallel_size: {parallel}}}
    """)), "bench.yaml", code_dir)
    task = f"{kind}{parallel}"
    scheduler = NaiveScheduler(work_dir, cfg, task=task, snapshot=False)
    store = scheduler.prepare()
    t0 = time.time()
    summary = scheduler.run()
    jobs = store.jobs(task)
    counts = summary["counts"]
    assert counts.get("FINISHED") == n_jobs == len(jobs), counts
    scalars = store.count_scalars(task)
    assert scalars == n_jobs * SCALARS_PER_JOB, (scalars, n_jobs * SCALARS_PER_JOB)
    first, last = min(j["started"] for j in jobs), max(j["ended"] for j in jobs)
    return {"wall": last - first, "startup": first - t0, "summary": summary,
            "steady": steady_share(sorted(j["started"] for j in jobs), parallel)}


def steady_share(starts: list[float], parallel: int) -> float:
    """Throughput once every slot was busy, as a share of the ideal: jobs started between the
    ``parallel``-th start (all slots taken) and the last start, per second, over
    ``parallel / mean duration``. Leaves out the workers' start-up and the last jobs' tail."""
    window = starts[-1] - starts[parallel - 1]
    n = len(starts) - parallel
    if n <= 0 or window <= 0:
        return float("nan")
    mean = sum(duration(x) for x in range(1, len(starts) + 1)) / len(starts)
    return (n / window) / (parallel / mean)


def tune_run(kind: str, code_dir: str, n_jobs: int, parallel: int, storage: str) -> dict:
    from ray import tune

    script = os.path.join(code_dir, "job.sh")

    def command_trainable(config: dict) -> None:
        proc = subprocess.Popen(["bash", script, str(config["x"])], stdout=subprocess.PIPE, text=True)
        import json
        for line in proc.stdout:  # type: ignore[union-attr]
            rec = json.loads(line)
            tune.report({"score": rec["v"]})
        proc.wait()

    def function_trainable(config: dict) -> None:
        x = config["x"]
        for part in (0, 5):
            time.sleep(5 * (100 + (x % 11) * 10) / 1000)
            for i in range(5):
                tune.report({"score": x + part + i})

    from tune_peer import tune_fit
    trainable = command_trainable if kind == "command" else function_trainable
    wall, results = tune_fit(trainable, list(range(1, n_jobs + 1)), parallel, True, storage,
                             f"{kind}{parallel}")
    got = sum(len(r.metrics_dataframe) for r in results)
    assert got == n_jobs * SCALARS_PER_JOB, (got, n_jobs * SCALARS_PER_JOB)
    return {"wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parallel", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--rounds", type=int, default=5, help="jobs per slot")
    ap.add_argument("--kinds", nargs="+", default=["command", "function"], choices=["command", "function"])
    ap.add_argument("--skip-tune", action="store_true")
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    tmp = tempfile.mkdtemp(prefix="gml-conc-")
    code = os.path.join(tmp, "code")
    os.makedirs(code)
    with open(os.path.join(code, "job.sh"), "w") as f:
        f.write(JOB_SH)
    with open(os.path.join(code, "objective.py"), "w") as f:
        f.write(TRIAL_PY)
    rows = []
    for parallel in args.parallel:
        n_jobs = parallel * args.rounds
        ideal = ideal_wall(n_jobs, parallel)
        for kind in args.kinds:
            t0 = time.perf_counter()
            ray.init(address="local", num_cpus=parallel, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
            ray_start = time.perf_counter() - t0
            got = gml_ray_run(code, os.path.join(tmp, "wd"), kind, n_jobs, parallel)
            s = got["summary"]
            rows.append({"who": "gml-ray", "kind": kind, "N": parallel, "jobs": n_jobs,
                         "wall": got["wall"], "share": ideal / got["wall"], "steady": got["steady"],
                         "startup": ray_start + got["startup"], "rounds": s["rounds"],
                         "round_ms": s["busy_s"] / max(1, s["rounds"]) * 1000,
                         "cpu_ms_job": s["cpu_s"] / n_jobs * 1000,
                         "sched_mb": s["scheduler_peak_rss_mb"],
                         "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            print(rows[-1], flush=True)
            if not args.skip_tune:
                tune_got = tune_run(kind, code, n_jobs, parallel, os.path.join(tmp, "tune"))
                # Tune's wall includes its trial actors' start-up: compare to gml-ray's run with it
                rows.append({"who": "Ray Tune", "kind": kind, "N": parallel, "jobs": n_jobs,
                             "wall": tune_got["wall"], "share": ideal / tune_got["wall"],
                             "startup": ray_start, "gml_total": got["wall"] + got["startup"]})
                print(rows[-1], flush=True)
            ray.shutdown()
    print(f"\n{'who':9s} {'kind':9s} {'N':>4s} {'jobs':>5s} {'ideal s':>8s} {'wall s':>7s} "
          f"{'% ideal':>8s} {'steady':>7s} {'rounds':>7s} {'ms/round':>9s} {'cpu ms/job':>10s} {'sched MB':>9s} "
          f"{'driver MB':>9s}")
    for r in rows:
        ideal = ideal_wall(r["jobs"], r["N"])
        extra = (f"{100 * r['steady']:6.1f}% {r['rounds']:7d} {r['round_ms']:9.2f} {r['cpu_ms_job']:10.1f} {r['sched_mb']:9.0f} "
                 f"{r['driver_mb']:9.0f}" if r["who"] == "gml-ray" else
                 f"{'':15s} (wall incl. actor start-up; gml-ray's incl. start-up {r['gml_total']:.1f} s)")
        print(f"{r['who']:9s} {r['kind']:9s} {r['N']:4d} {r['jobs']:5d} {ideal:8.2f} {r['wall']:7.2f} "
              f"{100 * r['share']:7.1f}% {extra}")
    print("\nwall: first job's start to last job's end (gml-ray); Tune: tuner.fit(). % ideal: the "
          "ideal wall (greedy, no overhead) / wall. steady: throughput once all slots were busy "
          "/ (N / mean job duration)")


if __name__ == "__main__":
    sys.exit(main())
