"""`gml-ray ctl serve`: what a dashboard open on a run costs the run, and how it keeps up at 10,000 jobs.

    python benchmarks/dashboard.py [--jobs 300] [--repeats 3] [--browser]       # run throughput
    python benchmarks/dashboard.py --scale [--store DIR] [--jobs 10000] [--polls 10]  # a big task's page
    python benchmarks/dashboard.py --tasks 1000 [--store DIR] [--repeats 3] [--polls 5]  # the task list
    python benchmarks/dashboard.py --optuna-dashboard [--store DIR] [--jobs 10000] [--repeats 3]
                                   [--timeout 300]  # the task page next to optuna-dashboard's

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

Task list (``--tasks N``): a synthetic work dir (kept in ``--store`` and reused) of N tasks of 4
jobs each (2 tags x 10 steps; the last 3 tasks RUNNING, the others ended), served afresh and opened
in a fresh headless Chromium ``--repeats`` times: ms until the first frame painted after the list
has its rows (a MutationObserver on ``#tasks tbody`` and a requestAnimationFrame, injected before
the page loads); the page's own timings of ``--polls`` polls while a writer adds and ends a job of
a running task each second; the server's time to answer the first ``/api/tasks`` (every task) and
an up-to-date client's changes poll, from a client beside it.

optuna-dashboard (``--optuna-dashboard``): the ``--scale`` store (built afresh unless ``--store``
holds it unchanged: ``--scale`` adds jobs) and the same trials in an Optuna RDB storage
(``<store>/optuna.db``: each job a COMPLETE trial with its 4 args as params, its reward as the
value, its ``acc`` curve as intermediate values (Optuna keeps one curve per trial) and its last
``loss`` as a user attr; the study is created with optuna's API and its first trial added with
``study.add_trial``; the other rows are written in bulk in the same form, since add_trials takes
~4 ms per intermediate value, and checked by loading trials back with optuna). Then, ``--repeats``
times, in turn (alternating which goes first), each with a fresh server and a fresh Chromium:

* ours (``gml-ray ctl serve``): the task page: table painted (the probe of report_scale.py), every
  plot drawn (``gmlReport.readyMs``), the page's own timings of its next polls (nothing changes),
  and a changes request from a client beside it;
* theirs (``optuna-dashboard sqlite:///...``, its CLI, on a free port of 127.0.0.1): the study page
  (``/dashboard/studies/1``): its first content (the first frame after ``#plot-history`` is a drawn
  Plotly plot with traces) and every plot drawn (the first frame after ``#plot-history``,
  ``#graph-hyperparameter-importances``, ``#graph-timeline`` and ``#graph-intermediate-values`` all
  are: ``_fullLayout``, ``data.length > 0`` and an ``svg.main-svg``); the duration of its
  first ``/api/studies/1?after=0`` fetch and of the polls it makes (``?after=N``, every 10 s at this
  size) within ``--poll-window`` s, from DevTools' network events; three ``?after=N`` requests from a
  client beside it, each 11 s after the last (its trial cache lives 10 s); then, in another fresh Chromium
  (the same server), its Smart Selection page (``/dashboard/studies/1/smartSelection``, where its
  trial table is): the first frame after ``table tbody tr`` exists.

A page that is not there within ``--timeout`` s is reported as such (with the time waited).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
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


def get(url: str, timeout: float = 60) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
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
                from helpers.browser import Chromium, chromium_binary
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
    from helpers.browser import Chromium, chromium_binary
    from report_scale import PROBE, build_store

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
        with patient(Chromium(chromium_binary())) as browser:
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
            server_ms: list[float] = []
            base = url.rsplit("/task", 1)[0]
            first = get(f"{base}/api/task/big/changes?epoch=&version=0&rowid=0")
            state = [first["epoch"], first["version"], store.last_scalar_rowid()]

            def ask_beside() -> None:  # a changes request from a client beside the page
                t1 = time.perf_counter()
                c = get(f"{base}/api/task/big/changes?epoch={state[0]}&version={state[1]}&rowid={state[2]}")
                server_ms.append((time.perf_counter() - t1) * 1000)
                state[:] = [c["epoch"], c["version"], c["rowid"]]

            samples = page_polls(browser, args.polls, ask_beside)
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


# ---- shared -------------------------------------------------------------------------------------

def page_polls(browser, n: int, each=None) -> list[list[float]]:
    """[request ms, patch ms] of the page's next ``n`` polls, by its own timings; ``each()`` runs
    after each one is seen."""
    seen, samples = browser.eval("gmlDashboard.polls"), []
    while len(samples) < n:
        time.sleep(0.2)
        polls = browser.eval("gmlDashboard.polls")
        if polls > seen:
            seen = polls
            samples.append(browser.eval("[gmlDashboard.lastPollMs, gmlDashboard.lastApplyMs]"))
            if each is not None:
                each()
    return samples


def spread(values: list[float], unit: str = "s") -> str:
    """``median [min-max]`` of timings in ms, in seconds (``unit="s"``) or ms."""
    if not values:
        return "-"
    v, k = sorted(values), (1000.0 if unit == "s" else 1.0)
    d = 2 if unit == "s" else 0
    return f"{statistics.median(v) / k:.{d}f}{unit} [{v[0] / k:.{d}f}-{v[-1] / k:.{d}f}]"


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def wait_for(browser, expression: str, timeout: float):
    """Evaluate ``expression`` in the page until it is truthy (its value), or None after ``timeout``
    seconds (a page whose main thread is busy answers late: that counts against the time too)."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = browser.eval(expression, timeout=max(1.0, deadline - time.time()))
        except (TimeoutError, ConnectionClosed):
            return None
        if value:
            return value
        time.sleep(0.1)
    return None


