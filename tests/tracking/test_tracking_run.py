"""``tracking.mlflow`` on real runs (local Ray, function trials) against real MLflow stores: every
job a child run of the task's run with its args and all its scalars; a tracking store that goes
away mid-run or a server that never answers is one warning, the search is unharmed, and
``ctl export-mlflow`` later logs what is missing without logging anything twice."""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3

from helpers.cli import gml
from helpers.cluster import free_port
from helpers.tracking import check_job_runs

from gml_ray.vocab import JobStatus

TRIAL = {"trial.py": """
    import gml_ray
    def trial(config):
        for step in range(4):
            gml_ray.report(loss=1.0 / (step + 1) + config["x"], acc=config["x"] * step, step=step)
"""}

SPACE = """
task:
  function: "trial:trial"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.2, 0.3]}
    - type: Nested
      data: [{opt: {name: sgd, lr: 0.1}}, {opt: {name: adam, lr: 0.01}}]
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
"""


def test_a_run_logs_every_job_as_a_child_run_and_an_export_after_it_adds_nothing(run_task, tmp_path):
    run = run_task(SPACE + "tracking:\n  mlflow: {}\n", TRIAL)
    assert run.statuses() == [JobStatus.FINISHED] * 6
    stats = run.summary["mlflow"]
    uri = f"sqlite:///{tmp_path / 'wd' / 'mlflow.db'}"  # the default: beside the store
    assert stats["tracking_uri"] == uri and stats["experiment"] == "t"
    assert stats["complete"] and stats["logged"] == 6 and stats["retries"] == 0
    check_job_runs(run, uri)

    out = gml("ctl", "export-mlflow", "--task", "t", "--workdir", str(tmp_path / "wd"))
    assert out.returncode == 0, out.stderr
    assert "logged 0 jobs" in out.stdout and "6 were logged already" in out.stdout
    check_job_runs(run, uri)  # still one run per job


def _mlflow_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("gml_ray") and r.levelno >= logging.WARNING and "MLflow" in r.getMessage()]


def _scheduler_log_warnings(run) -> list[str]:
    with open(os.path.join(run.work_dir, "tasks", run.task, "scheduler.log")) as f:
        return [line for line in f if " WARNING " in line and "MLflow" in line]


def test_a_tracking_store_gone_mid_run_is_one_warning_and_export_logs_the_rest(run_task, tmp_path, caplog,
                                                                               mlflow_store):
    # The store's directory goes away once two jobs are logged, before the other jobs may end; it
    # comes back only after the run. Jobs 3-6 wait for that moment (the file `go`).
    home = tmp_path / "mlflow"
    uri = mlflow_store(home / "mlflow.db")
    go = tmp_path / "go"
    trial = {"trial.py": f"""
        import os, time
        import gml_ray
        def trial(config):
            for slot in ("slot1", "slot2"):  # the first two trials to start run at once
                try:
                    os.close(os.open(os.path.join({str(tmp_path)!r}, slot), os.O_CREAT | os.O_EXCL))
                    break
                except FileExistsError:
                    pass
            else:
                while not os.path.exists({str(go)!r}):
                    time.sleep(0.05)
            for step in range(4):
                gml_ray.report(loss=1.0 / (step + 1) + config["x"], acc=config["x"] * step, step=step)
    """}
    away = tmp_path / "mlflow.away"

    def logged() -> int:  # child runs logged whole (ended), read straight from MLflow's SQLite file
        with contextlib.closing(sqlite3.connect(home / "mlflow.db")) as db:
            return db.execute("SELECT COUNT(*) FROM tags t JOIN runs r ON t.run_uuid = r.run_uuid "
                              "WHERE t.key = 'gml.logged' AND r.status != 'RUNNING'").fetchone()[0]

    def on_progress():
        if not go.exists() and logged() >= 2:
            os.rename(home, away)
            go.touch()

    caplog.set_level(logging.WARNING)
    run = run_task(SPACE + f"tracking:\n  mlflow: {{tracking_uri: '{uri}'}}\n", trial, on_progress=on_progress)
    assert go.exists(), "the store never went away"
    assert run.statuses() == [JobStatus.FINISHED] * 6  # the search is unharmed
    stats = run.summary["mlflow"]
    assert not stats["complete"] and stats["logged"] == 2 and stats["retries"] >= 1
    # one warning, on the console (here: the driver's log) and in scheduler.log
    warnings = _mlflow_warnings(caplog)
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "export-mlflow" in warnings[0], warnings
    assert len(_scheduler_log_warnings(run)) == 1

    os.rename(away, home)  # back: the export logs the four jobs the run could not
    out = gml("ctl", "export-mlflow", "--task", "t", "--workdir", run.work_dir)
    assert out.returncode == 0, out.stderr
    assert "logged 4 jobs" in out.stdout and "2 were logged already" in out.stdout, out.stdout
    check_job_runs(run, uri)
    again = gml("ctl", "export-mlflow", "--task", "t", "--workdir", run.work_dir)
    assert again.returncode == 0 and "logged 0 jobs" in again.stdout, again.stdout + again.stderr
    check_job_runs(run, uri)


def test_a_server_that_never_answers_is_one_warning_and_export_logs_everything_elsewhere(run_task, tmp_path, caplog,
                                                                                         monkeypatch, mlflow_store):
    port = free_port()  # nothing listens there
    caplog.set_level(logging.WARNING)
    run = run_task(SPACE + f"tracking:\n  mlflow: {{tracking_uri: 'http://127.0.0.1:{port}', experiment: e}}\n",
                   TRIAL)
    assert run.statuses() == [JobStatus.FINISHED] * 6
    assert not run.summary["mlflow"]["complete"] and run.summary["mlflow"]["logged"] == 0
    warnings = _mlflow_warnings(caplog)
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0], warnings
    assert len(_scheduler_log_warnings(run)) == 1

    # the config's server still does not answer: one line, exit 1 (without MLflow's own retries)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = gml("ctl", "export-mlflow", "--task", "t", "--workdir", run.work_dir)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    assert down.returncode == 1 and down.stderr.count("\n") == 1 and "MLflow at http://127.0.0.1" in down.stderr
    uri = mlflow_store(tmp_path / "elsewhere" / "mlflow.db")
    for logged in (6, 0):
        out = gml("ctl", "export-mlflow", "--task", "t", "--workdir", run.work_dir, "--tracking-uri", uri)
        assert out.returncode == 0 and f"logged {logged} jobs" in out.stdout, out.stdout + out.stderr
    check_job_runs(run, uri, experiment="e")
