"""`ctl report`: the HTML page built from a store, checked in headless Chromium over DevTools.

Chromium is started by the tests (`--headless --no-sandbox --disable-gpu
--disable-background-networking`) and ended by its process group id; tests that need it skip
when no `chromium` is installed (CI installs it). The DevTools client below is also used by
benchmarks/report_scale.py.
"""
from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
import typer
from helpers.stores import make_store
from typer.testing import CliRunner

from gml_ray.errors import UserError
from gml_ray.views.report import collect, write_report

BIN = os.path.dirname(sys.executable)


# ---- a small DevTools-protocol client for headless Chromium --------------------------------------

def chromium_binary() -> str | None:
    for name in (os.environ.get("GML_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol (``websockets``' sync client).

    Records console errors, uncaught exceptions, error log entries and every network request of
    the page. ``close()`` ends the browser's whole process group (started with its own session).
    """

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

    def __init__(self, binary: str, width: int = 1400, height: int = 1000) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="gml-chromium-")
        self.proc = subprocess.Popen(
            [binary, *self.FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "--no-first-run", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = os.path.join(self.profile, "DevToolsActivePort")
            deadline = time.time() + 60
            while True:
                if os.path.exists(port_file):
                    lines = open(port_file).read().split()
                    if len(lines) >= 2:
                        break
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"chromium did not start (exit {self.proc.poll()})")
                time.sleep(0.05)
            port = int(lines[0])
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            page = next(p for p in pages if p["type"] == "page")
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20).__enter__()
        except BaseException:
            self.close()
            raise
        self._ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, timeout: float = 120, **params):
        i = next(self._ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression: str, timeout: float = 120):
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                  for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        """URLs the page asked for; blob: and data: URLs are left out (made by the page itself)."""
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"
                and not e["params"]["request"]["url"].startswith(("blob:", "data:"))]

    def open_report(self, path: str, timeout: float = 60) -> dict:
        """Load a report; wait until it says it is drawn. Rows (in the table's list; dom_rows: drawn),
        traces, jobs with a curve of their own, parallel-coordinates lines, errors, requests."""
        self.events.clear()
        url = "file://" + os.path.abspath(path)
        t0 = time.perf_counter()
        self.call("Page.navigate", url=url)
        deadline = time.time() + timeout
        while not self.eval("!!(window.gmlReport && (window.gmlReport.ready || window.gmlReport.errors.length))"):
            if time.time() > deadline:
                raise AssertionError(f"report not drawn in {timeout}s: {self.errors()}")
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        info = self.eval("""({
            ready_ms: window.gmlReport.readyMs, page_errors: window.gmlReport.errors,
            rows: gmlReport.rows().length,
            dom_rows: document.querySelectorAll('#jobs tbody tr[data-row]').length,
            traces: Array.from(document.querySelectorAll('.curve-plot')).map(d => (d.data || []).length),
            own: gmlReport.ownCurves(),
            tags: Array.from(document.querySelectorAll('.curve-plot')).map(d => d.dataset.tag),
            parcoords: (gmlReport.parcoords() || {}).lines,
            best_traces: (document.getElementById('best-plot').data || []).length,
            summary: document.getElementById('summary').innerText,
        })""")
        info.update(wall_s=wall, errors=self.errors() + info.pop("page_errors"),
                    requests=[u for u in self.requests() if u != url])
        return info

    def screenshot(self, path: str) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close", timeout=5)  # the quick way out; the group is ended below
                self.proc.wait(5)
            except Exception:  # noqa: BLE001
                pass
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass
        pgid = self.proc.pid  # the browser leads its own process group (start_new_session)
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            deadline = time.time() + wait  # and its helpers (renderer, zygote, crashpad)
            while time.time() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                continue
            break
        if self.proc.poll() is None:
            self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    binary = chromium_binary()
    if not binary:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    pytest.importorskip("websockets.sync.client", reason="the DevTools client needs websockets>=12")
    with Chromium(binary) as b:
        yield b


# ---- the data the page embeds ----------------------------------------------------------------

def test_collect_holds_every_job_curve_log_and_the_best(tmp_path):
    store = make_store(tmp_path, jobs=4, steps=5)
    store.add_scalars("t", [(2, "acc", 5, float("nan"), None, 1), (2, "loss", 5, "oops", None, 1)])
    data = collect(store, "t")
    assert [j["name"] for j in data["jobs"]] == ["job_0001", "job_0002", "job_0003", "job_0004"]
    assert data["tags"] == ["acc", "loss"] and data["arg_keys"] == ["lr", "opt"]
    assert data["best"] == 3 and data["counts"] == {"FINISHED": 4}
    assert len(data["curves"]["acc"]) == 4 and len(data["curves"]["loss"]) == 4
    idx, steps, values = data["curves"]["acc"][1]
    assert idx == 1 and steps is None and values == pytest.approx([0.2, 0.21, 0.22, 0.23, 0.24])  # NaN left out
    assert data["jobs"][1]["latest"] == ["nan", "oops"]  # the table shows the last value as reported
    assert data["jobs"][0]["logs"]["stdout"].endswith("END OF JOB 1\n")
    json.dumps(data, allow_nan=False)  # no NaN/inf in the page's JSON


def test_curves_use_the_latest_attempt_and_thin_long_series(tmp_path, monkeypatch):
    import gml_ray.views.report as report
    store = make_store(tmp_path, jobs=1, steps=0, tags=("acc",))
    store.add_scalars("t", [(1, "acc", s, 1.0, None, 1) for s in range(3)])
    store.add_scalars("t", [(1, "acc", s * 2, float(s), None, 2) for s in range(50)])
    monkeypatch.setattr(report, "MAX_POINTS", 10)
    data = report.collect(store, "t")
    (_, steps, values), = data["curves"]["acc"]
    assert len(values) == 10 and steps[0] == 0 and steps[-1] == 98 and values[-1] == 49.0


def test_thinning_keeps_a_curves_extremes():
    from gml_ray.views.report import thin_curve
    values = [1.0] * 5000
    values[1234], values[3000] = 9.0, -7.0  # one spike, one dip
    steps, kept = thin_curve(list(range(5000)), values, 400)
    assert len(kept) <= 400 and steps == sorted(steps) and (steps[0], steps[-1]) == (0, 4999)
    assert 1234 in steps and 3000 in steps and max(kept) == 9.0 and min(kept) == -7.0


def test_unknown_scalar_is_a_user_error_naming_the_known_ones(tmp_path):
    store = make_store(tmp_path, jobs=2)
    with pytest.raises(UserError, match=r"no scalar 'acc2' \(its scalars: acc, loss\)"):
        write_report(store, "t", str(tmp_path / "r.html"), tags=["acc", "acc2"])
    with pytest.raises(UserError, match="no task named 'nope'"):
        write_report(store, "nope", str(tmp_path / "r.html"))


def test_report_has_no_external_references_and_escapes_user_text(tmp_path):
    evil = "</script><script>window.pwned=1</script><!--"
    store = make_store(tmp_path, jobs=2, args=lambda i: {"name": evil, "x": i})
    info = write_report(store, "t", str(tmp_path / "r.html"))
    from plotly.offline import get_plotlyjs
    page = open(info.path, encoding="utf-8").read()
    # the data and plotly's bundled JS are inline, gzip-compressed in base64 (nothing a script can end on)
    packed = {m.group(1): m.group(2) for m in re.finditer(
        r'<script type="application/gzip\+base64" id="([\w-]+)">([A-Za-z0-9+/=]*)</script>', page)}
    unpack = {k: gzip.decompress(base64.b64decode(v)).decode() for k, v in packed.items()}
    assert unpack["plotly-js"] == get_plotlyjs()
    assert json.loads(unpack["gml-data"])["jobs"][0]["args"][0] == evil
    assert json.loads(unpack["gml-logs"])[1]["stdout"].endswith("END OF JOB 2\n")
    ours = page
    for v in packed.values():
        ours = ours.replace(v, "")
    assert ours.count("<script") == 5 and evil not in ours  # data, curves, log tails, page script, plotly
    for marker in ("src=", "href=", "http:", "https:", "<link", "@import", "url("):
        assert marker not in ours


# ---- the page in Chromium -----------------------------------------------------------------------

TRAIN = """
import sys, time
from gml_ray import SummaryWriter
x, epochs = float(sys.argv[1]), int(sys.argv[2])
w = SummaryWriter()
for e in range(epochs):
    w.add_scalar("acc", x * (e + 1), e)
    w.add_scalar("loss", 1.0 / (e + 1 + x), e)
    print(f"epoch {e} acc {x * (e + 1):.3f}", flush=True)
print("training done", x, flush=True)
"""

CONFIG = """
task:
  template: "python train.py {x} {epochs}"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.4, 0.2, 0.3]}
    - {type: Categorical, name: epochs, data: [4]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
pavi: {scalars: [loss]}
"""


def test_report_of_a_real_run_in_chromium(run_task, browser, tmp_path):
    run = run_task(CONFIG, {"train.py": TRAIN}, task="rep")
    jobs = run.jobs
    assert [j["status"] for j in jobs] == ["FINISHED"] * 4
    info = write_report(run.store, "rep", str(tmp_path / "rep.html"))
    assert info.tags == ["acc", "loss"] and info.jobs == 4

    page = browser.open_report(info.path)
    assert page["errors"] == [] and page["requests"] == []
    assert page["rows"] == page["dom_rows"] == 4  # one row per job
    assert page["tags"] == ["acc", "loss"] and page["traces"] == [4, 4]  # one trace per job
    assert page["parcoords"] == 4 and page["best_traces"] == 2  # a line per job with a reward
    assert "rep" in page["summary"] and "FINISHED 4" in page["summary"] and "job_0002" in page["summary"]
    shot = browser.screenshot(str(tmp_path / "rep.png"))
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000

    # best first; the best curve is the red one; a click on a row shows the job's log tail
    first = browser.eval("document.querySelector('#jobs tbody tr[data-row]').cells[0].textContent")
    assert first == "job_0002"
    best = browser.eval("document.getElementById('curve-0').data.filter(t => t.meta === 1).map(t => [t.name, t.line.width])")
    assert best == [["job_0002 (best)", 3.5]]
    browser.eval("document.querySelectorAll('#jobs tbody tr[data-row]')[2].click(), gmlReport.detail()")
    detail = browser.eval("document.getElementById('detail').innerText")
    clicked = browser.eval("document.querySelectorAll('#jobs tbody tr[data-row]')[2].cells[0].textContent")
    assert clicked in detail and "training done" in detail and "epoch 3" in detail

    # sort by a column, filter by text and by a comparison
    browser.eval("document.querySelectorAll('#jobs th')[0].click()")
    order = browser.eval("Array.from(document.querySelectorAll('#jobs tbody tr[data-row]')).map(r => r.cells[0].textContent)")
    assert order == ["job_0001", "job_0002", "job_0003", "job_0004"]
    assert browser.eval("gmlReport.filter('x>=0.3')") == 2
    visible = browser.eval("Array.from(document.querySelectorAll('#jobs tbody tr[data-row]')).map(r => r.cells[0].textContent)")
    assert visible == ["job_0002", "job_0004"] == browser.eval("gmlReport.rows()")
    assert browser.eval("gmlReport.parcoords().lines") == 2  # the parallel coordinates follow the filter
    assert browser.eval("document.getElementById('curve-0').data.filter(t => t.visible !== false).length") == 2
    assert browser.eval("gmlReport.filter('status=FINISHED job_0003')") == 1
    assert browser.errors() == []


def test_snapshot_of_a_running_task(tmp_path, browser):
    store = make_store(tmp_path, jobs=5, status="RUNNING", running=2)
    store.add_job("t", 6, "job_0006", {"lr": 1, "opt": "sgd"}, {"lr": 1, "opt": "sgd"}, None,
                  str(tmp_path / "nowhere"))  # PENDING, no log, no scalars
    info = write_report(store, "t", str(tmp_path / "snap.html"))
    page = browser.open_report(info.path)
    assert page["errors"] == [] and page["requests"] == []
    assert page["rows"] == 6 and page["traces"] == [5, 5]
    assert "RUNNING" in page["summary"] and "snapshot" in page["summary"]
    durations = browser.eval("Array.from(document.querySelectorAll('#jobs tbody tr[data-row]')).map(r => [r.cells[0].textContent, r.cells[r.cells.length - 2].textContent])")
    by_name = dict(durations)
    assert by_name["job_0006"] == "-" and by_name["job_0005"] != "-"


def test_a_task_without_rewards_or_scalars_still_renders(tmp_path, browser):
    store = make_store(tmp_path, jobs=3, steps=0, logs=False)
    for i in (1, 2, 3):
        store.update_job("t", i, reward=None, status="ERROR", message="boom")
    page = browser.open_report(write_report(store, "t", str(tmp_path / "e.html")).path)
    assert page["errors"] == [] and page["rows"] == 3 and page["traces"] == [0, 0]
    assert "no job has reported acc" in page["summary"]


@pytest.mark.slow
def test_thousands_of_jobs_stay_usable(tmp_path, browser):
    n = 2000
    store = make_store(tmp_path, jobs=n, steps=10, logs=False,
                       args=lambda i: {"lr": 10 ** (-4 + 3 * (i % 97) / 97), "bs": [32, 64, 128][i % 3], "opt": f"o{i % 5}"})
    info = write_report(store, "t", str(tmp_path / "big.html"), max_traces=50)
    page = browser.open_report(info.path, timeout=120)
    assert page["errors"] == [] and page["requests"] == []
    assert page["rows"] == n and page["dom_rows"] < 150  # the table draws only the rows in view
    # the 50 best jobs have a curve each (the best in red; the others share a trace per colour),
    # the other jobs are a median in a band
    assert page["own"] == [50, 50] and page["traces"] == [3 + 9 + 1] * 2
    assert page["parcoords"] == n
    assert browser.eval("document.getElementById('curve-0').data.filter(t => t.meta === -1).map(t => t.name)")[1:] == [
        f"{n - 50} other jobs (10-90%)", f"{n - 50} other jobs (median)"]
    assert page["ready_ms"] < 30_000, page
    assert browser.eval("gmlReport.filter('bs=64 opt=o1')") == len([i for i in range(1, n + 1) if i % 3 == 1 and i % 5 == 1])
    band = browser.eval("document.getElementById('curve-0').data.filter(t => t.meta === -1)[2].name")
    assert band.startswith(f"{len([i for i in range(1, n - 49) if i % 3 == 1 and i % 5 == 1])} other jobs")
    # scrolled to the end, the table draws the last rows of its (sorted, filtered) list
    last = browser.eval("""new Promise(ok => { const w = document.querySelector('.tablewrap'); w.scrollTop = w.scrollHeight;
        setTimeout(() => ok(Array.from(document.querySelectorAll('#jobs tbody tr[data-row]')).map(r => r.cells[0].textContent).pop()), 300); })""")
    assert last == browser.eval("gmlReport.rows().pop()")
    pc = "gmlReport.parcoords()"
    assert browser.eval(f"{pc}.lines") == len([i for i in range(1, n + 1) if i % 3 == 1 and i % 5 == 1])
    assert browser.eval(f"{pc}.brush(0, -2.5, 0), {pc}.brushed()") < browser.eval(f"{pc}.lines")  # an lr range
    browser.eval("gmlReport.select(5)")  # a job without a trace of its own gets one while selected
    assert browser.eval("document.getElementById('curve-0').data.some(t => t.meta === -2)")
    assert browser.errors() == []


# ---- the command line ---------------------------------------------------------------------------

def _ctl_app():
    """A ctl app with only this module's commands: what `register(ctl_app)` adds to gml-ray."""
    from gml_ray.cli.report_cmds import register
    app = typer.Typer()
    register(app)
    return app


def test_report_command(tmp_path):
    make_store(tmp_path, jobs=3)
    runner = CliRunner()
    out = tmp_path / "r.html"
    result = runner.invoke(_ctl_app(), ["report", "--task", "t", "--workdir", str(tmp_path / "wd"),
                                        "--out", str(out), "--scalars", "loss"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "3 jobs" in result.output and "scalars: loss" in result.output
    assert out.exists() and "gml-data" in out.read_text()
    bad = runner.invoke(_ctl_app(), ["report", "--task", "t", "--workdir", str(tmp_path / "wd"),
                                     "--scalars", "nope"])
    assert isinstance(bad.exception, UserError) and "no scalar 'nope'" in str(bad.exception)


def test_gml_ray_ctl_report_end_to_end(tmp_path):
    """The installed `gml-ray` with gml_ray/cli/main.py wired to `register(ctl_app)`."""
    make_store(tmp_path, jobs=3)
    env = dict(os.environ, COLUMNS="200")
    ok = subprocess.run([os.path.join(BIN, "gml-ray"), "ctl", "report", "-t", "t", "-w", "wd"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "t.report.html").exists() and "3 jobs" in ok.stdout
    bad = subprocess.run([os.path.join(BIN, "gml-ray"), "ctl", "report", "-t", "t", "-w", "wd",
                          "--scalars", "acc,nope"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "error: task t has no scalar 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_pbt_task_shows_where_each_job_came_from_and_each_members_args_over_steps(tmp_path, browser):
    store = make_store(tmp_path, jobs=4, steps=6, args=lambda i: {"lr": 0.1 * i, "opt": "sgd"})
    with store.transaction():  # job 2 was exploited at step 3: job 4 continued job 3 from there
        store.update_job("t", 2, status="EARLY_STOPPED", message="exploited: continues as job_0004")
        store.update_job("t", 4, parent_id=3, parent_step=3)
    info = write_report(store, "t", str(tmp_path / "pbt.html"))
    page = browser.open_report(info.path)
    assert page["errors"] == [], page["errors"]
    head = browser.eval("Array.from(document.querySelectorAll('#jobs thead th')).map(t => t.textContent)")
    assert "from" in head
    cells = browser.eval("Object.fromEntries(Array.from(document.querySelectorAll('#jobs tbody tr[data-row]'))"
                         ".map(r => [r.cells[0].textContent.trim(), r.cells[2].textContent]))")
    assert cells["job_0004"] == "job_0003@3" and cells["job_0001"] == "-"
    assert browser.eval("document.getElementById('lineage-section').hidden") is False
    # one plot per numeric arg (lr); job_0004's line: job_0003's lr to step 3, then its own
    traces = browser.eval("Array.from(document.querySelectorAll('#lineage .plot')).map(d => d.data.map(t => [t.name, t.x, t.y]))")
    assert len(traces) == 1
    line = {name: (x, y) for name, x, y in traces[0]}["job_0004"]
    assert line == ([0, 3, 4, 5], [pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.4), pytest.approx(0.4)])
