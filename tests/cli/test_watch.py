"""`ctl show --task T --watch`: the live table, redrawn in place while a run goes on."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading

from gml_ray.cli.report_cmds import SPARKS, sparkline, watch, watch_view
from helpers import write_files
from helpers.stores import make_store
from rich.console import Console

from gml_ray.config import load_config
from gml_ray.schedulers import NaiveScheduler

BIN = os.path.dirname(sys.executable)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def render(renderable, width=160) -> str:
    console = Console(file=io.StringIO(), width=width, height=40, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_sparkline():
    assert sparkline([]) == "" and sparkline([float("nan")]) == ""
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == SPARKS
    assert sparkline([5, 5, 5]) == SPARKS[3] * 3
    assert len(sparkline(list(range(100)), width=16)) == 16


def test_view_is_best_first_with_running_jobs_and_their_sparklines(tmp_path):
    store = make_store(tmp_path, jobs=30, steps=8, status="RUNNING", running=2)
    store.update_job("t", 1, reward=99.0)  # an old job that is now the best
    text = render(watch_view(store, "t", height=20))
    lines = [ln for ln in text.splitlines() if re.match(r"\W*job_\d{4}", ln)]
    names = [re.search(r"job_\d{4}", ln).group() for ln in lines]
    assert names[0] == "job_0001" and "job_0001 *" in lines[0]  # best first, starred
    assert {"job_0029", "job_0030"} <= set(names)  # running jobs are always shown
    assert len(names) == 20 - 9  # as many as fit the terminal
    running = [ln for ln in lines if "RUNNING" in ln]
    assert len(running) == 2 and all(any(c in ln for c in SPARKS) for ln in running)
    assert "task t  RUNNING" in text and "19 more jobs not shown" in text and "Ctrl+C" in text


TRAIN = """
import sys, time
from gml_ray import SummaryWriter
x = float(sys.argv[1])
w = SummaryWriter()
for e in range(6):
    w.add_scalar("acc", x * (e + 1), e)
    w.add_scalar("loss", 1.0 / (e + 1), e)
    time.sleep(0.25)
"""

CONFIG = """
task:
  template: "python train.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.3, 0.2]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
pavi: {scalars: [loss]}
"""


def test_watch_refreshes_in_place_during_a_live_run(ray_session, tmp_path):
    write_files(tmp_path / "code", {"search_config.yaml": CONFIG, "train.py": TRAIN})
    scheduler = NaiveScheduler(str(tmp_path / "wd"), load_config(str(tmp_path / "code" / "search_config.yaml")),
                               task="live")
    store = scheduler.prepare()
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(summary=scheduler.run()), daemon=True)
    runner.start()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, height=30, color_system="standard")
    try:
        status = watch(store, "live", console, interval=0.25)
    finally:
        runner.join(120)
    assert status == "FINISHED" and result["summary"]["status"] == "FINISHED"

    raw = out.getvalue()
    assert "\x1b[1A" in raw or "\x1b[2K" in raw  # redrawn in place (cursor moves), not appended
    frames = [ANSI.sub("", f) for f in re.split(r"(?=task live  )", ANSI.sub("", raw)) if f.startswith("task live")]
    assert len(frames) >= 4, raw[-2000:]
    live = [f for f in frames if re.search(r"job_\d{4}[^\n]*RUNNING", f)]
    assert live and any(any(c in f for c in SPARKS) for f in live)  # running jobs' curves
    last = frames[-1]
    assert "FINISHED" in last.splitlines()[0] and "Ctrl+C" not in last
    rows = [re.search(r"job_\d{4}", ln).group() for ln in last.splitlines() if re.match(r"\W*job_\d{4}", ln)]
    assert rows == ["job_0002", "job_0003", "job_0001"]  # best first: x = 0.3, 0.2, 0.1


def test_gml_ray_ctl_show_watch(tmp_path):
    """The installed `gml-ray` with `--watch` wired into `ctl show` (gml_ray/cli/main.py)."""
    make_store(tmp_path, jobs=3)
    result = subprocess.run([os.path.join(BIN, "gml-ray"), "ctl", "show", "-t", "t", "-w", "wd",
                             "--watch", "--interval", "0.2"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, COLUMNS="160"))
    assert result.returncode == 0, result.stderr
    assert "task t  FINISHED" in result.stdout and "job_0003 *" in result.stdout
    bad = subprocess.run([os.path.join(BIN, "gml-ray"), "ctl", "show", "-w", "wd", "--watch"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--watch needs --task" in bad.stderr and "Traceback" not in bad.stderr
