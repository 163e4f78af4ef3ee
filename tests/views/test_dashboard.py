"""`gml-ray ctl serve`: the live dashboard, started as a subprocess (`--port 0`: the URL it prints
says where), its API's deltas, its guard, a read-only work dir, and the page in headless Chromium
following a real run (the DevTools client of test_report.py)."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from helpers import write_files
from helpers.stores import make_store

from gml_ray.errors import UserError
from gml_ray.store import Store
from gml_ray.views.live import TaskLive
from gml_ray.views.report import collect

BIN = os.path.dirname(sys.executable)


class Served:
    """`gml-ray ctl serve ARGS` running; ``url`` is what it printed. Ended by its pid."""

    def __init__(self, *args: str, cwd, prefix: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([*prefix, os.path.join(BIN, "gml-ray"), "ctl", "serve", "--port", "0", *args],
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, COLUMNS="300"))
        line = self.proc.stdout.readline()  # blocks until it listens (or exits)
        found = re.search(r"http://\S+", line)
        if not found:
            self.stop()
            raise AssertionError(f"no URL printed: {line!r} {self.proc.stderr.read()}")
        self.url = found.group(0)
        parts = urllib.parse.urlsplit(self.url)
        self.base = f"http://127.0.0.1:{parts.port}"
        self.token = urllib.parse.parse_qs(parts.query).get("token", [None])[0]

    def get(self, path: str, headers: dict | None = None) -> tuple[int, str, dict]:
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def json(self, path: str) -> dict:
        status, body, _ = self.get(path)
        assert status == 200, body
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def test_the_api_sends_only_what_changed(tmp_path):
    store = make_store(tmp_path, jobs=3, status="RUNNING", running=1)
    served = Served("--workdir", "wd", "--task", "t", cwd=tmp_path)
    try:
        assert served.url.endswith("/task/t") and served.token is None
        first = served.json("/api/task/t/changes")  # a client of no epoch is told to load the page
        assert first["reload"] and first["summary"]["counts"] == {"FINISHED": 2, "RUNNING": 1}
        state = f"epoch={first['epoch']}&version={first['version']}&rowid={store.last_scalar_rowid()}"
        time.sleep(0.6)
        quiet = served.json(f"/api/task/t/changes?{state}")
        assert not quiet["reload"] and quiet["jobs"] == [] and quiet["scalars"] == []
        # a run writes: a new job, two scalars, one job ends
        now = time.time()
        store.add_job("t", 4, "job_0004", {"lr": 0.5, "opt": "sgd"}, {"lr": 0.5, "opt": "sgd"}, "cmd",
                      str(tmp_path / "wd" / "j4"), status="RUNNING")
        store.add_scalars("t", [(4, "acc", 0, 0.9, int(now * 1000), 1), (3, "loss", 6, 0.01, int(now * 1000), 1)])
        store.update_job("t", 3, status="FINISHED", ended=now, reward=0.8)
        time.sleep(0.6)
        delta = served.json(f"/api/task/t/changes?{state}")
        assert [i for i, _ in delta["jobs"]] == [2, 3]  # job_0003 (changed) and job_0004 (new): no others
        assert delta["jobs"][0][1]["status"] == "FINISHED" and delta["jobs"][0][1]["reward"] == 0.8
        assert delta["jobs"][1][1]["name"] == "job_0004" and delta["jobs"][1][1]["args"] == [0.5, "sgd"]
        assert delta["scalars"] == [[3, 0, 0, 0.9, 1], [2, 1, 6, 0.01, 1]]  # [job, tag, step, value, attempt]
        assert delta["summary"]["counts"] == {"FINISHED": 3, "RUNNING": 1} and delta["summary"]["best"] == 2
        again = served.json(f"/api/task/t/changes?epoch={delta['epoch']}&version={delta['version']}&rowid={delta['rowid']}")
        assert again["jobs"] == [] and again["scalars"] == [] and again["version"] == delta["version"]
        assert served.json("/api/task/t/changes?epoch=other&version=1&rowid=0")["reload"]  # another server's state
        tasks = served.json("/api/tasks")
        assert [t["name"] for t in tasks["tasks"]] == ["t"] and tasks["tasks"][0]["counts"]["FINISHED"] == 3
        assert served.json(f"/api/tasks?epoch={tasks['epoch']}&version={tasks['version']}")["tasks"] == []
        status, body, _ = served.get("/api/task/t/log/0")
        assert status == 200 and "END OF JOB 1" in json.loads(body)["stdout"]
        assert served.get("/task/nope")[0] == 404 and served.get("/api/task/t/log/99")[0] == 404
        assert served.get("/api/task/t/changes?version=abc")[0] == 400  # a hand-made URL, not a 500
        assert served.get("/api/tasks?version=1.5")[0] == 400
        assert served.get("/", {"Host": "evil.example:80"})[0] == 403  # a local bind answers only as localhost
        page = served.get("/task/t")[1]
        assert 'id="gml-data"' in page and "/static/plotly-" in page and "/static/dashboard-" in page
        assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere
        js = re.search(r'src="(/static/plotly-[^"]+)"', page).group(1)
        status, _, headers = served.get(js, {"Accept-Encoding": "gzip"})
        assert status == 200 and "immutable" in headers["Cache-Control"] and headers["Content-Encoding"] == "gzip"
    finally:
        served.stop()
    assert served.proc.returncode == 0
    assert os.path.getsize(tmp_path / "wd" / "gml.db") > 0


def test_a_job_row_in_a_delta_is_the_row_the_page_has(tmp_path):
    store = make_store(tmp_path, jobs=4, running=1)
    live = TaskLive(store, "t")
    live.refresh(force=True)
    page = collect(store, "t", log_bytes=0)
    for i, job in enumerate(page["jobs"]):
        mine = live.out[job["id"]]
        assert {k: v for k, v in job.items() if k not in ("logs", "latest", "own_trace")} == \
            {k: v for k, v in mine.items() if k != "latest"}, i
        assert live.index[job["id"]] == i


def test_a_non_local_bind_needs_the_token(tmp_path):
    make_store(tmp_path, jobs=2)
    served = Served("--workdir", "wd", "--host", "0.0.0.0", cwd=tmp_path)
    try:
        assert served.token and len(served.token) >= 24 and "token=" in served.url
        for path in ("/", "/api/tasks", "/task/t", "/api/task/t/changes", "/static/x.js"):
            assert served.get(path)[0] == 401, path
        assert served.get("/api/tasks?token=wrong")[0] == 401
        status, body, headers = served.get(f"/?token={served.token}")
        assert status == 200 and 'id="tasks"' in body
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie == f"gml_token={served.token}" and "HttpOnly" in headers["Set-Cookie"]
        assert served.get("/api/tasks", {"Cookie": cookie})[0] == 200  # the page's own requests
        assert served.get(f"/task/t?token={served.token}")[0] == 200
    finally:
        served.stop()


def test_a_damaged_or_missing_store_is_one_line(tmp_path):
    def run(*a):
        return subprocess.run([os.path.join(BIN, "gml-ray"), "ctl", "serve", *a], cwd=tmp_path,
                                        capture_output=True, text=True, timeout=60)
    missing = run("--workdir", "nowhere")
    assert missing.returncode == 2 and "no gml-ray store" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "gml.db").write_bytes(b"not a database, not at all" * 100)
    bad = run("--workdir", "bad")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    line = " ".join(bad.stderr.split())
    assert line.startswith(f"error: {tmp_path}/bad/gml.db: file is not a database") and "ctl export" in line
    make_store(tmp_path, jobs=1)
    unknown = run("--workdir", "wd", "--task", "nope")
    assert unknown.returncode == 2 and "no task named 'nope'" in unknown.stderr


def _read_only_prefix(tmp_path, work_dir: str) -> tuple[str, ...] | None:
    """A command prefix that runs what follows with ``work_dir`` bind-mounted read-only (in a
    private mount namespace: root ignores chmod), or None where this machine cannot."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        ok = subprocess.run(["unshare", "-rm", "sh", "-c", f'mount --bind "{probe}" "{probe}" && '
                             f'mount -o remount,bind,ro "{probe}" && ! touch "{probe}/x" 2>/dev/null'],
                            capture_output=True).returncode == 0
    except FileNotFoundError:
        ok = False
    if not ok:
        return None
    script = f'mount --bind "{work_dir}" "{work_dir}" && mount -o remount,bind,ro "{work_dir}" && exec "$@"'
    return ("unshare", "-rm", "sh", "-c", script, "sh")


