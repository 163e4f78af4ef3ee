"""`gml-ray ctl serve`: what a dashboard open on a run costs the run, and how it keeps up at 10,000 jobs.

    python benchmarks/dashboard.py [--jobs 300] [--repeats 3] [--browser]       # run throughput
    python benchmarks/dashboard.py --scale [--store DIR] [--jobs 10000] [--polls 10]  # a big task's page

Throughput: a fast function-trial task (``--jobs`` trials of ~1 ms, 2 at a time, on a local Ray of
2 CPUs), run with ``gml-ray run`` in a fresh work dir, once with a dashboard serving that work dir
and a client asking ``/api/tasks`` and ``/api/task/T/changes`` every second (``--browser``: also
headless Chromium on the task page), once without; the two in turn (alternating which goes first),
``--repeats`` times each. Jobs/s = jobs / the task's run time as the store records it.

Scale: a synthetic store (``report_scale.build_store``: ``--jobs`` finished jobs, 2 tags x 50 steps;
kept in ``--store`` and reused) whose task is marked RUNNING; the task page opened in headless
Chromium: ms until the job table is painted (the probe of report_scale.py), until every plot is
drawn; then a writer adds a job and 20 scalars and ends a job each second, and the page's own
timings of ``--polls`` polls (request + patching the page) are printed, with the server's time to
answer one changes request measured from a client beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "views"))
BIN = os.path.dirname(sys.executable)

TRIAL = """
import gml_ray

def trial(config):
    gml_ray.report(0, acc=config["x"])
"""

CONFIG = """
task:
  function: trial:trial
  search_args:
    - {type: Real, name: x, data: [0.0, 1.0]}
searcher: {type: RandomSearcher, seed: 0, reward_attribute: acc}
scheduler: {parallel_size: 2, stop_criterion: {max_tries: JOBS}}
"""


def serve(work_dir: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([os.path.join(BIN, "gml-ray"), "ctl", "serve", "--port", "0", "--workdir", work_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = re.search(r"http://\S+", proc.stdout.readline()).group(0)
    return proc, url.rstrip("/")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def poller(base: str, task: str, halt: threading.Event, times: list[float]) -> None:
    """A client polling every second, as a page does: the task list, then the task's changes."""
    tv, state = ("", 0), ("", 0, 0)
    while not halt.wait(1.0):
        t0 = time.perf_counter()
        try:
            d = get(f"{base}/api/tasks?epoch={tv[0]}&version={tv[1]}")
            tv = (d["epoch"], d["version"])
            if not any(t["name"] == task for t in d["tasks"]) and not state[0]:
                continue
            c = get(f"{base}/api/task/{task}/changes?epoch={state[0]}&version={state[1]}&rowid={state[2]}")
            state = (c["epoch"], c["version"], c["rowid"])
        except OSError:
            continue
        times.append(time.perf_counter() - t0)