def timed_get(url: str, timeout: float = 60) -> tuple[float, dict]:
    t0 = time.perf_counter()
    body = get(url, timeout)
    return (time.perf_counter() - t0) * 1000, body


# ---- the task list ------------------------------------------------------------------------------

TASKS_PROBE = """(() => {
  const P = window.__gmlTasksProbe = {rows: null, frame: null, n: 0};
  const mo = new MutationObserver(() => {
    if (P.rows !== null || !document.querySelector('#tasks tbody tr[data-task]')) return;
    P.rows = performance.now(); P.n = document.querySelectorAll('#tasks tbody tr[data-task]').length;
    requestAnimationFrame(() => { P.frame = performance.now(); }); mo.disconnect(); });
  mo.observe(document, {childList: true, subtree: true});
})();"""


def build_tasks(work_dir: str, n: int, jobs: int = 4, steps: int = 10, running: int = 3, seed: int = 0):
    """A store of ``n`` tasks of ``jobs`` jobs each (2 tags x ``steps`` values); the last ``running``
    tasks RUNNING (their last job too), the others FINISHED, a few ERROR or KILLED (no Ray)."""
    from gml_ray.store import Store

    rng = random.Random(seed)
    store = Store(work_dir)
    t0 = time.time() - n * 60.0
    with store.transaction():
        for t in range(n):
            name, live = f"task_{t:04d}", t >= n - running
            status = "RUNNING" if live else rng.choices(["FINISHED", "ERROR", "KILLED"], [18, 1, 1])[0]
            start = t0 + t * 60.0
            task_dir = os.path.join(work_dir, "tasks", name)
            store.create_task(name, status=status, reward_attribute="acc", optimize_mode="maximize",
                              scalar_columns=["acc", "loss"], task_dir=task_dir, started=start, created=start,
                              ended=None if live else start + 50.0, heartbeat=time.time() if live else start + 50.0)
            for i in range(1, jobs + 1):
                lr = round(10 ** rng.uniform(-4, -1), 6)
                args = {"lr": lr, "opt": rng.choice(["sgd", "adam"])}
                job_status = "RUNNING" if live and i == jobs else "FINISHED"
                store.add_job(name, i, f"job_{i:04d}", args, args, f"python train.py --lr {lr}",
                              os.path.join(task_dir, "jobs", f"job_{i:04d}"), status=job_status)
                acc = [rng.uniform(0.3, 0.9) * (1 - 0.5 ** (s + 1)) for s in range(steps)]
                store.add_scalars(name, [(i, tag, s, acc[s] if tag == "acc" else 1 - acc[s], int((start + i) * 1000), 1)
                                         for s in range(steps) for tag in ("acc", "loss")])
                store.update_job(name, i, started=start + i * 10, reward=max(acc),
                                 ended=None if job_status == "RUNNING" else start + i * 10 + 9,
                                 latest=json.dumps({"acc": acc[-1], "loss": 1 - acc[-1]}))
    return store