def test_a_read_only_work_dir_is_served(tmp_path):
    store = make_store(tmp_path, jobs=3)
    wd = str(tmp_path / "wd")
    conn = sqlite3.connect(os.path.join(wd, "gml.db"))  # the last changes only in the WAL, as a killed run leaves them
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE jobs SET reward = 0.75 WHERE job_id = 2")
    conn.commit()
    store.close()
    prefix = _read_only_prefix(tmp_path, wd)
    if prefix is None:
        pytest.skip("no read-only bind mount here (unshare -rm)")
    before = {n: os.path.getmtime(os.path.join(wd, n)) for n in os.listdir(wd)}
    served = Served("--workdir", wd, cwd=tmp_path, prefix=prefix)
    try:
        tasks = served.json("/api/tasks")["tasks"]
        assert [t["name"] for t in tasks] == ["t"] and tasks[0]["counts"] == {"FINISHED": 3}
        assert served.get("/")[0] == 200
        status, page, _ = served.get("/task/t")
        assert status == 200 and 'id="gml-curves"' in page
        delta = served.json("/api/task/t/changes?epoch=x")
        assert delta["summary"]["counts"] == {"FINISHED": 3}
    finally:
        served.stop()
        after = {n: os.path.getmtime(os.path.join(wd, n)) for n in os.listdir(wd)}
        conn.close()
    assert served.proc.returncode == 0
    assert after == before  # nothing written


