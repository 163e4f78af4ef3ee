"""`ctl report`: the HTML page built from a store, checked in headless Chromium over DevTools.

Chromium is started by the tests (`--headless --no-sandbox --disable-gpu
--disable-background-networking`) and ended by its process group id; tests that need it skip
when no `chromium` is installed (CI installs it). The DevTools client below is also used by
benchmarks/report_scale.py.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys

import pytest
import typer
from helpers.stores import make_store
from typer.testing import CliRunner

from gml_ray.errors import UserError
from gml_ray.views.report import collect, write_report

BIN = os.path.dirname(sys.executable)


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


# ---- several objectives and constraints -----------------------------------------------------------

def objectives_store(tmp_path, reference=None):
    """Two objectives, both minimised, and one constraint. By hand: jobs 1-3 ended feasible at
    (1, 4), (2, 2), (3, 3) and job 5, still running, is at (2.5, 2.5) so far; the front is jobs 1
    and 2 (job 2 dominates jobs 3 and 5). Job 4 at (0.5, 0.5) would dominate them all but breaks
    the constraint; job 6 ended ERROR (its values are no result). Without a configured reference,
    the reference is each objective's worst value among jobs 1, 2, 3, 5 moved out by a tenth of
    its range: (3.2, 4.2)."""
    from gml_ray.objectives import Objective, OutcomeSpec, parse_constraint
    from gml_ray.store import Store
    from gml_ray.vocab import OptimizeMode

    spec = OutcomeSpec((Objective("f1", OptimizeMode.MINIMIZE), Objective("f2", OptimizeMode.MINIMIZE)),
                       (parse_constraint("cost <= 5"),), reference)
    store, t0 = Store(str(tmp_path / "wd")), 1_700_000_000.0
    rows = [  # values, violation, status, ended
        ((1.0, 4.0), -1.0, "FINISHED", 10), ((2.0, 2.0), -2.0, "FINISHED", 20),
        ((3.0, 3.0), -3.0, "FINISHED", 30), ((0.5, 0.5), 2.0, "FINISHED", 15),
        ((2.5, 2.5), -0.5, "RUNNING", None), ((1.5, 1.5), -1.0, "ERROR", 25)]
    with store.transaction():
        store.create_task("mo", status="FINISHED", reward_attribute="f1", optimize_mode="minimize",
                          objectives=spec.to_json(), scalar_columns=[], task_dir=str(tmp_path / "wd" / "mo"),
                          started=t0, ended=t0 + 40)
        for i, (values, violation, status, ended) in enumerate(rows, 1):
            store.add_job("mo", i, f"job_{i:04d}", {"x": i}, {"x": i}, None, str(tmp_path / f"j{i}"), status=status)
            store.update_job("mo", i, reward=values[0], rewards=json.dumps(values),
                             violations=json.dumps([violation]), feasible=int(violation <= 0),
                             started=t0 + i, ended=None if ended is None else t0 + ended)
    return store, t0


@pytest.mark.parametrize("reference, volumes", [
    (None, [0.44, 2.84, 2.84, 2.84]),  # job 1's box 2.2 x 0.2; with job 2's 1.2 x 2.2 less their overlap 1.2 x 0.2
    ((4.0, 5.0), [3.0, 7.0, 7.0, 7.0]),  # the configured point: 3 x 1; + 2 x 3 less 2 x 1
])
def test_objectives_payload_marks_the_feasible_front_and_its_hypervolume_over_time(tmp_path, reference, volumes):
    store, t0 = objectives_store(tmp_path, reference)
    data = collect(store, "mo", now=t0 + 50)
    jobs = data["jobs"]
    assert data["objectives"] == [{"name": "f1", "mode": "minimize"}, {"name": "f2", "mode": "minimize"}]
    assert data["constraints"] == ["cost <= 5"]
    assert [j["pareto"] for j in jobs] == [True, True, False, False, False, False]
    assert [j["feasible"] for j in jobs] == [True, True, True, False, True, True]
    assert jobs[3]["values"] == [0.5, 0.5] and jobs[3]["violations"] == [2.0]
    # one point per job that may be on a front (1, 2, 3; 5 at the report's time), in end order,
    # against one reference
    assert [(p[0] - t0, p[2]) for p in data["hypervolume"]] == [(10, 0), (20, 1), (30, 2), (50, 4)]
    assert [p[1] for p in data["hypervolume"]] == pytest.approx(volumes)
    assert data["front"]["size"] == 2 and data["front"]["hypervolume"] == pytest.approx(volumes[-1])
    assert data["front"]["reference"] == pytest.approx(list(reference or (3.2, 4.2)))
    json.dumps(data, allow_nan=False)
    # the front every other view shows (ctl show, gml_ray.pareto_front)
    from gml_ray.objectives import task_front
    front = task_front(store.require_task("mo"), store.jobs("mo"))
    assert front is not None and [j["name"] for j in front.members] == ["job_0001", "job_0002"]
    assert front.hypervolume == pytest.approx(data["front"]["hypervolume"])


def test_a_constraint_never_reported_is_infeasible_and_a_plain_task_gets_no_objectives(tmp_path):
    store, t0 = objectives_store(tmp_path)
    store.update_job("mo", 2, violations=json.dumps([None]), feasible=0)  # cost never reported
    data = collect(store, "mo", now=t0 + 50)
    assert [j["pareto"] for j in data["jobs"]] == [True, False, False, False, True, False]  # 5 now beats 3
    assert data["jobs"][1]["violations"] == [None] and data["jobs"][1]["feasible"] is False
    plain = collect(make_store(tmp_path / "plain", jobs=2), "t")
    assert not {"objectives", "constraints", "front", "hypervolume"} & set(plain)
    assert not {"values", "violations", "feasible", "pareto"} & set(plain["jobs"][0])


def test_the_series_gives_only_exact_volumes_when_thinned_and_none_past_its_time(tmp_path, monkeypatch):
    import gml_ray.views.report_objectives as ro
    store, t0 = objectives_store(tmp_path)
    monkeypatch.setattr(ro, "MAX_VOLUMES", 1)  # the front changes at jobs 1 and 2: only the last is computed
    data = collect(store, "mo", now=t0 + 50)
    assert [(p[0] - t0, p[2]) for p in data["hypervolume"]] == [(20, 1), (30, 2), (50, 4)]
    assert [p[1] for p in data["hypervolume"]] == pytest.approx([2.84] * 3)
    monkeypatch.setattr(ro, "FINAL_SECONDS", 0.0)  # a front too costly to measure: no volume, still a front
    data = collect(store, "mo", now=t0 + 50)
    assert data["hypervolume"] == [] and data["front"]["hypervolume"] is None
    assert data["front"]["computed"] is False and data["front"]["size"] == 2
    assert [j["pareto"] for j in data["jobs"]] == [True, True, False, False, False, False]


def test_a_configured_reference_and_no_result_yet(tmp_path):
    store, t0 = objectives_store(tmp_path, reference=(4.0, 5.0))
    with store.transaction():
        for i in range(1, 7):
            store.update_job("mo", i, status="PENDING", reward=None, rewards=None, violations=None,
                             feasible=None, ended=None)
    data = collect(store, "mo", now=t0 + 50)
    assert data["hypervolume"] == [] and not any(j["pareto"] for j in data["jobs"])
    assert data["front"] == {"size": 0, "hypervolume": None, "reference": [4.0, 5.0], "computed": True}


def slow_volume(pts, ref) -> float:
    """The hypervolume by plain slicing along the first objective (exact, for a few points)."""
    pts = [p for p in pts if all(x > r for x, r in zip(p, ref))]
    if not pts:
        return 0.0
    if len(ref) == 1:
        return max(p[0] for p in pts) - ref[0]
    xs = sorted({p[0] for p in pts} | {ref[0]})
    return sum((hi - lo) * slow_volume([p[1:] for p in pts if p[0] >= hi], ref[1:]) for lo, hi in zip(xs, xs[1:]))


def test_the_reports_volume_and_front_agree_with_the_engines():
    import random

    from gml_ray.objectives import Objective, OutcomeSpec, front_indices, hypervolume
    from gml_ray.views.report_objectives import pareto
    from gml_ray.vocab import OptimizeMode

    rnd = random.Random(5)
    for _ in range(400):
        d, n, grid = rnd.choice([1, 2, 3, 4, 5]), rnd.randint(0, 12), rnd.random() < 0.5  # grid: ties, equal points
        pts = [tuple(float(rnd.randint(0, 4)) if grid else rnd.uniform(0, 1) for _ in range(d)) for _ in range(n)]
        ref = tuple(rnd.choice([-0.5, 0.0, 1.0]) if grid else rnd.uniform(-0.2, 0.3) for _ in range(d))
        assert hypervolume(pts, ref) == pytest.approx(slow_volume(pts, ref), rel=1e-9, abs=1e-12)
        if not pts:
            continue
        spec = OutcomeSpec(tuple(Objective(f"f{k}", rnd.choice(list(OptimizeMode))) for k in range(d)))
        values = {i: spec.scores(p) for i, p in enumerate(pts)}  # as objective values (scores() is its own inverse)
        jobs = [{"ended": rnd.choice([1.0, 2.0, 3.0])} for _ in pts]
        on_front, series = pareto(spec, jobs, values, spec.reference(values.values()), 0.0)
        assert on_front == set(front_indices(pts))
        assert series[-1][1] == pytest.approx(spec.hypervolume([values[i] for i in on_front], spec.reference(values.values())))
        assert [p[1] for p in series] == sorted(p[1] for p in series)  # one reference: it never falls


def test_the_page_of_two_objectives_shows_the_front_the_infeasible_jobs_and_objective_columns(tmp_path, browser):
    store, t0 = objectives_store(tmp_path)
    page = browser.open_report(write_report(store, "mo", str(tmp_path / "mo.html")).path)
    assert page["errors"] == [] and page["requests"] == [] and page["rows"] == 6
    assert "Pareto front 2 jobs" in page["summary"] and "hypervolume 2.84" in page["summary"]
    assert "constraints cost <= 5" in page["summary"] and "feasible 5 of 6" in page["summary"]
    assert browser.eval("document.getElementById('pareto-section').hidden") is False
    assert browser.eval("document.getElementById('pareto-controls').hidden") is True  # two: nothing to pick

    # the scatter: a trace per kind of job (their job indices), the front's step line through its jobs
    traces = browser.eval("Object.fromEntries(document.getElementById('pareto-plot').data.map(t => [t.meta, "
                          "{name: t.name, rows: t.customdata || null, x: t.x, y: t.y, symbol: t.marker && t.marker.symbol}]))")
    assert traces["front"]["rows"] == [0, 1] and traces["front"]["name"] == "Pareto front"
    assert traces["infeasible"] == {"name": "infeasible", "rows": [3], "x": [0.5], "y": [0.5], "symbol": "x"}
    assert traces["dominated"]["rows"] == [2, 4] and traces["noresult"]["rows"] == [5]
    assert (traces["front-line"]["x"], traces["front-line"]["y"]) == ([1, 2], [4, 2])
    # ... drawn: one marker per job, the legend names the infeasible ones
    assert browser.eval("document.querySelectorAll('#pareto-plot .scatterlayer path.point').length") == 6
    legend = browser.eval("Array.from(document.querySelectorAll('#pareto-plot .legendtext')).map(t => t.textContent)")
    assert {"Pareto front", "infeasible", "dominated"} <= set(legend)
    hv = browser.eval("document.getElementById('hv-plot').data[0].y")
    assert hv == pytest.approx([0.44, 2.84, 2.84, 2.84, 2.84])  # the last: held to the task's end

    # the table: a column per objective (in place of reward), the front's mark, the constraint
    cells = "Array.from(document.querySelectorAll('#jobs tbody tr[data-row]')).map(r => Array.from(r.cells).map(c => c.textContent))"
    head = browser.eval("Array.from(document.querySelectorAll('#jobs thead th')).map(t => t.textContent)")
    assert head[:3] == ["job", "status", "x"] and head[3:8] == ["f1", "f2", "pareto", "feasible", "cost <= 5"]
    assert "reward" not in head
    rows = browser.eval(cells)
    assert [r[0] for r in rows[:2]] == ["job_0001", "job_0002"] and [r[5] for r in rows] == ["\u25c6"] * 2 + ["-"] * 4
    by_name = {r[0]: r for r in rows}
    assert by_name["job_0004"][6:8] == ["no", "\u2717 +2"] and by_name["job_0001"][6:8] == ["yes", "\u2713 -1"]
    browser.eval("document.querySelectorAll('#jobs th')[4].click()")  # f2, minimised: the lowest first
    assert [r[0] for r in browser.eval(cells)] == ["job_0004", "job_0006", "job_0002", "job_0005", "job_0003", "job_0001"]
    assert browser.eval("gmlReport.filter('pareto=\u25c6')") == 2
    assert browser.eval("document.getElementById('pareto-plot').data.find(t => t.meta === 'dominated')") is None  # the plot follows
    assert browser.eval("gmlReport.filter('')") == 6
    browser.eval("gmlReport.select(1)")
    assert "Pareto front\n\u25c6 on it" in browser.eval("document.getElementById('detail').innerText")
    assert browser.errors() == []


def test_three_objectives_pick_the_pair_to_plot_and_get_a_scatter_matrix(tmp_path, browser):
    from gml_ray.objectives import Objective, OutcomeSpec
    from gml_ray.vocab import OptimizeMode

    store = make_store(tmp_path, jobs=4, steps=2)
    spec = OutcomeSpec(tuple(Objective(n, m) for n, m in (("acc", OptimizeMode.MAXIMIZE), ("loss", OptimizeMode.MINIMIZE),
                                                          ("ms", OptimizeMode.MINIMIZE))))
    points = [(0.9, 0.3, 10.0), (0.8, 0.1, 30.0), (0.7, 0.2, 5.0), (0.6, 0.4, 40.0)]  # the last: dominated
    with store.transaction():
        store.update_task("t", objectives=spec.to_json())
        for i, p in enumerate(points, 1):
            store.update_job("t", i, reward=p[0], rewards=json.dumps(p))
    data = collect(store, "t")
    assert [j["pareto"] for j in data["jobs"]] == [True, True, True, False]
    page = browser.open_report(write_report(store, "t", str(tmp_path / "three.html")).path)
    assert page["errors"] == []
    assert browser.eval("document.getElementById('pareto-controls').hidden") is False
    dims = browser.eval("document.getElementById('splom-plot').data.map(t => [t.meta, t.dimensions.map(d => d.label)])")
    assert dims == [["dominated", ["acc", "loss", "ms"]], ["front", ["acc", "loss", "ms"]]]
    browser.eval("const s = document.getElementById('obj-y'); s.value = '2'; s.dispatchEvent(new Event('change'))")
    front = browser.eval("document.getElementById('pareto-plot').data.find(t => t.meta === 'front')")
    assert front["x"] == [0.9, 0.8, 0.7] and front["y"] == [10, 30, 5]
    # the step line: the front of acc (max) and ms (min) alone; job 2 is not on it (job 1 beats it on both)
    line = browser.eval("document.getElementById('pareto-plot').data.find(t => t.meta === 'front-line')")
    assert (line["x"], line["y"], line["name"]) == ([0.7, 0.9], [5, 10], "front of these two")
    assert browser.eval("document.getElementById('pareto-plot').layout.xaxis.title.text") == "acc (max)"
    assert browser.errors() == []