def task_list(args) -> None:
    from helpers.browser import Chromium, chromium_binary

    from gml_ray.store import Store

    work = args.store or tempfile.mkdtemp(prefix="gml-dash-tasks-")
    if not os.path.exists(os.path.join(work, "gml.db")):
        t0 = time.perf_counter()
        build_tasks(work, args.tasks).close()
        print(f"built {args.tasks} tasks in {time.perf_counter() - t0:.0f} s: {work}", flush=True)
    store = Store(work)
    n_tasks = len(store.list_tasks())
    live = [t["name"] for t in store.list_tasks() if t["status"] == "RUNNING"][-1]
    next_id = max(j["job_id"] for j in store.jobs(live, columns=("status",))) + 1
    halt = threading.Event()

    def writer() -> None:  # a running task's pace: a job launched and one ended each second
        nonlocal next_id
        while not halt.wait(1.0):
            with store.transaction():
                store.add_job(live, next_id, f"job_{next_id:04d}", {"lr": 0.01}, {"lr": 0.01}, "cmd",
                              os.path.join(work, "x"), status="RUNNING")
                store.update_job(live, next_id - 1, status="FINISHED", ended=time.time(), reward=0.6)
            next_id += 1

    painted, polls, applies, full_ms, change_ms = [], [], [], [], []
    for r in range(args.repeats):
        server, url = serve(work)
        halt.clear()
        thread = threading.Thread(target=writer, daemon=True)
        try:
            with patient(Chromium(chromium_binary())) as browser:
                browser.call("Page.addScriptToEvaluateOnNewDocument", source=TASKS_PROBE)
                at = load()
                browser.call("Page.navigate", url=url + "/")
                probe = wait_for(browser, "window.__gmlTasksProbe && window.__gmlTasksProbe.frame !== null "
                                          "&& window.__gmlTasksProbe", args.timeout)
                if probe is None:
                    print(f"run {r + 1}: the task list was not painted within {args.timeout:.0f} s ({at})", flush=True)
                    continue
                painted.append(probe["frame"])
                thread.start()
                mine = page_polls(browser, args.polls)
                polls += [p for p, _ in mine]
                applies += [a for _, a in mine]
                ms, first = timed_get(f"{url}/api/tasks?epoch=&version=0")
                full_ms.append(ms)
                state, mine_changes = (first["epoch"], first["version"]), []
                for _ in range(3):
                    time.sleep(1.0)
                    ms, d = timed_get(f"{url}/api/tasks?epoch={state[0]}&version={state[1]}")
                    mine_changes.append(ms)
                    state = (d["epoch"], d["version"])
                change_ms += mine_changes
                errors = browser.errors()
                print(f"run {r + 1} ({at}): task list of {probe['n']} tasks painted {probe['frame'] / 1000:.2f} s after "
                      f"navigation; page polls {', '.join(f'{p:.0f}' for p, _ in mine)} ms (rendering the list "
                      f"{', '.join(f'{a:.0f}' for _, a in mine)} ms); server: every task {full_ms[-1]:.0f} ms, "
                      f"a changes poll {', '.join(f'{m:.0f}' for m in mine_changes)} ms; errors {errors}", flush=True)
        finally:
            halt.set()
            if thread.is_alive():
                thread.join(5)
            stop(server)
    store.close()
    print(f"task list at {n_tasks} tasks, median [min-max] of {len(painted)} loads ({load()}): painted "
          f"{spread(painted)}; page poll {spread(polls, 'ms')} (rendering {spread(applies, 'ms')}); server: "
          f"every task {spread(full_ms, 'ms')}, a changes poll {spread(change_ms, 'ms')}")


# ---- next to optuna-dashboard -------------------------------------------------------------------