def one_run(root: str, jobs: int, dashboard: bool, browser: bool) -> tuple[float, list[float]]:
    work = tempfile.mkdtemp(prefix="run-", dir=root)
    with open(os.path.join(work, "trial.py"), "w") as f:
        f.write(TRIAL)
    with open(os.path.join(work, "search_config.yaml"), "w") as f:
        f.write(CONFIG.replace("JOBS", str(jobs)))
    subprocess.run([os.path.join(BIN, "gml-ray"), "init", "--workdir", "wd"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    server, halt, times, chrome = None, threading.Event(), [], None
    try:
        if dashboard:
            server, url = serve(os.path.join(work, "wd"))
            threading.Thread(target=poller, args=(url, "bench", halt, times), daemon=True).start()
            if browser:
                from test_report import Chromium, chromium_binary
                chrome = Chromium(chromium_binary())
                chrome.call("Page.navigate", url=url + "/")
        run = subprocess.run([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "bench",
                              "--workdir", "wd", "--num-cpus", "2"], cwd=work, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
    finally:
        halt.set()
        if chrome is not None:
            chrome.close()
        if server is not None:
            stop(server)
    from gml_ray.store import Store
    store = Store(os.path.join(work, "wd"), create=False, read_only=True)
    t = store.require_task("bench")
    n = len(store.jobs("bench"))
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    return n / (t["ended"] - t["started"]), times


def throughput(args) -> None:
    root = tempfile.mkdtemp(prefix="gml-dash-bench-")
    rates: dict[bool, list[float]] = {False: [], True: []}
    polls: list[float] = []
    for r in range(args.repeats):
        for dashboard in ((False, True) if r % 2 == 0 else (True, False)):
            rate, times = one_run(root, args.jobs, dashboard, args.browser)
            rates[dashboard].append(rate)
            polls += times
            print(f"repeat {r + 1}, {'with' if dashboard else 'without'} dashboard: {rate:.1f} jobs/s"
                  + (f" ({len(times)} polls, median {statistics.median(times) * 1000:.0f} ms)" if times else ""), flush=True)
    for dashboard in (False, True):
        v = rates[dashboard]
        print(f"{'with' if dashboard else 'without'} dashboard{' + chromium' if dashboard and args.browser else ''}: "
              f"median {statistics.median(v):.1f} jobs/s [{min(v):.1f}-{max(v):.1f}]")
    shutil.rmtree(root, ignore_errors=True)


def scale(args) -> None:
    from report_scale import PROBE, build_store
    from test_report import Chromium, chromium_binary

    from gml_ray.store import Store

    work = args.store or tempfile.mkdtemp(prefix="gml-dash-scale-")
    if not os.path.exists(os.path.join(work, "gml.db")):
        t0 = time.perf_counter()
        build_store(work, "big", args.jobs, 50, ["acc", "loss"], log_lines=0).close()
        print(f"built {args.jobs} jobs in {time.perf_counter() - t0:.0f} s: {work}", flush=True)
    store = Store(work)
    store.update_task("big", status="RUNNING", ended=None)
    next_id = max(j["job_id"] for j in store.jobs("big", columns=("status",))) + 1
    server, url = serve(work)
    halt = threading.Event()

    def writer() -> None:  # a run's pace: one job launched, one ended, 20 scalars a second
        nonlocal next_id
        while not halt.wait(1.0):
            now = time.time()
            with store.transaction():
                store.add_job("big", next_id, f"job_{next_id:05d}", {"lr": 0.01}, {"lr": 0.01}, "cmd",
                              os.path.join(work, "x"), status="RUNNING")
                store.add_scalars("big", [(next_id, tag, s, 0.5 + 0.01 * s, int(now * 1000), 1)
                                          for s in range(10) for tag in ("acc", "loss")])
                store.update_job("big", next_id - 1, status="FINISHED", ended=now, reward=0.6)
            next_id += 1

    try:
        with Chromium(chromium_binary()) as browser:
            browser.call("Page.addScriptToEvaluateOnNewDocument", source=PROBE)
            t0 = time.perf_counter()
            browser.call("Page.navigate", url=url.rsplit("/task", 1)[0] + "/task/big")
            while not browser.eval("!!(window.gmlReport && (window.gmlReport.ready || window.gmlReport.errors.length))"):
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            info = browser.eval("({ready: gmlReport.readyMs, probe: window.__gmlProbe, errors: gmlReport.errors})")
            print(f"task page at {args.jobs} jobs: table painted {info['probe']['frame'] / 1000:.2f} s, every plot "
                  f"drawn {info['ready'] / 1000:.2f} s after navigation ({wall:.2f} s wall); errors: {info['errors']}", flush=True)
            threading.Thread(target=writer, daemon=True).start()
            seen, samples, server_ms = browser.eval("gmlDashboard.polls"), [], []
            base = url.rsplit("/task", 1)[0]
            first = get(f"{base}/api/task/big/changes?epoch=&version=0&rowid=0")
            state = (first["epoch"], first["version"], store.last_scalar_rowid())
            while len(samples) < args.polls:
                time.sleep(0.2)
                n = browser.eval("gmlDashboard.polls")
                if n > seen:
                    seen = n
                    samples.append(browser.eval("[gmlDashboard.lastPollMs, gmlDashboard.lastApplyMs]"))
                    t1 = time.perf_counter()
                    c = get(f"{base}/api/task/big/changes?epoch={state[0]}&version={state[1]}&rowid={state[2]}")
                    server_ms.append((time.perf_counter() - t1) * 1000)
                    state = (c["epoch"], c["version"], c["rowid"])
            rows = browser.eval("gmlReport.rows().length")
            polls = [p for p, _ in samples]
            applies = [a for _, a in samples]
            print(f"updates ({args.polls} polls, a job and 20 scalars a second): poll {statistics.median(polls):.0f} ms "
                  f"median [{min(polls):.0f}-{max(polls):.0f}] (patching the page {statistics.median(applies):.0f} ms "
                  f"[{min(applies):.0f}-{max(applies):.0f}]); a changes request alone {statistics.median(server_ms):.0f} ms "
                  f"[{min(server_ms):.0f}-{max(server_ms):.0f}]; the table now {rows} rows; errors {browser.errors()}")
    finally:
        halt.set()
        stop(server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--browser", action="store_true", help="throughput: also headless Chromium on the task list")
    ap.add_argument("--scale", action="store_true", help="the task page of a big synthetic task")
    ap.add_argument("--store", help="--scale: keep the synthetic store here (reused if it holds one)")
    ap.add_argument("--polls", type=int, default=10)
    args = ap.parse_args()
    if args.scale:
        args.jobs = args.jobs or 10_000
        scale(args)
    else:
        args.jobs = args.jobs or 300
        throughput(args)


if __name__ == "__main__":
    main()
