"""HTML report at scale: a synthetic task of 5,000 jobs, its report's size and load time in Chromium.

    python benchmarks/report_scale.py [--jobs 5000] [--steps 30] [--tags acc,loss] [--log-lines 40]

Builds a store directly (Store.add_job / add_scalars: no jobs run) with ``--jobs`` finished jobs,
each with 4 args, ``--steps`` values of each tag, and a stdout.log of ``--log-lines`` lines; then
times ``write_report`` and opens the page in headless Chromium (the test suite's DevTools client),
measuring the time from navigation until the table and every plot are drawn, and the time a
filter and a re-sort of the table take. Needs ``chromium`` on PATH (or GML_CHROMIUM).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def build_store(work_dir: str, task: str, jobs: int, steps: int, tags: list[str],
                log_lines: int = 40, seed: int = 0, status: str = "FINISHED"):
    """A store holding one task of ``jobs`` jobs with ``steps`` values of each tag (no Ray)."""
    from gml_ray.store import Store

    rng = random.Random(seed)
    store = Store(work_dir)
    task_dir = os.path.join(work_dir, "tasks", task)
    t0 = time.time() - jobs * 2.0
    store.create_task(task, status=status, reward_attribute=tags[0], optimize_mode="maximize",
                      scalar_columns=tags, task_dir=task_dir, started=t0, created=t0,
                      ended=None if status == "RUNNING" else time.time(), heartbeat=time.time())
    with store.transaction():
        for i in range(1, jobs + 1):
            lr = 10 ** rng.uniform(-4, -1)
            args = {"lr": round(lr, 6), "batch-size": rng.choice([64, 128, 256, 512]),
                    "opt": rng.choice(["sgd", "adam", "adamw"]), "config(epochs)": rng.randint(5, 30)}
            name = f"job_{i:04d}"
            job_dir = os.path.join(task_dir, "jobs", name)
            os.makedirs(job_dir, exist_ok=True)
            if log_lines:
                with open(os.path.join(job_dir, "stdout.log"), "w") as f:
                    f.writelines(f"epoch {e} loss {1 / (e + 1):.4f} lr {lr:.2e} some progress text\n"
                                 for e in range(log_lines))
            store.add_job(task, i, name, args, args, f"python train.py --lr {lr}", job_dir,
                          status=status)
            quality = 1 - abs(math.log10(lr) + 2.5) / 3 + rng.gauss(0, 0.03)
            rows, best = [], None
            for s in range(steps):
                acc = quality * (1 - math.exp(-(s + 1) / 6)) + rng.gauss(0, 0.01)
                best = acc if best is None else max(best, acc)
                for tag in tags:
                    value = acc if tag == tags[0] else 1.0 / (s + 1) + rng.gauss(0, 0.01)
                    rows.append((i, tag, s, value, int((t0 + i * 2 + s * 0.05) * 1000), 1))
            store.add_scalars(task, rows)
            store.update_job(task, i, reward=best, started=t0 + i * 2, ended=t0 + i * 2 + 1.8,
                             node="10.0.0.1 abcd1234", status=status)
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tags", default="acc,loss")
    ap.add_argument("--log-lines", type=int, default=40)
    ap.add_argument("--keep", help="also copy the report here")
    args = ap.parse_args()
    tags = [t for t in args.tags.split(",") if t]

    from gml_ray.report import write_report
    from test_report import Chromium, chromium_binary

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build_store(os.path.join(tmp, "wd"), "scale", args.jobs, args.steps, tags, args.log_lines)
        print(f"store: {args.jobs} jobs x {len(tags)} tags x {args.steps} steps "
              f"= {store.count_scalars('scale')} scalars in {time.perf_counter() - t0:.1f}s")
        out = os.path.join(tmp, "scale.report.html")
        info = write_report(store, "scale", out)
        print(f"report: {info.size / 1e6:.1f} MB written in {info.seconds:.2f}s")
        binary = chromium_binary()
        if not binary:
            print("chromium not found: load time not measured")
            return
        for run in range(2):
            with Chromium(binary) as browser:
                page = browser.open_report(out, timeout=180)
                filt = browser.eval("(() => { const t0 = performance.now(); "
                                    "const n = gmlReport.filter('opt=adam lr<0.01'); return performance.now() - t0; })()")
                tm = browser.eval("gmlReport.timings")
                sort = browser.eval("(() => { const t0 = performance.now(); gmlReport.sort('job', -1); "
                                    "return performance.now() - t0; })()")
                print(f"chromium run {run + 1}: everything drawn {page['ready_ms'] / 1000:.2f}s after "
                      f"navigation (wall {page['wall_s']:.2f}s): script start {tm['start'] / 1000:.2f}s, "
                      f"table {tm['sorted'] / 1000:.2f}s, curves {tm['curves'] / 1000:.2f}s, best-so-far "
                      f"{tm['best'] / 1000:.2f}s, parallel coordinates {tm['parcoords'] / 1000:.2f}s; "
                      f"{page['rows']} rows, curve traces {page['traces']}; filter {filt:.0f} ms, "
                      f"sort {sort:.0f} ms; console errors {len(page['errors'])}, "
                      f"network requests {len(page['requests'])}")
        if args.keep:
            import shutil
            shutil.copy(out, args.keep)


if __name__ == "__main__":
    main()