OD_PLOTS = ["plot-history", "graph-hyperparameter-importances", "graph-timeline", "graph-intermediate-values"]
OD_PROBE = """(() => {
  const P = window.__odProbe = {content: null, contentFrame: null, plots: null, plotsFrame: null,
                                rows: null, rowsFrame: null, nrows: 0, seen: {}};
  const IDS = %s;
  const drawn = id => { const d = document.getElementById(id);
    return !!(d && d._fullLayout && d.data && d.data.length && d.querySelector('svg.main-svg')); };
  const mark = k => { P[k] = performance.now(); requestAnimationFrame(() => { P[k + 'Frame'] = performance.now(); }); };
  new MutationObserver(() => {
    IDS.forEach(id => { if (P.seen[id] === undefined && drawn(id)) P.seen[id] = performance.now(); });
    if (P.content === null && drawn('plot-history')) mark('content');
    if (P.plots === null && IDS.every(drawn)) mark('plots');
    if (P.rows === null && document.querySelector('table tbody tr')) {
      P.nrows = document.querySelectorAll('table tbody tr').length; mark('rows'); }
  }).observe(document, {childList: true, subtree: true});
})();""" % json.dumps(OD_PLOTS)


def fetches(browser, part: str) -> tuple[list[tuple[str, float | None]], list[str]]:
    """The page's requests whose URL holds ``part``, in order: (URL, ms until loaded, or None while
    not), and the errors of those that failed, from the DevTools network events (the browser's: a
    busy page still has them)."""
    from websockets.exceptions import ConnectionClosed

    try:
        browser.call("Browser.getVersion", timeout=30)  # answered by the browser: reads every event so far
    except (TimeoutError, ConnectionClosed):
        pass  # the events read so far
    sent: dict[str, tuple[str, float]] = {}
    done: dict[str, float] = {}
    failed: dict[str, str] = {}
    for e in browser.events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Network.requestWillBeSent" and part in p["request"]["url"]:
            sent[p["requestId"]] = (p["request"]["url"], p["timestamp"])
        elif m == "Network.loadingFinished":
            done[p["requestId"]] = p["timestamp"]
        elif m == "Network.loadingFailed":
            failed[p["requestId"]] = p.get("errorText", "?")
    order = sorted((r for r in sent if r not in failed), key=lambda r: sent[r][1])
    return ([(sent[r][0], (done[r] - sent[r][1]) * 1000 if r in done else None) for r in order],
            [e for r, e in failed.items() if r in sent])


def patient(browser):
    """A page busy for minutes starves the browser too: its DevTools socket may answer a keepalive
    ping late, which is no reason to drop it."""
    browser.ws.ping_timeout = None
    return browser


