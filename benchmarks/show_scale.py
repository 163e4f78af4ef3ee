"""`gml-ray ctl show --task T` on a big task: a synthetic store, the command timed as a user runs it.

    python benchmarks/show_scale.py [--jobs 100000] [--steps 1] [--runs 5] [--store DIR]

Builds a store of ``--jobs`` finished jobs (``report_scale.build_store``: no jobs run; kept in
``--store DIR`` and reused when it holds one), then runs ``gml-ray ctl show --task T`` ``--runs``
times, each a fresh process with its output to /dev/null, and prints the wall time and the CPU
time (user + system) of each, their median, and the CLI's start alone (``gml-ray --help``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``, output discarded."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    wall = time.perf_counter() - t0
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1, help="scalars of each tag per job")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--store", help="keep the synthetic store here (reused if it already holds one)")
    args = ap.parse_args()

    from report_scale import build_store

    work_dir = args.store or tempfile.mkdtemp(prefix="gml-show-")
    if not os.path.exists(os.path.join(work_dir, "gml.db")):
        t0 = time.perf_counter()
        build_store(work_dir, "big", args.jobs, args.steps, ["acc", "loss"], log_lines=0)
        print(f"built {args.jobs} jobs in {time.perf_counter() - t0:.0f} s: {work_dir}")
    gml = os.path.join(os.path.dirname(sys.executable), "gml-ray")
    show = [gml, "ctl", "show", "--task", "big", "--workdir", work_dir]
    start = [timed([gml, "--help"]) for _ in range(args.runs)]
    runs = [timed(show) for _ in range(args.runs)]
    for i, (wall, cpu) in enumerate(runs, 1):
        print(f"run {i}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"`ctl show --task T` at {args.jobs} jobs: median {statistics.median(w for w, _ in runs):.2f} s wall "
          f"[{min(w for w, _ in runs):.2f}-{max(w for w, _ in runs):.2f}], "
          f"{statistics.median(c for _, c in runs):.2f} s CPU; the CLI's start alone "
          f"{statistics.median(w for w, _ in start):.2f} s")


if __name__ == "__main__":
    main()
