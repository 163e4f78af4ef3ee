"""``tracking.mlflow`` against a real ``mlflow server`` (HTTP, as teams run it): the server goes
down mid-run and comes back before the run ends; every job ends up logged, once, during the run,
with one warning and the search unharmed."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers.cluster import free_port
from helpers.tracking import check_job_runs
from test_tracking_run import SPACE

from gml_ray.vocab import JobStatus

MLFLOW = os.path.join(os.path.dirname(sys.executable), "mlflow")


class Server:
    """``mlflow server`` on ``port`` over the SQLite store ``db``, in its own process group."""

    def __init__(self, db, port: int, log) -> None:
        self.db, self.port, self.log, self.proc = db, port, log, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{self.db}", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=0.5) as r:
                return r.status == 200
        except OSError:
            return False

    def wait(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while not self.healthy():
            assert self.proc.poll() is None, open(self.log).read()[-3000:]
            assert time.monotonic() < end, "mlflow server did not start: " + open(self.log).read()[-3000:]
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # down at once, as a crashed server is
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def mlflow_server(tmp_path, mlflow_template):
    if not os.path.exists(MLFLOW):
        pytest.skip("no mlflow command")
    try:
        import flask  # noqa: F401 - what `mlflow server` needs beyond the skinny client
    except ImportError:
        pytest.skip("mlflow server needs flask (the dev extra)")
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(mlflow_template, db)
    server = Server(db, free_port(), tmp_path / "server" / "server.log")
    server.start()
    try:
        server.wait()
        yield server
    finally:
        server.stop()


def test_a_real_server_down_mid_run_loses_nothing(run_task, tmp_path, caplog, mlflow_server):
    # Trials claim slots 1-6 as they start (two at a time): 1-2 run at once, 3-4 once the server
    # is down (so they end while it is), 5-6 once it is back.
    gates = {3: tmp_path / "down", 4: tmp_path / "down", 5: tmp_path / "back", 6: tmp_path / "back"}
    trial = {"trial.py": f"""
        import os, time
        import gml_ray
        GATES = {{{", ".join(f"{k}: {str(v)!r}" for k, v in gates.items())}}}
        def trial(config):
            for slot in range(1, 7):
                try:
                    os.close(os.open(os.path.join({str(tmp_path)!r}, f"slot{{slot}}"), os.O_CREAT | os.O_EXCL))
                    break
                except FileExistsError:
                    pass
            while slot in GATES and not os.path.exists(GATES[slot]):
                time.sleep(0.05)
            for step in range(4):
                gml_ray.report(loss=1.0 / (step + 1) + config["x"], acc=config["x"] * step, step=step)
            open(os.path.join({str(tmp_path)!r}, f"done{{slot}}"), "w").close()
    """}
    server = mlflow_server

    def logged() -> int:  # child runs logged whole, read from the server's SQLite store
        with contextlib.closing(sqlite3.connect(server.db, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM tags t JOIN runs r ON t.run_uuid = r.run_uuid "
                              "WHERE t.key = 'gml.logged' AND r.status != 'RUNNING'").fetchone()[0]

    restarted: list[float] = []

    def on_progress():
        down, back = tmp_path / "down", tmp_path / "back"
        if not down.exists() and logged() >= 2:
            server.stop()
            down.touch()
        elif down.exists() and not restarted and (tmp_path / "done3").exists() and (tmp_path / "done4").exists():
            time.sleep(1.5)  # the logger meets the dead server with jobs 3-4 to log
            server.start()
            restarted.append(time.time())
        elif restarted and not back.exists() and server.healthy():
            back.touch()

    caplog.set_level(logging.WARNING)
    uri = f"http://127.0.0.1:{server.port}"
    run = run_task(SPACE + f"tracking:\n  mlflow: {{tracking_uri: '{uri}', experiment: e}}\n", trial,
                   on_progress=on_progress)
    assert (tmp_path / "back").exists(), "the server never came back"
    assert run.statuses() == [JobStatus.FINISHED] * 6  # the search is unharmed
    stats = run.summary["mlflow"]
    assert stats["complete"] and stats["logged"] == 6 and stats["retries"] >= 1, stats
    warnings = [r.getMessage() for r in caplog.records if "MLflow" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0], warnings
    check_job_runs(run, uri, experiment="e")  # every job, its params and every metric, once