def build_optuna(work: str, task: str, jobs: int, path: str) -> None:
    """The jobs of ``task`` as COMPLETE trials of an Optuna study in the SQLite file ``path`` (see the
    module's docstring)."""
    import datetime
    import sqlite3

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution, distribution_to_json

    from gml_ray.store import Store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = Store(work, create=False, read_only=True)
    rows = store.jobs(task)
    curves: dict[int, dict[int, float]] = {}
    for s in store.scalars(task, tags=["acc"]):
        curves.setdefault(s["job_id"], {})[s["step"]] = s["value"]
    store.close()
    space = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "batch-size": CategoricalDistribution([64, 128, 256, 512]),
             "opt": CategoricalDistribution(["sgd", "adam", "adamw"]), "config(epochs)": IntDistribution(5, 30)}
    when = datetime.datetime.fromtimestamp
    trials = []
    for j in rows:
        t = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=j["reward"],
                                      params={k: j["arg_dict"][k] for k in space}, distributions=space,
                                      intermediate_values=curves.get(j["job_id"], {}),
                                      user_attrs={"loss": json.loads(j["latest"])["loss"]})
        t.datetime_start, t.datetime_complete = when(j["started"]), when(j["ended"])
        trials.append(t)
    if os.path.exists(path):
        os.remove(path)
    url = "sqlite:///" + path
    study = optuna.create_study(storage=url, study_name=task, direction="maximize")
    study.add_trial(trials[0])  # optuna's own rows: the form the others are written in
    study_id = study._study_id
    del study
    stamp = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DATETIME on SQLite
    dist = {k: distribution_to_json(d) for k, d in space.items()}
    con = sqlite3.connect(path)
    with con:
        (first,) = con.execute("SELECT MAX(trial_id) FROM trials").fetchone()
        tr, pa, va, iv, ua = [], [], [], [], []
        for n, t in enumerate(trials[1:], 1):
            tid = first + n
            assert all(math.isfinite(v) for v in [t.value, *t.intermediate_values.values()])
            tr.append((tid, n, study_id, "COMPLETE", t.datetime_start.strftime(stamp), t.datetime_complete.strftime(stamp)))
            pa += [(tid, k, space[k].to_internal_repr(v), dist[k]) for k, v in t.params.items()]
            va.append((tid, 0, t.value, "FINITE"))
            iv += [(tid, s, v, "FINITE") for s, v in t.intermediate_values.items()]
            ua += [(tid, k, json.dumps(v)) for k, v in t.user_attrs.items()]
        con.executemany("INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete)"
                        " VALUES (?, ?, ?, ?, ?, ?)", tr)
        con.executemany("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)"
                        " VALUES (?, ?, ?, ?)", pa)
        con.executemany("INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, ?, ?, ?)", va)
        con.executemany("INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value,"
                        " intermediate_value_type) VALUES (?, ?, ?, ?)", iv)
        con.executemany('INSERT INTO trial_user_attributes (trial_id, "key", value_json) VALUES (?, ?, ?)', ua)
    con.close()
    storage = optuna.storages.RDBStorage(url)  # read back with optuna: the bulk rows mean the same trials
    sid = storage.get_study_id_from_name(task)
    assert storage.get_n_trials(sid) == len(trials)
    for k in sorted({0, 1, len(trials) // 2, len(trials) - 1}):
        a, b = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(sid, k)), trials[k]
        got = (a.state, a.value, a.params, a.distributions, a.intermediate_values, a.user_attrs,
               a.datetime_start, a.datetime_complete)
        assert got == (b.state, b.value, b.params, b.distributions, b.intermediate_values, b.user_attrs,
                       b.datetime_start, b.datetime_complete), (k, a, b)
    storage.remove_session()


def ours_once(work: str, task: str, args) -> dict:
    """The task page, served afresh, in a fresh Chromium (see the module's docstring)."""
    from helpers.browser import Chromium, chromium_binary
    from report_scale import PROBE

    out: dict = {"load": load()}
    server, url = serve(work)
    base = url.rsplit("/task", 1)[0]
    try:
        with patient(Chromium(chromium_binary())) as browser:
            browser.call("Page.addScriptToEvaluateOnNewDocument", source=PROBE)
            browser.call("Page.navigate", url=f"{base}/task/{task}")
            ready = wait_for(browser, "!!(window.gmlReport && (window.gmlReport.ready || window.gmlReport.errors.length))",
                             args.timeout)
            info = browser.eval("({ready: window.gmlReport && gmlReport.readyMs, probe: window.__gmlProbe, "
                                "rows: window.gmlReport ? gmlReport.rows().length : 0})", timeout=args.timeout)
            out.update(table=info["probe"]["frame"], plots=info["ready"] if ready else None, rows=info["rows"])
            seen, mine = browser.eval("gmlDashboard.polls"), []
            deadline = time.time() + 30
            while len(mine) < args.polls and time.time() < deadline:
                time.sleep(0.2)
                n = browser.eval("gmlDashboard.polls")
                if n > seen:
                    seen = n
                    mine.append(browser.eval("gmlDashboard.lastPollMs"))
            out["polls"] = mine
            out["errors"] = browser.errors()
        from gml_ray.store import Store

        store = Store(work, create=False, read_only=True)
        rowid = store.last_scalar_rowid()  # where the page's polls start: nothing to send
        store.close()
        first = get(f"{base}/api/task/{task}/changes?epoch=&version=0&rowid=0")
        state, server_ms = (first["epoch"], first["version"], rowid), []
        for _ in range(3):
            time.sleep(1.0)
            ms, c = timed_get(f"{base}/api/task/{task}/changes?epoch={state[0]}&version={state[1]}&rowid={state[2]}")
            server_ms.append(ms)
            state = (c["epoch"], c["version"], c["rowid"])
        out["server"] = server_ms
    finally:
        stop(server)
    return out


def theirs_once(db: str, n_trials: int, args) -> dict:
    """optuna-dashboard on ``db``, started afresh, in a fresh Chromium (see the module's docstring)."""
    from helpers.browser import Chromium, chromium_binary

    out: dict = {"load": load()}
    port = free_port()
    proc = subprocess.Popen([os.path.join(BIN, "optuna-dashboard"), "sqlite:///" + db, "--host", "127.0.0.1",
                             "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                get(base + "/api/meta")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"optuna-dashboard did not start (exit {proc.poll()})") from None
                time.sleep(0.1)
        out.update(content=None, plots=None, seen={}, first=None, refetches=0, unfinished=0, failed=[], polls=[],
                   errors=[], waited=0.0, table=None, table_rows=None, table_waited=0.0)
        t0 = time.perf_counter()
        try:
            with patient(Chromium(chromium_binary())) as browser:
                browser.call("Page.addScriptToEvaluateOnNewDocument", source=OD_PROBE)
                t0 = time.perf_counter()
                browser.call("Page.navigate", url=base + "/dashboard/studies/1")
                probe = wait_for(browser, "window.__odProbe.plotsFrame !== null && window.__odProbe", args.timeout)
                out["waited"] = time.perf_counter() - t0
                if probe is None:  # what it has drawn by now, if its main thread answers at all
                    probe = wait_for(browser, "window.__odProbe", 10) or {}
                out.update(content=probe.get("contentFrame"), plots=probe.get("plotsFrame"), seen=probe.get("seen"))
                if probe.get("plotsFrame") is not None:
                    time.sleep(args.poll_window)  # its own polls
                got, out["failed"] = fetches(browser, "/api/studies/1?after=")
                full = [t for u, t in got if u.endswith("after=0")]
                out["first"] = full[0] if full else None  # its first read of the study
                out["refetches"] = max(0, len(full) - 1)  # ?after=0 again: polls made before the first read came
                out["unfinished"] = sum(1 for _, t in got if t is None)
                out["polls"] = [t for u, t in got if not u.endswith("after=0") and t is not None]
                out["errors"] = browser.errors()
        except Exception as exc:  # noqa: BLE001 - a browser that gave up is a result here
            out["errors"].append(f"study page: {exc!r}"[:300])
            out["waited"] = out["waited"] or time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            with patient(Chromium(chromium_binary())) as browser:  # its trial table: the Smart Selection page
                browser.call("Page.addScriptToEvaluateOnNewDocument", source=OD_PROBE)
                t0 = time.perf_counter()
                browser.call("Page.navigate", url=base + "/dashboard/studies/1/smartSelection")
                rows = wait_for(browser, "window.__odProbe.rowsFrame !== null && window.__odProbe", args.timeout)
                out["table"] = rows["rowsFrame"] if rows else None
                out["table_rows"] = rows["nrows"] if rows else None
        except Exception as exc:  # noqa: BLE001
            out["errors"].append(f"smartSelection page: {exc!r}"[:300])
        out["table_waited"] = time.perf_counter() - t0
        out["server"] = []
        for _ in range(3):  # each past its trial cache's 10 s: what a poll costs the server
            time.sleep(11)
            try:
                out["server"].append(timed_get(f"{base}/api/studies/1?after={n_trials}", args.timeout)[0])
            except OSError:  # (TimeoutError is one)
                out["server"].append(None)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secs(v: float | None, waited: float | None = None) -> str:
    return f"{v / 1000:.2f} s" if v is not None else f"not within {waited or 0:.0f} s"


def versus(args) -> None:
    from report_scale import build_store

    from gml_ray.store import Store

    work = args.store or tempfile.mkdtemp(prefix="gml-dash-versus-")
    task = "big"
    if not os.path.exists(os.path.join(work, "gml.db")):
        t0 = time.perf_counter()
        build_store(work, task, args.jobs, 50, ["acc", "loss"], log_lines=0).close()
        print(f"built {args.jobs} jobs in {time.perf_counter() - t0:.0f} s: {work}", flush=True)
    store = Store(work, create=False, read_only=True)
    n_jobs = len(store.jobs(task, columns=("status",)))
    store.close()
    if n_jobs != args.jobs:
        sys.exit(f"{work} holds {n_jobs} jobs, not {args.jobs} (--scale adds jobs): pass a fresh --store")
    db = os.path.join(work, "optuna.db")
    if not os.path.exists(db):
        t0 = time.perf_counter()
        build_optuna(work, task, n_jobs, db)
        print(f"optuna storage: {n_jobs} trials written and checked in {time.perf_counter() - t0:.0f} s: {db}", flush=True)
    have = shutil.which("optuna-dashboard", path=BIN)
    if not have:
        print(f"optuna-dashboard is not installed in {BIN} (pip install optuna-dashboard): ours only")
    ours: list[dict] = []
    theirs: list[dict] = []
    for r in range(args.repeats):
        for side in (("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")):
            if side == "ours":
                o = ours_once(work, task, args)
                ours.append(o)
                print(f"run {r + 1}, ours ({o['load']}): table painted {secs(o['table'])}, every plot drawn "
                      f"{secs(o['plots'], args.timeout)}; {o['rows']} rows; page polls "
                      f"{', '.join(f'{p:.0f}' for p in o['polls'])} ms; a changes request "
                      f"{', '.join(f'{p:.0f}' for p in o['server'])} ms; errors {o['errors'][:3]}", flush=True)
            elif have:
                t = theirs_once(db, n_jobs, args)
                theirs.append(t)
                seen = {k: round(v / 1000, 2) for k, v in (t.get("seen") or {}).items()}
                print(f"run {r + 1}, optuna-dashboard ({t['load']}): first content (history plot) "
                      f"{secs(t['content'], t['waited'])}, every plot drawn {secs(t['plots'], t['waited'])} "
                      f"(each plot, s: {seen}); its first ?after=0 fetch {secs(t['first'], t['waited'])}, {t['refetches']} more "
                      f"?after=0 fetches, {t['unfinished']} unanswered when it was closed, "
                      f"{len(t['failed'])} failed {sorted(set(t['failed']))}, "
                      f"its polls {', '.join(f'{p / 1000:.1f}' for p in t['polls'])} s; polls from beside it "
                      f"{', '.join(secs(p, args.timeout) for p in t['server'])}; trial table (Smart Selection) {secs(t['table'], t['table_waited'])}"
                      f" ({t['table_rows']} rows in the DOM); errors {t['errors'][:3]}", flush=True)

    def col(rs: list[dict], key: str, unit: str = "s") -> str:
        each = [r.get(key) if isinstance(r.get(key), list) else [r.get(key)] for r in rs]
        v = [x for e in each for x in e if x is not None]
        missing = sum(1 for e in each if not e or None in e)
        return spread(v, unit) + (f" ({missing} of {len(rs)} not there)" if missing else "")

    print(f"\n{n_jobs} jobs/trials, median [min-max] of {args.repeats} runs each ({load()}):")
    print("| | ours (gml-ray ctl serve) | optuna-dashboard |\n|---|---|---|")
    print(f"| first content painted | {col(ours, 'table')} (job table) | {col(theirs, 'content')} (history plot) |")
    print(f"| trials table painted | {col(ours, 'table')} | {col(theirs, 'table')} (Smart Selection page) |")
    print(f"| every plot drawn | {col(ours, 'plots')} | {col(theirs, 'plots')} |")
    print(f"| a poll, as the page times it | {col(ours, 'polls', 'ms')} | {col(theirs, 'polls')} |")
    print(f"| a poll, from a client beside it | {col(ours, 'server', 'ms')} | {col(theirs, 'server')} |")
    print(f"| its first data request (theirs: ?after=0) | - | {col(theirs, 'first')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--browser", action="store_true", help="throughput: also headless Chromium on the task list")
    ap.add_argument("--scale", action="store_true", help="the task page of a big synthetic task")
    ap.add_argument("--store", help="--scale: keep the synthetic store here (reused if it holds one)")
    ap.add_argument("--polls", type=int, default=None, help="page polls timed (--scale: 10, else 5)")
    ap.add_argument("--tasks", type=int, default=None, metavar="N", help="the task list of N synthetic tasks")
    ap.add_argument("--optuna-dashboard", action="store_true", help="the task page next to optuna-dashboard's")
    ap.add_argument("--timeout", type=float, default=300.0, help="s to wait for a page (--tasks, --optuna-dashboard)")
    ap.add_argument("--poll-window", type=float, default=60.0, help="s to watch optuna-dashboard's own polls")
    args = ap.parse_args()
    args.polls = args.polls or (10 if args.scale else 5)
    if args.tasks:
        task_list(args)
    elif args.optuna_dashboard:
        args.jobs = args.jobs or 10_000
        versus(args)
    elif args.scale:
        args.jobs = args.jobs or 10_000
        scale(args)
    else:
        args.jobs = args.jobs or 300
        throughput(args)


if __name__ == "__main__":
    main()
