"""Preemption: SIGTERM to a running `gml-ray run` at a random moment, then `--resume`; the epochs
done twice with jobs that checkpoint (they pause at their next checkpoint and go on from it)
and with the same jobs not checkpointing (they start again from epoch 0).

    python benchmarks/preemption.py [--seeds 5] [--configs 4] [--epochs 20] [--sleep 0.2]

Each run: ``--configs`` command jobs, 2 at a time, ``--epochs`` epochs of ``--sleep`` s each; the
driver gets SIGTERM at a moment drawn per seed (uniform between 30% and 70% of the jobs' first
wave), then the task is resumed to its end. Printed per seed and variant: epochs run in all,
epochs run twice (the work preemption cost), the seconds from SIGTERM to the driver's exit, and
the wall time of the whole (run + resume). Numbers never assert anything.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TRAIN = """
import os, sys, time
import gml_ray
x, epochs, sleep, ckpt = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
start = 0 if gml_ray.get_checkpoint() is None else gml_ray.restored_step() + 1
w = gml_ray.SummaryWriter()
with open(os.path.join(os.environ["GML_JOB_DIR"], "epochs.log"), "a") as log:
    for epoch in range(start, epochs):
        time.sleep(sleep)
        log.write(f"{epoch}\\n"); log.flush()
        w.add_scalar("acc", x * (epoch + 1), epoch)
        if ckpt:
            with open("state.txt", "w") as f:
                f.write(str(epoch))
            gml_ray.checkpoint("state.txt", epoch)
"""

CONFIG = """
task:
  template: "python {train} {{x}} {epochs} {sleep} {ckpt}"
  search_args:
    - {{type: Categorical, name: x, data: {xs}}}
searcher: {{type: GridSearcher, reward_attribute: acc}}
scheduler:
  parallel_size: 2
  checkpoint: {{keep: 1, preempt_grace: 30s}}
"""


def run(work: str, seed: int, checkpoint: bool, configs: int, epochs: int, sleep: float) -> dict:
    bin_dir = os.path.dirname(sys.executable)
    gml = os.path.join(bin_dir, "gml-ray")
    train = os.path.join(work, "train.py")
    with open(train, "w") as f:
        f.write(TRAIN)
    config = os.path.join(work, "c.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(train=train, epochs=epochs, sleep=sleep, ckpt=int(checkpoint),
                              xs=[round(0.1 * (i + 1), 2) for i in range(configs)]))
    args = [gml, "run", config, "--task", "t", "--workdir", os.path.join(work, "wd"), "--num-cpus", "2"]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    at = random.Random(seed).uniform(0.3, 0.7) * epochs * sleep
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # wait for the first epoch of the first jobs, then the drawn moment
    logs = [os.path.join(work, "wd", "tasks", "t", "jobs", f"job_{i:04d}", "epochs.log") for i in (1, 2)]
    while not all(os.path.exists(p) for p in logs) and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(at)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    stopped = time.perf_counter() - sent
    resumed = subprocess.run(args + ["--resume"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    ran = redone = 0
    for i in range(1, configs + 1):
        path = os.path.join(work, "wd", "tasks", "t", "jobs", f"job_{i:04d}", "epochs.log")
        done = open(path).read().split() if os.path.exists(path) else []
        ran += len(done)
        redone += len(done) - len(set(done))
    return {"rc": (proc.returncode, resumed.returncode), "ran": ran, "redone": redone, "stop_s": stopped,
            "wall": wall, "line": err.strip().splitlines()[-1] if err.strip() else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"checkpoints": [], "none": []}
    print(f"{args.configs} jobs x {args.epochs} epochs x {args.sleep} s, 2 at a time; SIGTERM, then --resume")
    print(f"{'seed':>4} {'jobs':12} {'epochs run':>10} {'run twice':>9} {'SIGTERM->exit s':>15} {'wall s':>7}  last line")
    for seed in range(args.seeds):
        for name in results:
            work = tempfile.mkdtemp(prefix="gml_preempt_")
            try:
                r = run(work, seed, name == "checkpoints", args.configs, args.epochs, args.sleep)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[name].append(r)
            print(f"{seed:4d} {name:12} {r['ran']:10d} {r['redone']:9d} {r['stop_s']:15.2f} {r['wall']:7.1f}  "
                  f"{r['line'][:70]} (rc {r['rc'][0]}, resume rc {r['rc'][1]})", flush=True)
    print("\nSummary (mean, min-max over seeds):")
    for name, rs in results.items():
        redone = [r["redone"] for r in rs]
        stop = [r["stop_s"] for r in rs]
        print(f"  {name:12} epochs run twice {statistics.mean(redone):5.1f} ({min(redone)}-{max(redone)}) of "
              f"{args.configs * args.epochs}; SIGTERM to exit {statistics.mean(stop):.2f} s "
              f"({min(stop):.2f}-{max(stop):.2f}); wall {statistics.mean(r['wall'] for r in rs):.1f} s")


if __name__ == "__main__":
    main()
