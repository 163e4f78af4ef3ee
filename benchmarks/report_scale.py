"""HTML report at scale: a synthetic task of many jobs, its report's size and load time in Chromium.

    python benchmarks/report_scale.py [--jobs 10000] [--steps 50] [--tags acc,loss] [--log-lines 40]
                                      [--runs 5] [--store DIR] [--keep PAGE] [--compare PAGE ...]
    python benchmarks/report_scale.py --html PAGE [PAGE ...] [--runs 5]

Builds a store directly (Store.add_job / add_scalars: no jobs run) with ``--jobs`` finished jobs,
each with 4 args, ``--steps`` values of each tag, and a stdout.log of ``--log-lines`` lines (kept
in ``--store DIR`` and reused when that directory already holds it); times ``write_report``; then
opens the page ``--runs`` times, each in a fresh headless Chromium (the test suite's DevTools
client), and prints per run and as median [min-max]:

* table usable: ms from navigation until the first frame painted after the job table has rows
  (a probe the benchmark injects before the page loads: a MutationObserver on ``#jobs tbody``
  and a requestAnimationFrame; it needs nothing from the page, so old pages measure the same way);
* all plots: ms from navigation until the page says every plot is drawn (``gmlReport.readyMs``;
  a page that draws plots lazily must still draw them all, unprompted, for this to be set);
* the longest main-thread task after the table is usable (a PerformanceObserver on long tasks),
  and the time a filter and a re-sort of the table take.

``--html PAGE ...`` times existing pages instead (e.g. one written by an older version), and
``--compare PAGE ...`` times them along with the new page; several pages are loaded in turn
(A B A B ...), so that each sees the same load on a shared machine. Needs ``chromium`` on PATH
(or GML_CHROMIUM).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
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
            rows, best, latest = [], None, {}
            for s in range(steps):
                acc = quality * (1 - math.exp(-(s + 1) / 6)) + rng.gauss(0, 0.01)
                best = acc if best is None else max(best, acc)
                for tag in tags:
                    value = acc if tag == tags[0] else 1.0 / (s + 1) + rng.gauss(0, 0.01)
                    rows.append((i, tag, s, value, int((t0 + i * 2 + s * 0.05) * 1000), 1))
                    latest[tag] = value
            store.add_scalars(task, rows)
            # as the scheduler writes them: the reward and each tag's latest value in the job's row
            store.update_job(task, i, reward=best, started=t0 + i * 2, ended=t0 + i * 2 + 1.8,
                             node="10.0.0.1 abcd1234", status=status, latest=json.dumps(latest))
    return store


PROBE = """(() => {
  const P = window.__gmlProbe = {rows: null, frame: null, long: []};
  try { new PerformanceObserver(l => l.getEntries().forEach(e => P.long.push([e.startTime, e.duration])))
    .observe({type: 'longtask', buffered: true}); } catch (e) { P.long = null; }
  const seen = () => { if (P.rows !== null || !document.querySelector('#jobs tbody tr')) return false;
    P.rows = performance.now(); requestAnimationFrame(() => { P.frame = performance.now(); }); return true; };
  const mo = new MutationObserver(() => { if (seen()) mo.disconnect(); });
  mo.observe(document, {childList: true, subtree: true});
})();"""


def measure(page: str, timeout: float = 300) -> dict:
    """One load of ``page`` in a fresh headless Chromium: the figures the module docstring lists.

    Reads only what every version of the page has (``gmlReport.ready/readyMs/filter/sort``, the
    table's DOM), so pages written by older versions measure the same way.
    """
    from helpers.browser import Chromium, chromium_binary

    with Chromium(chromium_binary()) as browser:
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=PROBE)
        browser.call("Page.navigate", url="file://" + os.path.abspath(page))
        deadline = time.time() + timeout
        while not browser.eval("!!(window.gmlReport && (window.gmlReport.ready || window.gmlReport.errors.length))"):
            if time.time() > deadline:
                raise AssertionError(f"report not drawn in {timeout}s: {browser.errors()}")
            time.sleep(0.05)
        info = browser.eval("""({ready: gmlReport.readyMs, probe: window.__gmlProbe, errors: gmlReport.errors,
            dom_rows: document.querySelectorAll('#jobs tbody tr[data-row]').length,
            traces: Array.from(document.querySelectorAll('.curve-plot')).map(d => (d.data || []).length)})""")
        probe = info["probe"]
        longest = max((d for t, d in probe["long"] or [] if t + d > (probe["frame"] or 0)), default=0.0)
        filt = browser.eval("(() => { const t0 = performance.now(); gmlReport.filter('opt=adam lr<0.01'); "
                            "return performance.now() - t0; })()")
        sort = browser.eval("(() => { const t0 = performance.now(); gmlReport.sort('job', -1); "
                            "return performance.now() - t0; })()")
        return {"table_ms": probe["frame"], "plots_ms": info["ready"], "longest_ms": longest,
                "filter_ms": filt, "sort_ms": sort, "dom_rows": info["dom_rows"], "traces": info["traces"],
                "errors": browser.errors() + info["errors"],
                "requests": [u for u in browser.requests() if not u.startswith("file://")]}


def spread(values: list[float]) -> str:
    """``median [min-max]`` of some timings in ms, printed in seconds."""
    v = sorted(values)
    return f"{statistics.median(v) / 1000:.2f}s [{v[0] / 1000:.2f}-{v[-1] / 1000:.2f}]"


def report_on(pages: list[str], runs: int) -> None:
    """Time each of ``pages`` ``runs`` times, the pages in turn (A B A B ...: on a shared, noisy
    machine each page then sees the same load), and print each run and each page's medians."""
    results: dict[str, list[dict]] = {page: [] for page in pages}
    for page in pages:
        print(f"{page}: {os.path.getsize(page) / 1e6:.1f} MB")
    for run in range(runs):
        for page in pages:
            r = measure(page)
            results[page].append(r)
            print(f"  {os.path.basename(page)} run {run + 1}: table usable {r['table_ms'] / 1000:.2f}s, "
                  f"all plots {r['plots_ms'] / 1000:.2f}s, longest task after the table {r['longest_ms']:.0f} ms, "
                  f"filter {r['filter_ms']:.0f} ms, sort {r['sort_ms']:.0f} ms; {r['dom_rows']} table rows "
                  f"in the DOM, curve traces {r['traces']}; console errors {len(r['errors'])}, "
                  f"network requests {len(r['requests'])}", flush=True)
            for e in r["errors"][:3]:
                print("    error:", e[:300])
    for page, rs in results.items():
        if rs:
            print(f"{os.path.basename(page)} ({os.path.getsize(page) / 1e6:.1f} MB), median [min-max] of "
                  f"{len(rs)}: table usable {spread([r['table_ms'] for r in rs])}, "
                  f"all plots {spread([r['plots_ms'] for r in rs])}, "
                  f"longest task {spread([r['longest_ms'] for r in rs])}, "
                  f"filter {spread([r['filter_ms'] for r in rs])}, sort {spread([r['sort_ms'] for r in rs])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--tags", default="acc,loss")
    ap.add_argument("--log-lines", type=int, default=40)
    ap.add_argument("--runs", type=int, default=5, help="page loads to time (each in a fresh browser)")
    ap.add_argument("--store", help="keep the synthetic store here (reused if it already holds one)")
    ap.add_argument("--keep", help="also copy the report here")
    ap.add_argument("--html", nargs="+", help="only time these existing pages (in turn)")
    ap.add_argument("--compare", nargs="+", help="existing pages to time in turn with the new one")
    args = ap.parse_args()
    tags = [t for t in args.tags.split(",") if t]

    from helpers.browser import chromium_binary

    if args.html:
        report_on(args.html, args.runs)
        return
    from gml_ray.store import Store
    from gml_ray.views.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.store or os.path.join(tmp, "wd")
        t0 = time.perf_counter()
        if os.path.exists(os.path.join(work_dir, "tasks", "scale")):
            store = Store(work_dir)
            print(f"store: reusing {work_dir}")
        else:
            store = build_store(work_dir, "scale", args.jobs, args.steps, tags, args.log_lines)
        print(f"store: {len(store.jobs('scale'))} jobs, {store.count_scalars('scale')} scalars "
              f"({time.perf_counter() - t0:.1f}s)")
        out = os.path.join(tmp, "scale.report.html")
        info = write_report(store, "scale", out)
        print(f"report: {info.size / 1e6:.1f} MB written in {info.seconds:.2f}s")
        if args.keep:
            shutil.copy(out, args.keep)
        if not chromium_binary():
            print("chromium not found: load time not measured")
            return
        report_on([out] + (args.compare or []), args.runs)


if __name__ == "__main__":
    main()