TRIAL = """
import time
import gml_ray

def trial(config):
    for step in range(8):
        gml_ray.report(step, acc=config["x"] * (step + 1))
        time.sleep(0.5)
"""

CONFIG = """
task:
  function: trial:trial
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.3, 0.2, 0.4]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
"""


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_the_page_follows_a_run_in_chromium(tmp_path, browser):
    write_files(tmp_path, {"trial.py": TRIAL, "search_config.yaml": CONFIG})
    run = subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "live",
                            "--workdir", "wd", "--num-cpus", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    served = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # until a job reports
            try:
                st = Store(str(tmp_path / "wd"), create=False, read_only=True)
                running = st.get_task("live") and [j for j in st.jobs("live") if j["status"] == "RUNNING"]
                st.close()
                if running:
                    break
            except (sqlite3.OperationalError, UserError):  # not created yet
                pass
            time.sleep(0.2)
        served = Served("--workdir", "wd", "--task", "live", cwd=tmp_path)
        browser.call("Page.navigate", url=served.url)
        def wait(expr, timeout=60):
            return _wait(browser, expr, timeout)
        wait("!!(window.gmlReport && window.gmlReport.data && window.gmlDashboard && gmlDashboard.polls > 0)")
        cells = "Array.from(document.querySelectorAll('#jobs tbody tr[data-row]')).map(r => r.cells[0].textContent + ' ' + r.cells[1].textContent)"
        at_load = browser.eval(cells)
        finished_at_load = {c.split()[0] for c in at_load if c.endswith("FINISHED")}
        assert len(finished_at_load) < 4, at_load
        # a job finishes while the page is open: its row says so within the update interval
        t0 = time.time()
        wait(f"{cells}.some(c => c.endsWith('FINISHED') && !{json.dumps(sorted(finished_at_load))}.includes(c.split(' ')[0]))", 60)
        assert run.poll() is None or time.time() - t0 < 30
        wait(f"{cells}.filter(c => c.endsWith('FINISHED')).length === 4", 120)  # the whole run, live
        wait("document.querySelector('#summary h1 span').textContent === 'FINISHED'", 30)
        assert "4 jobs" in browser.eval("document.getElementById('live-state').textContent")
        assert browser.eval("gmlDashboard.errors") == [] and browser.errors() == []
        wait("gmlReport.ready")
        traces = browser.eval("Array.from(document.querySelectorAll('.curve-plot')).map(d => d.data.map(t => t.name))")
        assert traces and any(n.endswith("(live)") for n in traces[0])  # curves grew while the page was open
        requests = [u for u in browser.requests() if not u.startswith(served.base)]
        assert requests == []  # nothing from the internet
    finally:
        if served is not None:
            served.stop()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
        run.wait(120)


def _wait(page, expr: str, timeout: float):
    deadline = time.time() + timeout
    while True:
        value = page.eval(expr)
        if value:
            return value
        if time.time() > deadline:
            seen = page.eval("JSON.stringify([window.gmlDashboard, window.gmlReport && gmlReport.rows && gmlReport.rows(), "
                                "document.getElementById('live-state') && document.getElementById('live-state').textContent])")
            raise AssertionError(f"not reached in {timeout}s: {expr[:120]} (page: {seen}; errors: {page.errors()})")
        time.sleep(0.1)
